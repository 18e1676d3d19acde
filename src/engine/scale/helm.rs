//! `scale` of a Helm release: the Helm record is the run's record.
//!
//! A run reads top to bottom: (the Lease is held) **load** the history and
//! live state and make the plan → **open** revision N+1 `pending-upgrade`
//! (as `helm upgrade` does; it keeps Helm out) → **step** the Deployments
//! (out at once, in one replica at a time, each step watched until ready)
//! while renewing the Lease and watching for other writers → **record**
//! N+1 `deployed` at what was reached and N `superseded` → **report**.
//!
//! Whatever stops the run, N+1 ends up recording the replicas reached; if
//! even that is impossible (killed, API server gone), the next run finds
//! its own pending revision and repairs it. If someone else writes the
//! release meanwhile (`helm rollback`, `helm upgrade`), the run stops at
//! once and writes over nothing of theirs.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::cli::{PlanOutput, ScaleArgs};
use crate::cluster::Cluster;
use crate::cluster::helm_records::other_writer;
use crate::cluster::helm_records::{self as helm, StoredRelease};
use crate::cluster::hpa;
use crate::cluster::lease::HeldLease;
use crate::cluster::live::fetch_live;
use crate::cluster::rollout::{replicas_handed_back, unmark_pods};
use crate::core::bounds::Setting;
use crate::core::gitops::Owner;
use crate::core::lock::{self, PendingWork};
use crate::core::plan::{ComponentChange, Plan, Request, ScaleInInput, carry_on};
use crate::core::release::{DEPLOYED, is_pending};
use crate::core::scale_in::{self, ControllerRules};
use crate::core::status::PLUGIN_DESCRIPTION_PREFIX;
use crate::engine::owner as gitops;
use crate::engine::plan as plan_cmd;
use crate::engine::signals::interrupted;
use crate::engine::{releases, status};
use crate::error::Refused;
use crate::render;
use crate::render::progress::Progress;

use super::record::{self, Finish, OtherWriter, Unfinished};
use super::steps::{self, StepOptions};
use super::stop::Stop;
use super::{bounds, busy, continue_command, tell_grace};

/// What a run starts from, read under the Lease.
struct Loaded {
    /// Every revision `deployed` now; the newest is the base.
    deployed_before: Vec<StoredRelease>,
    base: StoredRelease,
    last: StoredRelease,
    /// The pending revision a killed run left, to repair.
    abandoned: Option<StoredRelease>,
    plan: Plan,
    /// A GitOps tool that owns the release, if any.
    owner: Option<Owner>,
    /// The server's ReplicaSet scale-down rules.
    rules: ControllerRules,
}

impl Loaded {
    /// Reads the history and the live state (fresh) and makes the plan.
    async fn read(cluster: &Cluster, args: &ScaleArgs, requests: &[Request]) -> Result<Loaded> {
        let namespace = cluster.namespace();
        let (history, live, rules) = tokio::join!(
            helm::history(cluster, namespace, &args.release),
            fetch_live(cluster, namespace),
            cluster.controller_rules()
        );
        let history = history?;
        let live = live?;
        let rules = rules?;
        let Some(last) = history.last().cloned() else {
            return Err(releases::not_found(cluster, namespace, &args.release).await);
        };
        releases::check_milvus_record(&last)?;
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
        // Under the Lease a pending revision of ours has no run (a dry run,
        // without it, asks the Lease itself: see `run`).
        let abandoned = if is_pending(last.release.status()) {
            match lock::pending_work(last.release.description(), PLUGIN_DESCRIPTION_PREFIX, None) {
                PendingWork::Helm => {
                    return Err(Refused(format!(
                        "revision {} of {} is {} ({:?}): another Helm operation is in progress; wait for it to finish (or roll it back) and retry",
                        last.release.version(),
                        args.release,
                        last.release.status(),
                        last.release.description()
                    ))
                    .into());
                }
                PendingWork::Scaling { .. } | PendingWork::Interrupted => Some(last.clone()),
            }
        } else {
            None
        };
        // A repair carries on the whole killed run, not only what is named now.
        let requests = match &abandoned {
            Some(p) => carry_on(&p.release, &base.release, requests),
            None => requests.to_vec(),
        };
        let scale_in = ScaleInInput {
            rules,
            grace: live.grace.clone(),
            remove: args.scale_in.remove.clone(),
            accept_short_grace: args.scale_in.accept_short_grace,
        };
        let plan = plan_cmd::make(&base, &live, &requests, args.force, &scale_in)?;
        if !args.scale_in.remove.is_empty() && !rules.deletion_cost && !args.dry_run {
            return Err(Refused(format!(
                "--remove needs Kubernetes v1.22+ (controller.kubernetes.io/pod-deletion-cost); this server's ReplicaSet controller chooses the pod itself, so {} cannot be guaranteed to go; run without --remove (`kubectl milvus plan` shows the pods it will remove)",
                args.scale_in.remove.join(", ")
            ))
            .into());
        }
        let owner = gitops::owner_of(cluster, &base, &live).await;
        Ok(Loaded {
            deployed_before,
            base,
            last,
            abandoned,
            plan,
            owner,
            rules,
        })
    }
}

