//! `scale` for a `Milvus` resource. The resource is the record: each step
//! is a JSON patch of `spec.components.<c>.replicas` (or a group's), guarded
//! by `test` operations; the operator does the rest. Each step is waited for
//! on the resource (`status.observedGeneration` reaches the generation the
//! patch made) and on the Deployment the operator serves from (ready at
//! the count, removed pods gone). Nothing else is written, so a re-run
//! after any interruption reads where the last run stopped and carries on.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::sync::watch;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::cluster::hpa::{self, BoundsStop};
use crate::cluster::lease::HeldLease;
use crate::cluster::live::LiveReads;
use crate::cluster::operator as api;
use crate::cluster::rollout::{choose_leaving, pick_leaving, unmark_pods, wait_step};
use crate::core::milvus::drain::Removal;
use crate::core::operator::{Expected, MilvusResource, Write, foreign_change, json_patch, unsettled};
use crate::core::plan::Request;
use crate::core::plan::{ComponentChange, Plan};
use crate::engine::operator::{make, read_and_plan, refuse_remove, statuses};
use crate::engine::operator_guard::{self, Mode};
use crate::engine::owner;
use crate::engine::scale::drain::{Drainer, Pending, QUERY_NODE};
use crate::engine::scale::stop::Stop;
use crate::engine::scale::{bounds, operator_waits};
use crate::engine::signals::interrupted;
use crate::error::InvalidInput;
use crate::render;
use crate::render::progress::Progress;

/// What the run last knew of the replica fields it scales.
struct Watched {
    /// What each field holds, as found or last written by this run.
    expected: Vec<Expected>,
    /// What a patch in flight writes (its events may arrive before it returns).
    writing: Option<Vec<Expected>>,
    /// Views older than our last write are stale, not someone else's.
    from_generation: i64,
}

struct Run<'a> {
    cluster: &'a Cluster,
    cr: watch::Receiver<MilvusResource>,
    watched: Mutex<Watched>,
    timeout: Duration,
    progress: &'a Progress,
    /// Milvus's part: drains, the health gate (`None`: `--no-drain`).
    drainer: Option<&'a Drainer<'a>>,
}

/// The refusals of a run that need no lock (and so change nothing, a
/// Lease included); the plan, for a dry run.
pub(super) async fn check(
    cluster: &Cluster,
    args: &ScaleArgs,
    found: &MilvusResource,
    requests: &[Request],
) -> Result<Plan> {
    refuse_remove(&args.scale_in, found.name())?;
    // Never silently skip a health gate the user asked for.
    if !args.pause.is_zero() || args.check.is_some() {
        return Err(InvalidInput(format!(
            "--pause and --check are not supported for Milvus {} (Milvus Operator) yet; scale in one replica per run (e.g. queryNode=-1) and check between runs",
            found.name()
        ))
        .into());
    }
    let accept = args.scale_in.accept_short_grace;
    let (live, mut plan) = read_and_plan(cluster, found, requests, args.force, accept).await?;
    // Refused before writing what the operator would leave unapplied.
    let warnings = operator_guard::check(cluster, found, &live, &plan, accept, Mode::Refuse).await?;
    plan.warnings.extend(warnings);
    Ok(plan)
}

/// What a dry run says of a GitOps tool that keeps the resource in Git.
pub(super) async fn owned(cluster: &Cluster, cr: &MilvusResource, plan: &Plan) -> Option<String> {
    let owner = owner::milvus_owner(cluster, &mut owner::Apis::default(), cr).await?;
    Some(owner::plan_warning(&owner, plan))
}

