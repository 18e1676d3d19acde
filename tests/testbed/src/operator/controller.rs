//! The stand-in's control loop, per owned namespace, as the operator runs
//! (`pkg/controllers/milvus_controller.go`, `status_cluster.go`; line
//! numbers in docs/operator.md):
//!
//! * A **reconcile pass** per `Milvus` event (the operator watches only its
//!   CRs, not Deployments), and again `requeue` after a pass that ended in
//!   `ErrRequeue`. Under `milvus.io/pause-reconcile: "true"` a pass does
//!   nothing. Otherwise, with the dependencies ready, every workload is
//!   reconciled (one Deployment written in place; two-deployment workloads
//!   by [`two_deploy::plan`]); a pass with nothing left to do ends with the
//!   status write that sets `observedGeneration`.
//! * A **status syncer**: every `sync_unhealthy` for CRs not Healthy-and-
//!   updated, every `sync_healthy` for the others, it re-reads the
//!   dependencies and Deployments of each CR whose generation is observed
//!   and writes the status if it changed; that write is an event, so it
//!   triggers a pass. With `imageUpdateMode: force` it kills terminating
//!   Milvus pods.
//!
//! Each pass and sync reads the CR, Deployments and pods fresh. The
//! namespace's `MilvusUpgrade`s are played beside it ([`super::upgrade`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::crd::milvus_resource;
use super::deployment::{self, Owner, container_image, current_group_id_annotation, rolling_id_label};
use super::status;
use super::timings::{Timings, watch_timings};
use super::topology::{self, MANAGER, Workload};
use super::two_deploy::{self, Action};
use crate::sim::OWNER_LABEL;

/// `milvus.io/pause-reconcile`: "true" stops every pass at its start.
pub const PAUSE_RECONCILE: &str = "milvus.io/pause-reconcile";

/// Knobs of the stand-in: the process default [`Timings`] (see
/// `operator::timings`; a namespace may override them).
#[derive(Debug, Clone)]
pub struct StandInConfig {
    pub timings: Timings,
}

impl StandInConfig {
    pub fn from_env() -> StandInConfig {
        StandInConfig {
            timings: Timings::from_env(),
        }
    }
}

pub(crate) struct Ctx {
    pub client: kube::Client,
    /// Namespaces labelled [`OWNER_LABEL`]=`owner` are ours.
    pub owner: String,
    pub config: StandInConfig,
    /// The server refuses `""` in custom resources (see
    /// `crd::install_upgrade_crd`): `MilvusUpgrade` conditions leave an
    /// empty message out.
    pub omit_empty_messages: bool,
}

/// Watch owned namespaces; one control loop per namespace.
pub(crate) async fn namespace_loop(ctx: Arc<Ctx>) {
    let selector = format!("{OWNER_LABEL}={}", ctx.owner);
    let client = ctx.client.clone();
    crate::sim::per_namespace(client, &selector, |name| {
        tokio::spawn(namespace_task(ctx.clone(), name))
    })
    .await
}

/// Names of CRs that had an event (the operator's `For(&Milvus{})`).
fn cr_events(ctx: &Ctx, ns: &str) -> impl Stream<Item = String> + Send + 'static {
    let crs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &milvus_resource());
    watcher::watcher(crs, watcher::Config::default())
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(Event::Apply(o) | Event::InitApply(o)) => o.metadata.name,
                _ => None,
            }
        })
}

/// How a pass ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Done (the status write, if any, happened).
    Done,
    /// `ErrRequeue`: again after `Timings::requeue`.
    Requeue,
}

/// A transient error's retry (the work queue's rate limiter, simplified).
const RETRY: std::time::Duration = std::time::Duration::from_millis(300);

