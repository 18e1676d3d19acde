//! The scale engine, one for every shape: **lease** (one run at a time per
//! name) → **read** under the lease and plan → **ownership guard** (GitOps)
//! → **open** the run's record → **steps** (each watched; Ctrl-C, a lost
//! lease and other writers stop the run) → **finish** the record → one
//! outcome, with a typed [`stop::Stop`].
//!
//! What differs between shapes is how a run is recorded: a Helm release
//! opens revision N+1 and finishes it like `helm upgrade` ([`helm`]); a
//! `Milvus` resource is its own record, patched step by step ([`operator`]).
//! An Argo CD-rendered instance has no record to keep in step and is
//! refused. Stepping Deployments ([`steps`]) and HPA bounds ([`bounds`]) is
//! shared. A per-step hook (e.g. draining a query node before its pod
//! leaves) belongs in [`steps::execute`], before the replica count of a
//! scale-in step is lowered; both shapes step through it.

use anyhow::Result;

use crate::cli::{PlanOutput, ScaleArgs};
use crate::cluster::Cluster;
use crate::cluster::lease::{self, HeldLease, NotAcquired};
use crate::core::lock;
use crate::core::plan::Plan;
use crate::core::scale_in::GraceCheck;
use crate::engine::resolve::Instance;
use crate::engine::{owner, plan, rendered};
use crate::error::Refused;
use crate::render;
use crate::render::progress::Progress;

mod bounds;
pub mod drain;
mod helm;
mod operator;
mod operator_waits;
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
    // One run at a time per name (the same Lease name for both shapes: a
    // Helm release and a resource of one name would share Deployments).
    let progress = Progress::new();
    let lease = acquire(cluster, args, &progress).await?;
    let result = match &instance {
        Instance::Milvus(cr) => operator::holding(cluster, args, cr, &requests, &lease, &progress).await,
        _ => helm::holding(cluster, args, &requests, &lease, &progress).await,
    };
    progress.finish();
    // The Lease goes whatever happened; a failure to delete it only makes
    // the next run wait out its duration.
    let _ = lease.release(cluster).await;
    result
}

/// Says, before the first step, how long each component scaled in has to
/// stop against Milvus's graceful stop, with the shape's warning where it
/// falls short.
fn tell_grace(progress: &Progress, plan: &Plan, warning: impl Fn(&GraceCheck) -> String) {
    for g in &plan.grace {
        progress.line(&format!(
            "{}: pods get {}s to stop, Milvus's graceful stop may take {}s ({})",
            g.component, g.pod_grace_seconds, g.milvus_stop_seconds, g.milvus_stop_source
        ));
        if g.short() {
            progress.line(&format!("Warning: {}", warning(g)));
        }
    }
}

/// Takes the release's (or Milvus resource's) Lease, or says who holds it.
async fn acquire(cluster: &Cluster, args: &ScaleArgs, progress: &Progress) -> Result<HeldLease> {
    let me = this_run();
    let namespace = cluster.namespace();
    let waiting =
        |holder: &str, within: std::time::Duration| waiting_line(progress, &args.release, holder, within);
    lease::acquire(cluster, namespace, &args.release, &me, waiting)
        .await
        .map_err(|e| match e {
            NotAcquired::Busy { holder } => busy(&args.release, namespace, lock::readable(&holder)),
            NotAcquired::Api(e) => anyhow::Error::new(e).context("taking the release's lock (a Lease)"),
        })
}

/// Said once while a silent holder's Lease is watched out.
fn waiting_line(progress: &Progress, release: &str, holder: &str, within: std::time::Duration) {
    progress.line(&format!(
        "{release} is held by kubectl milvus scale on {holder}, which has not renewed its lock for a few seconds; waiting up to {}s in all to see whether that run is still alive",
        within.as_secs()
    ));
}

/// The refusal while another run holds the release's Lease.
fn busy(release: &str, namespace: &str, holder: &str) -> anyhow::Error {
    Refused(format!(
        "{release} is being scaled right now by kubectl milvus scale on {holder}; wait for it to finish (`kubectl milvus status {release} -n {namespace}` shows it)"
    ))
    .into()
}

/// This run's identity on the Lease: `host/pid/random`.
fn this_run() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_string());
    // A per-process random value: std seeds every RandomState randomly.
    let nonce = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    lock::identity(&host, std::process::id(), nonce)
}

/// The command that carries a stopped run on: `COMPONENT=N …` for replica
/// changes, `COMPONENT --min N --max M` for each bounds change.
fn continue_command(release: &str, namespace: &str, plan: &Plan) -> String {
    let mut counts: Vec<String> = Vec::new();
    // Deployment groups of one component share its `COMPONENT=N`.
    for c in plan.changes.iter().filter(|c| c.hpa.is_none()) {
        let count = format!("{}={}", c.component, c.target);
        if !counts.contains(&count) {
            counts.push(count);
        }
    }
    let mut commands: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| {
            let h = c.hpa.as_ref()?;
            Some(format!(
                "kubectl milvus scale {release} {} --min {} --max {} -n {namespace}",
                c.component, h.target.min, h.target.max
            ))
        })
        .collect();
    if !counts.is_empty() {
        commands.insert(
            0,
            format!(
                "kubectl milvus scale {release} {} -n {namespace}",
                counts.join(" ")
            ),
        );
    }
    commands.join(" && ")
}
