//! Machine-readable output: one stable, versioned document per command,
//! serialised with serde (JSON, or YAML through serde-saphyr).

use anyhow::{Context, Result};
use serde::Serialize;

/// The envelope of every `-o json|yaml` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<'a, T: Serialize> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub items: &'a [T],
}

pub const API_VERSION: &str = "kubectl-milvus/v1alpha1";

pub fn json<T: Serialize>(doc: &T) -> Result<String> {
    let mut s = serde_json::to_string_pretty(doc).context("serialising JSON output")?;
    s.push('\n');
    Ok(s)
}

pub fn yaml<T: Serialize>(doc: &T) -> Result<String> {
    serde_saphyr::to_string(doc).context("serialising YAML output")
}
