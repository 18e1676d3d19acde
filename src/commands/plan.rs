//! `kubectl milvus plan RELEASE COMPONENT=N …`: reads only.

use anyhow::Result;

use crate::cli::PlanArgs;
use crate::cluster::Cluster;
use crate::engine::resolve::{Resolved, resolve};
use crate::engine::{operator, plan};
use crate::render;

pub async fn run(cluster: &Cluster, args: &PlanArgs) -> Result<String> {
    let requests = plan::parse_requests(&args.changes, None, &args.bounds)?;
    let planned = match resolve(cluster, &args.release, args.managed_by).await? {
        Resolved::Helm => plan::helm(cluster, args, &requests).await?,
        Resolved::Operator(cr) => operator::plan(cluster, args, &requests, &cr).await?,
    };
    render::plan::output(args.output, planned.plan, planned.owned)
}
