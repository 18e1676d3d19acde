//! Milvus Operator clusters: finding `Milvus` resources for `status`, and
//! planning a change of one (its scale run is `engine::scale::operator`).

use anyhow::Result;
use futures::future::try_join_all;

use crate::cli::PlanArgs;
use crate::cluster::Cluster;
use crate::cluster::live::{Live, LiveReads, fetch_live};
use crate::cluster::operator::{self as api, Found};
use crate::core::manifest;
use crate::core::operator::{
    self, DependencyRelease, MilvusResource, OperatorLive, OperatorPlanInput, OperatorStatus,
};
use crate::core::plan::{Plan, Request};
use crate::engine::operator_guard::{self, Mode};
use crate::engine::plan::Planned;
use crate::engine::{owner, releases};
use crate::error::rejection;

/// The names of the `Milvus` resources in a namespace, for hints; none
/// when they cannot be read.
pub async fn names(cluster: &Cluster, namespace: &str) -> Vec<String> {
    match api::list(cluster, Some(namespace)).await {
        Ok(Found::Resources(crs)) => crs.iter().map(|c| c.name().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// What `status` found of the Milvus Operator: the resources' statuses, and
/// the warning to print if they could not be read (only when the command
/// succeeds, so an error stays the one line on stderr).
#[derive(Default)]
pub struct Statuses {
    pub items: Vec<OperatorStatus>,
    pub warning: Option<String>,
}

/// The status of the `Milvus` resources in scope (`namespace = None`:
/// everywhere), all of them or the one named. None without the CRD; a
/// warning when listing them is forbidden.
pub async fn statuses(
    cluster: &Cluster,
    reads: &LiveReads<'_>,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Statuses> {
    let crs: Vec<MilvusResource> = match api::list(cluster, namespace).await? {
        Found::Resources(crs) => crs
            .into_iter()
            .filter(|c| name.is_none_or(|n| c.name() == n))
            .collect(),
        Found::NoCrd => return Ok(Statuses::default()),
        Found::Forbidden(warning) => {
            return Ok(Statuses {
                items: Vec::new(),
                warning: Some(warning),
            });
        }
    };
    if crs.is_empty() {
        return Ok(Statuses::default());
    }
    let mut namespaces: Vec<&str> = crs.iter().map(MilvusResource::namespace).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let (records, lives) = tokio::join!(
        reads.records(namespace),
        try_join_all(namespaces.iter().map(|ns| reads.get(ns)))
    );
    // Unreadable records are the Helm path's to report.
    let grouped = releases::group(records?.records.clone());
    let lives = lives?;
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    let mut apis = owner::Apis::default();
    for cr in &crs {
        let Some(i) = namespaces.iter().position(|ns| *ns == cr.namespace()) else {
            continue;
        };
        let live = &lives[i];
        let mut dependencies = Vec::new();
        let mut warnings = Vec::new();
        for ((ns, release), current) in &grouped {
            let Some(record) = current.record() else { continue };
            if ns != cr.namespace()
                || !operator::is_dependency_of(cr.name(), release, record.release.chart_name())
            {
                continue;
            }
            match manifest::parse(record.release.manifest()) {
                Ok(objects) => dependencies.push((
                    DependencyRelease {
                        release: release.clone(),
                        chart: record.release.chart_name().to_string(),
                        chart_version: record.release.chart_version().to_string(),
                        status: record.release.status().to_string(),
                    },
                    objects,
                )),
                Err(e) => warnings.push(format!(
                    "dependency release {release}: unreadable manifest ({})",
                    crate::error::one_line(&e)
                )),
            }
        }
        let mut s = operator::status(
            cr,
            &OperatorLive {
                deployments: &live.operator,
                hpas: &live.hpas,
                pods: &live.pods,
                dependencies: &dependencies,
            },
            now,
        );
        s.warnings.extend(warnings);
        s.owner = owner::milvus_owner(cluster, &mut apis, cr).await;
        out.push(s);
    }
    Ok(Statuses {
        items: out,
        warning: None,
    })
}

/// `plan` for a `Milvus` resource: reads only.
pub async fn plan(
    cluster: &Cluster,
    args: &PlanArgs,
    requests: &[Request],
    cr: &MilvusResource,
) -> Result<Planned> {
    refuse_remove(&args.scale_in, cr.name())?;
    let mut apis = owner::Apis::default();
    let (planned, owner) = tokio::join!(
        read_and_plan(
            cluster,
            cr,
            requests,
            args.force,
            args.scale_in.accept_short_grace
        ),
        owner::milvus_owner(cluster, &mut apis, cr)
    );
    let (live, mut plan) = planned?;
    // What the operator would leave unapplied (§ operator_guard).
    let warnings = operator_guard::check(
        cluster,
        cr,
        &live,
        &plan,
        args.scale_in.accept_short_grace,
        Mode::Warn,
    )
    .await?;
    plan.warnings.extend(warnings);
    let rules = cluster.controller_rules().await?;
    crate::engine::plan::add_drain(cluster, &mut plan, live.pods.objects(), rules, &args.scale_in).await;
    let owned = owner.map(|o| owner::plan_warning(&o, &plan));
    Ok((plan, owned))
}

/// `--remove` cannot be honoured: the operator owns the Deployments, and
/// `scale` writes only the resource (never marks the operator's pods).
pub fn refuse_remove(flags: &crate::cli::ScaleInFlags, name: &str) -> Result<()> {
    if flags.remove.is_empty() {
        return Ok(());
    }
    Err(crate::error::InvalidInput(format!(
        "--remove is not supported for Milvus {name} (Milvus Operator): the operator owns its Deployments, so which pod leaves cannot be chosen; run without --remove (`kubectl milvus plan` predicts the pods that go)"
    ))
    .into())
}

/// What runs for a resource, read fresh, and the plan made from it.
pub async fn read_and_plan(
    cluster: &Cluster,
    cr: &MilvusResource,
    requests: &[Request],
    force: bool,
    accept_short_grace: bool,
) -> Result<(Live, Plan)> {
    let live = fetch_live(cluster, cr.namespace()).await?;
    let plan = make(cr, &live, requests, force, accept_short_grace)?;
    Ok((live, plan))
}

/// The plan for a resource from what runs.
pub fn make(
    cr: &MilvusResource,
    live: &Live,
    requests: &[Request],
    force: bool,
    accept_short_grace: bool,
) -> Result<Plan> {
    let mut plan = operator::plan(
        &OperatorPlanInput {
            cr,
            deployments: &live.operator,
            hpas: &live.hpas,
            pods: live.pods.objects(),
            grace: &live.grace,
            force,
            accept_short_grace,
            now: jiff::Timestamp::now(),
        },
        requests,
    )
    .map_err(rejection)?;
    if !cr.observed(cr.generation()) {
        plan.warnings.push(format!(
            "the Milvus Operator has not yet observed generation {} of {} (status.observedGeneration {}); `scale` waits for it first",
            cr.generation(),
            cr.name(),
            cr.observed_generation()
                .map_or_else(|| "unset".to_string(), |g| g.to_string())
        ));
    }
    Ok(plan)
}
