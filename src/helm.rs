//! Reading and writing Helm release records where Helm keeps them: Secrets
//! (type `helm.sh/release.v1`, the default driver) or ConfigMaps
//! (`HELM_DRIVER=configmap`), in the release's namespace.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::cluster::api::{ApiError, Op};
use crate::core::lock;
use crate::core::release::{self, Release, is_pending};

pub const SECRET_TYPE: &str = "helm.sh/release.v1";

/// Where a release's records live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Driver {
    Secret,
    ConfigMap,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Secret => "Secret",
            Driver::ConfigMap => "ConfigMap",
        }
    }
    fn resource(self) -> &'static str {
        match self {
            Driver::Secret => "secrets",
            Driver::ConfigMap => "configmaps",
        }
    }
}

/// One revision as stored: the decoded record and its storage object.
#[derive(Debug, Clone)]
pub struct StoredRelease {
    pub release: Release,
    pub driver: Driver,
    pub namespace: String,
    pub object_name: String,
    pub labels: BTreeMap<String, String>,
    /// Kept on every rewrite; `scale`'s lock lives here (see `core::lock`).
    pub annotations: BTreeMap<String, String>,
    pub resource_version: Option<String>,
}

impl StoredRelease {
    /// `verb` on this record's storage object, for error messages.
    fn op(&self, verb: &'static str) -> Op<'_> {
        Op {
            verb,
            resource: self.driver.resource(),
            namespace: Some(&self.namespace),
            name: Some(&self.object_name),
        }
    }
}

/// Which records to read.
#[derive(Debug, Clone, Copy)]
pub enum Revisions {
    /// The deployed revision and any pending one: what `status` needs.
    Current,
    /// Every revision (history, pruning, locking).
    All,
}

fn selector(name: Option<&str>, which: Revisions) -> String {
    let mut s = String::from("owner=helm");
    if let Some(n) = name {
        s.push_str(",name=");
        s.push_str(n);
    }
    if let Revisions::Current = which {
        s.push_str(",status in (deployed,pending-install,pending-upgrade,pending-rollback)");
    }
    s
}

/// Lists records through one driver. `namespace = None` means all namespaces.
pub async fn list(
    cluster: &Cluster,
    driver: Driver,
    namespace: Option<&str>,
    name: Option<&str>,
    which: Revisions,
) -> Result<Vec<StoredRelease>> {
    let mut params = ListParams::default().labels(&selector(name, which));
    if let Revisions::Current = which {
        params = params.match_any();
    }
    let op = Op {
        verb: "list",
        resource: driver.resource(),
        namespace,
        name: None,
    };
    let raw: Vec<(ObjectMeta, Option<Vec<u8>>)> = match driver {
        Driver::Secret => {
            let api: Api<Secret> = scoped(cluster, namespace);
            let params = params.fields(&format!("type={SECRET_TYPE}"));
            cluster
                .call(op, api.list(&params))
                .await?
                .items
                .into_iter()
                .map(|s| {
                    let payload = s.data.and_then(|mut d| d.remove("release")).map(|b| b.0);
                    (s.metadata, payload)
                })
                .collect()
        }
        Driver::ConfigMap => {
            let api: Api<ConfigMap> = scoped(cluster, namespace);
            cluster
                .call(op, api.list(&params))
                .await?
                .items
                .into_iter()
                .map(|c| {
                    let payload = c
                        .data
                        .and_then(|mut d| d.remove("release"))
                        .map(String::into_bytes);
                    (c.metadata, payload)
                })
                .collect()
        }
    };
    raw.into_iter()
        .map(|(meta, payload)| stored(driver, meta, payload))
        .collect()
}

fn scoped<K>(cluster: &Cluster, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(cluster.client(), ns),
        None => Api::all(cluster.client()),
    }
}

fn stored(driver: Driver, meta: ObjectMeta, payload: Option<Vec<u8>>) -> Result<StoredRelease> {
    let namespace = meta.namespace.clone().unwrap_or_default();
    let object_name = meta.name.clone().unwrap_or_default();
    let what = || {
        format!(
            "Helm release record {} {namespace}/{object_name}",
            driver.as_str()
        )
    };
    let payload = payload.with_context(|| format!("{} has no `release` data", what()))?;
    let release = release::decode(&payload).with_context(|| format!("{} cannot be decoded", what()))?;
    Ok(StoredRelease {
        release,
        driver,
        namespace,
        object_name,
        labels: meta.labels.unwrap_or_default(),
        annotations: meta.annotations.unwrap_or_default(),
        resource_version: meta.resource_version,
    })
}

/// Reads records through both drivers at once.
pub async fn list_both(
    cluster: &Cluster,
    namespace: Option<&str>,
    name: Option<&str>,
    which: Revisions,
) -> Result<Vec<StoredRelease>> {
    let (secrets, configmaps) = tokio::join!(
        list(cluster, Driver::Secret, namespace, name, which),
        list(cluster, Driver::ConfigMap, namespace, name, which)
    );
    let mut all = secrets?;
    all.extend(configmaps?);
    Ok(all)
}

/// Every revision of one release, oldest first (through whichever driver
/// holds it; Secrets win if both do, as with Helm's default driver).
pub async fn history(cluster: &Cluster, namespace: &str, name: &str) -> Result<Vec<StoredRelease>> {
    let mut revs = list(
        cluster,
        Driver::Secret,
        Some(namespace),
        Some(name),
        Revisions::All,
    )
    .await?;
    if revs.is_empty() {
        revs = list(
            cluster,
            Driver::ConfigMap,
            Some(namespace),
            Some(name),
            Revisions::All,
        )
        .await?;
    }
    revs.sort_by_key(|r| r.release.version());
    Ok(revs)
}

