//! Argo CD-rendered instances: the chart rendered with `helm template`, no
//! Helm record, only live objects. Found among a namespace's Deployments,
//! shown by `status`, planned by `plan`, refused by `scale`.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::cli::PlanArgs;
use crate::cluster::Cluster;
use crate::cluster::api::live_statefulset;
use crate::cluster::gitops::{application_resource, statefulset_object};
use crate::cluster::live::{Live, fetch_live};
use crate::core::gitops::{self, LiveObject, OwnerKind, Rendered};
use crate::core::plan::{self, Plan, PlanInput, Request};
use crate::core::status::{self as model, LiveState, LiveWorkload, ManagedBy, ReleaseStatus};
use crate::engine::owner::{Apis, enrich, plan_warning};
use crate::error::{Refused, rejection};

/// The status of the Argo CD-rendered instances in scope (one namespace
/// whose live objects are at hand, or every namespace), optionally only
/// the one named. Best effort: what cannot be listed is not shown, and
/// `status` of Helm releases goes on.
pub async fn rendered_statuses(
    cluster: &Cluster,
    scope: Option<(&str, &Live)>,
    recorded: &BTreeSet<(String, String)>,
    name: Option<&str>,
) -> Vec<ReleaseStatus> {
    let candidates = match scope {
        Some((_, live)) => live.objects.clone(),
        None => match cluster.list_milvus_deployments_everywhere().await {
            Ok(objects) => objects,
            Err(_) => return Vec::new(),
        },
    };
    let (wanted, apps) = find_rendered(cluster, &candidates, recorded, name).await;
    let mut apis = Apis::default();
    let mut out = Vec::new();
    let namespaces: BTreeSet<String> = wanted.iter().map(|r| r.namespace.clone()).collect();
    for ns in namespaces {
        let fetched;
        let live = match scope {
            Some((_, live)) => live,
            None => match fetch_live(cluster, &ns).await {
                Ok(l) => {
                    fetched = l;
                    &fetched
                }
                Err(_) => continue,
            },
        };
        let (here, workloads) = complete_in(cluster, &ns, live, recorded, apps.as_deref(), &wanted).await;
        for r in here {
            out.push(rendered_status(cluster, &mut apis, r, live, &workloads).await);
        }
    }
    out
}

/// The Argo-rendered instances among candidate Deployments (only the one
/// named, if given), and the Applications read to confirm label tracking.
async fn find_rendered(
    cluster: &Cluster,
    candidates: &[LiveObject],
    recorded: &BTreeSet<(String, String)>,
    name: Option<&str>,
) -> (Vec<Rendered>, Option<Vec<serde_json::Value>>) {
    let is_recorded = |ns: &str, r: &str| recorded.contains(&(ns.to_string(), r.to_string()));
    // Looking for one instance: only its own objects matter (another
    // release's Deployments are "unrecorded" only because we did not read
    // its record).
    let named: Vec<LiveObject>;
    let candidates = match name {
        Some(n) => {
            named = candidates
                .iter()
                .filter(|o| gitops::may_be_named(o, n))
                .cloned()
                .collect();
            named.as_slice()
        }
        None => candidates,
    };
    // Milvus Deployments with no record and no tracking annotation may be
    // label-tracked: only an Application of that name can tell.
    let apps = if gitops::untracked_milvus(candidates, is_recorded) {
        cluster.list_custom(&application_resource(), None).await.ok()
    } else {
        None
    };
    let mut found = gitops::rendered_instances(candidates, is_recorded, apps.as_deref());
    found.retain(|r| name.is_none_or(|n| r.named(n)));
    (found, apps)
}

/// The wanted instances of one namespace regrouped with its StatefulSets
/// (their dependencies), and the namespace's live workloads.
async fn complete_in(
    cluster: &Cluster,
    namespace: &str,
    live: &Live,
    recorded: &BTreeSet<(String, String)>,
    apps: Option<&[serde_json::Value]>,
    wanted: &[Rendered],
) -> (Vec<Rendered>, Vec<LiveWorkload>) {
    let statefulsets = cluster
        .list_statefulset_objects(namespace)
        .await
        .unwrap_or_default();
    let mut all = live.objects.clone();
    all.extend(statefulsets.iter().map(statefulset_object));
    let is_recorded = |ns: &str, r: &str| recorded.contains(&(ns.to_string(), r.to_string()));
    let here = gitops::rendered_instances(&all, is_recorded, apps)
        .into_iter()
        .filter(|r| {
            wanted
                .iter()
                .any(|w| w.namespace == r.namespace && w.app == r.app)
        })
        .collect();
    let mut workloads = live.workloads.clone();
    workloads.extend(statefulsets.iter().map(live_statefulset));
    (here, workloads)
}

