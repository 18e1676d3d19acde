//! The stand-in's `MilvusUpgrade` controller, as the operator runs it
//! (`pkg/controllers/milvusupgrade_controller.go`, `milvusupgrade_fsm.go`,
//! `apis/milvus.io/v1beta1/milvusupgrade_types.go`; line numbers in
//! docs/operator.md):
//!
//! * A pass per event on a `MilvusUpgrade` or on a pod it owns (its status
//!   writes included), and again after `unhealthySyncInterval` (the bed's
//!   [`Timings::sync_unhealthy`]) while its state is not one of the five
//!   no-requeue states ([`needs_requeue`]).
//! * A pass runs the state machine from the recorded state: it records the
//!   Milvus's replica counts and image, sets every component's replicas to
//!   0, waits until the Deployments are at 0, marks `milvus.io/stopped-at`,
//!   waits for deregistration, runs the `backup-meta` and `update-meta` task
//!   pods, then writes the target image and the recorded counts back
//!   (`Succeeded`); a rollback restores the source image and the counts.
//! * The status is written (a full update) at the end of every pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use futures::{FutureExt, Stream, StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::controller::Ctx;
use super::crd::{milvus_resource, upgrade_resource};
use super::timings::Timings;
use super::topology::{self, MANAGER};

/// `StoppedAtAnnotation` (label_annotations.go): when the Deployments were
/// seen at 0, RFC 3339.
pub const STOPPED_AT: &str = "milvus.io/stopped-at";
/// `LabelUpgrade`: the upgrade's name, on its task pods.
pub const LABEL_UPGRADE: &str = "milvus.io/upgrade";
/// `LabelTaskKind`: `backup-meta`, `update-meta`, `rollback-meta`.
pub const LABEL_TASK_KIND: &str = "milvus.io/task-kind";

/// `MilvusUpgradeState` values (milvusupgrade_types.go:160-179).
pub mod state {
    pub const PENDING: &str = "";
    pub const OLD_VERSION_STOPPING: &str = "OldVersionStopping";
    pub const BACKUP_META: &str = "BackupMeta";
    pub const UPDATING_META: &str = "UpdatingMeta";
    pub const NEW_VERSION_STARTING: &str = "NewVersionStarting";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const BAKUP_META_FAILED: &str = "BakupMetaFailed";
    pub const UPDATE_META_FAILED: &str = "UpdateMetaFailed";
    pub const ROLLBACK_NEW_VERSION_STOPPING: &str = "RollbackNewVersionStopping";
    pub const ROLLBACK_RESTORING_OLD_META: &str = "RollbackRestoringOldMeta";
    pub const ROLLBACK_OLD_VERSION_STARTING: &str = "RollbackOldVersionStarting";
    pub const ROLLBACK_SUCCEEDED: &str = "RollbackedSucceeded";
    pub const ROLLBACK_FAILED: &str = "RollbackFailed";
}
use state::*;

/// `NeedRequeue`: every state but the five of
/// `milvusUpgradeNoRequeueStates` (milvusupgrade_types.go:156-158, :181-188).
pub fn needs_requeue(s: &str) -> bool {
    !matches!(
        s,
        SUCCEEDED | BAKUP_META_FAILED | UPDATE_META_FAILED | ROLLBACK_SUCCEEDED | ROLLBACK_FAILED
    )
}

/// `notRollbackStates` (milvusupgrade_fsm.go:119-128).
const NOT_ROLLBACK_STATES: &[&str] = &[
    PENDING,
    OLD_VERSION_STOPPING,
    BACKUP_META,
    UPDATING_META,
    NEW_VERSION_STARTING,
    SUCCEEDED,
    BAKUP_META_FAILED,
    UPDATE_META_FAILED,
];

/// `MilvusUpgradeSpec`, the fields the controller reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Spec {
    pub operation: String,
    pub milvus: Reference,
    pub target_image: String,
    pub tool_image: String,
    pub max_retry: i64,
    #[serde(default = "yes")]
    pub rollback_if_failed: bool,
    pub backup_pvc: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Reference {
    pub namespace: String,
    pub name: String,
}

