//! Stepping a Deployment: writing its replicas, choosing and marking the
//! pod that leaves, and watching a step until it has settled (ready at the
//! count, removed pods gone). What is decided is decided in `core`; this
//! only reads, writes and watches.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use super::Cluster;
use super::api::{ApiError, Op, forbidden_watch_error, live_deployment};
use super::fields::{self, write_params};
use crate::core::duration::human_std as humanize;
use crate::core::ownership;
use crate::core::scale_in;
use crate::render::progress::Progress;

/// What one watch event told us.
enum Seen {
    Deployment(Box<Deployment>),
    /// A pod event; true once the initial listing is complete.
    Pods(bool),
    /// A watch error that retrying cannot mend (forbidden), as one line.
    Refused(String),
    /// A watch error the watcher's backoff retries.
    Retrying,
}

impl Seen {
    fn error(e: &watcher::Error, resource: &str, namespace: &str) -> Seen {
        refusal(e, resource, namespace).map_or(Seen::Retrying, Seen::Refused)
    }
}

/// A watch error the API server will keep giving: forbidden. Others (a
/// dropped connection, an expired resourceVersion) are retried by the
/// watcher's backoff.
fn refusal(e: &watcher::Error, resource: &str, namespace: &str) -> Option<String> {
    forbidden_watch_error(e, resource, namespace).map(|e| e.to_string())
}

/// The pod chosen to leave a Deployment at a step (v1.22+: marked so the
/// ReplicaSet removes exactly it), and the pods there before the step (to
/// name the one that left either way).
pub struct Leaving {
    pub chosen: Option<String>,
    pub before: Vec<String>,
}

/// A Deployment's active pods, full (annotations included): its selector,
/// then ownership through a ReplicaSet named after it.
async fn deployment_pods(cluster: &Cluster, namespace: &str, name: &str) -> Result<Vec<Pod>, String> {
    let (_, selector) = deployment_and_selector(cluster, namespace, name).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let op = pod_op("list", namespace, None);
    let list = cluster
        .call(op, pods.list(&ListParams::default().labels(&selector)))
        .await
        .map_err(|e| e.to_string())?;
    let prefix = format!("{name}-");
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "ReplicaSet" && o.controller == Some(true) && o.name.starts_with(&prefix))
        })
        .filter(scale_in::is_active)
        .collect())
}

/// The pod a step would remove by our own choice (`choose_victim`), not
/// marked: on servers before v1.22 a drained pod is deleted by the run
/// instead (`core::milvus::drain::Removal`).
pub async fn choose_leaving(
    cluster: &Cluster,
    namespace: &str,
    deployment: &str,
    remove: &[String],
) -> Result<Option<String>, String> {
    let pods = deployment_pods(cluster, namespace, deployment).await?;
    let refs: Vec<&Pod> = pods.iter().collect();
    Ok(scale_in::choose_victim(&refs, remove).and_then(|p| p.metadata.name.clone()))
}

