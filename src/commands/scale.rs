//! `kubectl milvus scale RELEASE COMPONENT=N …`.

use anyhow::Result;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::engine::resolve::resolve;
use crate::engine::scale;

pub async fn run(cluster: &Cluster, args: &ScaleArgs) -> Result<String> {
    let instance = resolve(cluster, &args.release, args.managed_by).await?;
    scale::run(cluster, args, instance).await
}