/// `MilvusUpgradeStatus` (milvusupgrade_types.go, the fields' `omitempty`
/// kept, so an unchanged status is written byte for byte the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source_image: String,
    #[serde(skip_serializing_if = "is_false")]
    pub meta_storage_changed: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub meta_backuped: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub is_rollbacking: bool,
    /// `ReplicasBeforeUpgrade`, keyed by the component's spec key (the
    /// JSON name keeps the operator's spelling).
    #[serde(rename = "replicasBeforeUprade", skip_serializing_if = "Option::is_none")]
    pub replicas_before_upgrade: Option<BTreeMap<String, i64>>,
    #[serde(rename = "backupPVC", skip_serializing_if = "String::is_empty")]
    pub backup_pvc: String,
    pub retried_times: i64,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// `metav1.Condition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

/// `meta.SetStatusCondition`: the transition time moves only when the
/// status does.
fn set_condition(conditions: &mut Vec<Condition>, type_: &str, status: &str, reason: &str, message: &str) {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_string();
                c.last_transition_time = now();
            }
            c.reason = reason.to_string();
            c.message = message.to_string();
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now(),
        }),
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_default()
        .to_string()
}

/// `DetermineCurrentState` (milvusupgrade_fsm.go:130-144).
pub fn determine_current_state(spec: &Spec, status: &mut Status) -> String {
    if status.is_rollbacking || spec.operation == "rollback" {
        if NOT_ROLLBACK_STATES.contains(&status.state.as_str()) {
            status.is_rollbacking = true;
            status.state = ROLLBACK_NEW_VERSION_STOPPING.to_string();
        }
        return status.state.clone();
    }
    if status.state == PENDING {
        status.state = OLD_VERSION_STOPPING.to_string();
    }
    status.state.clone()
}

/// `updateCondition` (milvusupgrade_fsm.go:94-117).
fn update_condition(status: &mut Status, err: Option<&anyhow::Error>) {
    let type_ = if status.is_rollbacking {
        "Rollbacked"
    } else {
        "Upgraded"
    };
    let ok = matches!(status.state.as_str(), SUCCEEDED | ROLLBACK_SUCCEEDED);
    let message = err.map(|e| format!("{e:#}")).unwrap_or_default();
    let reason = status.state.clone();
    set_condition(
        &mut status.conditions,
        type_,
        if ok { "True" } else { "False" },
        &reason,
        &message,
    );
}

/// What a task pod's phase means (`doOnPodPhase`, milvusupgrade_fsm.go:264-278).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskPod {
    None,
    Succeeded,
    Working,
    Failed,
}

pub fn task_pod(phase: Option<&str>) -> TaskPod {
    match phase {
        None => TaskPod::None,
        Some("Succeeded") => TaskPod::Succeeded,
        Some("Running" | "Pending") => TaskPod::Working,
        Some(_) => TaskPod::Failed,
    }
}

// ------------------------------------------------------- the Milvus spec ----

/// `GetReplicas`: an absent component counts 1; a present one without a
/// count `None`.
fn replicas_of(milvus: &Value, key: &str) -> Option<i64> {
    match milvus.pointer(&format!("/spec/components/{key}")) {
        None | Some(Value::Null) => Some(1),
        Some(c) => c.get("replicas").and_then(Value::as_i64),
    }
}

/// `SetReplicas`: fails for an absent component.
fn set_replicas(milvus: &mut Value, key: &str, n: i64) -> Result<()> {
    match milvus.pointer_mut(&format!("/spec/components/{key}")) {
        Some(Value::Object(c)) => {
            c.insert("replicas".into(), json!(n));
            Ok(())
        }
        _ => bail!("failed to set replicas: component {key} is nil"),
    }
}

fn component_keys(milvus: &Value) -> Vec<&'static str> {
    topology::active_components(milvus)
        .into_iter()
        .map(|c| c.spec_key())
        .collect()
}

/// `isMilvusStopping`: every component's count is 0.
pub fn is_stopping(milvus: &Value) -> bool {
    component_keys(milvus)
        .iter()
        .all(|k| replicas_of(milvus, k).is_some_and(|n| n <= 0))
}

/// `recordOldInfo`: once, every component's count (1 when unset) and the image.
pub fn record_old_info(status: &mut Status, milvus: &Value) {
    if status.replicas_before_upgrade.is_some() {
        return;
    }
    let counts = component_keys(milvus)
        .into_iter()
        .map(|k| (k.to_string(), replicas_of(milvus, k).unwrap_or(1)))
        .collect();
    status.replicas_before_upgrade = Some(counts);
    status.source_image = topology::image(milvus).unwrap_or_default().to_string();
}

