//! Milvus Operator clusters in every command: finding `Milvus` resources
//! for `status`, deciding which manager a name given to `plan`/`scale`
//! means, and `plan` for a resource (`scale` is in [`scale`]).

pub mod scale;

use anyhow::Result;
use futures::future::try_join_all;

use crate::cli::{ManagerFlag, PlanArgs};
use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::cluster::operator::{self as api, Found};
use crate::commands::{plan as plan_cmd, releases, status};
use crate::core::manifest;
use crate::core::operator::{
    self, DependencyRelease, MilvusResource, OperatorLive, OperatorPlanInput, OperatorStatus,
};
use crate::error::InvalidInput;
use crate::helm::{self, Revisions};

/// What a name given to `plan`/`scale` means.
pub enum Resolved {
    Helm,
    Operator(Box<MilvusResource>),
}

/// The rule: a `Milvus` resource of that name in the namespace is the
/// instance, unless a Helm release of the `milvus` chart has the name too;
/// then `--managed-by` must say which (both would own the same Deployment
/// names, so one of them is broken, and guessing could scale the wrong one).
/// Without the CRD, or without the right to read it, the name is Helm's
/// (quietly: whatever the Helm path answers is the one line to print).
pub async fn resolve(cluster: &Cluster, name: &str, flag: Option<ManagerFlag>) -> Result<Resolved> {
    let namespace = cluster.namespace().to_string();
    if flag == Some(ManagerFlag::Helm) {
        return Ok(Resolved::Helm);
    }
    let cr = match api::get(cluster, &namespace, name).await {
        Ok(cr) => cr,
        Err(ApiError::Forbidden { .. }) if flag.is_none() => None,
        Err(e) => return Err(e.into()),
    };
    match (cr, flag) {
        (Some(cr), Some(ManagerFlag::MilvusOperator)) => Ok(Resolved::Operator(Box::new(cr))),
        (None, Some(ManagerFlag::MilvusOperator)) => Err(InvalidInput(format!(
            "no Milvus resource {name:?} in namespace {namespace:?} (kubectl get milvuses -n {namespace})"
        ))
        .into()),
        (None, _) => Ok(Resolved::Helm),
        (Some(cr), _) => {
            let records = releases::current_records(cluster, Some(&namespace), Some(name)).await?;
            if records.records.iter().any(|r| r.release.is_milvus()) {
                return Err(InvalidInput(format!(
                    "{name:?} in namespace {namespace:?} is both a Helm release of the milvus chart and a Milvus resource of the Milvus Operator; say which with --managed-by helm or --managed-by milvus-operator"
                ))
                .into());
            }
            Ok(Resolved::Operator(Box::new(cr)))
        }
    }
}

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
pub async fn statuses(cluster: &Cluster, namespace: Option<&str>, name: Option<&str>) -> Result<Statuses> {
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
        helm::list_both(cluster, namespace, None, Revisions::Current),
        try_join_all(namespaces.iter().map(|ns| live(cluster, ns)))
    );
    // Unreadable records are the Helm path's to report.
    let grouped = releases::group(records?.records);
    let lives = lives?;
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for cr in &crs {
        let Some(i) = namespaces.iter().position(|ns| *ns == cr.namespace()) else {
            continue;
        };
        let (deployments, live) = &lives[i];
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
                deployments,
                hpas: &live.hpas,
                pods: &live.pods,
                dependencies: &dependencies,
            },
            now,
        );
        s.warnings.extend(warnings);
        out.push(s);
    }
    Ok(Statuses {
        items: out,
        warning: None,
    })
}

/// The operator's Deployments of a namespace, and its HPAs and pods
/// (consistent reads, as `status` makes them).
pub async fn live(
    cluster: &Cluster,
    namespace: &str,
) -> Result<(Vec<operator::OperatorDeployment>, status::Live)> {
    let params = kube::api::ListParams::default();
    let (deployments, live) = tokio::join!(
        api::deployments(cluster, Some(namespace), &params),
        status::fetch_live(cluster, namespace)
    );
    Ok((deployments?, live?))
}

/// `plan` for a `Milvus` resource: reads only.
pub async fn plan(cluster: &Cluster, args: &PlanArgs, cr: &MilvusResource) -> Result<String> {
    let requests = plan_cmd::parse_requests(&args.changes, None, &args.bounds)?;
    refuse_remove(&args.scale_in, cr.name())?;
    let (_, _, plan) = read_and_plan(
        cluster,
        cr,
        &requests,
        args.force,
        args.scale_in.accept_short_grace,
    )
    .await?;
    plan_cmd::output(args.output, plan, None)
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
    requests: &[crate::core::plan::Request],
    force: bool,
    accept_short_grace: bool,
) -> Result<(
    Vec<operator::OperatorDeployment>,
    status::Live,
    crate::core::plan::Plan,
)> {
    let (deployments, live) = live(cluster, cr.namespace()).await?;
    let plan = make(cr, &deployments, &live, requests, force, accept_short_grace)?;
    Ok((deployments, live, plan))
}

/// The plan for a resource from what runs.
pub fn make(
    cr: &MilvusResource,
    deployments: &[operator::OperatorDeployment],
    live: &status::Live,
    requests: &[crate::core::plan::Request],
    force: bool,
    accept_short_grace: bool,
) -> Result<crate::core::plan::Plan> {
    let mut plan = operator::plan(
        &OperatorPlanInput {
            cr,
            deployments,
            hpas: &live.hpas,
            pods: &live.pods,
            grace: &live.grace,
            force,
            accept_short_grace,
            now: jiff::Timestamp::now(),
        },
        requests,
    )
    .map_err(plan_cmd::rejection)?;
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
