//! Argo CD-rendered instances: the chart rendered with `helm template`, no
//! Helm record, only live objects. Found among a namespace's Deployments,
//! shown by `status`, planned by `plan`, refused by `scale`.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::cli::PlanArgs;
use crate::cluster::Cluster;
use crate::cluster::api::live_statefulset;
use crate::cluster::gitops::{application_resource, statefulset_object};
use crate::cluster::live::{self, Live, PodRead, fetch_live_as};
use crate::core::gitops::{self, LiveObject, Rendered};
use crate::core::manifest;
use crate::core::plan::{self, ChartShape, Common, Plan, Request};
use crate::core::scale_in::ConfigLayers;
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
    let mut apis = Apis::with_applications(apps.clone());
    let mut out = Vec::new();
    let namespaces: BTreeSet<String> = wanted.iter().map(|r| r.namespace.clone()).collect();
    for ns in namespaces {
        let fetched;
        let live = match scope {
            Some((_, live)) => live,
            None => match fetch_live_as(cluster, &ns, PodRead::Printed).await {
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

/// An Argo CD-rendered instance a name was resolved to, with the live
/// objects of its namespace it was found among.
pub struct RenderedInstance {
    pub rendered: Rendered,
    /// The namespace's Deployments and StatefulSets.
    pub workloads: Vec<LiveWorkload>,
    pub live: Live,
}

/// The Argo CD-rendered instance `name` names among a namespace's live
/// objects, if any.
pub async fn named(cluster: &Cluster, namespace: &str, name: &str, live: Live) -> Option<RenderedInstance> {
    let none = BTreeSet::new();
    let (wanted, apps) = find_rendered(cluster, &live.objects, &none, Some(name)).await;
    if wanted.is_empty() {
        return None;
    }
    let (here, workloads) = complete_in(cluster, namespace, &live, &none, apps.as_deref(), &wanted).await;
    let rendered = here.into_iter().next()?;
    Some(RenderedInstance {
        rendered,
        workloads,
        live,
    })
}

/// `plan` of an Argo CD-rendered instance: planned from its live objects,
/// with the owner's warning.
pub async fn plan(
    cluster: &Cluster,
    args: &PlanArgs,
    requests: &[Request],
    found: &RenderedInstance,
) -> Result<(Plan, String)> {
    let RenderedInstance {
        rendered,
        workloads,
        live,
    } = found;
    let namespace = rendered.namespace.as_str();
    let mut chart = gitops::rendered_chart(rendered, &hpa_targets(live));
    let mut owner = rendered.owner.clone();
    let mut apis = Apis::default();
    let (rules, config, ()) = tokio::join!(
        cluster.controller_rules(),
        milvus_config(cluster, rendered),
        enrich(cluster, &mut apis, &mut owner, namespace)
    );
    chart.config = config?;
    let scale_in = plan::ScaleInInput {
        rules: rules?,
        grace: live.grace.clone(),
        remove: args.scale_in.remove.clone(),
        accept_short_grace: args.scale_in.accept_short_grace,
        // Argo CD-rendered instances are not scaled by the plugin.
        drain: false,
    };
    let shape = ChartShape {
        chart,
        namespace,
        objects: &rendered.objects,
        workloads,
        managed_by: ManagedBy::ArgoCd,
        rendered_by: Some(owner.describe()),
    };
    let common = Common {
        hpas: &live.hpas,
        pods: live.pods.objects(),
        force: args.force,
        now: jiff::Timestamp::now(),
        scale_in: &scale_in,
    };
    let plan = plan::plan_shape(&shape, &common, requests).map_err(rejection)?;
    let warning = plan_warning(&owner, &plan);
    Ok((plan, warning))
}

async fn rendered_status(
    cluster: &Cluster,
    apis: &mut Apis,
    mut r: Rendered,
    live: &Live,
    workloads: &[LiveWorkload],
) -> ReleaseStatus {
    let mut status = rendered_model(&r, live, workloads);
    enrich(cluster, apis, &mut r.owner, &r.namespace).await;
    status.owner = Some(r.owner);
    status
}

/// What `status` shows of a rendered instance, but its owner.
fn rendered_model(r: &Rendered, live: &Live, workloads: &[LiveWorkload]) -> ReleaseStatus {
    let chart = gitops::rendered_chart(r, &hpa_targets(live));
    let state = LiveState {
        workloads,
        hpas: &live.hpas,
        pods: &live.pods,
    };
    let mut status = model::build_chart(&chart, &r.namespace, &r.objects, &state, jiff::Timestamp::now());
    status.managed_by = ManagedBy::ArgoCd;
    status
}

/// `scale` of an instance with no Helm record: refused even when forced,
/// since there is no record to keep in step (the emergency route is a
/// plain `kubectl scale`, which Argo CD reverts as well).
pub async fn refuse(cluster: &Cluster, found: RenderedInstance, keys: &[String]) -> anyhow::Error {
    let status = rendered_model(&found.rendered, &found.live, &found.workloads);
    let mut owner = found.rendered.owner;
    enrich(cluster, &mut Apis::default(), &mut owner, &status.namespace).await;
    let named = |component: &str| keys.iter().any(|k| k.split('.').next() == Some(component));
    let workloads: Vec<String> = status
        .components
        .iter()
        .filter(|c| keys.is_empty() || named(&c.component))
        .map(|c| format!("{}/{}", c.kind.to_lowercase(), c.workload))
        .collect();
    Refused(format!(
        "{}; --force-gitops cannot help: there is no Helm record to keep in step (in an emergency: kubectl scale -n {} {} --replicas N, which Argo CD reverts too)",
        owner.refusal(&status.release, keys),
        status.namespace,
        workloads.join(" "),
    ))
    .into()
}

/// The user's Milvus configuration of a rendered instance, from the live
/// ConfigMap its pods mount: the chart names it `<fullname>`, each
/// component's Deployment `<fullname>-<component>`. None (Milvus's
/// defaults) where the instance has no such ConfigMap.
async fn milvus_config(cluster: &Cluster, r: &Rendered) -> Result<ConfigLayers> {
    let Some(name) = r.objects.iter().find_map(|o| {
        let label = o.labels.get("component")?;
        let base = o.name.strip_suffix(label.as_str())?.strip_suffix('-')?;
        (o.kind == "Deployment" && o.labels.get(gitops::NAME_LABEL).map(String::as_str) == Some("milvus"))
            .then(|| base.to_string())
    }) else {
        return Ok(Vec::new());
    };
    let data = live::milvus_config(cluster, &r.namespace, &name).await?;
    Ok(data.map(|d| manifest::config_layers(&d)).unwrap_or_default())
}
