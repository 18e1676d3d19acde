//! GitOps owners for every command: who owns a release (from the live
//! objects' markers, confirmed from the owner object where readable), the
//! Argo CD-rendered instances that have no Helm record, and the guard that
//! keeps `scale` from fighting the owner. See docs/gitops.md.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::cli::PlanArgs;
use crate::cluster::Cluster;
use crate::cluster::api::{ApiError, live_statefulset};
use crate::cluster::gitops::{GitopsApis, application_resource, helm_release_resource, statefulset_object};
use crate::commands::plan as plan_cmd;
use crate::commands::status::Live;
use crate::core::gitops::{self, LiveObject, Lookup, Owner, OwnerKind, Rendered};
use crate::core::manifest::{self, ManifestObject};
use crate::core::plan::{self, ComponentChange, Plan, PlanInput, Request, Target};
use crate::core::status::{self as model, LiveState, LiveWorkload, ManagedBy, ReleaseStatus};
use crate::error::Refused;
use crate::helm::StoredRelease;

/// Argo CD's default control-plane namespace, tried when Applications
/// cannot be listed cluster-wide.
const ARGO_NAMESPACE: &str = "argocd";

pub const FORCE_HINT: &str = "--force-gitops scales anyway, for an emergency";

/// The owner APIs, discovered once per command and only when needed.
#[derive(Default)]
pub struct Apis(Option<Result<GitopsApis, Lookup>>);

impl Apis {
    async fn get(&mut self, cluster: &Cluster) -> Result<GitopsApis, Lookup> {
        if self.0.is_none() {
            self.0 = Some(cluster.gitops_apis().await.map_err(|e| lookup_of(&e)));
        }
        self.0.clone().unwrap_or(Err(Lookup::Failed))
    }
}

fn lookup_of(e: &ApiError) -> Lookup {
    match e {
        ApiError::Forbidden { .. } => Lookup::Forbidden,
        ApiError::NotFound { .. } => Lookup::NotFound,
        _ => Lookup::Failed,
    }
}

/// The owner of a recorded release, from the markers on its live
/// Deployments (those its manifest names).
pub async fn release_owner(
    cluster: &Cluster,
    apis: &mut Apis,
    namespace: &str,
    manifest: &[ManifestObject],
    live: &Live,
) -> Option<Owner> {
    let mine = live.objects.iter().filter(|o| {
        manifest
            .iter()
            .any(|m| m.kind == o.object.kind && m.name == o.object.name)
    });
    let mut owner = gitops::detect(mine)?;
    enrich(cluster, apis, &mut owner, namespace).await;
    Some(owner)
}

/// Confirms and completes an owner from its object. Never fails: what the
/// object cannot tell stays as the markers told it, and `lookup` says why.
pub async fn enrich(cluster: &Cluster, apis: &mut Apis, owner: &mut Owner, namespace: &str) {
    let served = match apis.get(cluster).await {
        Ok(served) => served,
        Err(lookup) => {
            owner.lookup = lookup;
            return;
        }
    };
    match owner.kind {
        OwnerKind::FluxHelmRelease => {
            let (Some(version), Some(ns)) = (served.helm_release_version, owner.namespace.clone()) else {
                owner.lookup = Lookup::NotServed;
                return;
            };
            match cluster
                .get_custom(&helm_release_resource(&version), &ns, &owner.name)
                .await
            {
                Ok(hr) => gitops::enrich_flux(owner, &format!("{}/{version}", gitops::FLUX_GROUP), &hr),
                Err(e) => owner.lookup = lookup_of(&e),
            }
        }
        OwnerKind::ArgoCdApplication => {
            if !served.applications {
                owner.lookup = Lookup::NotServed;
                return;
            }
            match find_application(cluster, owner, namespace).await {
                Ok(app) => gitops::enrich_argo(owner, &app),
                Err(lookup) => owner.lookup = lookup,
            }
        }
    }
}

