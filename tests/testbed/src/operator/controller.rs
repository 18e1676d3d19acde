//! The stand-in's reconciliation: per owned namespace, watch `Milvus` CRs
//! and operator-managed Deployments, and for each CR that changed (or whose
//! Deployments changed) create missing Deployments, restore `spec.replicas`
//! to the CR's value, and write `status`. Watch-driven; each reconcile reads
//! the CR and its Deployments fresh from the API server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

use super::crd::milvus_resource;
use super::deployment::{self, Owner, current_group_id_annotation};
use super::status;
use super::topology::{self, MANAGER};
use crate::sim::OWNER_LABEL;

/// Knobs of the stand-in.
#[derive(Debug, Clone)]
pub struct StandInConfig {
    /// `minReadySeconds` of the Deployments. The real operator sets 30 when
    /// rolling updates are enabled (its default), which makes every
    /// Deployment take 30 s more to become Available; the bed uses 0 so
    /// seeding is fast. `TESTBED_OPERATOR_MIN_READY_SECONDS=30` restores it.
    pub min_ready_seconds: i32,
}

impl StandInConfig {
    pub fn from_env() -> StandInConfig {
        StandInConfig {
            min_ready_seconds: std::env::var("TESTBED_OPERATOR_MIN_READY_SECONDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }
}

pub(crate) struct Ctx {
    pub client: kube::Client,
    /// Namespaces labelled [`OWNER_LABEL`]=`owner` are ours.
    pub owner: String,
    pub config: StandInConfig,
}

/// Watch owned namespaces; one reconcile task per namespace.
pub(crate) async fn namespace_loop(ctx: Arc<Ctx>) {
    let selector = format!("{OWNER_LABEL}={}", ctx.owner);
    let client = ctx.client.clone();
    crate::sim::per_namespace(client, &selector, |name| {
        tokio::spawn(namespace_task(ctx.clone(), name))
    })
    .await
}

/// Names of CRs to reconcile, from both watches.
fn dirty_names(ctx: &Ctx, ns: &str) -> impl Stream<Item = String> + Send + 'static {
    let crs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &milvus_resource());
    let cr_names = watcher::watcher(crs, watcher::Config::default())
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(Event::Apply(o) | Event::InitApply(o)) => o.metadata.name,
                _ => None,
            }
        });
    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let cfg = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let owners = watcher::watcher(deploys, cfg)
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(Event::Apply(d) | Event::InitApply(d) | Event::Delete(d)) => d
                    .metadata
                    .labels
                    .and_then(|l| l.get("app.kubernetes.io/instance").cloned()),
                _ => None,
            }
        });
    futures::stream::select(cr_names.boxed(), owners.boxed())
}

async fn namespace_task(ctx: Arc<Ctx>, ns: String) {
    let mut events = dirty_names(&ctx, &ns).boxed();
    // Status last written per CR: a guard against write loops should the
    // server normalise something we did not foresee.
    let mut written: HashMap<String, Value> = HashMap::new();
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    loop {
        if dirty.is_empty() {
            match events.next().await {
                Some(n) => {
                    dirty.insert(n);
                }
                None => return,
            }
        }
        // Coalesce what is already queued (one pass per CR).
        while let Some(Some(n)) = events.next().now_or_never() {
            dirty.insert(n);
        }
        let mut failed = BTreeSet::new();
        for name in std::mem::take(&mut dirty) {
            if reconcile(&ctx, &ns, &name, &mut written).await.is_err() {
                failed.insert(name);
            }
        }
        if !failed.is_empty() {
            // Conflicts and transient errors: try again shortly.
            tokio::time::sleep(Duration::from_millis(300)).await;
            dirty = failed;
        }
    }
}

/// One reconcile of CR `name` in `ns`.
async fn reconcile(ctx: &Ctx, ns: &str, name: &str, written: &mut HashMap<String, Value>) -> Result<()> {
    let crs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &milvus_resource());
    let Some(cr) = crs.get_opt(name).await.context("get Milvus")? else {
        written.remove(name);
        return Ok(());
    };
    if cr.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the owned Deployments.
        return Ok(());
    }
    let uid = cr.metadata.uid.clone().unwrap_or_default();
    let crv = serde_json::to_value(&cr)?;
    let workloads = topology::workloads(&crv, name);
    mark_current_slots(&crs, &crv, name, &workloads).await?;

    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={name},app.kubernetes.io/managed-by={MANAGER}"
    ));
    let live = by_name(deploys.list(&lp).await.context("list Deployments")?.items);
    let image = topology::image(&crv).unwrap_or("milvusdb/milvus");
    let owner = Owner {
        name,
        uid: &uid,
        image,
        dummy_image: crv.pointer("/spec/components/dummyImage").and_then(Value::as_str),
        min_ready_seconds: ctx.config.min_ready_seconds,
    };
    let mut changed = false;
    for w in &workloads {
        match live.get(&w.name) {
            None => {
                let obj: Deployment = serde_json::from_value(deployment::build(&owner, w))?;
                match deploys.create(&PostParams::default(), &obj).await {
                    Ok(_) => changed = true,
                    Err(kube::Error::Api(e)) if e.code == 409 => changed = true,
                    Err(e) => return Err(e).with_context(|| format!("create Deployment {}", w.name)),
                }
            }
            Some(d) => {
                let ours = d
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == uid && r.controller == Some(true));
                if !ours {
                    continue;
                }
                let live_replicas = d.spec.as_ref().and_then(|s| s.replicas);
                if let Some(n) = deployment::wanted_replicas(w, live_replicas) {
                    // The operator owns spec.replicas: a hand edit goes back.
                    deploys
                        .patch(
                            &w.name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"replicas": n}})),
                        )
                        .await
                        .with_context(|| format!("set replicas of {}", w.name))?;
                    changed = true;
                }
            }
        }
    }
    // Status from what the Deployments are now (after our writes).
    let live = if changed {
        by_name(deploys.list(&lp).await.context("list Deployments")?.items)
    } else {
        live
    };
    let new_status = status::compute(&crv, name, ns, &workloads, &live, true);
    let current = crv.get("status").cloned().unwrap_or(Value::Null);
    if current == new_status || written.get(name) == Some(&new_status) {
        return Ok(());
    }
    crs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": new_status})),
    )
    .await
    .context("write Milvus status")?;
    written.insert(name.to_string(), new_status);
    Ok(())
}

fn by_name(items: Vec<Deployment>) -> BTreeMap<String, Deployment> {
    items
        .into_iter()
        .filter_map(|d| d.metadata.name.clone().map(|n| (n, d)))
        .collect()
}

/// Two-deployment components: the operator records the serving slot on the
/// CR (`milvus.io/<comp>-current-group-id: "0"`) when it first creates them.
async fn mark_current_slots(
    crs: &Api<DynamicObject>,
    crv: &Value,
    name: &str,
    workloads: &[topology::Workload],
) -> Result<()> {
    let ann = crv.pointer("/metadata/annotations");
    let mut missing = serde_json::Map::new();
    for w in workloads.iter().filter(|w| w.slot.is_some()) {
        let key = current_group_id_annotation(w.component);
        if ann.and_then(|a| a.get(&key)).is_none() && !missing.contains_key(&key) {
            missing.insert(key, json!("0"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    crs.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": missing}})),
    )
    .await
    .context("annotate Milvus current group ids")?;
    Ok(())
}