/// Reads the resource and what runs again under the Lease, then runs: a run
/// that finished (or stopped) while this one waited for the Lease has moved
/// the resource on, and its values are where this run starts, not "another
/// writer".
pub(super) async fn holding(
    cluster: &Cluster,
    args: &ScaleArgs,
    found: &MilvusResource,
    requests: &[Request],
    lease: &HeldLease,
    progress: &Progress,
) -> Result<String> {
    let cr = api::get(cluster, found.namespace(), found.name())
        .await
        .context("reading the Milvus resource again under the lock")?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Milvus {} was deleted from namespace {:?} while this run waited for its lock; nothing was changed",
                found.name(),
                found.namespace()
            )
        })?;
    let accept = args.scale_in.accept_short_grace;
    let mut apis = owner::Apis::default();
    let (planned, owner) = tokio::join!(
        read_and_plan(cluster, &cr, requests, args.force, accept),
        owner::milvus_owner(cluster, &mut apis, &cr)
    );
    let (live, plan) = planned?;
    // Read again under the lock: refused before writing (operator_guard).
    for warning in operator_guard::check(cluster, &cr, &live, &plan, accept, Mode::Refuse).await? {
        progress.line(&format!("Warning: {warning}"));
    }
    // GitOps reverts what it did not write: refused unless forced. Bounds
    // changes write the user's HPA, not the resource.
    let keys = owner::changed(&plan);
    if !keys.is_empty()
        && let Some(warning) = owner::guard(owner.as_ref(), cr.name(), &keys, args.force_gitops)?
    {
        progress.line(&format!("Warning: {warning}"));
    }
    // Under imageUpdateMode force the leaving pod is killed, not given its grace.
    let killed: Vec<String> = plan
        .grace
        .iter()
        .filter_map(|g| crate::core::operator_checks::killed_account(&cr, g))
        .collect();
    if killed.is_empty() {
        super::tell_grace(progress, &plan, crate::core::operator::grace_shortfall);
    }
    for line in &killed {
        progress.line(line);
    }
    if plan.changes.iter().any(|c| c.hpa.is_some()) {
        return hpa_bounds(cluster, args, &cr, &plan, lease, progress).await;
    }
    // Steps a killed run wrote but never saw done are waited for first.
    let waiting = unsettled(&live.operator, &live.pods, &plan.changes);
    let loaded = Loaded { cr, plan, waiting };
    run_holding(cluster, args, loaded, requests, lease, progress).await
}

/// What a run starts from, read under the Lease.
struct Loaded {
    cr: MilvusResource,
    plan: Plan,
    /// Deployments not yet settled at the count the resource asks.
    waiting: Vec<(String, u32)>,
}

async fn run_holding(
    cluster: &Cluster,
    args: &ScaleArgs,
    Loaded { cr, plan, waiting }: Loaded,
    requests: &[Request],
    lease: &HeldLease,
    progress: &Progress,
) -> Result<String> {
    let continue_cmd = continue_command(&cr, args, &plan);
    let drainer = if args.scale_in.no_drain {
        None
    } else {
        let rules = cluster
            .controller_rules()
            .await
            .context("reading the server's version")?;
        let d = Drainer::new(
            cluster,
            cr.namespace(),
            cr.name(),
            lease.identity(),
            rules,
            args.scale_in.drain_timeout,
            progress,
        );
        // What a killed run left: its deletion-cost mark, its node suspended.
        unmark_pods(cluster, cr.namespace(), cr.name())
            .await
            .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
        d.repair()
            .await
            .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
        Some(d)
    };
    let (tx, rx) = watch::channel(cr.clone());
    let follow = async {
        let mut events = std::pin::pin!(api::watch(cluster, cr.namespace(), cr.name()));
        while let Some(event) = events.next().await {
            match event {
                Ok(seen) => {
                    tx.send_replace(seen);
                }
                // Retrying cannot mend a refusal; other errors are retried.
                Err(api::WatchError::Forbidden(message)) => {
                    return Stop::Step(format!(
                        "forbidden: you cannot watch {} in namespace {:?} ({message}); ask for the Role in the README's RBAC section",
                        crate::core::operator::RESOURCE,
                        cr.namespace()
                    ));
                }
                Err(_) => {}
            }
        }
        Stop::Step("the watch on the Milvus resource ended".to_string())
    };
    let run = Run {
        cluster,
        cr: rx,
        watched: Mutex::new(Watched {
            expected: plan.changes.iter().map(|c| Expected::read(&cr, c)).collect(),
            writing: None,
            from_generation: cr.generation(),
        }),
        timeout: args.timeout,
        progress,
        drainer: drainer.as_ref(),
    };
    let outcome = tokio::select! {
        r = execute(&run, &cr, (plan, waiting), requests, args) => r,
        () = interrupted() => Err(Stop::Signal),
        stop = guard(&run) => Err(stop),
        stop = follow => Err(stop),
        lost = lease.keep(cluster) => Err(Stop::LockLost(lost)),
    };
    // A drain cut short by the stop: its node resumed, marks off.
    if let Some(d) = &drainer {
        let (_, _) = tokio::join!(unmark_pods(cluster, cr.namespace(), cr.name()), d.repair());
    }
    match outcome {
        Ok(done) => Ok(done),
        // Someone else's value stands: no "continue with" that would undo it.
        Err(Stop::OtherWriter(why)) => Err(anyhow::anyhow!(
            "{why}; this run wrote nothing over it; find out who else scales Milvus {} before scaling it again",
            cr.name()
        )),
        Err(why) => {
            let at = reached(&run);
            Err(anyhow::anyhow!(
                "{why}; stopped with Milvus {} at {at} (the resource records it, nothing else to repair); continue with: {continue_cmd}",
                cr.name()
            ))
        }
    }
}

