//! Stepping Deployments: scale-outs at once, scale-ins one replica at a
//! time, each step watched until ready and the removed pods are gone.

use std::io::IsTerminal;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use crate::cluster::Cluster;
use crate::cluster::api::{ApiError, Op, forbidden_watch_error, live_deployment};
use crate::cluster::fields::{self, write_params};
use crate::core::ownership;
use crate::core::plan::{ComponentChange, Plan};
use crate::core::scale_in::{self, ControllerRules};

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

/// How scale-in steps are taken and gated.
pub(super) struct StepOptions<'a> {
    pub release: &'a str,
    pub timeout: Duration,
    /// Waited after each settled scale-in step before the next.
    pub pause: Duration,
    /// Run after each settled scale-in step; a failure stops the run.
    pub check: Option<&'a str>,
    pub rules: ControllerRules,
    pub remove: &'a [String],
}

/// Scale-outs first (all at once), then scale-ins one replica at a time.
/// When `repairing` a run that was killed, components already at their
/// target are waited for too: the killed run may have written the count
/// without seeing it ready.
pub(super) async fn execute(
    cluster: &Cluster,
    namespace: &str,
    plan: &Plan,
    opts: &StepOptions<'_>,
    progress: &Progress,
    repairing: bool,
) -> Result<(), String> {
    let timeout = opts.timeout;
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
    let ins: Vec<&ComponentChange> = plan.changes.iter().filter(|c| c.target < c.current).collect();
    let total: u32 = ins.iter().map(|c| c.steps.len()).sum();
    let mut k = 0;
    for c in ins {
        let mut at = c.current;
        for step in c.steps.iter() {
            k += 1;
            let started = std::time::Instant::now();
            let mut leaving = Vec::new();
            for d in &c.deployments {
                leaving.push(pick_leaving(cluster, namespace, d, opts).await?);
            }
            let names = leaving
                .iter()
                .filter_map(|l| l.chosen.clone())
                .collect::<Vec<_>>();
            progress.line(&format!(
                "{}: {at} → {step} (step {k} of {total}){}",
                c.component,
                if names.is_empty() {
                    String::new()
                } else {
                    format!(", removing {}", names.join(", "))
                }
            ));
            for d in &c.deployments {
                write_deployment_replicas(cluster, namespace, d, step).await?;
            }
            let mut removed = Vec::new();
            for (d, l) in c.deployments.iter().zip(&leaving) {
                let label = format!("{} step {k} of {total}", c.component);
                let watch = StepWatch {
                    label: &label,
                    leaving: l.chosen.as_deref(),
                    started,
                };
                let after = wait_step_watched(cluster, namespace, d, step, timeout, progress, &watch).await?;
                removed.extend(l.before.iter().filter(|n| !after.contains(*n)).cloned());
            }
            if !removed.is_empty() {
                progress.line(&format!(
                    "{}: {} gone after {}",
                    c.component,
                    removed.join(", "),
                    humanize(started.elapsed())
                ));
            }
            if let Some(command) = opts.check {
                let settled = Settled {
                    component: &c.component,
                    from: at,
                    replicas: step,
                    removed: &removed,
                    step: k,
                    steps: total,
                };
                run_check(command, opts.release, namespace, &settled, progress).await?;
            }
            if k < total && !opts.pause.is_zero() {
                progress.line(&format!("pausing {} before the next step", humanize(opts.pause)));
                tokio::time::sleep(opts.pause).await;
            }
            at = step;
        }
    }
    Ok(())
}

/// The pod chosen to leave a Deployment at a step (v1.22+: marked so the
/// ReplicaSet removes exactly it), and the pods there before the step (to
/// name the one that left either way).
struct Leaving {
    chosen: Option<String>,
    before: Vec<String>,
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

async fn pick_leaving(
    cluster: &Cluster,
    namespace: &str,
    deployment: &str,
    opts: &StepOptions<'_>,
) -> Result<Leaving, String> {
    let pods = deployment_pods(cluster, namespace, deployment).await?;
    let before = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    if !opts.rules.deletion_cost {
        return Ok(Leaving { chosen: None, before });
    }
    let refs: Vec<&Pod> = pods.iter().collect();
    let Some(victim) = scale_in::choose_victim(&refs, opts.remove) else {
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
pub(super) async fn unmark_pods(cluster: &Cluster, namespace: &str, release: &str) -> Result<usize, String> {
    let api: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let op = pod_op("list", namespace, None);
    let selector = format!("app.kubernetes.io/instance={release}");
    let list = cluster
        .call(op, api.list(&ListParams::default().labels(&selector)))
        .await
        .map_err(|e| e.to_string())?;
    let mut n = 0;
    for pod in &list.items {
        let (Some(patch), Some(name)) = (scale_in::unmark_patch(pod), pod.metadata.name.as_deref()) else {
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

/// A settled scale-in step, as `--check` sees it.
struct Settled<'a> {
    component: &'a str,
    from: u32,
    replicas: u32,
    removed: &'a [String],
    step: u32,
    steps: u32,
}

/// Lines of a failing check's output shown in the one-line error.
const CHECK_TAIL_LINES: usize = 3;

/// Runs `--check` through the shell with the step in its environment. A
/// non-zero exit (or a check that cannot start) stops the run with the
/// command's last lines.
async fn run_check(
    command: &str,
    release: &str,
    namespace: &str,
    s: &Settled<'_>,
    progress: &Progress,
) -> Result<(), String> {
    progress.set(&format!("{}: running --check", s.component));
    let mut cmd = shell(command);
    cmd.env("MILVUS_RELEASE", release)
        .env("MILVUS_NAMESPACE", namespace)
        .env("MILVUS_COMPONENT", s.component)
        .env("MILVUS_REPLICAS", s.replicas.to_string())
        .env("MILVUS_PREVIOUS_REPLICAS", s.from.to_string())
        .env("MILVUS_REMOVED_POD", s.removed.join(","))
        .env("MILVUS_STEP", s.step.to_string())
        .env("MILVUS_STEPS", s.steps.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = cmd
        .output()
        .await
        .map_err(|e| format!("--check could not be started ({e}): {command}"))?;
    if output.status.success() {
        progress.line(&format!(
            "{}: check passed at {} replicas",
            s.component, s.replicas
        ));
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(CHECK_TAIL_LINES)..].join(" | ");
    Err(format!(
        "--check failed after {} {} → {} ({}){}",
        s.component,
        s.from,
        s.replicas,
        output
            .status
            .code()
            .map_or("killed by a signal".to_string(), |c| format!("exit {c}")),
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    ))
}

#[cfg(unix)]
fn shell(command: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(not(unix))]
fn shell(command: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("cmd");
    c.arg("/C").arg(command);
    c
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
pub(super) async fn hand_back_deployment_replicas(
    cluster: &Cluster,
    namespace: &str,
    deployment: Deployment,
) -> Result<(), ApiError> {
    fields::hand_back(cluster, namespace, deployment, &ownership::DEPLOYMENT_REPLICAS).await
}

/// What the progress line of a watched scale-in step says.
struct StepWatch<'a> {
    label: &'a str,
    /// The pod we chose to leave, waited for until it is gone.
    leaving: Option<&'a str>,
    started: std::time::Instant,
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
async fn wait_step_watched(
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
