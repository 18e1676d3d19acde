//! `kubectl milvus plan RELEASE COMPONENT=N …`: reads only.

use anyhow::Result;

use crate::cli::{BoundsFlags, PlanArgs, PlanOutput};
use crate::cluster::Cluster;
use crate::commands::gitops;
use crate::commands::releases;
use crate::commands::status;
use crate::core::bounds;
use crate::core::lock::{self, PendingWork};
use crate::core::manifest;
use crate::core::plan::{self, Plan, PlanInput, Rejection, Request, ScaleInInput};
use crate::error::{InvalidInput, Refused};
use crate::helm::StoredRelease;
use crate::render;

pub async fn run(cluster: &Cluster, args: &PlanArgs) -> Result<String> {
    let requests = parse_requests(&args.changes, None, &args.bounds)?;
    let namespace = cluster.namespace().to_string();
    let (current, live) = tokio::join!(
        releases::one(cluster, &namespace, &args.release),
        status::fetch_live(cluster, &namespace)
    );
    let live = live?;
    let current = match current {
        Ok(c) => c,
        Err(e) => return gitops::plan_rendered(cluster, &namespace, args, &requests, &live, e).await,
    };
    let Some(stored) = current.deployed.as_ref() else {
        return Err(Refused(format!("release {} has no deployed revision yet", args.release)).into());
    };
    let scale_in = ScaleInInput {
        rules: cluster.controller_rules().await?,
        grace: live.grace.clone(),
        remove: args.scale_in.remove.clone(),
        accept_short_grace: args.scale_in.accept_short_grace,
    };
    let mut plan = make(stored, &live, &requests, args.force, &scale_in)?;
    let owner = gitops::owner_of(cluster, stored, &live).await;
    let owned = owner.map(|o| gitops::plan_warning(&o, &plan));
    if let Some(p) = &current.pending {
        plan.warnings.push(match releases::pending_work(cluster, p).await {
            PendingWork::Held { holder, renewed } => format!(
                "revision {} is {} and the release's lock is held by kubectl milvus scale on {holder} ({}); `scale` is refused while that run renews it, and repairs the revision once the lock has gone {}s unrenewed",
                p.release.version(),
                p.release.status(),
                lock::renewed_by_holder(renewed),
                lock::LEASE_DURATION.as_secs()
            ),
            PendingWork::Unknown { why } => format!(
                "revision {} is {} by kubectl milvus scale; whether a run is still at work on it is unknown (its lock could not be read: {why})",
                p.release.version(),
                p.release.status()
            ),
            PendingWork::Interrupted => format!(
                "revision {} was left {} by an interrupted kubectl milvus scale; `scale` will repair it from what runs",
                p.release.version(),
                p.release.status()
            ),
            PendingWork::Helm => format!(
                "revision {} is {}: another Helm operation is in progress, so `scale` is refused until it ends",
                p.release.version(),
                p.release.status()
            ),
        });
    }
    output(args.output, plan, owned)
}

/// The plan, with a GitOps owner's warning at the top.
pub fn output(format: PlanOutput, mut plan: Plan, owned: Option<String>) -> Result<String> {
    if let Some(w) = &owned
        && format != PlanOutput::Table
    {
        plan.warnings.insert(0, w.clone());
    }
    let doc = render::document::Document {
        api_version: render::document::API_VERSION,
        kind: "MilvusScalePlan",
        items: std::slice::from_ref(&plan),
    };
    match format {
        PlanOutput::Table => Ok(match owned {
            Some(w) => format!("Warning: {w}\n\n{}", render::plan::table(&plan)),
            None => render::plan::table(&plan),
        }),
        PlanOutput::Json => render::document::json(&doc),
        PlanOutput::Yaml => render::document::yaml(&doc),
    }
}

/// Parses `COMPONENT=N …`, or a lone `COMPONENT` with `--replicas N`, or
/// with `--min N`/`--max M` (its HPA's bounds).
pub fn parse_requests(
    changes: &[String],
    replicas: Option<&str>,
    bounds: &BoundsFlags,
) -> Result<Vec<Request>> {
    let single = |flags: &str, example: &str| match changes {
        [component] if !component.contains('=') => Ok(component.clone()),
        _ => Err(Rejection::Invalid(format!(
            "{flags} takes exactly one COMPONENT (e.g. `scale my-release queryNode {example}`)"
        ))),
    };
    let request = |component: String, target| vec![Request { component, target }];
    let parsed: Result<Vec<Request>, Rejection> =
        match (replicas, bounds.min.as_deref(), bounds.max.as_deref()) {
            (None, None, None) => changes.iter().map(|c| plan::parse_request(c)).collect(),
            (Some(n), None, None) => single("--replicas", "--replicas 3")
                .and_then(|c| plan::parse_target(&c, n).map(|t| request(c, t))),
            (None, min, max) => single("--min/--max", "--min 2 --max 10")
                .and_then(|c| bounds::parse_bounds(&c, min, max).map(|t| request(c, t))),
            (Some(_), _, _) => Err(Rejection::Invalid(
                "--replicas sets a replica count and --min/--max an HPA's bounds: give one or the other"
                    .to_string(),
            )),
        };
    parsed.map_err(rejection)
}

/// Makes the plan from the deployed record and the live objects.
pub fn make(
    stored: &StoredRelease,
    live: &status::Live,
    requests: &[Request],
    force: bool,
    scale_in: &ScaleInInput,
) -> Result<Plan> {
    let objects = manifest::parse(stored.release.manifest())?;
    let input = PlanInput {
        release: &stored.release,
        namespace: &stored.namespace,
        objects: &objects,
        workloads: &live.workloads,
        hpas: &live.hpas,
        pods: &live.pods,
        force,
        now: jiff::Timestamp::now(),
        scale_in,
    };
    plan::plan(&input, requests).map_err(rejection)
}

pub fn rejection(r: Rejection) -> anyhow::Error {
    match r {
        Rejection::Invalid(m) => InvalidInput(m).into(),
        Rejection::Refused(m) => Refused(m).into(),
    }
}
