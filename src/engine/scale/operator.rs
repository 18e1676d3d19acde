//! `scale` for a `Milvus` resource ([`MilvusRun`], asked by the one run in
//! `super::holding`). The resource is the record: each step is a JSON patch
//! of `spec.components.<c>.replicas` (or a group's), guarded by `test`
//! operations; the operator does the rest. Each step is waited for on the
//! resource (`status.observedGeneration` reaches the generation the patch
//! made) and on the Deployment the operator serves from (ready at the
//! count, removed pods gone). Nothing else is written, so a re-run after
//! any interruption reads where the last run stopped and carries on.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::sync::watch;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::cluster::hpa;
use crate::cluster::operator as api;
use crate::cluster::rollout::{choose_leaving, pick_leaving, wait_step};
use crate::core::bounds::Bounds;
use crate::core::gitops::Owner;
use crate::core::milvus::drain::Removal;
use crate::core::operator::{Expected, MilvusResource, Write, foreign_change, json_patch, unsettled};
use crate::core::plan::Request;
use crate::core::plan::{ComponentChange, Plan};
use crate::core::scale_in::ControllerRules;
use crate::engine::operator::{make, read_and_plan, refuse_remove};
use crate::engine::operator_guard::{self, Mode};
use crate::engine::owner;
use crate::engine::scale::drain::{Drainer, Pending, QUERY_NODE};
use crate::engine::scale::outcome::{Done, continue_command, tell_grace};
use crate::engine::scale::stop::Stop;
use crate::engine::scale::{bounds, operator_waits};
use crate::error::InvalidInput;
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

/// The resource as the run watches it, from the moment the record opens.
struct CrWatch {
    tx: watch::Sender<MilvusResource>,
    rx: watch::Receiver<MilvusResource>,
    watched: Mutex<Watched>,
}

/// What one execution of the steps works with.
struct Run<'a> {
    cluster: &'a Cluster,
    cr: watch::Receiver<MilvusResource>,
    watched: &'a Mutex<Watched>,
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

/// The run of a `Milvus` resource: the resource is the record, each step a
/// guarded patch of it. A bounds change of the user's HPA leaves the
/// resource at `replicas: -1` and unwritten: the HPA is the record.
pub(super) struct MilvusRun {
    pub cr: MilvusResource,
    pub plan: Plan,
    pub owner: Option<Owner>,
    pub rules: ControllerRules,
    requests: Vec<Request>,
    /// Deployments not yet settled at the count the resource asks (a
    /// killed run's last step).
    waiting: Vec<(String, u32)>,
    /// Under imageUpdateMode force, the leaving pod is killed, not given
    /// its grace: said instead of the grace account.
    killed: Vec<String>,
    /// The resource watched, once opened (replica changes only).
    watch: Option<CrWatch>,
    /// The plan the steps ran (made again once a killed run's step settled).
    stepped: Mutex<Option<Plan>>,
    /// The HPA bounds reached, once settled (bounds changes).
    bounds_at: Vec<(ComponentChange, Bounds)>,
}

impl MilvusRun {
    /// Reads the resource and what runs again under the Lease: a run that
    /// finished (or stopped) while this one waited for the Lease has moved
    /// the resource on, and its values are where this run starts, not
    /// "another writer".
    pub async fn read(
        cluster: &Cluster,
        args: &ScaleArgs,
        found: &MilvusResource,
        requests: &[Request],
        progress: &Progress,
    ) -> Result<MilvusRun> {
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
        let (planned, owner, rules) = tokio::join!(
            read_and_plan(cluster, &cr, requests, args.force, accept),
            owner::milvus_owner(cluster, &mut apis, &cr),
            cluster.controller_rules()
        );
        let (live, plan) = planned?;
        let rules = rules.context("reading the server's version")?;
        // Read again under the lock: refused before writing (operator_guard).
        for warning in operator_guard::check(cluster, &cr, &live, &plan, accept, Mode::Refuse).await? {
            progress.line(&format!("Warning: {warning}"));
        }
        let killed = plan
            .grace
            .iter()
            .filter_map(|g| crate::core::operator_checks::killed_account(&cr, g))
            .collect();
        // Steps a killed run wrote but never saw done are waited for first.
        let waiting = unsettled(&live.operator, &live.pods, &plan.changes);
        Ok(MilvusRun {
            cr,
            plan,
            owner,
            rules,
            requests: requests.to_vec(),
            waiting,
            killed,
            watch: None,
            stepped: Mutex::new(None),
            bounds_at: Vec::new(),
        })
    }

    /// True when the run changes HPA bounds, not the resource.
    fn bounds_only(&self) -> bool {
        self.plan.changes.iter().any(|c| c.hpa.is_some())
    }

    /// Bounds already at their targets. (Replica counts are judged by the
    /// steps, once a killed run's last step has settled.)
    pub fn nothing_to_do(&self) -> Option<String> {
        if !self.bounds_only() || !self.plan.nothing_to_do() {
            return None;
        }
        let now: Vec<String> = self
            .plan
            .changes
            .iter()
            .filter_map(|c| c.hpa.as_ref().map(|h| format!("{} HPA {}", name(c), h.target)))
            .collect();
        Some(format!(
            "nothing to do: Milvus {} already at {}\n",
            self.cr.name(),
            now.join(", ")
        ))
    }

    pub fn tell(&self, progress: &Progress) {
        if self.killed.is_empty() {
            tell_grace(progress, &self.plan, crate::core::operator::grace_shortfall);
        }
        for line in &self.killed {
            progress.line(line);
        }
    }

