//! Everything that talks to the API server: connecting, listing the live
//! objects of a release, scaling and watching Deployments.

pub mod api;
pub mod changes;
pub mod connect;
pub mod fields;
pub mod gitops;
pub mod helm_records;
pub mod hpa;
pub mod lease;
pub mod live;
pub mod milvus_upgrades;
pub mod operator;
pub mod rollout;

pub use api::{ApiError, Cluster};
pub use connect::{ConnectOptions, Connection, connect};