/// `stopMilvus`' edit: every component's count to 0.
pub fn stop(milvus: &mut Value) -> Result<()> {
    for k in component_keys(milvus) {
        set_replicas(milvus, k, 0)?;
    }
    Ok(())
}

/// `startMilvus`' edit: the recorded counts (0 when none), the stopped-at
/// mark removed.
pub fn start(status: &mut Status, milvus: &mut Value) -> Result<()> {
    let recorded = status.replicas_before_upgrade.get_or_insert_default().clone();
    for k in component_keys(milvus) {
        set_replicas(milvus, k, recorded.get(k).copied().unwrap_or(0))?;
    }
    if let Some(Value::Object(a)) = milvus.pointer_mut("/metadata/annotations") {
        a.remove(STOPPED_AT);
    }
    Ok(())
}

fn set_image(milvus: &mut Value, image: &str) {
    if let Some(Value::Object(c)) = milvus.pointer_mut("/spec/components") {
        c.insert("image".into(), json!(image));
    }
}

/// `Default` of the upgrade webhook (milvusupgrade_webhook.go): the tool
/// image when none is given.
pub const DEFAULT_TOOL_IMAGE: &str = "milvusdb/meta-migration:v2.2.0-bugfix-20230112";

/// A `MilvusUpgrade` named `name` in `ns` of Milvus `milvus_ns/milvus`
/// from version `source` to `target` (`2.6.16`), with what the upgrade
/// webhook's `Default` fills in written out (the bed runs no admission
/// webhook): `targetImage` `milvusdb/milvus:v<target>`, the default tool image.
pub fn manifest(name: &str, ns: &str, milvus_ns: &str, milvus: &str, source: &str, target: &str) -> Value {
    json!({
        "apiVersion": "milvus.io/v1beta1",
        "kind": "MilvusUpgrade",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "milvus": {"namespace": milvus_ns, "name": milvus},
            "sourceVersion": source,
            "targetVersion": target,
            "targetImage": format!("milvusdb/milvus:v{}", target.trim_start_matches('v')),
            "toolImage": DEFAULT_TOOL_IMAGE,
        },
    })
}

// ------------------------------------------------------------- the loop ----

/// A transient error's retry (the work queue's rate limiter, simplified).
const RETRY: std::time::Duration = std::time::Duration::from_millis(300);

/// Names of upgrades with an event: their own, or one of a pod they own
/// (`For(&MilvusUpgrade{})`, `Owns(&corev1.Pod{})`).
fn events(client: &kube::Client, ns: &str) -> impl Stream<Item = String> + Send + 'static {
    let upgrades: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &upgrade_resource());
    let own = watcher::watcher(upgrades, watcher::Config::default())
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(Event::Apply(o) | Event::InitApply(o)) => o.metadata.name,
                _ => None,
            }
        });
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let owned = watcher::watcher(pods, watcher::Config::default().labels(LABEL_UPGRADE))
        .default_backoff()
        .filter_map(|ev| async move {
            let pod = match ev {
                Ok(Event::Apply(p) | Event::InitApply(p) | Event::Delete(p)) => p,
                _ => return None,
            };
            pod.metadata
                .owner_references
                .into_iter()
                .flatten()
                .find(|r| r.kind == "MilvusUpgrade" && r.controller == Some(true))
                .map(|r| r.name)
        });
    stream::select(own.boxed(), owned.boxed())
}

/// The upgrades of one namespace (spawned beside the Milvus loop).
pub(crate) async fn namespace_task(ctx: Arc<Ctx>, ns: String, mut timings: watch::Receiver<Timings>) {
    let mut t = *timings.borrow_and_update();
    let mut events = events(&ctx.client, &ns).boxed();
    let mut due: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let next_due = due.values().min().copied();
        tokio::select! {
            ev = events.next() => match ev {
                Some(n) => { dirty.insert(n); }
                None => return,
            },
            () = async { match next_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            } } => {
                let now = Instant::now();
                due.retain(|n, at| if *at <= now { dirty.insert(n.clone()); false } else { true });
            }
            changed = timings.changed() => {
                if changed.is_err() { return; }
                t = *timings.borrow_and_update();
            }
        }
        while let Some(Some(n)) = events.next().now_or_never() {
            dirty.insert(n);
        }
        for name in dirty {
            let result = reconcile(&ctx, &ns, &name, &t).await;
            super::controller::debug(&ns, &format!("upgrade pass {name}: {result:?}"));
            let at = match result {
                Ok(Some(s)) if needs_requeue(&s) => Some(Instant::now() + t.sync_unhealthy()),
                Ok(_) => None,
                Err(_) => Some(Instant::now() + RETRY),
            };
            match at {
                Some(at) => due.insert(name, at),
                None => due.remove(&name),
            };
        }
    }
}

