//! The scale engine, one for every shape: **lease** (one run at a time per
//! name) → **read** under the lease and plan → **ownership guard** (GitOps)
//! → **repair** what a killed run left (drain marks, a suspended node) →
//! **open** the run's record → **steps** (each watched; Ctrl-C, a lost
//! lease and other writers stop the run) → **finish** the record → one
//! outcome, with a typed [`stop::Stop`]. The run is written once, here
//! ([`holding`]).
//!
//! What differs between shapes is how a run is recorded, the few methods of
//! [`record::Record`]: a Helm release opens revision N+1 and finishes it
//! like `helm upgrade` ([`helm`], [`helm_record`]); a `Milvus` resource is
//! its own record, patched step by step ([`operator`]). An Argo
//! CD-rendered instance has no record to keep in step and is refused.
//! Stepping Deployments ([`steps`]) and HPA bounds ([`bounds`]) is shared. A
//! per-step hook (e.g. draining a query node before its pod leaves) belongs
//! in [`steps::execute`], before the replica count of a scale-in step is
//! lowered; both shapes step through it.

use anyhow::Result;

use crate::cli::{PlanOutput, ScaleArgs};
use crate::cluster::Cluster;
use crate::cluster::lease::HeldLease;
use crate::cluster::rollout::unmark_pods;
use crate::core::plan::Request;
use crate::core::pods::PodRow;
use crate::engine::resolve::Instance;
use crate::engine::signals::{self, interrupted};
use crate::engine::{owner, plan, rendered};
use crate::render;
use crate::render::progress::Progress;

use drain::Drainer;
use lock::acquire;
use outcome::{Done, Finished};
use record::Record;
use stop::Stop;

mod bounds;
pub mod drain;
mod helm;
mod helm_record;
mod lock;
mod operator;
mod operator_waits;
mod outcome;
mod record;
mod steps;
pub mod stop;

