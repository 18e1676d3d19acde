//! `kubectl milvus status [RELEASE] [-A] [-o table|wide|json|yaml]`.
//! Reads only: one concurrent round of list calls per namespace.

use anyhow::Result;

use crate::cli::{StatusArgs, StatusOutput};
use crate::cluster::Cluster;
use crate::engine::status::instances_with_milvus;
use crate::render;

pub async fn run(cluster: &Cluster, args: &StatusArgs) -> Result<String> {
    let statuses = instances_with_milvus(cluster, args.release.as_deref(), args.all_namespaces).await?;
    let doc = render::document::Document {
        api_version: render::document::API_VERSION,
        kind: "MilvusStatusList",
        items: &statuses,
    };
    match args.output {
        StatusOutput::Table => Ok(render::status::instances(&statuses, false, args.all_namespaces)),
        StatusOutput::Wide => Ok(render::status::instances(&statuses, true, args.all_namespaces)),
        StatusOutput::Json => render::document::json(&doc),
        StatusOutput::Yaml => render::document::yaml(&doc),
    }
}