pub async fn pick_leaving(
    cluster: &Cluster,
    namespace: &str,
    deployment: &str,
    deletion_cost: bool,
    remove: &[String],
) -> Result<Leaving, String> {
    let pods = deployment_pods(cluster, namespace, deployment).await?;
    let before = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    if !deletion_cost {
        return Ok(Leaving { chosen: None, before });
    }
    let refs: Vec<&Pod> = pods.iter().collect();
    let Some(victim) = scale_in::choose_victim(&refs, remove) else {
        return Ok(Leaving { chosen: None, before });
    };
    let name = victim.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let op = pod_op("patch", namespace, Some(&name));
    cluster
        .call(
            op,
            api.patch(
                &name,
                &write_params(),
                &Patch::Merge(scale_in::mark_patch(victim)),
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(Leaving {
        chosen: Some(name),
        before,
    })
}

/// Takes our deletion-cost marks off every pod of the release that carries
/// one, putting back the cost it had. Run at the start and the end of every
/// run, so a run stopped between marking a pod and its removal (killed
/// outright included) leaves no survivor marked once a later run ends.
/// Pods are selected by the release's instance label: never another
/// release's.
pub async fn unmark_pods(cluster: &Cluster, namespace: &str, release: &str) -> Result<usize, String> {
    let api: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let op = pod_op("list", namespace, None);
    let selector = format!("app.kubernetes.io/instance={release}");
    // The marks are annotations: the pods' metadata is all it needs.
    let list = cluster
        .call(op, api.list_metadata(&ListParams::default().labels(&selector)))
        .await
        .map_err(|e| e.to_string())?;
    let mut n = 0;
    for meta in list.items {
        let pod = Pod {
            metadata: meta.metadata,
            ..Pod::default()
        };
        let (Some(patch), Some(name)) = (scale_in::unmark_patch(&pod), pod.metadata.name.as_deref()) else {
            continue;
        };
        let op = pod_op("patch", namespace, Some(name));
        match cluster
            .call(op, api.patch(name, &write_params(), &Patch::Merge(patch)))
            .await
        {
            // Gone meanwhile: nothing left to unmark.
            Ok(_) | Err(ApiError::NotFound { .. }) => n += 1,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(n)
}

pub async fn write_deployment_replicas(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    n: u32,
) -> Result<(), String> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let op = deployment_op("patch", namespace, name);
    // The main resource, not /scale: servers before v1.22 record no field
    // ownership for /scale writes, newer ones do; through the main resource
    // every server records it alike, and the hand-back at the end of the
    // run ([`hand_back_replicas`]) is the same everywhere.
    let replicas = Patch::Merge(json!({"spec": {"replicas": n}}));
    cluster
        .call(op, api.patch(name, &write_params(), &replicas))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `verb` on one Deployment, for error messages.
pub fn deployment_op<'a>(verb: &'a str, namespace: &'a str, name: &'a str) -> Op<'a> {
    Op {
        verb,
        resource: "deployments.apps",
        namespace: Some(namespace),
        name: Some(name),
    }
}

/// `verb` on pods, for error messages.
fn pod_op<'a>(verb: &'a str, namespace: &'a str, name: Option<&'a str>) -> Op<'a> {
    Op {
        verb,
        resource: "pods",
        namespace: Some(namespace),
        name,
    }
}

/// Gives `spec.replicas` back to the Deployment's server-side applier (see
/// [`ownership`]); a no-op unless we hold it.
pub async fn hand_back_deployment_replicas(
    cluster: &Cluster,
    namespace: &str,
    deployment: Deployment,
) -> Result<(), ApiError> {
    fields::hand_back(cluster, namespace, deployment, &ownership::DEPLOYMENT_REPLICAS).await
}

/// What the progress line of a watched scale-in step says.
pub struct StepWatch<'a> {
    pub label: &'a str,
    /// The pod we chose to leave, waited for until it is gone.
    pub leaving: Option<&'a str>,
    pub started: std::time::Instant,
}

/// Waits, by watching, until the Deployment has exactly `n` ready, available,
/// up-to-date replicas and exactly `n` pods exist (removed ones are gone).
pub async fn wait_step(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    n: u32,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), String> {
    let watch = StepWatch {
        label: name,
        leaving: None,
        started: std::time::Instant::now(),
    };
    wait_step_watched(cluster, namespace, name, n, timeout, progress, &watch)
        .await
        .map(|_| ())
}

/// A Deployment, read fresh, and the label selector of its pods.
async fn deployment_and_selector(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<(Deployment, String), String> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let dep = cluster
        .call(deployment_op("get", namespace, name), deployments.get(name))
        .await
        .map_err(|e| e.to_string())?;
    let selector = selector_of(&dep);
    Ok((dep, selector))
}