async fn namespace_task(ctx: Arc<Ctx>, ns: String) {
    let mut timings = watch_timings(ctx.client.clone(), &ns, ctx.config.timings);
    // The MilvusUpgrade controller of the namespace ends with this task.
    let _upgrades = crate::sim::AbortOnDrop(tokio::spawn(super::upgrade::namespace_task(
        ctx.clone(),
        ns.clone(),
        timings.clone(),
    )));
    let mut t = *timings.borrow_and_update();
    let mut events = cr_events(&ctx, &ns).boxed();
    // Status last written per CR: a guard against write loops should the
    // server normalise something we did not foresee.
    let mut written: HashMap<String, Value> = HashMap::new();
    let mut due: BTreeMap<String, Instant> = BTreeMap::new();
    // No CR seen yet: no sync (most namespaces of a test process hold none).
    let mut seen_any = false;
    let mut next_unhealthy = Instant::now() + t.sync_unhealthy();
    let mut next_healthy = Instant::now() + t.sync_healthy();
    loop {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let next_due = due.values().min().copied();
        tokio::select! {
            ev = events.next() => match ev {
                Some(n) => { seen_any = true; dirty.insert(n); }
                None => return,
            },
            () = sleep_until(next_due) => {
                let now = Instant::now();
                due.retain(|n, at| if *at <= now { dirty.insert(n.clone()); false } else { true });
            }
            () = tokio::time::sleep_until(next_unhealthy) => {
                if seen_any {
                    debug(&ns, "sync unhealthy");
                    let _ = sync(&ctx, &ns, false, &mut written).await;
                }
                next_unhealthy = Instant::now() + t.sync_unhealthy();
            }
            () = tokio::time::sleep_until(next_healthy) => {
                if seen_any {
                    debug(&ns, "sync healthy");
                    let _ = sync(&ctx, &ns, true, &mut written).await;
                }
                next_healthy = Instant::now() + t.sync_healthy();
            }
            changed = timings.changed() => {
                if changed.is_err() { return; }
                debug(&ns, &format!("timings {:?}", *timings.borrow()));
                // New periods count from now (a test that lengthens them
                // gets no sync from the old schedule).
                t = *timings.borrow_and_update();
                next_unhealthy = Instant::now() + t.sync_unhealthy();
                next_healthy = Instant::now() + t.sync_healthy();
            }
        }
        // Coalesce what is already queued (one pass per CR).
        while let Some(Some(n)) = events.next().now_or_never() {
            dirty.insert(n);
        }
        for name in dirty {
            debug(&ns, &format!("pass {name}"));
            let at = match reconcile(&ctx, &ns, &name, &t, &mut written).await {
                Ok(Outcome::Done) => None,
                Ok(Outcome::Requeue) => Some(Instant::now() + t.requeue()),
                Err(_) => Some(Instant::now() + RETRY),
            };
            match at {
                Some(at) => {
                    due.insert(name, at);
                }
                None => {
                    due.remove(&name);
                }
            }
        }
    }
}

/// `TESTBED_OPERATOR_DEBUG=1`: say on stderr what the loop does.
pub(crate) fn debug(ns: &str, what: &str) {
    if std::env::var_os("TESTBED_OPERATOR_DEBUG").is_some() {
        eprintln!("[stand-in {ns}] {} {what}", jiff::Timestamp::now());
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What one CR's pass or sync reads.
struct Live {
    deployments: BTreeMap<String, Deployment>,
    pods: Vec<Pod>,
}

async fn read_live(client: &kube::Client, ns: &str, name: &str) -> Result<Live> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={name},app.kubernetes.io/managed-by={MANAGER}"
    ));
    let deployments = deploys
        .list(&lp)
        .await
        .context("list Deployments")?
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name.clone().map(|n| (n, d)))
        .collect();
    // `NewAppLabels`: the instance's Milvus pods.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={name},app.kubernetes.io/name=milvus"
    ));
    let pods = pods.list(&lp).await.context("list pods")?.items;
    Ok(Live { deployments, pods })
}

