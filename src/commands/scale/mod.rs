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

use anyhow::Result;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::commands::releases::PendingWork;
use crate::commands::{plan as plan_cmd, releases, status};
use crate::core::lock;
use crate::core::plan::{ComponentChange, Plan, carry_on};
use crate::core::release::{DEPLOYED, PENDING_UPGRADE, is_pending};
use crate::core::status::PLUGIN_DESCRIPTION_PREFIX;
use crate::error::Refused;
use crate::helm;
use crate::render;

mod record;
pub(crate) mod steps;

use self::record::{Unfinished, finish, now_rfc3339, rewrite, still_ours, supersede, update_with_retry};
use self::steps::{Progress, deployment_op, execute, hand_back_replicas};

pub async fn run(cluster: &Cluster, args: &ScaleArgs) -> Result<String> {
    let requests = plan_cmd::parse_requests(&args.changes, args.replicas.as_deref())?;
    let me = releases::this_process();
    let namespace = cluster.namespace().to_string();

    // Fresh reads (not the watch cache): we are about to write, and the
    // plan must start from current truth.
    let fresh = ListParams::default();
    let (history, live) = tokio::join!(
        helm::history(cluster, &namespace, &args.release),
        status::fetch_live_with(cluster, &namespace, &fresh)
    );
    let history = history?;
    let live = live?;
    let Some(last) = history.last() else {
        return Err(releases::not_found(cluster, &namespace, &args.release).await);
    };
    releases::check_milvus_record(last)?;
    // Every revision `deployed` now: the newest is the base; older ones an
    // earlier failure left deployed are superseded when this run finishes.
    let deployed_before: Vec<_> = history
        .iter()
        .filter(|r| r.release.status() == DEPLOYED)
        .cloned()
        .collect();
    let Some(base) = deployed_before.last().cloned() else {
        return Err(Refused(format!(
            "release {} has no deployed revision (last is {} {}); fix it with helm first",
            args.release,
            last.release.version(),
            last.release.status()
        ))
        .into());
    };
    let ours = match is_pending(last.release.status()).then(|| releases::pending_work(last)) {
        None => None,
        Some(PendingWork::Interrupted) => Some(last.clone()),
        Some(PendingWork::Helm) => {
            return Err(Refused(format!(
                "revision {} of {} is {} ({:?}): another Helm operation is in progress; wait for it to finish (or roll it back) and retry",
                last.release.version(),
                args.release,
                last.release.status(),
                last.release.description()
            ))
            .into());
        }
        Some(PendingWork::Scaling { holder, age }) => {
            return Err(Refused(format!(
                "revision {} of {} is being scaled right now by kubectl milvus scale on {holder} (last heartbeat {}s ago); wait for it to finish, or if that run is gone, retry in {}s",
                last.release.version(),
                args.release,
                age.as_secs(),
                (lock::TTL - age).as_secs().max(1)
            ))
            .into());
        }
    };

    // A repair carries on the whole killed run, not only what is named now.
    let requests = match &ours {
        Some(p) => carry_on(&p.release, &base.release, &requests),
        None => requests,
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
        // Older revisions an earlier failure left `deployed` are tidied even so.
        let stale = &deployed_before[..deployed_before.len() - 1];
        supersede(cluster, stale).await?;
        let tidied = match stale {
            [] => String::new(),
            revisions => format!(
                " (older revisions left deployed, now superseded: {})",
                revisions
                    .iter()
                    .map(|r| r.release.version().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Ok(format!(
            "nothing to do: {} already at {}{tidied}\n",
            args.release,
            now.join(", ")
        ));
    }

    let progress = Progress::new();
    let repairing = ours.is_some();
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
            // Take the abandoned revision over; if another run took it over
            // first (our write conflicts and the fresh read names it), stop.
            let mut first = true;
            update_with_retry(cluster, &mut p, |s| {
                if !std::mem::take(&mut first) {
                    still_ours(s, &me)?;
                }
                s.annotations.extend(lock::annotations(&me, Timestamp::now()));
                rewrite(
                    &mut s.release,
                    &base.release,
                    &targets,
                    PENDING_UPGRADE,
                    &description,
                )
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
            let held = lock::annotations(&me, Timestamp::now()).into_iter().collect();
            helm::create(cluster, base.driver, &namespace, &next, &last.labels, held).await.map_err(|e| match e {
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
        r = execute(cluster, &namespace, &plan, args.timeout, &progress, repairing) => r,
        () = interrupted() => Err(Stop("interrupted by a signal".to_string())),
        () = keep_alive(cluster, &pending) => Err(Stop("the heartbeat stopped".to_string())),
    };
    progress.finish();

    // 3. Record what was reached, whatever happened.
    let reached = reached_replicas(cluster, &namespace, &plan).await;
    let record = match &reached {
        Err(e) => Err(Unfinished::Record(anyhow::anyhow!(
            "cannot read the Deployments back or hand their spec.replicas back to Helm: {e}"
        ))),
        Ok(reached) => {
            let description = match &outcome {
                Ok(()) => format!("{PLUGIN_DESCRIPTION_PREFIX} scaled {}", describe(&plan, None)),
                Err(stop) => format!(
                    "{PLUGIN_DESCRIPTION_PREFIX} interrupted scaling {} ({})",
                    describe(&plan, Some(reached)),
                    stop.0
                ),
            };
            finish(
                cluster,
                &base,
                &deployed_before,
                &mut pending,
                &plan,
                reached,
                &description,
                args.history_max,
                &me,
            )
            .await
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
        (outcome, Err(Unfinished::Tidy(e))) => Err(anyhow::anyhow!(
            "{}revision {} is deployed and records {}, but Helm's history is not tidy ({}); the next kubectl milvus scale tidies it",
            outcome.err().map(|s| format!("{}; ", s.0)).unwrap_or_default(),
            pending.release.version(),
            reached.map(|r| describe_reached(&r)).unwrap_or_default(),
            crate::error::one_line(&e),
        )),
        (outcome, Err(Unfinished::Record(e))) => Err(anyhow::anyhow!(
            "{}could not record the result in Helm ({}); revision {} is left unfinished; re-run to repair and finish: {continue_cmd}",
            outcome.err().map(|s| format!("{}; ", s.0)).unwrap_or_default(),
            crate::error::one_line(&e),
            pending.release.version()
        )),
    }
}

/// Renews the heartbeat on the pending revision while the run works; never
/// returns. A failed renewal is left to the next one (the TTL allows three).
async fn keep_alive(cluster: &Cluster, pending: &helm::StoredRelease) {
    let mut tick = tokio::time::interval(lock::RENEW_EVERY.unsigned_abs());
    tick.tick().await;
    loop {
        tick.tick().await;
        let _ = helm::heartbeat(cluster, pending, &Timestamp::now().to_string()).await;
    }
}

/// Why stepping stopped early.
#[derive(Debug)]
pub(crate) struct Stop(pub(crate) String);

pub(crate) async fn interrupted() {
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

/// The live `spec.replicas` of each changed component (largest over its
/// resource-group Deployments), each Deployment's `spec.replicas` handed
/// back to Helm's server-side field manager on the way. Every run ends
/// here, a repairing re-run included, so no claim of ours outlives a run.
async fn reached_replicas(cluster: &Cluster, namespace: &str, plan: &Plan) -> Result<BTreeMap<String, u32>> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let mut out = BTreeMap::new();
    for c in &plan.changes {
        let mut n = 0;
        for d in &c.deployments {
            let dep = cluster
                .call(deployment_op("get", namespace, d), api.get(d))
                .await?;
            n = n.max(dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as u32);
            hand_back_replicas(cluster, namespace, dep).await?;
        }
        out.insert(c.component.clone(), n);
    }
    Ok(out)
}