/// Runs `scale` for a resolved instance.
pub async fn run(cluster: &Cluster, args: &ScaleArgs, instance: Instance) -> Result<String> {
    let requests = plan::parse_requests(&args.changes, args.replicas.as_deref(), &args.bounds)?;
    // Refusals and dry runs need no lock (and so change nothing, a Lease included).
    match &instance {
        Instance::Rendered(_) | Instance::Helm(_) => {}
        Instance::Milvus(cr) => {
            let plan = operator::check(cluster, args, cr, &requests).await?;
            if args.dry_run {
                let owned = operator::owned(cluster, cr, &plan).await;
                return render::plan::output(PlanOutput::Table, plan, owned);
            }
        }
    }
    let instance = match instance {
        Instance::Rendered(found) => {
            return Err(rendered::refuse(cluster, *found, &owner::requested(&requests)).await);
        }
        Instance::Helm(_) if args.dry_run => return helm::dry_run(cluster, args, &requests).await,
        other => other,
    };
    // From here a signal ends the run with its one line, however early:
    // while the Lease is waited for, nothing has been changed yet.
    signals::install();
    // One run at a time per name (the same Lease name for both shapes: a
    // Helm release and a resource of one name would share Deployments).
    let progress = Progress::new();
    let lease = tokio::select! {
        lease = acquire(cluster, args, &progress) => lease,
        () = interrupted() => Err(not_started(&args.release, "while waiting for its lock")),
    };
    let lease = match lease {
        Ok(lease) => lease,
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    let result = holding(cluster, args, &instance, &requests, &lease, &progress).await;
    progress.finish();
    // The Lease goes whatever happened; a failure to delete it only makes
    // the next run wait out its duration.
    let _ = lease.release(cluster).await;
    result
}

/// The run, holding the Lease: read under the lease → ownership guard →
/// repair leftovers → open the record → steps under the one watch → finish
/// the record → one outcome.
async fn holding(
    cluster: &Cluster,
    args: &ScaleArgs,
    instance: &Instance,
    requests: &[Request],
    lease: &HeldLease,
    progress: &Progress,
) -> Result<String> {
    let mut record = Record::read(cluster, args, instance, requests, progress).await?;
    let name = record.plan().release.clone();
    let namespace = record.plan().namespace.clone();
    // GitOps reverts what it did not write: refused unless forced. (Bounds
    // changes of a `Milvus` resource write the user's HPA, not the
    // resource: no key of the owner's.)
    let keys = owner::changed(record.plan());
    if !keys.is_empty()
        && let Some(warning) = owner::guard(record.owner(), &name, &keys, args.force_gitops)?
    {
        progress.line(&format!("Warning: {warning}"));
    }
    // A killed run (or a clean-up that failed) may have left a pod marked,
    // or a query node suspended in Milvus: undone first, even when there
    // is nothing else to do.
    unmark_pods(cluster, &namespace, &name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    let drainer = (!args.scale_in.no_drain).then(|| {
        Drainer::new(
            cluster,
            &namespace,
            &name,
            lease.identity(),
            record.rules(),
            args.scale_in.drain_timeout,
            progress,
        )
    });
    if let Some(d) = &drainer {
        d.repair()
            .await
            .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    }
    if let Some(said) = record.nothing_to_do(cluster).await? {
        return Ok(said);
    }
    record.tell(progress);
    // A signal that came while the run was being read: nothing opened yet.
    if signals::seen() {
        return Err(not_started(&name, "before its first step"));
    }
    record.open(cluster, lease.identity(), progress).await?;

    let outcome = tokio::select! {
        r = record.execute(cluster, args, drainer.as_ref(), progress) => r,
        () = interrupted() => Err(Stop::Signal),
        lost = lease.keep(cluster) => Err(Stop::LockLost(lost)),
        stop = record.other_writers(cluster) => Err(stop),
    };

    // No survivor keeps a mark, whatever stopped the run (a failure here
    // is repeated by the next run's start); meanwhile read what was reached
    // and hand the fields the run wrote back to their owner, resume a node
    // a stopped drain left, and read the closing pod table: the pods are
    // where the steps left them, and neither the marks nor the hand-back
    // change a column of it (other objects: no ordering needed).
    let table = matches!(outcome, Ok(Done::Scaled)).then(|| record.table());
    let (unmarked, reached, (), rows) = tokio::join!(
        unmark_pods(cluster, &namespace, &name),
        record.settle(cluster),
        async {
            if let Some(d) = &drainer {
                let _ = d.repair().await;
            }
        },
        async {
            match table {
                Some(table) => Some(table.rows(cluster).await),
                None => None,
            }
        }
    );
    let reached = match reached {
        Ok(at) => at,
        // Their write is recorded as theirs even so (ours marked failed).
        Err(_) if matches!(outcome, Err(Stop::OtherWriter(_))) => "an unknown point".to_string(),
        Err(e) => {
            return Err(anyhow::anyhow!(
                "{}could not read back where the run stopped ({}); {}; re-run to repair and finish: {}",
                outcome.err().map(|s| format!("{s}; ")).unwrap_or_default(),
                crate::error::one_line(&e),
                record.unfinished(),
                record.continue_command(args)
            ));
        }
    };
    let finished = record.finish(cluster, lease.identity(), &outcome, args).await;
    let rows = rows.unwrap_or_else(|| Ok(Vec::new()));
    ending(&record, args, (outcome, finished), &reached, unmarked, rows)
}

/// The one outcome of a run: how its steps and its record ended, as the
/// success report or one line.
fn ending(
    record: &Record,
    args: &ScaleArgs,
    ended: (Result<Done, Stop>, Finished),
    reached: &str,
    unmarked: Result<usize, String>,
    rows: Result<Vec<PodRow>>,
) -> Result<String> {
    let name = &record.plan().release;
    let continue_cmd = record.continue_command(args);
    let recorded = record.recorded_where();
    match ended {
        (_, Finished::Theirs { what, ours }) => Err(anyhow::anyhow!(
            "{what}; stopped at {reached}; their change stands, nothing of it was written over{}; {}",
            ours.map(|o| format!(", and {o}")).unwrap_or_default(),
            record.who_else()
        )),
        (Ok(Done::Nothing(said)), Finished::Recorded) => Ok(said),
        (Ok(Done::Scaled), Finished::Recorded) => match unmarked {
            Ok(_) => Ok(record.scaled() + &render::table::pod_table(&rows?, false, None)),
            Err(e) => Err(anyhow::anyhow!(
                "{name} scaled and recorded {recorded}, but a pod still carries kubectl-milvus's deletion-cost mark ({e}); re-run the same command to take it off"
            )),
        },
        // Someone else's value stands: no "continue with" that would undo it.
        (Err(Stop::OtherWriter(what)), Finished::Recorded) => Err(anyhow::anyhow!(
            "{what}; stopped at {reached}; their change stands, nothing of it was written over; {}",
            record.who_else()
        )),
        (Err(Stop::OtherHpaWriter(why)), Finished::Recorded) => Err(anyhow::anyhow!(
            "{why}; stopped at {reached} and recorded it {recorded}; find out who else changes it before scaling {name} again"
        )),
        (Err(stop), Finished::Recorded) => Err(anyhow::anyhow!(
            "{stop}; stopped at {reached} and recorded it {recorded}; continue with: {continue_cmd}"
        )),
        (Err(stop), Finished::LeftPending) => Err(anyhow::anyhow!(
            "{stop}; stopped at {reached}; {}; continue with: {continue_cmd}",
            record.unfinished()
        )),
        (outcome, Finished::Untidy(e)) => Err(anyhow::anyhow!(
            "{}the run is recorded {recorded} ({reached}), but Helm's history is not tidy ({}); the next kubectl milvus scale tidies it",
            outcome.err().map(|s| format!("{s}; ")).unwrap_or_default(),
            crate::error::one_line(&e),
        )),
        (outcome, Finished::Unrecorded(e)) => Err(anyhow::anyhow!(
            "{}could not record the result ({}); {}; re-run to repair and finish: {continue_cmd}",
            outcome.err().map(|s| format!("{s}; ")).unwrap_or_default(),
            crate::error::one_line(&e),
            record.unfinished()
        )),
        // Left pending only when the lock was lost (a stop).
        (Ok(_), Finished::LeftPending) => Err(anyhow::anyhow!(
            "the run's lock was lost; {}; re-run to repair and finish: {continue_cmd}",
            record.unfinished()
        )),
    }
}

/// A run ended by a signal before it changed anything.
fn not_started(name: &str, when: &str) -> anyhow::Error {
    anyhow::anyhow!("{} {when}; nothing was changed for {name}", Stop::Signal)
}