fn annotation<'a>(cr: &'a Value, key: &str) -> Option<&'a str> {
    cr.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn owned_by(d: &Deployment, uid: &str) -> bool {
    d.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

/// One reconcile pass of CR `name` (`MilvusReconciler.Reconcile`).
async fn reconcile(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    t: &Timings,
    written: &mut HashMap<String, Value>,
) -> Result<Outcome> {
    let crs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &milvus_resource());
    let Some(cr) = crs.get_opt(name).await.context("get Milvus")? else {
        written.remove(name);
        return Ok(Outcome::Done);
    };
    if cr.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the owned Deployments.
        return Ok(Outcome::Done);
    }
    let crv = serde_json::to_value(&cr)?;
    if annotation(&crv, PAUSE_RECONCILE) == Some("true") {
        return Ok(Outcome::Done);
    }
    // SetDefaultStatus.
    if crv
        .pointer("/status/status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        crs.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"status": "Pending"}})),
        )
        .await
        .context("set default status")?;
        return Ok(Outcome::Done);
    }
    let workloads = topology::workloads(&crv, name);
    let mut outcome = Outcome::Done;
    // ReconcileMilvus does nothing until the dependencies are ready.
    if status::dependencies_ready(&crv) {
        let live = read_live(&ctx.client, ns, name).await?;
        let uid = cr.metadata.uid.clone().unwrap_or_default();
        let owner = Owner {
            name,
            uid: &uid,
            image: topology::image(&crv).unwrap_or("milvusdb/milvus"),
            dummy_image: crv.pointer("/spec/components/dummyImage").and_then(Value::as_str),
            min_ready_seconds: t.min_ready_seconds,
        };
        // Every workload is reconciled even when one asks for a requeue
        // (ReconcileDeployments collects the errors); any requeue holds
        // the status write back.
        let mut failure = None;
        for w in &workloads {
            let r = if w.two_deploy {
                reconcile_two(ctx, ns, &crs, &crv, w, (&owner, t), &live).await
            } else {
                reconcile_one(ctx, ns, w, &owner, &live)
                    .await
                    .map(|()| Outcome::Done)
            };
            match r {
                Ok(Outcome::Requeue) => outcome = Outcome::Requeue,
                Ok(Outcome::Done) => {}
                Err(e) => failure = Some(e),
            }
        }
        if outcome == Outcome::Requeue {
            return Ok(Outcome::Requeue);
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    // UpdateStatusForNewGeneration(checkDependency = false), with the
    // generation this pass read.
    update_status(ctx, ns, name, &crv, None, written).await?;
    Ok(outcome)
}

/// `ReconcileComponentDeployment`: create the Deployment, or set its
/// replicas (and image, unless pods of the component are terminating) to
/// the CR's, in the same pass.
async fn reconcile_one(ctx: &Ctx, ns: &str, w: &Workload, owner: &Owner<'_>, live: &Live) -> Result<()> {
    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let Some(d) = live.deployments.get(&w.name) else {
        let obj: Deployment = serde_json::from_value(deployment::build(owner, w, None))?;
        return match deploys.create(&PostParams::default(), &obj).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("create Deployment {}", w.name)),
        };
    };
    if !owned_by(d, owner.uid) {
        return Ok(());
    }
    let mut spec = serde_json::Map::new();
    if let Some(n) = deployment::wanted_replicas(w, d.spec.as_ref().and_then(|s| s.replicas)) {
        // The operator owns spec.replicas: a hand edit goes back.
        spec.insert("replicas".into(), json!(n));
    }
    if d.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0) != owner.min_ready_seconds {
        spec.insert("minReadySeconds".into(), json!(owner.min_ready_seconds));
    }
    let terminating = live.pods.iter().any(|p| {
        p.metadata.deletion_timestamp.is_some()
            && p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/component"))
                .map(String::as_str)
                == Some(w.component.name())
    });
    if !terminating && container_image(d, w.component) != Some(owner.image) {
        spec.insert(
            "template".into(),
            json!({"spec": {"containers": [{"name": w.component.name(), "image": owner.image}]}}),
        );
    }
    if spec.is_empty() {
        return Ok(());
    }
    // Strategic merge: containers merge by name.
    deploys
        .patch(
            &w.name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": spec})),
        )
        .await
        .with_context(|| format!("update Deployment {}", w.name))?;
    Ok(())
}