/// The command that carries a stopped run on, with absolute targets (a
/// relative `queryNode=-2` re-run after one step would go one too far).
/// Deployment groups a relative request took to different targets cannot
/// be named by one `COMPONENT=N`: there the command as typed is repeated.
fn continue_command(cr: &MilvusResource, args: &ScaleArgs, plan: &Plan) -> String {
    let uniform = plan.changes.iter().all(|c| {
        plan.changes
            .iter()
            .filter(|o| o.component == c.component)
            .all(|o| o.target == c.target)
    });
    if uniform {
        return super::continue_command(cr.name(), cr.namespace(), plan);
    }
    let typed = format!(
        "kubectl milvus scale {} {} -n {}",
        cr.name(),
        args.changes.join(" "),
        cr.namespace()
    );
    match &args.replicas {
        Some(n) => format!("{typed} --replicas {n}"),
        None => typed,
    }
}

/// A bounds change of the user's HPA: the resource stays at `replicas: -1`
/// and is not written; the HPA is the record (nothing else to repair: a
/// re-run reads where it stopped).
async fn hpa_bounds(
    cluster: &Cluster,
    args: &ScaleArgs,
    cr: &MilvusResource,
    plan: &Plan,
    lease: &HeldLease,
    progress: &Progress,
) -> Result<String> {
    let describe = |c: &ComponentChange, to: &dyn std::fmt::Display| {
        let hpa = c.hpa.as_ref().map(|h| (h.name.as_str(), h.current));
        hpa.map_or_else(String::new, |(n, from)| {
            format!("{} HorizontalPodAutoscaler {n} {from}→{to}", name(c))
        })
    };
    if plan.nothing_to_do() {
        let now: Vec<String> = plan
            .changes
            .iter()
            .filter_map(|c| c.hpa.as_ref().map(|h| format!("{} HPA {}", name(c), h.target)))
            .collect();
        return Ok(format!(
            "nothing to do: Milvus {} already at {}\n",
            cr.name(),
            now.join(", ")
        ));
    }
    let namespace = cr.namespace();
    let work = async {
        for c in &plan.changes {
            bounds::execute(cluster, namespace, c, args.timeout, progress).await?;
        }
        Ok::<(), BoundsStop>(())
    };
    let outcome = tokio::select! {
        r = work => r.map_err(Stop::from),
        () = interrupted() => Err(Stop::Signal),
        lost = lease.keep(cluster) => Err(Stop::LockLost(lost)),
    };
    // Wherever it stopped, the bounds we wrote go back to the HPA's applier.
    let mut reached = Vec::new();
    for c in &plan.changes {
        if let Some(h) = &c.hpa {
            let at = hpa::settle(cluster, namespace, &h.name).await?;
            reached.push((c, at));
        }
    }
    if let Err(Stop::OtherHpaWriter(why)) = &outcome {
        // Their bounds stand: no "continue with" that would undo them.
        return Err(anyhow::anyhow!(
            "{why}; find out who else changes it before scaling Milvus {} again",
            cr.name()
        ));
    }
    if let Err(why) = outcome {
        let at: Vec<String> = reached.iter().map(|(c, at)| describe(c, at)).collect();
        let continue_cmd: Vec<String> = plan
            .changes
            .iter()
            .filter_map(|c| {
                let h = c.hpa.as_ref()?;
                Some(format!(
                    "kubectl milvus scale {} {} --min {} --max {} -n {namespace}",
                    cr.name(),
                    c.component,
                    h.target.min,
                    h.target.max
                ))
            })
            .collect();
        return Err(anyhow::anyhow!(
            "{why}; stopped at {} (the HPA records it, nothing else to repair); continue with: {}",
            at.join(", "),
            continue_cmd.join(" && ")
        ));
    }
    let done: Vec<String> = reached.iter().map(|(c, at)| describe(c, at)).collect();
    let pods = statuses(
        cluster,
        &LiveReads::new(cluster),
        Some(namespace),
        Some(cr.name()),
    )
    .await?;
    let rows: Vec<_> = pods
        .items
        .first()
        .map(|s| s.pods.iter().map(|p| p.row.clone()).collect())
        .unwrap_or_default();
    Ok(format!("Milvus {} scaled: {}\n\n", cr.name(), done.join(", "))
        + &render::table::pod_table(&rows, false, None))
}

