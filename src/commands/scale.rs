//! `kubectl milvus scale RELEASE COMPONENT=N …`.

use anyhow::Result;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::engine::resolve::{Resolved, resolve};
use crate::engine::scale;

pub async fn run(cluster: &Cluster, args: &ScaleArgs) -> Result<String> {
    match resolve(cluster, &args.release, args.managed_by).await? {
        Resolved::Helm => scale::run(cluster, args).await,
        Resolved::Operator(cr) => scale::operator::run(cluster, args, *cr).await,
    }
}
