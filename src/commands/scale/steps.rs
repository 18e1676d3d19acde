//! Stepping Deployments: scale-outs at once, scale-ins one replica at a
//! time, each step watched until ready and the removed pods are gone.

use std::io::IsTerminal;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::Patch;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use crate::cluster::Cluster;
use crate::cluster::api::{ApiError, Op, forbidden_watch, live_deployment};
use crate::cluster::fields::{self, write_params};
use crate::core::ownership;
use crate::core::plan::{ComponentChange, Plan};

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
    forbidden_watch(e).map(|message| {
        ApiError::Forbidden {
            verb: "watch".to_string(),
            resource: resource.to_string(),
            scope: format!("namespace {namespace:?}"),
            message,
        }
        .to_string()
    })
}

/// Scale-outs first (all at once), then scale-ins one replica at a time.
/// When `repairing` a run that was killed, components already at their
/// target are waited for too: the killed run may have written the count
/// without seeing it ready.
pub(super) async fn execute(
    cluster: &Cluster,
    namespace: &str,
    plan: &Plan,
    timeout: Duration,
    progress: &Progress,
    repairing: bool,
) -> Result<(), String> {
    if repairing {
        for c in plan.changes.iter().filter(|c| c.target == c.current) {
            for d in &c.deployments {
                wait_step(cluster, namespace, d, c.target, timeout, progress).await?;
            }
        }
    }
    let outs: Vec<&ComponentChange> = plan.changes.iter().filter(|c| c.target > c.current).collect();
    for c in &outs {
        for d in &c.deployments {
            write_deployment_replicas(cluster, namespace, d, c.target).await?;
        }
        progress.line(&format!("{}: {} → {}", c.component, c.current, c.target));
    }
    for c in &outs {
        for d in &c.deployments {
            wait_step(cluster, namespace, d, c.target, timeout, progress).await?;
        }
    }
    for c in plan.changes.iter().filter(|c| c.target < c.current) {
        let mut at = c.current;
        for step in c.steps.iter() {
            progress.line(&format!("{}: {at} → {step}", c.component));
            for d in &c.deployments {
                write_deployment_replicas(cluster, namespace, d, step).await?;
            }
            for d in &c.deployments {
                wait_step(cluster, namespace, d, step, timeout, progress).await?;
            }
            at = step;
        }
    }
    Ok(())
}

async fn write_deployment_replicas(
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
pub(super) fn deployment_op<'a>(verb: &'a str, namespace: &'a str, name: &'a str) -> Op<'a> {
    Op {
        verb,
        resource: "deployments.apps",
        namespace: Some(namespace),
        name: Some(name),
    }
}

/// Gives `spec.replicas` back to the Deployment's server-side applier (see
/// [`ownership`]); a no-op unless we hold it.
pub(super) async fn hand_back_deployment_replicas(
    cluster: &Cluster,
    namespace: &str,
    deployment: Deployment,
) -> Result<(), ApiError> {
    fields::hand_back(cluster, namespace, deployment, &ownership::DEPLOYMENT_REPLICAS).await
}

/// Waits, by watching, until the Deployment has exactly `n` ready, available,
/// up-to-date replicas and exactly `n` pods exist (removed ones are gone).
pub(crate) async fn wait_step(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    n: u32,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), String> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let dep = cluster
        .call(deployment_op("get", namespace, name), deployments.get(name))
        .await
        .map_err(|e| e.to_string())?;
    let selector = dep
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");

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
            let pod_count = live_pods(&pod_store.state());
            if let Some(d) = &latest {
                let w = live_deployment(d);
                let observed = d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation;
                let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                progress.set(&format!("{name}: {}/{n} ready, {pod_count} pods", w.ready));
                if observed
                    && w.replicas == n as i32
                    && w.ready == n as i32
                    && w.available == n as i32
                    && w.up_to_date == n as i32
                    && status_replicas == n as i32
                    && pods_synced
                    && pod_count == n
                {
                    return Ok(());
                }
            }
            match events.next().await {
                Some(Seen::Deployment(d)) => latest = Some(*d),
                Some(Seen::Retrying) => {}
                Some(Seen::Refused(forbidden)) => return Err(forbidden),
                Some(Seen::Pods(init_done)) => pods_synced |= init_done,
                None => return Ok(()),
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
        Ok(Ok(())) => {
            progress.line(&format!("{name}: {n}/{n} ready"));
            Ok(())
        }
        Err(_) => {
            let ready = latest.as_ref().map(|d| live_deployment(d).ready).unwrap_or(0);
            Err(format!(
                "{name} did not reach {n} ready replicas within {} ({ready}/{n} ready, {} pods)",
                humanize(timeout),
                live_pods(&pod_store.state())
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

fn humanize(d: Duration) -> String {
    crate::core::duration::human_duration(jiff::SignedDuration::try_from(d).unwrap_or_default())
}

/// Progress on stderr: a live spinner line on a terminal, plain lines otherwise.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }
    pub(crate) fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
    pub(crate) fn set(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
