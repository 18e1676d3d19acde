//! `scale` of a Helm release: the Helm record is the run's record
//! ([`HelmRun`], asked by the one run in `super::holding`).
//!
//! Under the Lease it **reads** the history and live state and makes the
//! plan → **opens** revision N+1 `pending-upgrade` (as `helm upgrade` does;
//! it keeps Helm out) → **steps** the Deployments (out at once, in one
//! replica at a time, each step watched until ready) while the run watches
//! for other writers of the release → **finishes** N+1 `deployed` at what
//! was reached, N `superseded` ([`super::helm_record`]).
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
use crate::cluster::lease;
use crate::cluster::live::fetch_live;
use crate::cluster::rollout::replicas_handed_back;
use crate::core::bounds::Setting;
use crate::core::gitops::Owner;
use crate::core::lock::{self, PendingWork};
use crate::core::manifest;
use crate::core::plan::{ComponentChange, Plan, Request, ScaleInInput, carry_on};
use crate::core::release::{DEPLOYED, is_pending};
use crate::core::scale_in::{self, ControllerRules};
use crate::core::status::PLUGIN_DESCRIPTION_PREFIX;
use crate::engine::owner as gitops;
use crate::engine::plan as plan_cmd;
use crate::engine::releases;
use crate::error::Refused;
use crate::render;
use crate::render::progress::Progress;

use super::bounds;
use super::drain::Drainer;
use super::helm_record::{self, Finish, OtherWriter, Unfinished};
use super::lock::{busy, waiting_line};
use super::outcome::{Done, Finished, Table, tell_grace};
use super::steps::{self, StepOptions};
use super::stop::Stop;

/// What a run starts from, read under the Lease.
pub(super) struct Loaded {
    /// Every revision `deployed` now; the newest is the base.
    deployed_before: Vec<StoredRelease>,
    base: StoredRelease,
    last: StoredRelease,
    /// The pending revision a killed run left, to repair.
    abandoned: Option<StoredRelease>,
    pub(super) plan: Plan,
    /// A GitOps tool that owns the release, if any.
    pub(super) owner: Option<Owner>,
    /// The server's ReplicaSet scale-down rules.
    pub(super) rules: ControllerRules,
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
            match lock::pending_work(last.release.description(), PLUGIN_DESCRIPTION_PREFIX, Ok(None)) {
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
                PendingWork::Held { .. } | PendingWork::Interrupted | PendingWork::Unknown { .. } => {
                    Some(last.clone())
                }
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
            drain: !args.scale_in.no_drain,
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
    // run at work now, whose targets are no repair to show. Whether one
    // is, is judged as `scale` judges it: by watching the Lease.
    if loaded.abandoned.is_some() {
        let progress = Progress::new();
        let at_work = lease::at_work(cluster, cluster.namespace(), &args.release, |holder, within| {
            waiting_line(&progress, &args.release, holder, within)
        })
        .await;
        progress.finish();
        match at_work {
            Ok(Some(holder)) => {
                return Err(busy(&args.release, cluster.namespace(), lock::readable(&holder)));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context("reading the release's lock (a Lease) to tell whether a run is at work"));
            }
        }
    }
    let owned = loaded.owner.map(|o| gitops::plan_warning(&o, &loaded.plan));
    render::plan::output(PlanOutput::Table, loaded.plan, owned)
}

/// The run of a Helm release: what it read, and the revision it writes.
pub(super) struct HelmRun {
    pub namespace: String,
    pub loaded: Loaded,
    /// Revision N+1 (or the killed run's), once opened.
    pending: Option<StoredRelease>,
    /// Where each changed component stands, once settled.
    reached: BTreeMap<String, Setting>,
}

impl HelmRun {
    pub async fn read(cluster: &Cluster, args: &ScaleArgs, requests: &[Request]) -> Result<HelmRun> {
        Ok(HelmRun {
            namespace: cluster.namespace().to_string(),
            loaded: Loaded::read(cluster, args, requests).await?,
            pending: None,
            reached: BTreeMap::new(),
        })
    }

    /// Nothing to change, and no killed run to carry on: older revisions
    /// an earlier failure left `deployed` are tidied even so.
    pub async fn nothing_to_do(&self, cluster: &Cluster) -> Result<Option<String>> {
        let loaded = &self.loaded;
        if !loaded.plan.nothing_to_do() || loaded.abandoned.is_some() {
            return Ok(None);
        }
        let now: Vec<String> = loaded
            .plan
            .changes
            .iter()
            .map(|c| setting(&c.component, c.target_setting()))
            .collect();
        let stale = &loaded.deployed_before[..loaded.deployed_before.len() - 1];
        helm_record::supersede(cluster, stale).await?;
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
        Ok(Some(format!(
            "nothing to do: {} already at {}{tidied}\n",
            loaded.plan.release,
            now.join(", ")
        )))
    }

    pub fn tell(&self, progress: &Progress) {
        let release = &self.loaded.plan.release;
        tell_grace(progress, &self.loaded.plan, |g| {
            scale_in::grace_warning(g, release)
        });
    }

    /// Opens N+1 `pending-upgrade` at the target (as `helm upgrade` does;
    /// it keeps Helm out), or takes the killed run's revision over.
    pub async fn open(&mut self, cluster: &Cluster, me: &str, progress: &Progress) -> Result<()> {
        let loaded = &self.loaded;
        let plan = &loaded.plan;
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
        let pending = helm_record::open(
            cluster,
            me,
            &loaded.base,
            &loaded.last,
            loaded.abandoned.clone(),
            &targets,
            &description,
        )
        .await?;
        self.pending = Some(pending);
        Ok(())
    }

