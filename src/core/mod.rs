//! Pure domain logic: plain functions over plain data, testable without a cluster.

pub mod bounds;
pub mod chart;
pub mod components;
pub mod duration;
pub mod gitops;
pub mod lock;
pub mod manifest;
pub mod milvus;
pub mod operator;
pub mod operator_checks;
pub mod ownership;
pub mod plan;
pub mod pods;
pub mod release;
pub mod request;
pub mod scale_in;
pub mod status;
pub mod values;
pub mod watch;

#[cfg(test)]
mod test_support;
