//! `kubectl milvus scale RELEASE COMPONENT=N …`: Helm-consistent scaling.
//!
//! Mirrors `helm upgrade`'s bookkeeping: revision N+1 is created
//! `pending-upgrade` first (the lock), the Deployments are stepped (out at
//! once, in one replica at a time, each step watched until ready), then N+1
//! becomes `deployed` and N `superseded`. Whatever stops the run, N+1 ends
//! up recording the replicas actually reached; if even that is impossible
//! (the process was killed, the API server went away), the next `scale`
//! recognises its own pending revision and repairs it.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::cluster::api::{ApiError, Op, live_deployment};
use crate::commands::{plan as plan_cmd, releases, status};
use crate::core::manifest;
use crate::core::plan::{ComponentChange, Plan};
use crate::core::release::{DEPLOYED, PENDING_UPGRADE, Release, SUPERSEDED, is_pending};
use crate::core::status::PLUGIN_DESCRIPTION_PREFIX;
use crate::core::values;
use crate::error::Refused;
use crate::helm::{self, StoredRelease};
use crate::render;

const FIELD_MANAGER: &str = "kubectl-milvus";

pub async fn run(cluster: &Cluster, args: &ScaleArgs) -> Result<String> {
    let requests = plan_cmd::parse_requests(&args.changes, args.replicas.as_deref())?;
    let namespace = cluster.namespace().to_string();

    // Fresh reads (not the watch cache): we are about to write.
    let (history, live) = tokio::join!(
        helm::history(cluster, &namespace, &args.release),
        fetch_live_fresh(cluster, &namespace)
    );
    let history = history?;
    let live = live?;
    let Some(last) = history.last() else {
        return Err(releases::not_found(cluster, &namespace, &args.release).await);
    };
    releases::check_milvus(&releases::CurrentRelease {
        deployed: Some(last.clone()),
        pending: None,
    })?;
    let Some(base) = history
        .iter()
        .rev()
        .find(|r| r.release.status() == DEPLOYED)
        .cloned()
    else {
        return Err(Refused(format!(
            "release {} has no deployed revision (last is {} {}); fix it with helm first",
            args.release,
            last.release.version(),
            last.release.status()
        ))
        .into());
    };
    let ours = if is_pending(last.release.status()) {
        if !last.release.description().starts_with(PLUGIN_DESCRIPTION_PREFIX) {
            return Err(Refused(format!(
                "revision {} of {} is {} ({:?}): another Helm operation is in progress; wait for it to finish (or roll it back) and retry",
                last.release.version(),
                args.release,
                last.release.status(),
                last.release.description()
            ))
            .into());
        }
        Some(last.clone())
    } else {
        None
    };

    let plan = plan_cmd::make(&base, &live, &requests, args.force)?;
    if args.dry_run {
        return Ok(render::plan::table(&plan));
    }
    if plan.nothing_to_do() && ours.is_none() {
        let now: Vec<String> = plan
            .changes
            .iter()
            .map(|c| format!("{}={}", c.component, c.target))
            .collect();
        return Ok(format!(
            "nothing to do: {} already at {}\n",
            args.release,
            now.join(", ")
        ));
    }

    let progress = Progress::new();
    if let Some(p) = &ours {
        progress.line(&format!(
            "repairing revision {} left {} by an interrupted kubectl milvus scale; continuing from what runs",
            p.release.version(),
            p.release.status()
        ));
    }
    // 1. Lock: write N+1 as pending-upgrade, values and manifest at the target.
    let targets: Vec<(&ComponentChange, u32)> = plan.changes.iter().map(|c| (c, c.target)).collect();
    let description = format!("{PLUGIN_DESCRIPTION_PREFIX} scaling {}", describe(&plan, None));
    let mut pending = match ours {
        Some(mut p) => {
            rewrite(
                &mut p.release,
                &base.release,
                &targets,
                PENDING_UPGRADE,
                &description,
            )?;
            update_with_retry(cluster, &mut p, |r| {
                rewrite(r, &base.release, &targets, PENDING_UPGRADE, &description)
            })
            .await?;
            p
        }
        None => {
            let mut next = base
                .release
                .next_revision(PENDING_UPGRADE, &description, &now_rfc3339());
            next.0["version"] = json!(last.release.version() + 1);
            rewrite(&mut next, &base.release, &targets, PENDING_UPGRADE, &description)?;
            helm::create(cluster, base.driver, &namespace, &next, &last.labels).await.map_err(|e| match e {
                ApiError::Conflict { .. } => anyhow::Error::new(Refused(format!(
                    "revision {} of {} was just created by someone else (a concurrent helm or scale); nothing was changed, retry",
                    next.version(),
                    args.release
                ))),
                other => other.into(),
            })?
        }
    };

    // 2. Step the Deployments.
    let outcome = tokio::select! {
        r = execute(cluster, &namespace, &plan, args.timeout, &progress) => r,
        () = interrupted() => Err(Stop("interrupted by a signal".to_string())),
    };
    progress.finish();

    // 3. Record what was reached, whatever happened.
    let reached = reached_replicas(cluster, &namespace, &plan).await;
    let record = match (&outcome, &reached) {
        (_, Err(e)) => Err(anyhow::anyhow!("cannot read the Deployments back: {e}")),
        (Ok(()), Ok(reached)) => {
            let d = format!("{PLUGIN_DESCRIPTION_PREFIX} scaled {}", describe(&plan, None));
            finish(cluster, &base, &mut pending, &plan, reached, &d, args.history_max).await
        }
        (Err(stop), Ok(reached)) => {
            let d = format!(
                "{PLUGIN_DESCRIPTION_PREFIX} interrupted scaling {} ({})",
                describe(&plan, Some(reached)),
                stop.0
            );
            finish(cluster, &base, &mut pending, &plan, reached, &d, args.history_max).await
        }
    };

    let continue_cmd = format!(
        "kubectl milvus scale {} {} -n {namespace}",
        args.release,
        plan.changes
            .iter()
            .map(|c| format!("{}={}", c.component, c.target))
            .collect::<Vec<_>>()
            .join(" ")
    );
    match (outcome, record) {
        (Ok(()), Ok(())) => {
            let mut out = format!(
                "release {} scaled: {} (revision {})\n\n",
                args.release,
                describe(&plan, None),
                pending.release.version()
            );
            let statuses = status::collect(cluster, Some(&args.release), false).await?;
            if let Some(s) = statuses.first() {
                let rows: Vec<_> = s.pods.iter().map(|p| p.row.clone()).collect();
                out.push_str(&render::table::pod_table(&rows, false, None));
            }
            Ok(out)
        }
        (Err(stop), Ok(())) => Err(anyhow::anyhow!(
            "{}; stopped at {} and recorded it as revision {}; continue with: {continue_cmd}",
            stop.0,
            reached.map(|r| describe_reached(&r)).unwrap_or_default(),
            pending.release.version()
        )),
        (outcome, Err(e)) => Err(anyhow::anyhow!(
            "{}could not record the result in Helm ({}); revision {} stays pending-upgrade; re-run to repair and finish: {continue_cmd}",
            outcome.err().map(|s| format!("{}; ", s.0)).unwrap_or_default(),
            crate::error::one_line(&e),
            pending.release.version()
        )),
    }
}