    /// The replica changes stepped first, then each HPA's bounds.
    pub async fn execute(
        &self,
        cluster: &Cluster,
        args: &ScaleArgs,
        drainer: Option<&Drainer<'_>>,
        progress: &Progress,
    ) -> Result<Done, Stop> {
        let plan = &self.loaded.plan;
        let options = StepOptions {
            release: &args.release,
            timeout: args.timeout,
            pause: args.pause,
            check: args.check.as_deref(),
            rules: self.loaded.rules,
            remove: &args.scale_in.remove,
            drainer,
        };
        let repairing = self.loaded.abandoned.is_some();
        let (bounds, replicas): (Vec<ComponentChange>, Vec<ComponentChange>) =
            plan.changes.iter().cloned().partition(|c| c.hpa.is_some());
        let replicas = Plan {
            changes: replicas,
            ..plan.clone()
        };
        steps::execute(cluster, &self.namespace, &replicas, &options, progress, repairing)
            .await
            .map_err(Stop::Step)?;
        for c in &bounds {
            bounds::execute(cluster, &self.namespace, c, options.timeout, progress)
                .await
                .map_err(Stop::from)?;
        }
        Ok(Done::Scaled)
    }

    /// Resolves when someone else writes the release's records.
    pub async fn other_writers(&self, cluster: &Cluster) -> Stop {
        match &self.pending {
            Some(pending) => Stop::OtherWriter(other_writer(cluster, pending).await),
            None => std::future::pending().await,
        }
    }

    /// Where each changed component stands: the live `spec.replicas`
    /// (largest over its resource-group Deployments), or its HPA's bounds;
    /// the fields we wrote handed back to Helm's server-side field manager
    /// on the way. Every run ends here, a repairing re-run included, so no
    /// claim of ours outlives a run.
    pub async fn settle(&mut self, cluster: &Cluster) -> Result<String> {
        let mut out = BTreeMap::new();
        for c in &self.loaded.plan.changes {
            let at = match &c.hpa {
                Some(h) => Setting::Bounds(hpa::settle(cluster, &self.namespace, &h.name).await?),
                None => {
                    Setting::Replicas(replicas_handed_back(cluster, &self.namespace, &c.deployments).await?)
                }
            };
            out.insert(c.component.clone(), at);
        }
        self.reached = out;
        Ok(describe_reached(&self.reached))
    }

    /// Finishes N+1 like Helm, at what was reached; marks it `failed` when
    /// someone else wrote the release meanwhile; writes nothing once the
    /// lock is lost.
    pub async fn finish(
        &mut self,
        cluster: &Cluster,
        me: &str,
        outcome: &Result<Done, Stop>,
        args: &ScaleArgs,
    ) -> Finished {
        let Some(pending) = self.pending.as_mut() else {
            return Finished::Unrecorded(anyhow::anyhow!("no revision was opened"));
        };
        let loaded = &self.loaded;
        let plan = &loaded.plan;
        let description = match outcome {
            Err(Stop::OtherWriter(what)) => {
                let note = format!(
                    "{PLUGIN_DESCRIPTION_PREFIX} stopped scaling {}: {what}",
                    describe(plan, Some(&self.reached))
                );
                let ours = match helm_record::fail(cluster, me, pending, &note).await {
                    Ok(()) => format!("revision {} is marked failed", pending.release.version()),
                    Err(_) => format!(
                        "revision {} is theirs now and was left as they wrote it",
                        pending.release.version()
                    ),
                };
                return Finished::Theirs {
                    what: what.clone(),
                    ours: Some(ours),
                };
            }
            Err(Stop::LockLost(_)) => return Finished::LeftPending,
            Ok(_) => format!("{PLUGIN_DESCRIPTION_PREFIX} scaled {}", describe(plan, None)),
            Err(stop) => format!(
                "{PLUGIN_DESCRIPTION_PREFIX} interrupted scaling {} ({stop})",
                describe(plan, Some(&self.reached)),
            ),
        };
        let finish = Finish {
            base: &loaded.base,
            deployed_before: &loaded.deployed_before,
            changes: &plan.changes,
            reached: &self.reached,
            description: &description,
            history_max: args.history_max,
        };
        match helm_record::finish(cluster, me, &finish, pending).await {
            Ok(()) => Finished::Recorded,
            Err(Unfinished::Record(e)) if e.downcast_ref::<OtherWriter>().is_some() => Finished::Theirs {
                what: crate::error::one_line(&e),
                ours: None,
            },
            Err(Unfinished::Record(e)) => Finished::Unrecorded(e),
            Err(Unfinished::Tidy(e)) => Finished::Untidy(e),
        }
    }

    /// The run's revision (N+1 before it is opened).
    pub fn version(&self) -> u64 {
        self.pending
            .as_ref()
            .map_or_else(|| self.loaded.last.release.version() + 1, |p| p.release.version())
    }

    /// The success line.
    pub fn scaled(&self) -> String {
        format!(
            "release {} scaled: {} (revision {})\n\n",
            self.loaded.plan.release,
            describe(&self.loaded.plan, None),
            self.version()
        )
    }

    /// The pods the finished revision's workloads own.
    pub fn table(&self) -> Table {
        let record = self.pending.as_ref().unwrap_or(&self.loaded.base);
        Table::Helm {
            namespace: self.namespace.clone(),
            // This run wrote the manifest, from a readable one.
            objects: manifest::parse(record.release.manifest()).unwrap_or_default(),
        }
    }
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