/// The Application of an app instance: in its own namespace when the
/// instance names one, else among all (falling back to `argocd`).
async fn find_application(
    cluster: &Cluster,
    owner: &Owner,
    namespace: &str,
) -> Result<serde_json::Value, Lookup> {
    let ar = application_resource();
    if let Some(ns) = &owner.namespace {
        return cluster
            .get_custom(&ar, ns, &owner.name)
            .await
            .map_err(|e| lookup_of(&e));
    }
    match cluster.list_custom(&ar, None).await {
        Ok(apps) => gitops::find_application(&apps, &owner.name, namespace)
            .cloned()
            .ok_or(Lookup::NotFound),
        Err(listing) => cluster
            .get_custom(&ar, ARGO_NAMESPACE, &owner.name)
            .await
            .map_err(|e| match e {
                ApiError::NotFound { .. } => lookup_of(&listing),
                other => lookup_of(&other),
            }),
    }
}

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
            None => match crate::commands::status::fetch_live(cluster, &ns).await {
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
) -> Result<String> {
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
    let mut plan = plan::plan(&input, requests).map_err(plan_cmd::rejection)?;
    enrich(cluster, &mut Apis::default(), &mut r.owner, namespace).await;
    plan.helm_command = format!("none: no Helm record ({} renders it)", r.owner.describe());
    plan.managed_by = ManagedBy::ArgoCd;
    let warning = plan_warning(&r.owner, &plan);
    plan_cmd::output(args.output, plan, Some(warning))
}

/// What `plan` (and `scale --dry-run`) says of an owned release.
pub fn plan_warning(owner: &Owner, plan: &Plan) -> String {
    let force = if owner.helm_record {
        FORCE_HINT
    } else {
        "--force-gitops cannot help: there is no Helm record to keep in step"
    };
    format!(
        "{}; `scale` refuses it ({force})",
        owner.refusal(&plan.release, &changed(plan))
    )
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

/// The guard of `scale`: refuses a GitOps-owned release (exit 3) unless
/// forced; forced, returns the warning to print on stderr.
pub fn guard(owner: Option<&Owner>, release: &str, keys: &[String], force: bool) -> Result<Option<String>> {
    let Some(owner) = owner else { return Ok(None) };
    if !force {
        return Err(Refused(format!("{}; {FORCE_HINT}", owner.refusal(release, keys))).into());
    }
    Ok(Some(format!(
        "--force-gitops: scaling {release} behind {}'s back; {}, unless {} is changed in Git too",
        owner.describe(),
        owner.reverts(),
        keys.iter()
            .map(|k| owner.field_for(k))
            .collect::<Vec<_>>()
            .join("; ")
    )))
}

/// The owner of a recorded release, for `plan` and `scale`.
pub async fn owner_of(cluster: &Cluster, stored: &StoredRelease, live: &Live) -> Option<Owner> {
    let manifest = manifest::parse(stored.release.manifest()).ok()?;
    release_owner(cluster, &mut Apis::default(), &stored.namespace, &manifest, live).await
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

/// The values keys a plan changes (those of every named component when
/// none changes).
pub fn changed(plan: &Plan) -> Vec<String> {
    let keys = |c: &ComponentChange| {
        let bounds = c.hpa.as_ref().map(|h| {
            let from = h.values.unwrap_or(h.current);
            (from.min != h.target.min, from.max != h.target.max)
        });
        gitops::changed_keys(&c.component, bounds)
    };
    let changing: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| !c.is_noop())
        .flat_map(keys)
        .collect();
    if changing.is_empty() {
        plan.changes.iter().flat_map(keys).collect()
    } else {
        changing
    }
}

/// The values keys requests would change, as typed or by label.
pub fn requested(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| {
            let c = crate::core::components::by_user_name(&r.component)?;
            let bounds = match r.target {
                Target::Bounds { min, max } => Some((min.is_some(), max.is_some())),
                _ => None,
            };
            Some(gitops::changed_keys(c.key, bounds))
        })
        .flatten()
        .collect()
}
