//! kubectl-milvus: see and scale Milvus clusters (Helm releases, Milvus
//! Operator resources, Argo CD-rendered instances).
//!
//! Layout (docs/architecture.md): `core` is the pure domain (no I/O),
//! `cluster` is the only module that talks to the API server (Helm records
//! included), `engine` is the service layer every command uses (which shape
//! a name is, status, plans, the scale engine, GitOps ownership), `render`
//! turns models into tables/JSON/YAML, `commands` parse, call and render.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod core;
pub mod engine;
pub mod error;
pub mod render;
pub mod version;
