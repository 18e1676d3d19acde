//! GitOps ownership, one service every shape asks: who owns an instance
//! (from the live objects' markers, confirmed from the owner object where
//! readable), and the guard that keeps `scale` from fighting the owner.
//! See docs/gitops.md.

use anyhow::Result;

use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::cluster::gitops::{GitopsApis, application_resource, helm_release_resource};
use crate::cluster::helm_records::StoredRelease;
use crate::cluster::live::Live;
use crate::core::gitops::{self, Lookup, Owner, OwnerKind};
use crate::core::manifest::{self, ManifestObject};
use crate::core::operator::MilvusResource;
use crate::core::plan::{ComponentChange, Plan, Request, Target};
use crate::core::status::ManagedBy;
use crate::error::Refused;

/// Argo CD's default control-plane namespace, tried when Applications
/// cannot be listed cluster-wide.
const ARGO_NAMESPACE: &str = "argocd";

pub const FORCE_HINT: &str = "--force-gitops scales anyway, for an emergency";

/// The owner APIs, discovered once per command and only when needed, and
/// the Argo CD Applications, listed once per command at most.
#[derive(Default)]
pub struct Apis {
    served: Option<Result<GitopsApis, Lookup>>,
    applications: Option<Result<Vec<serde_json::Value>, ApiError>>,
}

impl Apis {
    /// With the Applications already listed (to confirm label tracking).
    pub fn with_applications(applications: Option<Vec<serde_json::Value>>) -> Apis {
        Apis {
            served: None,
            applications: applications.map(Ok),
        }
    }

    async fn get(&mut self, cluster: &Cluster) -> Result<GitopsApis, Lookup> {
        if self.served.is_none() {
            self.served = Some(cluster.gitops_apis().await.map_err(|e| lookup_of(&e)));
        }
        self.served.clone().unwrap_or(Err(Lookup::Failed))
    }

    async fn applications(&mut self, cluster: &Cluster) -> &Result<Vec<serde_json::Value>, ApiError> {
        if self.applications.is_none() {
            self.applications = Some(cluster.list_custom(&application_resource(), None).await);
        }
        self.applications.get_or_insert_with(|| Ok(Vec::new()))
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
        // Nothing to read of it: the change belongs in its Git source.
        OwnerKind::FluxKustomization => {}
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
            match find_application(cluster, apis, owner, namespace).await {
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
    apis: &mut Apis,
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
    let listing = match apis.applications(cluster).await {
        Ok(apps) => {
            return gitops::find_application(apps, &owner.name, namespace)
                .cloned()
                .ok_or(Lookup::NotFound);
        }
        Err(listing) => lookup_of(listing),
    };
    cluster
        .get_custom(&ar, ARGO_NAMESPACE, &owner.name)
        .await
        .map_err(|e| match e {
            ApiError::NotFound { .. } => listing,
            other => lookup_of(&other),
        })
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

/// The owner of a `Milvus` resource, from the markers on the resource
/// itself; label tracking is confirmed by an Application of that name.
pub async fn milvus_owner(cluster: &Cluster, apis: &mut Apis, cr: &MilvusResource) -> Option<Owner> {
    let meta = cr.meta();
    let mut owner = match gitops::resource_owner(&meta) {
        Some(owner) => owner,
        None => {
            meta.labels.get(gitops::INSTANCE_LABEL)?;
            let Ok(apps) = apis.applications(cluster).await else {
                return None;
            };
            gitops::argo_instance_owner(&meta, apps)?
        }
    };
    enrich(cluster, apis, &mut owner, cr.namespace()).await;
    Some(owner)
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

/// The values keys a plan changes (those of every named component when
/// none changes).
pub fn changed(plan: &Plan) -> Vec<String> {
    if plan.managed_by == ManagedBy::MilvusOperator {
        return resource_fields(plan);
    }
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

/// The spec fields of a `Milvus` resource a plan writes (bounds changes
/// write the user's HPA, not the resource).
fn resource_fields(plan: &Plan) -> Vec<String> {
    let field = |c: &ComponentChange| match &c.group {
        Some(g) => format!("spec.components.{}.groups[{g}].replicas", c.component),
        None => format!("spec.components.{}.replicas", c.component),
    };
    let replicas = || plan.changes.iter().filter(|c| c.hpa.is_none());
    let changing: Vec<String> = replicas().filter(|c| !c.is_noop()).map(field).collect();
    if changing.is_empty() {
        replicas().map(field).collect()
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