/// `MilvusUpgradeReconciler.Reconcile` (milvusupgrade_controller.go:80-105):
/// the state machine, then the status written whatever happened; the
/// state reached (`None`: the upgrade is gone).
async fn reconcile(ctx: &Ctx, ns: &str, name: &str, t: &Timings) -> Result<Option<String>> {
    let client = &ctx.client;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &upgrade_resource());
    let Some(mut obj) = api.get_opt(name).await.context("get MilvusUpgrade")? else {
        return Ok(None);
    };
    let spec: Spec = serde_json::from_value(obj.data["spec"].clone()).context("MilvusUpgrade spec")?;
    let mut status: Status = serde_json::from_value(obj.data.get("status").cloned().unwrap_or(json!({})))
        .context("MilvusUpgrade status")?;
    let mut machine = Machine {
        client,
        ns,
        obj: &obj,
        spec: &spec,
        t,
    };
    let result = machine.run(&mut status).await;
    obj.data["status"] = serde_json::to_value(&status)?;
    if ctx.omit_empty_messages {
        for c in obj.data["status"]["conditions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if c["message"] == "" {
                c.as_object_mut().map(|m| m.remove("message"));
            }
        }
    }
    api.replace_status(name, &PostParams::default(), &obj)
        .await
        .context("update MilvusUpgrade status")?;
    result.map(|()| Some(status.state))
}

struct Machine<'a> {
    client: &'a kube::Client,
    ns: &'a str,
    obj: &'a DynamicObject,
    spec: &'a Spec,
    t: &'a Timings,
}

