//! `kubectl milvus plan RELEASE COMPONENT=N …`: reads only.

use anyhow::Result;

use crate::cli::PlanArgs;
use crate::cluster::Cluster;
use crate::engine::resolve::{Instance, resolve};
use crate::engine::{operator, plan, rendered};
use crate::render;

pub async fn run(cluster: &Cluster, args: &PlanArgs) -> Result<String> {
    let requests = plan::parse_requests(&args.changes, None, &args.bounds)?;
    let (plan, owned) = match resolve(cluster, &args.release, args.managed_by).await? {
        Instance::Helm(_) => plan::helm(cluster, args, &requests).await?,
        Instance::Milvus(cr) => operator::plan(cluster, args, &requests, &cr).await?,
        Instance::Rendered(found) => {
            let (plan, owned) = rendered::plan(cluster, args, &requests, &found).await?;
            (plan, Some(owned))
        }
    };
    render::plan::output(args.output, plan, owned)
}