/// One workload in two-deployment mode: apply [`two_deploy::plan`] (slot 1
/// creation goes on within the pass, as `HandleCreate` does).
async fn reconcile_two(
    ctx: &Ctx,
    ns: &str,
    crs: &Api<DynamicObject>,
    cr: &Value,
    w: &Workload,
    (owner, t): (&Owner<'_>, &Timings),
    live: &Live,
) -> Result<Outcome> {
    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let all: Vec<Deployment> = live
        .deployments
        .values()
        .filter(|d| owned_by(d, owner.uid))
        .cloned()
        .collect();
    let mut created: Vec<Deployment> = Vec::new();
    loop {
        let pool: Vec<Deployment> = all.iter().chain(created.iter()).cloned().collect();
        let slots = two_deploy::slots(w, owner.name, &pool);
        // The bed's timing knob reaches existing slots too.
        for d in &slots {
            if d.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0) != owner.min_ready_seconds {
                let n = d.metadata.name.clone().unwrap_or_default();
                deploys
                    .patch(
                        &n,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"minReadySeconds": owner.min_ready_seconds}})),
                    )
                    .await
                    .with_context(|| format!("set minReadySeconds of {n}"))?;
            }
        }
        let key = w.state_key();
        match two_deploy::plan(cr, w, &slots, &live.pods, t.scale_waits_for_stable) {
            Action::Nothing => return Ok(Outcome::Done),
            Action::Wait(_) => return Ok(Outcome::Requeue),
            Action::Refuse(why) => anyhow::bail!("{}: {why}", w.display_name()),
            Action::MarkCurrent(id) => {
                patch_cr_meta(
                    crs,
                    owner.name,
                    json!({"annotations": {current_group_id_annotation(&key): id}}),
                )
                .await?;
                return Ok(Outcome::Requeue);
            }
            Action::Create(slot) => {
                let obj: Deployment = serde_json::from_value(deployment::build(owner, w, Some(slot)))?;
                let made = match deploys.create(&PostParams::default(), &obj).await {
                    Ok(d) => d,
                    Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Outcome::Requeue),
                    Err(e) => return Err(e).with_context(|| format!("create {}-{slot}", w.name)),
                };
                if slot == 0 {
                    // HandleRolling then fails: no last deployment yet.
                    anyhow::bail!("{}: no last deployment found", w.display_name());
                }
                created.push(made);
            }
            Action::FinishRollout => {
                patch_cr_meta(crs, owner.name, json!({"labels": {rolling_id_label(&key): null}})).await?;
                return Ok(Outcome::Requeue);
            }
            Action::Rollout { deployment, slot } => {
                let generation = cr
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let patch = json!({
                    "metadata": {"annotations": {"milvus.io/milvus-generation": generation.to_string()}},
                    "spec": {"template": {"spec": {"containers": [{"name": w.component.name(), "image": owner.image}]}}},
                });
                deploys
                    .patch(&deployment, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                    .with_context(|| format!("update the pod template of {deployment}"))?;
                let rolling = annotation_or_label(cr, "labels", &rolling_id_label(&key))
                    .map_or_else(|| generation.to_string(), str::to_string);
                patch_cr_meta(
                    crs,
                    owner.name,
                    json!({"annotations": {current_group_id_annotation(&key): slot},
                           "labels": {rolling_id_label(&key): rolling}}),
                )
                .await?;
                return Ok(Outcome::Requeue);
            }
            Action::Scale { deployment, replicas } => {
                deploys
                    .patch(
                        &deployment,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                    )
                    .await
                    .with_context(|| format!("scale {deployment}"))?;
                return Ok(Outcome::Requeue);
            }
            Action::Stop(names) => {
                for n in names {
                    deploys
                        .patch(
                            &n,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"replicas": 0}})),
                        )
                        .await
                        .with_context(|| format!("stop {n}"))?;
                }
                return Ok(Outcome::Done);
            }
        }
    }
}

