//! The scale run's Milvus hook, shared by every shape: before a query-node
//! pod leaves, its node is drained (`core::milvus::drain`); after each
//! scale-in step, Milvus's own health gates the next; at the start and the
//! end of every run, what a run that did not finish left in Milvus is
//! repaired. A Milvus that cannot be asked is said once and the run goes on
//! as without it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::cluster::Cluster;
use crate::cluster::milvus::{Milvus, Prepared, delete_pod};
use crate::core::milvus::api::Unreachable;
use crate::core::milvus::drain::{self, Drain, DrainOptions, Removal, StopCause};
use crate::core::milvus::nodes::{MilvusPod, milvus_pods};
use crate::core::milvus::view::{Budget, Gate};
use crate::core::scale_in::ControllerRules;
use crate::render::progress::Progress;

/// The component whose pods are drained.
pub const QUERY_NODE: &str = "queryNode";

pub struct Drainer<'a> {
    cluster: &'a Cluster,
    namespace: String,
    /// The instance label value (`app.kubernetes.io/instance`).
    instance: String,
    milvus: Milvus,
    run: String,
    pub removal: Removal,
    opts: DrainOptions,
    progress: &'a Progress,
    warned: AtomicBool,
}

/// A drained pod waiting for its removal.
pub struct Pending {
    drain: Drain,
    pods: Vec<MilvusPod>,
}

impl<'a> Drainer<'a> {
    pub fn new(
        cluster: &'a Cluster,
        namespace: &str,
        instance: &str,
        run: &str,
        rules: ControllerRules,
        timeout: Duration,
        progress: &'a Progress,
    ) -> Drainer<'a> {
        Drainer {
            cluster,
            namespace: namespace.to_string(),
            instance: instance.to_string(),
            milvus: Milvus::new(cluster, namespace, &Budget::default()),
            run: run.to_string(),
            removal: Removal::for_rules(rules),
            opts: DrainOptions {
                timeout,
                ..DrainOptions::default()
            },
            progress,
            warned: AtomicBool::new(false),
        }
    }

    /// The instance's pods, raw (marks, IPs, ports).
    async fn pods(&self) -> Result<Vec<Pod>, String> {
        let selector = format!("app.kubernetes.io/instance={}", self.instance);
        self.cluster
            .list_pods_labelled(&self.namespace, &selector)
            .await
            .map_err(|e| e.to_string())
    }

    fn warn_once(&self, why: &Unreachable, doing: &str) {
        if !self.warned.swap(true, Ordering::SeqCst) {
            self.progress
                .line(&format!("Warning: Milvus cannot be asked ({why}): {doing}"));
        }
    }

    /// Resumes nodes a run that did not finish left suspended and takes
    /// its marks off (at the start and the end of every run).
    pub async fn repair(&self) -> Result<(), String> {
        let pods = self.pods().await?;
        let refs: Vec<&Pod> = pods.iter().collect();
        let marked = drain::marked_pods(&refs);
        if marked.is_empty() {
            return Ok(());
        }
        match self
            .milvus
            .repair(self.cluster, &milvus_pods(&refs), &marked, &self.run)
            .await
        {
            Ok(said) => {
                for line in said {
                    self.progress.line(&line);
                }
                Ok(())
            }
            Err(why) => {
                self.progress.line(&format!(
                    "Warning: {} pod(s) carry a drain mark of a run that did not finish, but Milvus cannot be asked ({why}) whether their nodes are still suspended; a later run repairs them",
                    marked.len()
                ));
                Ok(())
            }
        }
    }

    /// Drains the node of `victim` before its pod is removed. `Ok(None)`:
    /// nothing to wait for (no node, or Milvus unreachable: warned once).
    /// `Err`: the drain stopped (node resumed, pod kept), as one line.
    pub async fn before(&self, victim: &str) -> Result<Option<Pending>, String> {
        let pods = self.pods().await?;
        let refs: Vec<&Pod> = pods.iter().collect();
        let mpods = milvus_pods(&refs);
        let mut d = match self.milvus.prepare(&mpods, victim, &self.run, self.opts).await {
            Prepared::Drain(d) => *d,
            Prepared::NothingHeld => return Ok(None),
            Prepared::Unreachable(why) => {
                self.warn_once(&why, "scaling in without a drain, as before");
                return Ok(None);
            }
        };
        let held = d.held_at_start();
        self.progress.line(&format!(
            "draining query node {} (pod {victim}) before it leaves: {} sealed segments, {} channels",
            d.node(),
            held.segments,
            held.channels
        ));
        let progress = self.progress;
        let drove = self
            .milvus
            .drive(self.cluster, &mpods, &mut d, std::future::pending(), |line| {
                progress.set(line)
            })
            .await;
        for w in d.warnings() {
            self.progress.line(&format!("Warning: {w}"));
        }
        match drove {
            Ok(()) => {
                self.progress.line(&d.progress());
                Ok(Some(Pending {
                    drain: d,
                    pods: mpods,
                }))
            }
            Err(outcome) => Err(outcome.to_string()),
        }
    }

    /// Makes the drained pod the one that leaves, where the server cannot
    /// be told with pod-deletion-cost: the run deletes it itself, right
    /// before the count is lowered (`Removal::DeleteThenLower`).
    pub async fn remove(&self, pending: &Pending) -> Result<(), String> {
        if self.removal != Removal::DeleteThenLower {
            return Ok(());
        }
        delete_pod(self.cluster, &self.namespace, pending.drain.pod())
            .await
            .map_err(|e| e.to_string())
    }

    /// The step settled (`Ok`), or failed with the pod perhaps still there
    /// (`Err`): then its node is resumed.
    pub async fn after(&self, pending: Vec<Pending>, failed: Option<&str>) {
        for mut p in pending {
            let cause = failed.map(|f| StopCause::Api {
                detail: f.to_string(),
            });
            let outcome = self
                .milvus
                .finish_drain(self.cluster, &p.pods, &mut p.drain, cause)
                .await;
            if failed.is_some() {
                self.progress.line(&outcome.to_string());
            }
        }
    }

    /// Milvus's own health after a step: every proxy's and coordinator's
    /// `/healthz` OK, waited for up to `timeout`.
    pub async fn gate(&self, timeout: Duration) -> Result<(), String> {
        let started = std::time::Instant::now();
        loop {
            let pods = self.pods().await?;
            let refs: Vec<&Pod> = pods.iter().collect();
            match self.milvus.gate(&milvus_pods(&refs)).await {
                Gate::Healthy => return Ok(()),
                Gate::Unreachable(why) => {
                    self.warn_once(&why, "its health is not part of the gate between steps");
                    return Ok(());
                }
                Gate::Unhealthy(bad) if started.elapsed() >= timeout => {
                    return Err(format!(
                        "Milvus is not healthy {}s after the step: {}",
                        timeout.as_secs(),
                        bad.join("; ")
                    ));
                }
                Gate::Unhealthy(bad) => {
                    self.progress
                        .set(&format!("waiting for Milvus to be healthy: {}", bad.join("; ")));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