/// A Helm release's dry run: the plan from what runs, read without the
/// Lease.
pub(super) async fn dry_run(cluster: &Cluster, args: &ScaleArgs, requests: &[Request]) -> Result<String> {
    let loaded = Loaded::read(cluster, args, requests).await?;
    // Read without the Lease: a pending revision of ours may belong to a
    // run at work now, whose targets are no repair to show.
    if let Some(p) = &loaded.abandoned
        && let PendingWork::Scaling { holder } = releases::pending_work(cluster, p).await
    {
        return Err(busy(&args.release, cluster.namespace(), &holder));
    }
    let owned = loaded.owner.map(|o| gitops::plan_warning(&o, &loaded.plan));
    render::plan::output(PlanOutput::Table, loaded.plan, owned)
}

/// The run of a Helm release, holding its Lease: read → ownership guard →
/// open revision N+1 → steps → finish the record → outcome.
pub(super) async fn holding(
    cluster: &Cluster,
    args: &ScaleArgs,
    requests: &[Request],
    lease: &HeldLease,
    progress: &Progress,
) -> Result<String> {
    let namespace = cluster.namespace().to_string();
    let loaded = Loaded::read(cluster, args, requests).await?;
    let plan = &loaded.plan;
    // GitOps reverts what it did not write: refused unless forced.
    if let Some(warning) = gitops::guard(
        loaded.owner.as_ref(),
        &args.release,
        &gitops::changed(plan),
        args.force_gitops,
    )? {
        progress.line(&format!("Warning: {warning}"));
    }
    // A killed run (or a clean-up that failed) may have left a pod marked:
    // take that mark off first, even when there is nothing else to do.
    unmark_pods(cluster, &namespace, &args.release)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    if plan.nothing_to_do() && loaded.abandoned.is_none() {
        return nothing_to_do(cluster, args, &loaded).await;
    }
    tell_grace(progress, plan, |g| scale_in::grace_warning(g, &args.release));

    // Open N+1 (or take the killed run's revision over) at the target.
    let repairing = loaded.abandoned.is_some();
    if let Some(p) = &loaded.abandoned {
        progress.line(&format!(
            "repairing revision {} left {} by an interrupted kubectl milvus scale; continuing from what runs",
            p.release.version(),
            p.release.status()
        ));
    }
    let targets: Vec<(&ComponentChange, Setting)> =
        plan.changes.iter().map(|c| (c, c.target_setting())).collect();
    let description = format!("{PLUGIN_DESCRIPTION_PREFIX} scaling {}", describe(plan, None));
    let mut pending = record::open(
        cluster,
        lease.identity(),
        &loaded.base,
        &loaded.last,
        loaded.abandoned.clone(),
        &targets,
        &description,
    )
    .await?;

    // Step, renewing the Lease and watching for other writers.
    let step_options = StepOptions {
        release: &args.release,
        timeout: args.timeout,
        pause: args.pause,
        check: args.check.as_deref(),
        rules: loaded.rules,
        remove: &args.scale_in.remove,
    };
    let outcome = tokio::select! {
        r = execute(cluster, &namespace, plan, &step_options, progress, repairing) => r,
        () = interrupted() => Err(Stop::Signal),
        lost = lease.keep(cluster) => Err(Stop::LockLost(lost)),
        what = other_writer(cluster, &pending) => Err(Stop::OtherWriter(what)),
    };

    // No survivor keeps a mark, whatever stopped the run (a failure here
    // is repeated by the next run's start); meanwhile read what was reached
    // and hand spec.replicas back to Helm (other objects: no ordering needed).
    let (unmarked, reached) = tokio::join!(
        unmark_pods(cluster, &namespace, &args.release),
        reached(cluster, &namespace, plan)
    );
    let continue_cmd = continue_command(&args.release, &namespace, plan);
    let at = |reached: &Result<BTreeMap<String, Setting>>| {
        reached
            .as_ref()
            .map(|r| describe(plan, Some(r)))
            .unwrap_or_else(|_| describe(plan, None))
    };
    let history_hint = format!("check `helm history {} -n {namespace}`", args.release);
    let (outcome, reached) = match (outcome, reached) {
        (Err(Stop::OtherWriter(what)), reached) => {
            let note = format!(
                "{PLUGIN_DESCRIPTION_PREFIX} stopped scaling {}: {what}",
                at(&reached)
            );
            let ours = match record::fail(cluster, lease.identity(), &mut pending, &note).await {
                Ok(()) => format!("revision {} is marked failed", pending.release.version()),
                Err(_) => format!(
                    "revision {} is theirs now and was left as they wrote it",
                    pending.release.version()
                ),
            };
            return Err(anyhow::anyhow!(
                "stopped: {what}; scaling stopped at {}; their change stands, nothing of it was written over, and {ours}; {history_hint}",
                at(&reached)
            ));
        }
        (Err(Stop::LockLost(lost)), reached) => {
            return Err(anyhow::anyhow!(
                "stopped: {lost}; scaling stopped at {}; revision {} is left pending for the next run to repair: {continue_cmd}",
                at(&reached),
                pending.release.version()
            ));
        }
        (outcome, Err(e)) => {
            return Err(anyhow::anyhow!(
                "{}could not read the Deployments back or hand their spec.replicas back to Helm ({}); revision {} is left unfinished; re-run to repair and finish: {continue_cmd}",
                outcome.err().map(|s| format!("{s}; ")).unwrap_or_default(),
                crate::error::one_line(&e),
                pending.release.version()
            ));
        }
        (outcome, Ok(reached)) => (outcome, reached),
    };
    let description = match &outcome {
        Ok(()) => format!("{PLUGIN_DESCRIPTION_PREFIX} scaled {}", describe(plan, None)),
        Err(stop) => format!(
            "{PLUGIN_DESCRIPTION_PREFIX} interrupted scaling {} ({stop})",
            describe(plan, Some(&reached)),
        ),
    };
    let finish = Finish {
        base: &loaded.base,
        deployed_before: &loaded.deployed_before,
        changes: &plan.changes,
        reached: &reached,
        description: &description,
        history_max: args.history_max,
    };
    let recorded = record::finish(cluster, lease.identity(), &finish, &mut pending).await;

    match (outcome, recorded) {
        (_, Err(Unfinished::Record(e))) if e.downcast_ref::<OtherWriter>().is_some() => Err(anyhow::anyhow!(
            "stopped: {}; scaling stopped at {}; their change stands and nothing of it was written over; {history_hint}",
            crate::error::one_line(&e),
            describe_reached(&reached)
        )),
        (Ok(()), Ok(())) => match unmarked {
            Ok(_) => report(cluster, args, plan, &pending).await,
            Err(e) => Err(anyhow::anyhow!(
                "release {} scaled (revision {}), but a pod still carries kubectl-milvus's deletion-cost mark ({e}); re-run the same command to take it off",
                args.release,
                pending.release.version()
            )),
        },
        // Their bounds stand (and are what N+1 records): no "continue with"
        // that would write over them.
        (Err(Stop::OtherHpaWriter(why)), Ok(())) => Err(anyhow::anyhow!(
            "stopped: {why}; recorded what runs ({}) as revision {}; find out who else changes it before scaling {} again",
            describe_reached(&reached),
            pending.release.version(),
            args.release
        )),
        (Err(stop), Ok(())) => Err(anyhow::anyhow!(
            "{stop}; stopped at {} and recorded it as revision {}; continue with: {continue_cmd}",
            describe_reached(&reached),
            pending.release.version()
        )),
        (outcome, Err(Unfinished::Tidy(e))) => Err(anyhow::anyhow!(
            "{}revision {} is deployed and records {}, but Helm's history is not tidy ({}); the next kubectl milvus scale tidies it",
            outcome.err().map(|s| format!("{s}; ")).unwrap_or_default(),
            pending.release.version(),
            describe_reached(&reached),
            crate::error::one_line(&e),
        )),
        (outcome, Err(Unfinished::Record(e))) => Err(anyhow::anyhow!(
            "{}could not record the result in Helm ({}); revision {} is left unfinished; re-run to repair and finish: {continue_cmd}",
            outcome.err().map(|s| format!("{s}; ")).unwrap_or_default(),
            crate::error::one_line(&e),
            pending.release.version()
        )),
    }
}

