//! kubectl-milvus: see and scale Helm-installed Milvus clusters.
//!
//! Layout: `core` is the pure domain (no I/O), `kube` talks to the API server,
//! `helm` reads and writes Helm release records, `render` turns models into
//! tables/JSON/YAML, `commands` wires them together for the CLI.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod core;
pub mod engine;
pub mod error;
pub mod render;
pub mod version;
