//! Reading and writing Helm release records where Helm keeps them: Secrets
//! (type `helm.sh/release.v1`, the default driver) or ConfigMaps
//! (`HELM_DRIVER=configmap`), in the release's namespace.
//!
//! One code path serves both drivers: the storage object is handled as a
//! dynamic object, and [`Driver`] knows the two places they differ (how
//! the payload sits in `data`, and the Secret's `type`).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::{Value, json};

use super::Cluster;
use super::api::{ApiError, Op, forbidden_watch};
use crate::core::release::{self, Release};

pub const SECRET_TYPE: &str = "helm.sh/release.v1";

/// Annotations an older `scale` kept its lock in; dropped on every rewrite
/// (the lock is a Lease now, see `crate::lease`).
const LEGACY_LOCK_ANNOTATIONS: [&str; 2] = [
    "kubectl-milvus.io/scale-holder",
    "kubectl-milvus.io/scale-heartbeat",
];

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

    fn api_resource(self) -> ApiResource {
        match self {
            Driver::Secret => ApiResource::erase::<Secret>(&()),
            Driver::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
        }
    }

    /// Helm's Secret driver lists only its own Secret type.
    fn narrow(self, params: ListParams) -> ListParams {
        match self {
            Driver::Secret => params.fields(&format!("type={SECRET_TYPE}")),
            Driver::ConfigMap => params,
        }
    }

    /// The `release` payload (Helm's base64 text) as stored: Secret data
    /// is base64 once more on the wire, ConfigMap data is the text itself.
    fn payload(self, object: &DynamicObject) -> Result<Vec<u8>, String> {
        let text = object
            .data
            .pointer("/data/release")
            .and_then(Value::as_str)
            .ok_or("it has no `release` data")?;
        match self {
            Driver::Secret => STANDARD
                .decode(text)
                .map_err(|e| format!("its `release` data is not base64 ({e})")),
            Driver::ConfigMap => Ok(text.as_bytes().to_vec()),
        }
    }

    /// The object body around a payload.
    fn body(self, payload: &str) -> Value {
        match self {
            Driver::Secret => json!({"type": SECRET_TYPE, "data": {"release": STANDARD.encode(payload)}}),
            Driver::ConfigMap => json!({"data": {"release": payload}}),
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
    /// Kept on every rewrite (Helm keeps them too).
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

    /// `Secret ns/sh.helm.release.v1.x.v2`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.driver.as_str(), self.namespace, self.object_name)
    }
}

/// A storage object labelled as a Helm record whose payload cannot be read
/// (another tool's, a half-written one, a corrupt one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    pub driver: Driver,
    pub namespace: String,
    pub object_name: String,
    /// The release it claims to belong to (its `name` label).
    pub release: Option<String>,
    pub reason: String,
}

impl UnreadableRecord {
    /// The command that removes the record (what to do when it cannot be
    /// repaired), as the user types it.
    pub fn delete_command(&self) -> String {
        format!(
            "kubectl delete {} {} -n {}",
            self.driver.as_str().to_lowercase(),
            self.object_name,
            self.namespace
        )
    }
}

impl std::fmt::Display for UnreadableRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Helm release record {} {}/{} cannot be decoded: {}",
            self.driver.as_str(),
            self.namespace,
            self.object_name,
            self.reason
        )
    }
}

/// What a listing found: the readable records, and the unreadable ones
/// named (one odd object must not hide every other release).
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub records: Vec<StoredRelease>,
    pub unreadable: Vec<UnreadableRecord>,
}

