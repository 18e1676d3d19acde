//! Everything that talks to the API server: connecting, listing the live
//! objects of a release, scaling and watching Deployments.

pub mod api;
pub mod changes;
pub mod connect;
pub mod fields;
pub mod gitops;
pub mod lease;
pub mod milvus;
pub mod operator;

pub use api::{ApiError, Cluster};
pub use connect::{ConnectOptions, Connection, connect};
