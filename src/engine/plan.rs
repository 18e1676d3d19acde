//! Planning a change of a Helm release: the requests as typed, the plan
//! from the deployed record and what runs, and the warnings `plan` adds.

use anyhow::Result;

use k8s_openapi::api::core::v1::Pod;

use crate::cli::{BoundsFlags, PlanArgs, ScaleInFlags};
use crate::cluster::Cluster;
use crate::cluster::helm_records::StoredRelease;
use crate::cluster::live::{Live, fetch_live};
use crate::cluster::milvus::drain_plan;
use crate::core::bounds;
use crate::core::lock::{self, PendingWork};
use crate::core::manifest;
use crate::core::milvus::drain::{DrainPlan, Removal};
use crate::core::plan::PodFate;
use crate::core::plan::{self, Plan, PlanInput, Rejection, Request, ScaleInInput};
use crate::core::scale_in::ControllerRules;
use crate::engine::scale::drain::QUERY_NODE;
use crate::engine::{owner, releases};
use crate::error::{Refused, rejection};

/// A plan, and the GitOps owner's warning to put at its top.
pub type Planned = (Plan, Option<String>);

/// `plan` of a Helm release: reads only.
pub async fn helm(cluster: &Cluster, args: &PlanArgs, requests: &[Request]) -> Result<Planned> {
    let namespace = cluster.namespace().to_string();
    let (current, live) = tokio::join!(
        releases::one(cluster, &namespace, &args.release),
        fetch_live(cluster, &namespace)
    );
    let live = live?;
    let current = current?;
    let Some(stored) = current.deployed.as_ref() else {
        return Err(Refused(format!("release {} has no deployed revision yet", args.release)).into());
    };
    let scale_in = ScaleInInput {
        rules: cluster.controller_rules().await?,
        grace: live.grace.clone(),
        remove: args.scale_in.remove.clone(),
        accept_short_grace: args.scale_in.accept_short_grace,
        drain: !args.scale_in.no_drain,
    };
    let mut plan = make(stored, &live, requests, args.force, &scale_in)?;
    add_drain(
        cluster,
        &mut plan,
        live.pods.objects(),
        scale_in.rules,
        &args.scale_in,
    )
    .await;
    let owner = owner::owner_of(cluster, stored, &live).await;
    let owned = owner.map(|o| owner::plan_warning(&o, &plan));
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
    Ok((plan, owned))
}

/// The drain section of a plan that scales query nodes in: each leaving
/// pod (in step order), its Milvus node and what it holds, asked of Milvus
/// now (docs/milvus.md). Nothing when no query node leaves.
pub async fn add_drain(
    cluster: &Cluster,
    plan: &mut Plan,
    pods: &[Pod],
    rules: ControllerRules,
    flags: &ScaleInFlags,
) {
    let qn: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.component == QUERY_NODE && c.target < c.current && c.hpa.is_none())
        .flat_map(|c| c.deployments.iter().map(String::as_str))
        .collect();
    if qn.is_empty() {
        return;
    }
    let of_qn = |name: &str| qn.iter().any(|d| name.starts_with(&format!("{d}-")));
    let mut leaving: Vec<(usize, String)> = plan
        .pods
        .iter()
        .filter(|p| p.fate == PodFate::Removed && of_qn(&p.row.name))
        .map(|p| (p.step.unwrap_or(0), p.row.name.clone()))
        .collect();
    leaving.sort();
    let victims: Vec<String> = leaving.into_iter().map(|(_, n)| n).collect();
    let removal = Removal::for_rules(rules);
    if flags.no_drain {
        plan.drain = Some(DrainPlan {
            component: QUERY_NODE.into(),
            enabled: false,
            removal,
            timeout_secs: flags.drain_timeout.as_secs(),
            leaving: Vec::new(),
            unreachable: None,
        });
        return;
    }
    let refs: Vec<&Pod> = pods.iter().collect();
    plan.drain = Some(
        drain_plan(
            cluster,
            &plan.namespace,
            &refs,
            &victims,
            removal,
            flags.drain_timeout,
        )
        .await,
    );
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
    live: &Live,
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
        pods: live.pods.objects(),
        force,
        now: jiff::Timestamp::now(),
        scale_in,
    };
    plan::plan(&input, requests).map_err(rejection)
}
