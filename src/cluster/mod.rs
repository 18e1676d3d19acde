//! Everything that talks to the API server, and the only module that names
//! `kube`: connecting, reading a namespace's live objects, Helm's records,
//! `Milvus` resources, GitOps owner objects, Leases, and writing and
//! watching the steps of a scale run.

pub mod api;
pub mod changes;
pub mod connect;
pub mod fields;
pub mod gitops;
pub mod helm_records;
pub mod hpa;
pub mod lease;
pub mod live;
pub mod milvus;
pub mod milvus_upgrades;
pub mod operator;
pub mod rollout;

pub use api::{ApiError, Cluster};
pub use connect::{ConnectOptions, Connection, connect};