/// The label selector of a Deployment's pods.
fn selector_of(dep: &Deployment) -> String {
    dep.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits, by watching, until the Deployment has exactly `n` ready, available,
/// up-to-date replicas, exactly `n` pods exist (removed ones are gone: their
/// graceful stop is over) and the pod chosen to leave no longer exists.
/// Returns the names of the pods there at the end.
pub async fn wait_step_watched(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    n: u32,
    timeout: Duration,
    progress: &Progress,
    step: &StepWatch<'_>,
) -> Result<Vec<String>, String> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let (dep, selector) = deployment_and_selector(cluster, namespace, name).await?;

    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let pod_events = reflector(
        pod_writer,
        watcher(pods, watcher::Config::default().labels(&selector)),
    )
    .default_backoff()
    .map(|ev| match ev {
        Err(e) => Seen::error(&e, "pods", namespace),
        Ok(ev) => Seen::Pods(matches!(ev, watcher::Event::InitDone)),
    });
    let dep_events = watcher(
        deployments,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .applied_objects();
    let mut latest: Option<Deployment> = Some(dep);
    let mut events = futures::stream::select(
        dep_events.map(|d| match d {
            Ok(d) => Seen::Deployment(Box::new(d)),
            Err(e) => Seen::error(&e, "deployments.apps", namespace),
        }),
        pod_events,
    )
    .boxed();
    let mut pods_synced = false;

    let wait = async {
        loop {
            let pods_now = pod_store.state();
            let pod_count = live_pods(&pods_now);
            let leaving_gone = step
                .leaving
                .is_none_or(|l| pods_now.iter().all(|p| p.metadata.name.as_deref() != Some(l)));
            if let Some(d) = &latest {
                let w = live_deployment(d);
                let observed = d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation;
                let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                progress.set(&format!(
                    "{}: {name} {}/{n} ready, {pod_count} pods{}, {} elapsed",
                    step.label,
                    w.ready,
                    step.leaving.map(|l| format!(", {l} leaving")).unwrap_or_default(),
                    humanize(step.started.elapsed())
                ));
                if observed
                    && leaving_gone
                    && w.replicas == n as i32
                    && w.ready == n as i32
                    && w.available == n as i32
                    && w.up_to_date == n as i32
                    && status_replicas == n as i32
                    && pods_synced
                    && pod_count == n
                {
                    return Ok(pods_now.iter().filter_map(|p| p.metadata.name.clone()).collect());
                }
            }
            match events.next().await {
                Some(Seen::Deployment(d)) => latest = Some(*d),
                Some(Seen::Retrying) => {}
                Some(Seen::Refused(forbidden)) => return Err(forbidden),
                Some(Seen::Pods(init_done)) => pods_synced |= init_done,
                None => return Ok(Vec::new()),
            }
        }
    };
    // `--timeout 0` waits without limit, as kubectl's durations mean it.
    let within = if timeout.is_zero() {
        Ok(wait.await)
    } else {
        tokio::time::timeout(timeout, wait).await
    };
    match within {
        Ok(Err(stop)) => Err(stop),
        Ok(Ok(names)) => {
            progress.line(&format!("{name}: {n}/{n} ready"));
            Ok(names)
        }
        Err(_) => {
            let ready = latest.as_ref().map(|d| live_deployment(d).ready).unwrap_or(0);
            Err(format!(
                "{name} did not reach {n} ready replicas within {} ({ready}/{n} ready, {} pods{})",
                humanize(timeout),
                live_pods(&pod_store.state()),
                step.leaving
                    .filter(|l| pod_store
                        .state()
                        .iter()
                        .any(|p| p.metadata.name.as_deref() == Some(*l)))
                    .map(|l| format!(", {l} still stopping"))
                    .unwrap_or_default()
            ))
        }
    }
}

/// Pods that still count against the Deployment: finished ones (evicted,
/// `Failed` after a node shutdown) linger until garbage-collected, but the
/// ReplicaSet controller has already replaced them.
fn live_pods(pods: &[std::sync::Arc<Pod>]) -> u32 {
    pods.iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .count() as u32
}

/// A Deployment's `spec.replicas` now (the largest of `names`), each one's
/// field handed back to Helm's server-side field manager on the way.
pub async fn replicas_handed_back(
    cluster: &Cluster,
    namespace: &str,
    names: &[String],
) -> Result<u32, ApiError> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let mut n = 0;
    for d in names {
        let dep = cluster
            .call(deployment_op("get", namespace, d), api.get(d))
            .await?;
        n = n.max(dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as u32);
        hand_back_deployment_replicas(cluster, namespace, dep).await?;
    }
    Ok(n)
}