    /// Starts watching the replica fields the run scales.
    pub fn open(&mut self) {
        if self.bounds_only() {
            return;
        }
        let (tx, rx) = watch::channel(self.cr.clone());
        self.watch = Some(CrWatch {
            tx,
            rx,
            watched: Mutex::new(Watched {
                expected: self
                    .plan
                    .changes
                    .iter()
                    .map(|c| Expected::read(&self.cr, c))
                    .collect(),
                writing: None,
                from_generation: self.cr.generation(),
            }),
        });
    }

    pub async fn execute(
        &self,
        cluster: &Cluster,
        args: &ScaleArgs,
        drainer: Option<&Drainer<'_>>,
        progress: &Progress,
    ) -> Result<Done, Stop> {
        let Some(w) = &self.watch else {
            for c in &self.plan.changes {
                bounds::execute(cluster, self.cr.namespace(), c, args.timeout, progress).await?;
            }
            return Ok(Done::Scaled);
        };
        let run = Run {
            cluster,
            cr: w.rx.clone(),
            watched: &w.watched,
            timeout: args.timeout,
            progress,
            drainer,
        };
        let (plan, done) = execute(&run, &self.cr, (&self.plan, &self.waiting), &self.requests, args).await?;
        if let Ok(mut stepped) = self.stepped.lock() {
            *stepped = Some(plan);
        }
        Ok(done)
    }

    /// Resolves the moment a replica field the run scales takes a value it
    /// did not write (or the watch on the resource fails for good).
    pub async fn other_writers(&self, cluster: &Cluster) -> Stop {
        let Some(w) = &self.watch else {
            // Bounds steps watch their HPA themselves (`bounds`).
            return std::future::pending().await;
        };
        tokio::select! {
            stop = follow(cluster, &self.cr, &w.tx) => stop,
            stop = guard(w.rx.clone(), &w.watched) => stop,
        }
    }

    /// Where the run stands: what the resource holds for the scaled fields,
    /// or (bounds) each HPA's, handed back to its applier.
    pub async fn settle(&mut self, cluster: &Cluster) -> Result<String> {
        if let Some(w) = &self.watch {
            return Ok(reached(&w.watched));
        }
        let mut at = Vec::new();
        for c in &self.plan.changes {
            if let Some(h) = &c.hpa {
                at.push((
                    c.clone(),
                    hpa::settle(cluster, self.cr.namespace(), &h.name).await?,
                ));
            }
        }
        self.bounds_at = at;
        Ok(self
            .bounds_at
            .iter()
            .map(|(c, b)| format!("{} HPA {b}", name(c)))
            .collect::<Vec<_>>()
            .join(", "))
    }

    pub fn recorded_where(&self) -> String {
        if self.watch.is_some() {
            format!("in Milvus {}", self.cr.name())
        } else {
            "in its HorizontalPodAutoscaler".to_string()
        }
    }

    /// The success line.
    pub fn scaled(&self) -> String {
        let done: Vec<String> = if self.watch.is_some() {
            let stepped = self.stepped.lock().ok().and_then(|s| s.clone());
            let plan = stepped.as_ref().unwrap_or(&self.plan);
            plan.changes
                .iter()
                .map(|c| format!("{} {}→{}", name(c), c.current, c.target))
                .collect()
        } else {
            self.bounds_at
                .iter()
                .filter_map(|(c, at)| {
                    let h = c.hpa.as_ref()?;
                    Some(format!(
                        "{} HorizontalPodAutoscaler {} {}→{at}",
                        name(c),
                        h.name,
                        h.current
                    ))
                })
                .collect()
        };
        format!("Milvus {} scaled: {}\n\n", self.cr.name(), done.join(", "))
    }

    /// The command that carries a stopped run on, with absolute targets (a
    /// relative `queryNode=-2` re-run after one step would go one too far).
    /// Deployment groups a relative request took to different targets
    /// cannot be named by one `COMPONENT=N`: there the command as typed is
    /// repeated.
    pub fn continue_command(&self, args: &ScaleArgs) -> String {
        let (cr, plan) = (&self.cr, &self.plan);
        let uniform = plan.changes.iter().all(|c| {
            plan.changes
                .iter()
                .filter(|o| o.component == c.component)
                .all(|o| o.target == c.target)
        });
        if uniform {
            return continue_command(cr.name(), cr.namespace(), plan);
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
}

/// Follows the resource into the run's channel; returns only when the
/// watch cannot go on.
async fn follow(cluster: &Cluster, cr: &MilvusResource, tx: &watch::Sender<MilvusResource>) -> Stop {
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
}

/// Stops the run the moment a replica field it scales takes a value it did
/// not write.
async fn guard(mut cr: watch::Receiver<MilvusResource>, watched: &Mutex<Watched>) -> Stop {
    loop {
        if cr.changed().await.is_err() {
            return Stop::Step("the watch on the Milvus resource ended".to_string());
        }
        let seen = cr.borrow_and_update().clone();
        let Ok(w) = watched.lock() else {
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
fn reached(watched: &Mutex<Watched>) -> String {
    let Ok(w) = watched.lock() else {
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
/// Returns the plan it ran.
async fn execute(
    run: &Run<'_>,
    first: &MilvusResource,
    (plan, waiting): (&Plan, &[(String, u32)]),
    requests: &[Request],
    args: &ScaleArgs,
) -> Result<(Plan, Done), Stop> {
    // Carry on: the operator must have applied what the resource asks (a
    // killed run may have written a step it never saw done) before the plan
    // is made from what runs.
    let (plan, waiting) = if first.observed(first.generation()) {
        (plan.clone(), waiting.to_vec())
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
        let said = format!(
            "nothing to do: Milvus {} already at {}\n",
            first.name(),
            targets(&plan)
        );
        return Ok((plan, Done::Nothing(said)));
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
    Ok((plan, Done::Scaled))
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