/// Nothing to change: older revisions an earlier failure left `deployed`
/// are tidied even so.
async fn nothing_to_do(cluster: &Cluster, args: &ScaleArgs, loaded: &Loaded) -> Result<String> {
    let now: Vec<String> = loaded
        .plan
        .changes
        .iter()
        .map(|c| setting(&c.component, c.target_setting()))
        .collect();
    let stale = &loaded.deployed_before[..loaded.deployed_before.len() - 1];
    record::supersede(cluster, stale).await?;
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
    Ok(format!(
        "nothing to do: {} already at {}{tidied}\n",
        args.release,
        now.join(", ")
    ))
}

/// The success report: what changed, and the release's pods now.
async fn report(cluster: &Cluster, args: &ScaleArgs, plan: &Plan, pending: &StoredRelease) -> Result<String> {
    let mut out = format!(
        "release {} scaled: {} (revision {})\n\n",
        args.release,
        describe(plan, None),
        pending.release.version()
    );
    let statuses = status::collect(cluster, Some(&args.release), false).await?;
    if let Some(s) = statuses.first() {
        let rows: Vec<_> = s.pods.iter().map(|p| p.row.clone()).collect();
        out.push_str(&render::table::pod_table(&rows, false, None));
    }
    Ok(out)
}

/// The replica changes stepped first, then each HPA's bounds.
async fn execute(
    cluster: &Cluster,
    namespace: &str,
    plan: &Plan,
    options: &StepOptions<'_>,
    progress: &Progress,
    repairing: bool,
) -> Result<(), Stop> {
    let (bounds, replicas): (Vec<ComponentChange>, Vec<ComponentChange>) =
        plan.changes.iter().cloned().partition(|c| c.hpa.is_some());
    let replicas = Plan {
        changes: replicas,
        ..plan.clone()
    };
    steps::execute(cluster, namespace, &replicas, options, progress, repairing)
        .await
        .map_err(Stop::Step)?;
    for c in &bounds {
        bounds::execute(cluster, namespace, c, options.timeout, progress)
            .await
            .map_err(Stop::from)?;
    }
    Ok(())
}