impl Listing {
    fn extend(&mut self, other: Listing) {
        self.records.extend(other.records);
        self.unreadable.extend(other.unreadable);
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

pub(crate) fn selector(name: Option<&str>, which: Revisions) -> String {
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

fn api(cluster: &Cluster, driver: Driver, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = driver.api_resource();
    match namespace {
        Some(ns) => Api::namespaced_with(cluster.client(), ns, &resource),
        None => Api::all_with(cluster.client(), &resource),
    }
}

/// Lists records through one driver. `namespace = None` means all
/// namespaces. Reads are consistent (no `resourceVersion=0`): what Helm
/// itself would read at this moment, never an older cached state.
pub async fn list(
    cluster: &Cluster,
    driver: Driver,
    namespace: Option<&str>,
    name: Option<&str>,
    which: Revisions,
) -> Result<Listing, ApiError> {
    let params = driver.narrow(ListParams::default().labels(&selector(name, which)));
    let op = Op {
        verb: "list",
        resource: driver.resource(),
        namespace,
        name: None,
    };
    let objects = cluster
        .call(op, api(cluster, driver, namespace).list(&params))
        .await?
        .items;
    let mut listing = Listing::default();
    for object in objects {
        match stored(driver, object) {
            Ok(r) => listing.records.push(r),
            Err(u) => listing.unreadable.push(*u),
        }
    }
    Ok(listing)
}

fn stored(driver: Driver, object: DynamicObject) -> Result<StoredRelease, Box<UnreadableRecord>> {
    let meta = object.metadata.clone();
    let namespace = meta.namespace.unwrap_or_default();
    let object_name = meta.name.unwrap_or_default();
    let labels = meta.labels.unwrap_or_default();
    let unreadable = |reason: String| {
        Box::new(UnreadableRecord {
            driver,
            namespace: namespace.clone(),
            object_name: object_name.clone(),
            release: labels.get("name").cloned(),
            reason,
        })
    };
    let payload = driver.payload(&object).map_err(unreadable)?;
    let release = release::decode(&payload).map_err(|e| unreadable(crate::error::one_line(&e)))?;
    Ok(StoredRelease {
        release,
        driver,
        namespace: namespace.clone(),
        object_name: object_name.clone(),
        labels: labels.clone(),
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
) -> Result<Listing, ApiError> {
    let (secrets, configmaps) = tokio::join!(
        list(cluster, Driver::Secret, namespace, name, which),
        list(cluster, Driver::ConfigMap, namespace, name, which)
    );
    let mut all = secrets?;
    all.extend(configmaps?);
    Ok(all)
}

/// Every revision of one release, oldest first (through whichever driver
/// holds it; Secrets win if both do, as with Helm's default driver). An
/// unreadable revision is an error here: a history with a hole cannot be
/// continued safely (Helm itself refuses it too).
pub async fn history(cluster: &Cluster, namespace: &str, name: &str) -> anyhow::Result<Vec<StoredRelease>> {
    let mut listing = list(
        cluster,
        Driver::Secret,
        Some(namespace),
        Some(name),
        Revisions::All,
    )
    .await?;
    if listing.records.is_empty() && listing.unreadable.is_empty() {
        listing = list(
            cluster,
            Driver::ConfigMap,
            Some(namespace),
            Some(name),
            Revisions::All,
        )
        .await?;
    }
    // Exit 1, as `status` and `plan` on the same record: a record the
    // plugin cannot read is trouble in the cluster, not the user's input.
    if let Some(bad) = listing.unreadable.first() {
        return Err(anyhow::anyhow!(
            "{bad}; release {name} cannot be changed until that record is repaired or deleted ({})",
            bad.delete_command()
        ));
    }
    let mut revisions = listing.records;
    revisions.sort_by_key(|r| r.release.version());
    Ok(revisions)
}

/// Watches every record of one release (any revision) through `driver`.
pub fn watch_history(
    cluster: &Cluster,
    driver: Driver,
    namespace: &str,
    name: &str,
) -> impl Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + use<> {
    let config = watcher::Config::default().labels(&selector(Some(name), Revisions::All));
    watcher(api(cluster, driver, Some(namespace)), config)
        .default_backoff()
        .boxed()
}

/// The revision number a watched storage object holds (its `version`
/// label, as Helm writes it).
pub fn watched_version(object: &DynamicObject) -> Option<u64> {
    object.metadata.labels.as_ref()?.get("version")?.parse().ok()
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
    for key in LEGACY_LOCK_ANNOTATIONS {
        stored.annotations.remove(key);
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
    let payload = release::encode(&stored.release).map_err(|e| ApiError::Server {
        what: format!("encode {name}"),
        code: 0,
        message: e.to_string(),
    })?;
    let mut object = DynamicObject::new(name, &stored.driver.api_resource())
        .within(&stored.namespace)
        .data(stored.driver.body(&payload));
    object.metadata.labels = Some(stored.labels.clone());
    object.metadata.annotations = (!stored.annotations.is_empty()).then(|| stored.annotations.clone());
    object.metadata.resource_version = stored.resource_version.clone();
    let api = api(cluster, stored.driver, Some(&stored.namespace));
    let pp = PostParams::default();
    let written = match how {
        Write::Create => {
            cluster
                .call(stored.op("create"), api.create(&pp, &object))
                .await?
        }
        Write::Replace => {
            cluster
                .call(stored.op("update"), api.replace(name, &pp, &object))
                .await?
        }
    };
    Ok(written.metadata.resource_version)
}

/// One revision's record as its labels say, without its payload: what
/// "is there a newer revision?" and history pruning need.
#[derive(Debug, Clone)]
pub struct RecordMeta {
    pub driver: Driver,
    pub namespace: String,
    pub object_name: String,
    pub version: u64,
    /// Helm's `status` label (`deployed`, `superseded`, …).
    pub status: String,
    pub resource_version: Option<String>,
}

/// Every revision of one release through `driver`, oldest first, from a
/// metadata-only list: no record is sent whole or decoded. A consistent
/// read, as [`history`].
pub async fn history_meta(
    cluster: &Cluster,
    driver: Driver,
    namespace: &str,
    name: &str,
) -> Result<Vec<RecordMeta>, ApiError> {
    let params = driver.narrow(ListParams::default().labels(&selector(Some(name), Revisions::All)));
    let op = Op {
        verb: "list",
        resource: driver.resource(),
        namespace: Some(namespace),
        name: None,
    };
    let items = cluster
        .call(op, api(cluster, driver, Some(namespace)).list_metadata(&params))
        .await?
        .items;
    let mut out: Vec<RecordMeta> = items
        .into_iter()
        .filter_map(|o| {
            let labels = o.metadata.labels.unwrap_or_default();
            Some(RecordMeta {
                driver,
                namespace: namespace.to_string(),
                object_name: o.metadata.name?,
                version: labels.get("version")?.parse().ok()?,
                status: labels.get("status").cloned().unwrap_or_default(),
                resource_version: o.metadata.resource_version,
            })
        })
        .collect();
    out.sort_by_key(|r| r.version);
    Ok(out)
}

/// Deletes one revision's record (history pruning), only as it was read:
/// a record someone rewrote since is left alone (a conflict).
pub async fn delete_record(cluster: &Cluster, record: &RecordMeta) -> Result<(), ApiError> {
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: record.resource_version.clone(),
            uid: None,
        }),
        ..Default::default()
    };
    let op = Op {
        verb: "delete",
        resource: record.driver.resource(),
        namespace: Some(&record.namespace),
        name: Some(&record.object_name),
    };
    cluster
        .call(
            op,
            api(cluster, record.driver, Some(&record.namespace)).delete(&record.object_name, &params),
        )
        .await
        .map(|_| ())
}

// Noticing another writer of the release while a scale works: a newer
// revision appearing (`helm rollback` or `helm upgrade` do not look at
// pending revisions), or the run's own pending revision being rewritten
// or deleted. Watched, so it is seen within a round trip, not at the end.

/// Resolves, with a one-line account, when someone other than this run has
/// written the release's records since `ours` was written. Never resolves
/// while nobody does. A watch the server forbids resolves at once: a run
/// that cannot watch for other writers must not go on.
pub async fn other_writer(cluster: &Cluster, ours: &StoredRelease) -> String {
    let version = ours.release.version();
    let name = ours.release.name();
    let mut events = watch_history(cluster, ours.driver, &ours.namespace, name);
    while let Some(event) = events.next().await {
        let seen = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => Some((o, false)),
            Ok(Event::Delete(o)) => Some((o, true)),
            Ok(Event::Init | Event::InitDone) => None,
            Err(e) if forbidden_watch(&e).is_some() => {
                return format!(
                    "cannot watch {name}'s Helm records ({e}); `scale` needs list and watch on {}s to notice other writers",
                    ours.driver.as_str().to_lowercase()
                );
            }
            // The watcher re-lists after its backoff; nothing is missed.
            Err(_) => None,
        };
        let Some((object, deleted)) = seen else { continue };
        let Some(v) = watched_version(&object) else {
            continue;
        };
        let status = object
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("status"))
            .cloned()
            .unwrap_or_default();
        if v > version && !deleted {
            return format!("another Helm operation wrote revision {v} of {name} ({status}) while scaling");
        }
        if v == version && deleted {
            return format!("revision {v} of {name} was deleted by someone else while scaling");
        }
        if v == version && object.metadata.resource_version != ours.resource_version {
            return format!(
                "revision {v} of {name} was changed by someone else while scaling (now {status})"
            );
        }
    }
    format!("the watch on {name}'s Helm records ended")
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

    fn object(driver: Driver, data: Value) -> DynamicObject {
        DynamicObject::new("sh.helm.release.v1.r.v1", &driver.api_resource())
            .within("ns")
            .data(data)
    }

    #[test]
    fn payloads_round_trip_through_both_drivers() {
        for driver in [Driver::Secret, Driver::ConfigMap] {
            let o = object(driver, driver.body("SDRzSUFBQUFBQUFBLw=="));
            assert_eq!(
                driver.payload(&o).expect("payload"),
                b"SDRzSUFBQUFBQUFBLw==".to_vec()
            );
        }
        assert_eq!(Driver::Secret.body("x")["type"], json!("helm.sh/release.v1"));
    }

    #[test]
    fn an_odd_record_is_named_not_fatal() {
        let mut o = object(Driver::Secret, json!({"data": {"release": "bm90IGhlbG0="}}));
        o.metadata.labels = Some(BTreeMap::from([("name".to_string(), "other".to_string())]));
        let bad = stored(Driver::Secret, o).expect_err("not a Helm payload");
        assert_eq!(bad.release.as_deref(), Some("other"));
        assert!(
            bad.to_string()
                .starts_with("Helm release record Secret ns/sh.helm.release.v1.r.v1 cannot be decoded: "),
            "{bad}"
        );
        let missing = stored(Driver::ConfigMap, object(Driver::ConfigMap, json!({}))).expect_err("no data");
        assert!(missing.reason.contains("no `release` data"), "{missing}");
    }
}
