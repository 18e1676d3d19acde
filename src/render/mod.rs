//! Rendering of models into kubectl-style tables, JSON and YAML.

pub mod document;
pub mod milvus;
pub mod plan;
pub mod progress;
pub mod status;
pub mod table;