impl Machine<'_> {
    fn milvus_api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.spec.milvus.namespace,
            &milvus_resource(),
        )
    }

    /// `RunStateMachine` (milvusupgrade_fsm.go:51-92).
    async fn run(&mut self, status: &mut Status) -> Result<()> {
        let mut next = determine_current_state(self.spec, status);
        // `Get` with `spec.milvus` as it is: an empty namespace finds no
        // namespaced object in the operator's cache.
        let found = if self.spec.milvus.namespace.is_empty() {
            Err(anyhow!(
                "Milvus.milvus.io \"{}\" not found",
                self.spec.milvus.name
            ))
        } else {
            self.milvus_api()
                .get(&self.spec.milvus.name)
                .await
                .map_err(anyhow::Error::from)
        };
        let mut milvus = match found {
            Ok(m) => serde_json::to_value(m)?,
            Err(e) => {
                let message = format!("{e:#}");
                set_condition(
                    &mut status.conditions,
                    "CheckingUpgrationState",
                    "False",
                    "GetMilvusFailed",
                    &message,
                );
                return Err(e);
            }
        };
        status.conditions.retain(|c| c.type_ != "CheckingUpgrationState");
        let result = loop {
            status.state = next.clone();
            let step = match next.as_str() {
                OLD_VERSION_STOPPING => self.stopping(status, &mut milvus, BACKUP_META, true).await,
                BACKUP_META => self.backup_meta(status).await,
                UPDATING_META => self.updating_meta(status).await,
                NEW_VERSION_STARTING => {
                    set_image(&mut milvus, &self.spec.target_image);
                    self.start(status, &mut milvus, SUCCEEDED).await
                }
                BAKUP_META_FAILED => self.bakup_meta_failed(status).await,
                UPDATE_META_FAILED => Ok(self.upgrade_failed(status)),
                ROLLBACK_NEW_VERSION_STOPPING => {
                    self.stopping(status, &mut milvus, ROLLBACK_RESTORING_OLD_META, false)
                        .await
                }
                ROLLBACK_RESTORING_OLD_META => self.restoring_old_meta(status).await,
                ROLLBACK_OLD_VERSION_STARTING => {
                    let source = status.source_image.clone();
                    set_image(&mut milvus, &source);
                    self.start(status, &mut milvus, ROLLBACK_SUCCEEDED).await
                }
                // The result states: no state function.
                SUCCEEDED | ROLLBACK_SUCCEEDED | ROLLBACK_FAILED => break Ok(()),
                other => break Err(anyhow!("Unexpected upgrade state[{other}]")),
            };
            match step {
                Err(e) => break Err(e),
                Ok(s) if s.is_empty() => break Ok(()),
                Ok(s) => next = s,
            }
        };
        update_condition(status, result.as_ref().err());
        result
    }

    /// `OldVersionStopping` / `RollbackNewVersionStopping`
    /// (milvusupgrade_fsm.go:182-198, :165-180): stop the Milvus, then wait
    /// until it is stopped.
    async fn stopping(
        &self,
        status: &mut Status,
        milvus: &mut Value,
        then: &str,
        record: bool,
    ) -> Result<String> {
        if !is_stopping(milvus) {
            if record {
                record_old_info(status, milvus);
            }
            stop(milvus)?;
            self.update_milvus(milvus).await.context("stop milvus")?;
            return Ok(String::new());
        }
        if self.is_stopped(milvus).await.context("check milvus is stopped")? {
            return Ok(then.to_string());
        }
        Ok(String::new())
    }

    /// `isMilvusStopped` (milvusupgrade_fsm.go:484-508): after the
    /// stopped-at mark, stopped once deregistered; before it, every
    /// Deployment of the instance at 0 sets the mark (and is not yet
    /// stopped).
    async fn is_stopped(&self, milvus: &mut Value) -> Result<bool> {
        if let Some(at) = milvus
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(STOPPED_AT))
        {
            // A mark that does not parse counts as long enough ago.
            let since = at
                .as_str()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .map(|t| jiff::Timestamp::now().duration_since(t));
            return Ok(since.is_none_or(|d| d.as_millis() > self.t.upgrade_deregister().as_millis() as i128));
        }
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), &self.spec.milvus.namespace);
        let lp =
            ListParams::default().labels(&format!("app.kubernetes.io/instance={}", self.spec.milvus.name));
        for d in deploys.list(&lp).await.context("list milvus deployments")?.items {
            let status = d.status.unwrap_or_default();
            let caught_up = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
            let zero = d.spec.and_then(|s| s.replicas) == Some(0) && status.replicas.unwrap_or(0) == 0;
            if !caught_up || !zero {
                return Ok(false);
            }
        }
        let annotations = milvus
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
            .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
        if let Some(Value::Object(a)) = annotations {
            a.insert(STOPPED_AT.into(), json!(now()));
        }
        self.update_milvus(milvus).await?;
        Ok(false)
    }

    /// `BackupMeta` (milvusupgrade_fsm.go:200-217).
    async fn backup_meta(&self, status: &mut Status) -> Result<String> {
        Ok(match self.task_pod("backup-meta").await? {
            TaskPod::None => {
                self.start_backup_pod(status)
                    .await
                    .context("start backup-meta pod")?;
                String::new()
            }
            TaskPod::Succeeded => {
                status.meta_backuped = true;
                UPDATING_META.to_string()
            }
            TaskPod::Working => String::new(),
            TaskPod::Failed => BAKUP_META_FAILED.to_string(),
        })
    }

    /// `UpdatingMeta` (milvusupgrade_fsm.go:219-241).
    async fn updating_meta(&self, status: &mut Status) -> Result<String> {
        if !status.meta_storage_changed {
            status.meta_storage_changed = true;
            self.start_task_pod("update-meta")
                .await
                .context("start update-meta pod")?;
            return Ok(String::new());
        }
        Ok(match self.task_pod("update-meta").await? {
            // The pass fails; the state stays `UpdatingMeta`.
            TaskPod::None => bail!("cannot find update-meta pod"),
            TaskPod::Succeeded => NEW_VERSION_STARTING.to_string(),
            TaskPod::Working => String::new(),
            TaskPod::Failed => UPDATE_META_FAILED.to_string(),
        })
    }

    /// `RollbackRestoringOldMeta` (milvusupgrade_fsm.go:243-262).
    async fn restoring_old_meta(&self, status: &mut Status) -> Result<String> {
        if !status.meta_backuped {
            return Ok(ROLLBACK_OLD_VERSION_STARTING.to_string());
        }
        Ok(match self.task_pod("rollback-meta").await? {
            TaskPod::None => {
                self.start_task_pod("rollback-meta")
                    .await
                    .context("start backup-meta pod")?;
                String::new()
            }
            TaskPod::Succeeded => ROLLBACK_OLD_VERSION_STARTING.to_string(),
            TaskPod::Working => String::new(),
            TaskPod::Failed => ROLLBACK_FAILED.to_string(),
        })
    }

    /// `HandleBakupMetaFailed` (milvusupgrade_fsm.go:280-296): retry the
    /// backup up to `maxRetry` times, then fail.
    async fn bakup_meta_failed(&self, status: &mut Status) -> Result<String> {
        if status.retried_times + 1 > self.spec.max_retry {
            return Ok(self.upgrade_failed(status));
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns);
        let lp = ListParams::default().labels(&self.task_selector("backup-meta"));
        pods.delete_collection(&DeleteParams::default(), &lp)
            .await
            .context("delete backup-meta pod")?;
        status.state = BACKUP_META.to_string();
        status.retried_times += 1;
        Ok(String::new())
    }

    /// `HandleUpgradeFailed` (milvusupgrade_fsm.go:146-153).
    fn upgrade_failed(&self, status: &mut Status) -> String {
        if self.spec.rollback_if_failed {
            status.is_rollbacking = true;
            status.state = ROLLBACK_NEW_VERSION_STOPPING.to_string();
            return status.state.clone();
        }
        String::new()
    }

    /// `StartingMilvusNewVersion` / `RollbackOldVersionStarting` with
    /// `startMilvus` (milvusupgrade_fsm.go:312-343, :155-163).
    async fn start(&self, status: &mut Status, milvus: &mut Value, then: &str) -> Result<String> {
        start(status, milvus)?;
        self.update_milvus(milvus).await.context("restore replicas")?;
        Ok(then.to_string())
    }

    /// `cli.Update` of the Milvus: a full write, refused (409) if it
    /// changed since it was read; the in-memory object follows the answer.
    async fn update_milvus(&self, milvus: &mut Value) -> Result<()> {
        let obj: DynamicObject = serde_json::from_value(milvus.clone())?;
        let written = self
            .milvus_api()
            .replace(&self.spec.milvus.name, &PostParams::default(), &obj)
            .await
            .context("update Milvus")?;
        *milvus = serde_json::to_value(written)?;
        Ok(())
    }

    fn task_selector(&self, kind: &str) -> String {
        format!("{LABEL_UPGRADE}={},{LABEL_TASK_KIND}={kind}", self.name())
    }

    fn name(&self) -> &str {
        self.obj.metadata.name.as_deref().unwrap_or_default()
    }

    /// `handlePod`: the phase of the first task pod of `kind`.
    async fn task_pod(&self, kind: &str) -> Result<TaskPod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns);
        let lp = ListParams::default().labels(&self.task_selector(kind));
        let list = pods
            .list(&lp)
            .await
            .with_context(|| format!("list pod for {kind}"))?;
        let phase = list.items.first().map(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        });
        Ok(task_pod(phase.as_deref()))
    }

    /// `SetControllerReference` to the upgrade.
    fn owner(&self) -> Value {
        json!([{
            "apiVersion": "milvus.io/v1beta1", "kind": "MilvusUpgrade",
            "name": self.name(), "uid": self.obj.metadata.uid.clone().unwrap_or_default(),
            "controller": true, "blockOwnerDeletion": true,
        }])
    }

    /// `startBakupMetaPod` (milvusupgrade_fsm.go:361-399): the backup PVC
    /// (10Gi, ReadWriteOnce) unless `spec.backupPVC` names one, then the pod.
    async fn start_backup_pod(&self, status: &mut Status) -> Result<()> {
        status.backup_pvc = self.spec.backup_pvc.clone();
        if self.spec.backup_pvc.is_empty() {
            let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
                "metadata": {"name": self.name(), "namespace": self.ns,
                    "labels": {LABEL_UPGRADE: self.name()}, "ownerReferences": self.owner()},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Gi"}}},
            }))?;
            status.backup_pvc = self.name().to_string();
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), self.ns);
            match api.create(&PostParams::default(), &pvc).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e).context("create backup pvc"),
            }
        }
        self.start_task_pod("backup-meta").await
    }

    /// `startTaskPod` (milvusupgrade_fsm.go:589-): the tool image's
    /// `meta-migration`, never restarted. (Its ConfigMap and volumes are
    /// left out: the bed's kubelet mounts nothing.)
    async fn start_task_pod(&self, kind: &str) -> Result<()> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": format!("{}-{kind}", self.name()), "namespace": self.ns,
                "labels": {LABEL_UPGRADE: self.name(), LABEL_TASK_KIND: kind,
                    "app.kubernetes.io/managed-by": MANAGER},
                "ownerReferences": self.owner(),
            },
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": kind, "image": self.spec.tool_image,
                    "command": ["/milvus/bin/meta-migration"],
                    "args": ["-config", "/milvus/configs/migration.yaml"]}],
            },
        }))?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), self.ns);
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("create {kind} pod")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_result_states_stop_the_requeue() {
        for s in [
            PENDING,
            OLD_VERSION_STOPPING,
            BACKUP_META,
            UPDATING_META,
            NEW_VERSION_STARTING,
        ] {
            assert!(needs_requeue(s), "{s}");
        }
        for s in [
            ROLLBACK_NEW_VERSION_STOPPING,
            ROLLBACK_RESTORING_OLD_META,
            ROLLBACK_OLD_VERSION_STARTING,
        ] {
            assert!(needs_requeue(s), "{s}");
        }
        for s in [
            SUCCEEDED,
            BAKUP_META_FAILED,
            UPDATE_META_FAILED,
            ROLLBACK_SUCCEEDED,
            ROLLBACK_FAILED,
        ] {
            assert!(!needs_requeue(s), "{s}");
        }
    }

    #[test]
    fn a_rollback_starts_from_stopping_the_new_version() {
        let spec = Spec {
            operation: "rollback".into(),
            ..Spec::default()
        };
        let mut status = Status {
            state: BACKUP_META.into(),
            ..Status::default()
        };
        assert_eq!(
            determine_current_state(&spec, &mut status),
            ROLLBACK_NEW_VERSION_STOPPING
        );
        assert!(status.is_rollbacking);
        // Already rolling back: carries on where it is.
        status.state = ROLLBACK_OLD_VERSION_STARTING.into();
        assert_eq!(
            determine_current_state(&spec, &mut status),
            ROLLBACK_OLD_VERSION_STARTING
        );
        // An upgrade starts by stopping the old version.
        let mut fresh = Status::default();
        assert_eq!(
            determine_current_state(&Spec::default(), &mut fresh),
            OLD_VERSION_STOPPING
        );
    }

    #[test]
    fn stop_and_start_round_trip_the_recorded_counts() {
        let mut m = json!({"metadata": {"annotations": {STOPPED_AT: "x"}}, "spec": {"mode": "cluster", "components": {
            "image": "milvusdb/milvus:v2.6.15",
            "mixCoord": {"replicas": 1}, "dataNode": {"replicas": 2}, "streamingNode": {"replicas": 1},
            "queryNode": {"replicas": 3}, "proxy": {"replicas": 1}, "standalone": {"replicas": 0}}}});
        let mut status = Status::default();
        record_old_info(&mut status, &m);
        stop(&mut m).unwrap();
        assert!(is_stopping(&m));
        assert_eq!(m["spec"]["components"]["queryNode"]["replicas"], 0);
        // Recorded once: a second stop pass does not record the zeros.
        record_old_info(&mut status, &m);
        start(&mut status, &mut m).unwrap();
        assert_eq!(m["spec"]["components"]["queryNode"]["replicas"], 3);
        assert_eq!(m["spec"]["components"]["dataNode"]["replicas"], 2);
        assert_eq!(status.source_image, "milvusdb/milvus:v2.6.15");
        assert!(m["metadata"]["annotations"].get(STOPPED_AT).is_none());
        // An absent component cannot be set (`component … is nil`).
        let mut bare =
            json!({"spec": {"mode": "cluster", "components": {"image": "milvusdb/milvus:v2.6.15"}}});
        assert!(stop(&mut bare).is_err());
    }

    #[test]
    fn task_pod_phases() {
        assert_eq!(task_pod(None), TaskPod::None);
        assert_eq!(task_pod(Some("Pending")), TaskPod::Working);
        assert_eq!(task_pod(Some("Running")), TaskPod::Working);
        assert_eq!(task_pod(Some("Succeeded")), TaskPod::Succeeded);
        assert_eq!(task_pod(Some("Failed")), TaskPod::Failed);
        assert_eq!(task_pod(Some("Unknown")), TaskPod::Failed);
    }
}