fn annotation_or_label<'a>(cr: &'a Value, which: &str, key: &str) -> Option<&'a str> {
    cr.pointer(&format!("/metadata/{which}"))
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

async fn patch_cr_meta(crs: &Api<DynamicObject>, name: &str, meta: Value) -> Result<()> {
    crs.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": meta})),
    )
    .await
    .with_context(|| format!("update Milvus {name}"))?;
    Ok(())
}

/// `UpdateStatusForNewGeneration`: compute, kill terminating pods under
/// `imageUpdateMode: force` (`handleTerminatingPods`), write if changed.
async fn update_status(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    crv: &Value,
    dependencies: Option<[bool; 3]>,
    written: &mut HashMap<String, Value>,
) -> Result<()> {
    let live = read_live(&ctx.client, ns, name).await?;
    let workloads = topology::workloads(crv, name);
    let new_status = status::compute(&status::Inputs {
        cr: crv,
        cr_name: name,
        namespace: ns,
        workloads: &workloads,
        deployments: &live.deployments,
        pods: &live.pods,
        dependencies,
    });
    if two_deploy::force_mode(crv) {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        for p in live
            .pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            // The operator execs `kill -9` on the milvus process; the pod
            // then ends at once. The bed ends it the same way: grace 0.
            let n = p.metadata.name.clone().unwrap_or_default();
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            let _ = pods.delete(&n, &dp).await;
        }
    }
    let current = crv.get("status").cloned().unwrap_or(Value::Null);
    if current == new_status || written.get(name) == Some(&new_status) {
        return Ok(());
    }
    let crs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &milvus_resource());
    debug(ns, &format!("status write {name}: {}", new_status["status"]));
    crs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": merge_diff(&current, &new_status)})),
    )
    .await
    .context("write Milvus status")?;
    written.insert(name.to_string(), new_status);
    Ok(())
}

/// A JSON merge patch turning `old` into `new`: keys `new` lacks become
/// `null` (a plain merge of `new` would keep stale fields, e.g. a
/// Deployment status's `unavailableReplicas` once it is gone).
fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in n {
                match o.get(k) {
                    Some(ov) if ov == v => {}
                    Some(ov) => {
                        out.insert(k.clone(), merge_diff(ov, v));
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// One status sync (`syncUnealthyOrUpdating` / `syncHealthyUpdated` +
/// `UpdateStatusRoutine`): CRs of the loop's set whose generation is
/// observed get fresh dependency conditions and status.
async fn sync(ctx: &Ctx, ns: &str, healthy_loop: bool, written: &mut HashMap<String, Value>) -> Result<()> {
    let crs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &milvus_resource());
    let list = crs.list(&ListParams::default()).await.context("list Milvus")?;
    let sts: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    let mut dependency_workloads: Option<(Vec<StatefulSet>, Vec<Deployment>)> = None;
    for cr in list.items {
        let Some(name) = cr.metadata.name.clone() else {
            continue;
        };
        let crv = serde_json::to_value(&cr)?;
        let state = crv
            .pointer("/status/status")
            .and_then(Value::as_str)
            .unwrap_or("");
        if cr.metadata.deletion_timestamp.is_some()
            || state.is_empty()
            || status::healthy_and_updated(&crv) != healthy_loop
        {
            continue;
        }
        // ObservedGeneration not up to date: it is being reconciled.
        let observed = crv
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if observed < cr.metadata.generation.unwrap_or(0) {
            continue;
        }
        if dependency_workloads.is_none() {
            let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
            dependency_workloads = Some((
                sts.list(&ListParams::default()).await?.items,
                deploys.list(&ListParams::default()).await?.items,
            ));
        }
        let (s, d) = dependency_workloads
            .as_ref()
            .map(|(s, d)| (s.as_slice(), d.as_slice()))
            .unwrap_or_default();
        let health = status::dependency_health(&crv, ns, s, d);
        let _ = update_status(ctx, ns, &name, &crv, Some(health), written).await;
    }
    Ok(())
}