fn system_labels(labels: &mut BTreeMap<String, String>, release: &Release) {
    labels.insert("name".into(), release.name().to_string());
    labels.insert("owner".into(), "helm".into());
    labels.insert("status".into(), release.status().to_string());
    labels.insert("version".into(), release.version().to_string());
}

fn now_secs() -> String {
    jiff::Timestamp::now().as_second().to_string()
}

/// Creates a new revision's record (Helm's `Create`): fails with a
/// conflict if that revision already exists, which makes it a lock.
pub async fn create(
    cluster: &Cluster,
    driver: Driver,
    namespace: &str,
    release: &Release,
    inherited_labels: &BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Result<StoredRelease, ApiError> {
    // Helm copies the previous revision's labels (user labels included).
    let mut labels = inherited_labels.clone();
    labels.remove("modifiedAt");
    system_labels(&mut labels, release);
    labels.insert("createdAt".into(), now_secs());
    let mut stored = StoredRelease {
        release: release.clone(),
        driver,
        namespace: namespace.to_string(),
        object_name: release::object_name(release.name(), release.version()),
        labels,
        annotations,
        resource_version: None,
    };
    stored.resource_version = write(cluster, &stored, Write::Create).await?;
    Ok(stored)
}

/// Rewrites a stored revision (Helm's `Update`), guarded by the
/// resourceVersion it was read at: a concurrent writer gives a conflict.
pub async fn update(cluster: &Cluster, stored: &mut StoredRelease) -> Result<(), ApiError> {
    system_labels(&mut stored.labels, &stored.release);
    // Only a pending revision is held by a running `scale`.
    if !is_pending(stored.release.status()) {
        stored.annotations.remove(lock::HOLDER);
        stored.annotations.remove(lock::HEARTBEAT);
    }
    stored.labels.insert("modifiedAt".into(), now_secs());
    stored.resource_version = write(cluster, stored, Write::Replace).await?;
    Ok(())
}

enum Write {
    Create,
    Replace,
}

/// Encodes the record and writes its storage object; returns the new
/// resourceVersion.
async fn write(cluster: &Cluster, stored: &StoredRelease, how: Write) -> Result<Option<String>, ApiError> {
    let name = stored.object_name.as_str();
    let ns = stored.namespace.as_str();
    let payload = release::encode(&stored.release).map_err(|e| ApiError::Server {
        what: format!("encode {name}"),
        code: 0,
        message: e.to_string(),
    })?;
    let metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        labels: Some(stored.labels.clone()),
        annotations: (!stored.annotations.is_empty()).then(|| stored.annotations.clone()),
        resource_version: stored.resource_version.clone(),
        ..Default::default()
    };
    let verb = match how {
        Write::Create => "create",
        Write::Replace => "update",
    };
    let op = stored.op(verb);
    let pp = PostParams::default();
    let written = match stored.driver {
        Driver::Secret => {
            let api: Api<Secret> = Api::namespaced(cluster.client(), ns);
            let obj = Secret {
                metadata,
                type_: Some(SECRET_TYPE.to_string()),
                data: Some(BTreeMap::from([(
                    "release".to_string(),
                    ByteString(payload.into_bytes()),
                )])),
                ..Default::default()
            };
            match how {
                Write::Create => cluster.call(op, api.create(&pp, &obj)).await?.metadata,
                Write::Replace => cluster.call(op, api.replace(name, &pp, &obj)).await?.metadata,
            }
        }
        Driver::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
            let obj = ConfigMap {
                metadata,
                data: Some(BTreeMap::from([("release".to_string(), payload)])),
                ..Default::default()
            };
            match how {
                Write::Create => cluster.call(op, api.create(&pp, &obj)).await?.metadata,
                Write::Replace => cluster.call(op, api.replace(name, &pp, &obj)).await?.metadata,
            }
        }
    };
    Ok(written.resource_version)
}

/// Renews `scale`'s heartbeat on a pending record: a merge patch of one
/// annotation, so it never conflicts with (nor needs) the record's body.
pub async fn heartbeat(cluster: &Cluster, stored: &StoredRelease, now: &str) -> Result<(), ApiError> {
    let (ns, name, op) = (
        stored.namespace.as_str(),
        stored.object_name.as_str(),
        stored.op("patch"),
    );
    let patch = Patch::Merge(serde_json::json!({"metadata": {"annotations": {lock::HEARTBEAT: now}}}));
    let pp = PatchParams::default();
    match stored.driver {
        Driver::Secret => {
            let api: Api<Secret> = Api::namespaced(cluster.client(), ns);
            cluster.call(op, api.patch(name, &pp, &patch)).await.map(|_| ())
        }
        Driver::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
            cluster.call(op, api.patch(name, &pp, &patch)).await.map(|_| ())
        }
    }
}

/// Deletes one revision's record (history pruning).
pub async fn delete(cluster: &Cluster, stored: &StoredRelease) -> Result<(), ApiError> {
    let (ns, name, op) = (
        stored.namespace.as_str(),
        stored.object_name.as_str(),
        stored.op("delete"),
    );
    match stored.driver {
        Driver::Secret => {
            let api: Api<Secret> = Api::namespaced(cluster.client(), ns);
            cluster
                .call(op, api.delete(name, &DeleteParams::default()))
                .await
                .map(|_| ())
        }
        Driver::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
            cluster
                .call(op, api.delete(name, &DeleteParams::default()))
                .await
                .map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_read_only_what_is_needed() {
        assert_eq!(
            selector(Some("my-release"), Revisions::Current),
            "owner=helm,name=my-release,status in (deployed,pending-install,pending-upgrade,pending-rollback)"
        );
        assert_eq!(selector(None, Revisions::All), "owner=helm");
    }
}