/// What one watch event told us.
enum Seen {
    Deployment(Option<Box<Deployment>>),
    /// A pod event; true once the initial listing is complete.
    Pods(bool),
}

/// Why stepping stopped early.
#[derive(Debug)]
struct Stop(String);

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// `queryNode 1→3, dataNode 2→1`; with `reached`, `queryNode 3→1 (at 2)`.
fn describe(plan: &Plan, reached: Option<&BTreeMap<String, u32>>) -> String {
    plan.changes
        .iter()
        .map(|c| match reached.and_then(|r| r.get(&c.component)) {
            Some(at) if *at != c.target => format!("{} {}→{} (at {at})", c.component, c.current, c.target),
            _ => format!("{} {}→{}", c.component, c.current, c.target),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_reached(reached: &BTreeMap<String, u32>) -> String {
    reached
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets values and manifest of `release` to the given replica counts,
/// starting from `base` (the deployed revision).
fn rewrite(
    release: &mut Release,
    base: &Release,
    targets: &[(&ComponentChange, u32)],
    status: &str,
    description: &str,
) -> Result<()> {
    let mut config = base.config().clone();
    let mut manifest = base.manifest().to_string();
    for (change, n) in targets {
        values::set(&mut config, &change.values_path(), json!(n));
        for d in &change.deployments {
            manifest = manifest::set_replicas(&manifest, "Deployment", d, *n)?;
        }
    }
    release.set_config(config);
    release.set_manifest(manifest);
    release.set_status(status, Some(description));
    release.0["info"]["last_deployed"] = json!(now_rfc3339());
    Ok(())
}

/// Finishes like Helm: N+1 deployed (first, so a crash in between leaves a
/// deployed revision), N superseded, then prunes history.
async fn finish(
    cluster: &Cluster,
    base: &StoredRelease,
    pending: &mut StoredRelease,
    plan: &Plan,
    reached: &BTreeMap<String, u32>,
    description: &str,
    history_max: usize,
) -> Result<()> {
    let targets: Vec<(&ComponentChange, u32)> = plan
        .changes
        .iter()
        .map(|c| (c, reached.get(&c.component).copied().unwrap_or(c.target)))
        .collect();
    rewrite(
        &mut pending.release,
        &base.release,
        &targets,
        DEPLOYED,
        description,
    )?;
    update_with_retry(cluster, pending, |r| {
        rewrite(r, &base.release, &targets, DEPLOYED, description)
    })
    .await?;
    let mut previous = base.clone();
    previous.release.set_status(SUPERSEDED, None);
    update_with_retry(cluster, &mut previous, |r| {
        r.set_status(SUPERSEDED, None);
        Ok(())
    })
    .await?;
    prune(cluster, &pending.namespace, pending.release.name(), history_max).await
}

/// Writes a record; on a conflict re-reads it and re-applies the change.
async fn update_with_retry(
    cluster: &Cluster,
    stored: &mut StoredRelease,
    mut change: impl FnMut(&mut Release) -> Result<()>,
) -> Result<()> {
    for _ in 0..5 {
        match helm::update(cluster, stored).await {
            Ok(()) => return Ok(()),
            Err(ApiError::Conflict { .. }) => {
                let fresh = helm::history(cluster, &stored.namespace, stored.release.name()).await?;
                let version = stored.release.version();
                let Some(mut again) = fresh.into_iter().find(|r| r.release.version() == version) else {
                    anyhow::bail!("revision {version} disappeared while being written");
                };
                change(&mut again.release)?;
                *stored = again;
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "revision {} kept changing under us; retry",
        stored.release.version()
    )
}

/// Keeps at most `max` revisions (0 = all), never the deployed one.
async fn prune(cluster: &Cluster, namespace: &str, name: &str, max: usize) -> Result<()> {
    if max == 0 {
        return Ok(());
    }
    let history = helm::history(cluster, namespace, name).await?;
    let excess = history.len().saturating_sub(max);
    for old in history
        .iter()
        .filter(|r| r.release.status() != DEPLOYED)
        .take(excess)
    {
        match helm::delete(cluster, old).await {
            Ok(()) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn fetch_live_fresh(cluster: &Cluster, namespace: &str) -> Result<status::Live> {
    // The plan must start from current truth, so skip the watch cache.
    let fresh = kube::api::ListParams::default();
    let (deployments, hpas, pods) = tokio::try_join!(
        cluster.list::<Deployment>(namespace, &fresh),
        cluster.list(namespace, &fresh),
        cluster.list(namespace, &fresh),
    )?;
    Ok(status::Live {
        workloads: deployments.iter().map(live_deployment).collect(),
        hpas,
        pods,
    })
}

/// The live `spec.replicas` of each changed component (largest over its
/// resource-group Deployments).
async fn reached_replicas(cluster: &Cluster, namespace: &str, plan: &Plan) -> Result<BTreeMap<String, u32>> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let mut out = BTreeMap::new();
    for c in &plan.changes {
        let mut n = 0;
        for d in &c.deployments {
            let op = Op {
                verb: "get",
                resource: "deployments.apps",
                namespace: Some(namespace),
                name: Some(d),
            };
            let dep = cluster.call(op, api.get(d)).await?;
            n = n.max(dep.spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32);
        }
        out.insert(c.component.clone(), n);
    }
    Ok(out)
}

/// Scale-outs first (all at once), then scale-ins one replica at a time.
async fn execute(
    cluster: &Cluster,
    namespace: &str,
    plan: &Plan,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), Stop> {
    let outs: Vec<&ComponentChange> = plan.changes.iter().filter(|c| c.target > c.current).collect();
    for c in &outs {
        for d in &c.deployments {
            set_replicas(cluster, namespace, d, c.target).await?;
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
        for &step in &c.steps {
            progress.line(&format!("{}: {at} → {step}", c.component));
            for d in &c.deployments {
                set_replicas(cluster, namespace, d, step).await?;
            }
            for d in &c.deployments {
                wait_step(cluster, namespace, d, step, timeout, progress).await?;
            }
            at = step;
        }
    }
    Ok(())
}

async fn set_replicas(cluster: &Cluster, namespace: &str, name: &str, n: u32) -> Result<(), Stop> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let patch = Patch::Merge(json!({"spec": {"replicas": n}}));
    let op = Op {
        verb: "patch",
        resource: "deployments.apps/scale",
        namespace: Some(namespace),
        name: Some(name),
    };
    cluster
        .call(
            op,
            api.patch_scale(
                name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..Default::default()
                },
                &patch,
            ),
        )
        .await
        .map(|_| ())
        .map_err(|e| Stop(e.to_string()))
}

/// Waits, by watching, until the Deployment has exactly `n` ready, available,
/// up-to-date replicas and exactly `n` pods exist (removed ones are gone).
async fn wait_step(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    n: u32,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), Stop> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let op = Op {
        verb: "get",
        resource: "deployments.apps",
        namespace: Some(namespace),
        name: Some(name),
    };
    let dep = cluster
        .call(op, deployments.get(name))
        .await
        .map_err(|e| Stop(e.to_string()))?;
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
    .map(|ev| Seen::Pods(matches!(ev, Ok(watcher::Event::InitDone))));
    let dep_events = watcher(
        deployments,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .applied_objects();
    let mut latest: Option<Deployment> = Some(dep);
    let mut events = futures::stream::select(
        dep_events.map(|d| Seen::Deployment(d.ok().map(Box::new))),
        pod_events,
    )
    .boxed();
    let mut pods_synced = false;

    let wait = async {
        loop {
            let pod_count = pod_store.state().len() as u32;
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
                    return;
                }
            }
            match events.next().await {
                Some(Seen::Deployment(Some(d))) => latest = Some(*d),
                Some(Seen::Deployment(None)) => {}
                Some(Seen::Pods(init_done)) => pods_synced |= init_done,
                None => return,
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(()) => {
            progress.line(&format!("{name}: {n}/{n} ready"));
            Ok(())
        }
        Err(_) => {
            let ready = latest.as_ref().map(|d| live_deployment(d).ready).unwrap_or(0);
            Err(Stop(format!(
                "{name} did not reach {n} ready replicas within {} ({ready}/{n} ready, {} pods)",
                humanize(timeout),
                pod_store.state().len()
            )))
        }
    }
}

fn humanize(d: Duration) -> String {
    crate::core::duration::human_duration(jiff::SignedDuration::try_from(d).unwrap_or_default())
}

/// Progress on stderr: a live spinner line on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
    fn set(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