/// `queryNode=3`, or `queryNode HPA 2-10`.
fn setting(component: &str, at: Setting) -> String {
    match at {
        Setting::Replicas(n) => format!("{component}={n}"),
        Setting::Bounds(_) => format!("{component} {at}"),
    }
}

/// `queryNode 1→3, dataNode 2→1`; with `reached`, `queryNode 3→1 (at 2)`;
/// a bounds change `queryNode HPA 1-5→2-10 (at 2-8)`.
fn describe(plan: &Plan, reached: Option<&BTreeMap<String, Setting>>) -> String {
    plan.changes
        .iter()
        .map(|c| {
            let (from, to) = match &c.hpa {
                Some(h) => (format!("HPA {}", h.current), h.target.to_string()),
                None => (c.current.to_string(), c.target.to_string()),
            };
            let at = reached.and_then(|r| r.get(&c.component));
            match at {
                Some(Setting::Replicas(n)) if c.hpa.is_none() && *n != c.target => {
                    format!("{} {from}→{to} (at {n})", c.component)
                }
                Some(Setting::Bounds(b)) if c.hpa.as_ref().is_some_and(|h| h.target != *b) => {
                    format!("{} {from}→{to} (at {b})", c.component)
                }
                _ => format!("{} {from}→{to}", c.component),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_reached(reached: &BTreeMap<String, Setting>) -> String {
    reached
        .iter()
        .map(|(k, v)| setting(k, *v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where each changed component stands: the live `spec.replicas` (largest
/// over its resource-group Deployments), or its HPA's bounds; the fields we
/// wrote handed back to Helm's server-side field manager on the way. Every
/// run ends here, a repairing re-run included, so no claim of ours outlives
/// a run.
async fn reached(cluster: &Cluster, namespace: &str, plan: &Plan) -> Result<BTreeMap<String, Setting>> {
    let mut out = BTreeMap::new();
    for c in &plan.changes {
        let at = match &c.hpa {
            Some(h) => Setting::Bounds(hpa::settle(cluster, namespace, &h.name).await?),
            None => Setting::Replicas(replicas_handed_back(cluster, namespace, &c.deployments).await?),
        };
        out.insert(c.component.clone(), at);
    }
    Ok(out)
}