fn hpa_targets(live: &Live) -> Vec<(String, String)> {
    live.hpas
        .iter()
        .filter_map(|h| {
            let t = &h.spec.as_ref()?.scale_target_ref;
            Some((t.kind.clone(), t.name.clone()))
        })
        .collect()
}

/// `plan` of a name without a Helm record: an Argo CD-rendered instance is
/// planned from its live objects, with the owner's warning; any other name
/// keeps the not-found error.
pub async fn plan_rendered(
    cluster: &Cluster,
    namespace: &str,
    args: &PlanArgs,
    requests: &[Request],
    live: &Live,
    not_found: anyhow::Error,
) -> Result<(Plan, String)> {
    let none = BTreeSet::new();
    let (wanted, apps) = find_rendered(cluster, &live.objects, &none, Some(&args.release)).await;
    if wanted.is_empty() {
        return Err(not_found);
    }
    let (here, workloads) = complete_in(cluster, namespace, live, &none, apps.as_deref(), &wanted).await;
    let Some(mut r) = here.into_iter().next() else {
        return Err(not_found);
    };
    let release = gitops::rendered_release(&r, &hpa_targets(live));
    let scale_in = plan::ScaleInInput {
        rules: cluster.controller_rules().await?,
        grace: live.grace.clone(),
        remove: args.scale_in.remove.clone(),
        accept_short_grace: args.scale_in.accept_short_grace,
    };
    let input = PlanInput {
        release: &release,
        namespace,
        objects: &r.objects,
        workloads: &workloads,
        hpas: &live.hpas,
        pods: &live.pods,
        force: args.force,
        now: jiff::Timestamp::now(),
        scale_in: &scale_in,
    };
    let mut plan = plan::plan(&input, requests).map_err(rejection)?;
    enrich(cluster, &mut Apis::default(), &mut r.owner, namespace).await;
    plan.helm_command = format!("none: no Helm record ({} renders it)", r.owner.describe());
    plan.managed_by = ManagedBy::ArgoCd;
    let warning = plan_warning(&r.owner, &plan);
    Ok((plan, warning))
}

async fn rendered_status(
    cluster: &Cluster,
    apis: &mut Apis,
    mut r: Rendered,
    live: &Live,
    workloads: &[LiveWorkload],
) -> ReleaseStatus {
    let release = gitops::rendered_release(&r, &hpa_targets(live));
    let state = LiveState {
        workloads,
        hpas: &live.hpas,
        pods: &live.pods,
    };
    let mut status = model::build(
        &release,
        &r.namespace,
        "none",
        None,
        &r.objects,
        &state,
        jiff::Timestamp::now(),
    );
    enrich(cluster, apis, &mut r.owner, &r.namespace).await;
    status.managed_by = ManagedBy::ArgoCd;
    status.owner = Some(r.owner);
    status
}

/// The Argo CD-rendered instance RELEASE names in a namespace, if any.
pub async fn rendered_named(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    live: &Live,
) -> Option<ReleaseStatus> {
    rendered_statuses(cluster, Some((namespace, live)), &BTreeSet::new(), Some(name))
        .await
        .into_iter()
        .next()
}

/// `scale` of an instance with no Helm record: refused even when forced,
/// since there is no record to keep in step (the emergency route is a
/// plain `kubectl scale`, which the owner reverts as well).
pub fn refuse_rendered(status: &ReleaseStatus, keys: &[String]) -> anyhow::Error {
    let Some(owner) = &status.owner else {
        return Refused(format!("{} has no Helm record", status.release)).into();
    };
    let named = |component: &str| keys.iter().any(|k| k.split('.').next() == Some(component));
    let workloads: Vec<String> = status
        .components
        .iter()
        .filter(|c| keys.is_empty() || named(&c.component))
        .map(|c| format!("{}/{}", c.kind.to_lowercase(), c.workload))
        .collect();
    Refused(format!(
        "{}; --force-gitops cannot help: there is no Helm record to keep in step (in an emergency: kubectl scale -n {} {} --replicas N, which {} too)",
        owner.refusal(&status.release, keys),
        status.namespace,
        workloads.join(" "),
        match owner.kind {
            OwnerKind::FluxHelmRelease => "Flux reverts",
            OwnerKind::ArgoCdApplication => "Argo CD reverts",
        }
    ))
    .into()
}