/// Stops the run the moment a replica field it scales takes a value it did
/// not write.
async fn guard(run: &Run<'_>) -> Stop {
    let mut cr = run.cr.clone();
    loop {
        if cr.changed().await.is_err() {
            return Stop::Step("the watch on the Milvus resource ended".to_string());
        }
        let seen = cr.borrow_and_update().clone();
        let Ok(w) = run.watched.lock() else {
            return Stop::Step("internal error: the run's state is poisoned".to_string());
        };
        if seen.generation() < w.from_generation {
            continue;
        }
        if let Some(change) = foreign_change(&seen, &w.expected)
            && w.writing
                .as_ref()
                .is_none_or(|ours| foreign_change(&seen, ours).is_some())
        {
            return Stop::OtherWriter(change);
        }
    }
}

/// `queryNode=2, dataNode/g1=3`: what the resource holds for the scaled fields.
fn reached(run: &Run<'_>) -> String {
    let Ok(w) = run.watched.lock() else {
        return "an unknown point".to_string();
    };
    w.expected
        .iter()
        .map(|e| {
            let name = match &e.group {
                Some(g) => format!("{}/{g}", e.spec_key),
                None => e.spec_key.clone(),
            };
            let value = e
                .value
                .as_ref()
                .map_or_else(|| "unset".to_string(), ToString::to_string);
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the plan; `waiting` are the Deployments to see settled first.
async fn execute(
    run: &Run<'_>,
    first: &MilvusResource,
    (plan, waiting): (Plan, Vec<(String, u32)>),
    requests: &[Request],
    args: &ScaleArgs,
) -> Result<String, Stop> {
    // Carry on: the operator must have applied what the resource asks (a
    // killed run may have written a step it never saw done) before the plan
    // is made from what runs.
    let (plan, waiting) = if first.observed(first.generation()) {
        (plan, waiting)
    } else {
        wait_observed(run, first.generation()).await?;
        let live = crate::cluster::live::fetch_live(run.cluster, first.namespace())
            .await
            .map_err(|e| Stop::Step(crate::error::one_line(&e)))?;
        let now = run.cr.borrow().clone();
        let plan = make(
            &now,
            &live,
            requests,
            args.force,
            args.scale_in.accept_short_grace,
        )
        .map_err(|e| Stop::Step(crate::error::one_line(&e)))?;
        let waiting = unsettled(&live.operator, &live.pods, &plan.changes);
        (plan, waiting)
    };
    for (d, n) in &waiting {
        wait_step(run.cluster, first.namespace(), d, *n, run.timeout, run.progress)
            .await
            .map_err(Stop::Step)?;
    }
    if plan.nothing_to_do() {
        return Ok(format!(
            "nothing to do: Milvus {} already at {}\n",
            first.name(),
            targets(&plan)
        ));
    }

    // Out (and counts only the resource lacks) at once, in one patch.
    let outs: Vec<&ComponentChange> = plan
        .changes
        .iter()
        .filter(|c| c.target > c.current || (c.steps.is_empty() && !c.is_noop()))
        .collect();
    if !outs.is_empty() {
        for c in &outs {
            run.progress
                .line(&format!("{}: {} → {}", name(c), c.current, c.target));
        }
        let writes: Vec<Write> = outs.iter().map(|c| Write::of(c, c.target)).collect();
        step(run, first, &writes, &outs).await?;
    }
    // In, one replica at a time.
    for c in plan.changes.iter().filter(|c| c.target < c.current) {
        let mut at = c.current;
        for n in c.steps.iter() {
            run.progress.line(&format!("{}: {at} → {n}", name(c)));
            // The resource's own word before the step (operator_waits),
            // then the leaving query node drained, the step, and the
            // resource's word after it.
            operator_waits::healthy(&run.cr, run.timeout, run.progress).await?;
            let drained = drain_step(run, first, c).await?;
            let stepped = step(run, first, &[Write::of(c, n)], &[c]).await;
            let stepped = match stepped {
                Ok(()) => operator_waits::no_terminating_pods(&run.cr, run.timeout, run.progress).await,
                Err(e) => Err(e),
            };
            if let Some(dr) = run.drainer {
                let failed = stepped.as_ref().err().map(ToString::to_string);
                dr.after(drained, failed.as_deref()).await;
            }
            stepped?;
            if let Some(dr) = run.drainer {
                dr.gate(run.timeout).await.map_err(Stop::Step)?;
            }
            at = n;
        }
    }

    let done = format!(
        "Milvus {} scaled: {}\n\n",
        first.name(),
        plan.changes
            .iter()
            .map(|c| format!("{} {}→{}", name(c), c.current, c.target))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let pods = statuses(
        run.cluster,
        &LiveReads::new(run.cluster),
        Some(first.namespace()),
        Some(first.name()),
    )
    .await
    .map_err(|e| Stop::Step(crate::error::one_line(&e)))?;
    let rows: Vec<_> = pods
        .items
        .first()
        .map(|s| s.pods.iter().map(|p| p.row.clone()).collect())
        .unwrap_or_default();
    Ok(done + &render::table::pod_table(&rows, false, None))
}

fn name(c: &ComponentChange) -> String {
    match &c.group {
        Some(g) => format!("{}/{g}", c.component),
        None => c.component.clone(),
    }
}

fn targets(plan: &Plan) -> String {
    plan.changes
        .iter()
        .map(|c| format!("{}={}", name(c), c.target))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes one step and waits until the operator applied it and every
/// Deployment it touches is ready at its count.
/// Before a query-node step: the pod that will leave (each Deployment's),
/// drained, and made the one that leaves (marked, or deleted on servers
/// before v1.22; `Removal`).
async fn drain_step(
    run: &Run<'_>,
    first: &MilvusResource,
    c: &ComponentChange,
) -> Result<Vec<Pending>, Stop> {
    let Some(dr) = run.drainer.filter(|_| c.component == QUERY_NODE) else {
        return Ok(Vec::new());
    };
    let ns = first.namespace();
    let mut drained = Vec::new();
    for d in &c.deployments {
        let victim = if dr.removal == Removal::DeletionCost {
            pick_leaving(run.cluster, ns, d, true, &[])
                .await
                .map(|l| l.chosen)
        } else {
            choose_leaving(run.cluster, ns, d, &[]).await
        }
        .map_err(Stop::Step)?;
        let Some(victim) = victim else { continue };
        match dr.before(&victim).await {
            Ok(Some(p)) => drained.push(p),
            Ok(None) => {}
            Err(stopped) => {
                dr.after(drained, Some(&stopped)).await;
                return Err(Stop::Step(stopped));
            }
        }
    }
    for p in &drained {
        if let Err(e) = dr.remove(p).await {
            dr.after(drained, Some(&e)).await;
            return Err(Stop::Step(e));
        }
    }
    Ok(drained)
}

async fn step(
    run: &Run<'_>,
    first: &MilvusResource,
    writes: &[Write],
    changes: &[&ComponentChange],
) -> Result<(), Stop> {
    let generation = write(run, first, writes).await?;
    wait_observed(run, generation).await?;
    // Observed is not applied: a paused operator observes and writes nothing.
    let seen = run.cr.borrow().clone();
    operator_waits::applied(run.cluster, &seen, writes).await?;
    for (c, w) in changes.iter().zip(writes) {
        for d in &c.deployments {
            wait_step(
                run.cluster,
                first.namespace(),
                d,
                w.replicas,
                run.timeout,
                run.progress,
            )
            .await
            .map_err(Stop::Step)?;
        }
    }
    Ok(())
}

/// Patches the resource from a fresh read; a failed `test` (HTTP 422: a
/// field moved between the read and the patch) is retried from a fresh
/// read, which names another writer if it was one. Returns the generation
/// the patch made.
async fn write(run: &Run<'_>, first: &MilvusResource, writes: &[Write]) -> Result<i64, Stop> {
    let stop = |e: ApiError| Stop::Step(e.to_string());
    for _ in 0..5 {
        let Some(cr) = api::get(run.cluster, first.namespace(), first.name())
            .await
            .map_err(stop)?
        else {
            return Err(Stop::Step(format!("Milvus {} was deleted", first.name())));
        };
        let ops = {
            let mut w = run
                .watched
                .lock()
                .map_err(|_| Stop::Step("internal error: the run's state is poisoned".to_string()))?;
            if let Some(change) = foreign_change(&cr, &w.expected) {
                return Err(Stop::OtherWriter(change));
            }
            w.writing = Some(
                w.expected
                    .iter()
                    .map(|e| {
                        let new = writes
                            .iter()
                            .find(|x| x.spec_key == e.spec_key && x.group == e.group)
                            .map_or_else(|| e.value.clone(), |x| Some(serde_json::json!(x.replicas)));
                        Expected {
                            value: new,
                            ..e.clone()
                        }
                    })
                    .collect(),
            );
            json_patch(&cr, writes).map_err(Stop::Step)?
        };
        match api::patch(run.cluster, &cr, ops).await {
            Ok(patched) => {
                let mut w = run
                    .watched
                    .lock()
                    .map_err(|_| Stop::Step("internal error: the run's state is poisoned".to_string()))?;
                if let Some(written) = w.writing.take() {
                    w.expected = written;
                }
                w.from_generation = patched.generation();
                return Ok(patched.generation());
            }
            Err(e) => {
                if let Ok(mut w) = run.watched.lock() {
                    w.writing = None;
                }
                if !matches!(e, ApiError::Server { code: 422, .. } | ApiError::Conflict { .. }) {
                    return Err(stop(e));
                }
            }
        }
    }
    Err(Stop::Step(format!(
        "Milvus {} kept changing under this run's patches",
        first.name()
    )))
}

/// Waits until the operator reports it reconciled `generation`.
async fn wait_observed(run: &Run<'_>, generation: i64) -> Result<(), Stop> {
    let mut cr = run.cr.clone();
    let wait = async {
        loop {
            if cr.borrow_and_update().observed(generation) {
                return Ok(());
            }
            if cr.changed().await.is_err() {
                return Err(Stop::Step("the watch on the Milvus resource ended".to_string()));
            }
        }
    };
    let within = if run.timeout.is_zero() {
        Ok(wait.await)
    } else {
        tokio::time::timeout(run.timeout, wait).await
    };
    within.unwrap_or_else(|_| {
        let now = run.cr.borrow().clone();
        Err(Stop::Step(format!(
            "the Milvus Operator did not observe generation {generation} of Milvus {} within {:?} (status.observedGeneration {}); is the operator running?",
            now.name(),
            run.timeout,
            now.observed_generation()
                .map_or_else(|| "unset".to_string(), |g| g.to_string())
        )))
    })
}
