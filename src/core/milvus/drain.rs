//! Draining a query node before its pod leaves, as pure rules: a state
//! machine the scale engine drives (it performs each [`Next`] and reports
//! the [`Event`]), the mark that lets a later run repair a killed one, and
//! how the drained pod is made the one that leaves on every server version.
//!
//! The sequence: mark the pod → suspend the node in QueryCoord → transfer
//! its segments and channels to the other nodes → poll its distribution
//! until empty (progress "node 12: 8 → 3 segments") → drained; the engine
//! then removes exactly that pod. A timeout, Ctrl-C, a lost lease, another
//! writer or an API failure stops it: the node is resumed, the mark taken
//! off, the pod stays.
//!
//! Why suspend + transfer and nothing else: a suspended node is read-only
//! in its replica and QueryCoord moves its segments and channels out by
//! itself (`SuspendNode` → `meta.HandleNodeDown`, querycoordv2/ops_services.go [1881706] l.324–343);
//! the transfers (move, not copy: see `Call::transfer_segments`) only make
//! it prompt. The plugin never suspends QueryCoord's balance — that would
//! stop the very moves a suspended node relies on, and a run killed with
//! the balance suspended leaves the whole cluster unbalanced (the upstream
//! script of milvus#48209 has exactly that failure mode). So "balance as it
//! was found" holds by construction.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::{Distribution, NodeState, Unreachable};
use super::nodes::MappedNode;
use crate::core::scale_in::ControllerRules;

/// The annotation a run writes on a query-node pod before it suspends the
/// node: which node, which run, whether the run suspended it. It leaves
/// with the pod when the drain succeeds; a stopped drain takes it off after
/// resuming; a run killed in between leaves it for the next run (and
/// `status`) to find.
pub const DRAIN_MARK: &str = "kubectl-milvus.io/drain";

/// `--drain-timeout` default, per node. Long enough for a query node's
/// segments to be loaded by the others from object storage (minutes for
/// tens of GB), well under Milvus's own `queryNode.gracefulStopTimeout`
/// (1800 s) so a stall is told rather than waited out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// One `distribution/get` per node per interval.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Transfers are sent again when a node has not shrunk for this long
/// (QueryCoord drops a segment task that exceeds its own timeout).
pub const RETRANSFER_AFTER: Duration = Duration::from_secs(15);
/// A drain whose polls all fail for this long stops (node resumed if it
/// can be), rather than waiting out `--drain-timeout` blind.
pub const UNREACHABLE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainMark {
    pub node_id: i64,
    /// The run's identity (`host/pid/nonce`, as in its Lease).
    pub run: String,
    /// RFC 3339.
    pub since: String,
    /// False when the node was already suspended by someone else: a repair
    /// then leaves it suspended, as found.
    pub suspended_by_run: bool,
}

/// The merge patch that writes `mark` on the pod.
pub fn mark_patch(mark: &DrainMark) -> Value {
    let text = serde_json::to_string(mark).unwrap_or_default();
    json!({"metadata": {"annotations": {DRAIN_MARK: text}}})
}

/// The merge patch that takes the mark off.
pub fn unmark_patch() -> Value {
    json!({"metadata": {"annotations": {DRAIN_MARK: Value::Null}}})
}

/// The mark on `pod`, if it carries a readable one.
pub fn read_mark(pod: &Pod) -> Option<DrainMark> {
    mark_of(&pod.metadata)
}

/// The mark in a pod's metadata, if it carries a readable one.
pub fn mark_of(pod: &ObjectMeta) -> Option<DrainMark> {
    let text = pod.annotations.as_ref()?.get(DRAIN_MARK)?;
    serde_json::from_str(text).ok()
}

/// What a node holds, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub segments: usize,
    pub channels: usize,
}

impl Held {
    pub fn of(d: &Distribution) -> Held {
        Held {
            segments: d.sealed_segments.len(),
            channels: d.channels.len(),
        }
    }

    fn total(self) -> usize {
        self.segments + self.channels
    }
}

/// "node 12: 8 → 3 segments, 2 → 0 channels" (channels only when it had any).
pub fn progress(node: i64, from: Held, now: Held) -> String {
    let mut s = format!("node {node}: {} → {} segments", from.segments, now.segments);
    if from.channels > 0 || now.channels > 0 {
        s.push_str(&format!(", {} → {} channels", from.channels, now.channels));
    }
    s
}

/// Why a drain stopped before the node was empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "camelCase")]
pub enum StopCause {
    /// Not empty within `--drain-timeout`.
    #[serde(rename_all = "camelCase")]
    Timeout {
        after_secs: u64,
        last_error: Option<String>,
    },
    /// Ctrl-C / SIGTERM.
    Interrupted,
    /// The release's Lease was lost.
    #[serde(rename_all = "camelCase")]
    LeaseLost { detail: String },
    /// Someone else changed what the run is changing.
    #[serde(rename_all = "camelCase")]
    OtherWriter { detail: String },
    /// The API server refused or failed a request of the run.
    #[serde(rename_all = "camelCase")]
    Api { detail: String },
    /// Milvus refused a step of the drain (suspend).
    #[serde(rename_all = "camelCase")]
    Milvus { detail: String },
}

impl fmt::Display for StopCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopCause::Timeout {
                after_secs,
                last_error,
            } => {
                write!(f, "not empty within --drain-timeout {after_secs}s")?;
                if let Some(e) = last_error {
                    write!(f, " (last error: {e})")?;
                }
                Ok(())
            }
            StopCause::Interrupted => f.write_str("interrupted"),
            StopCause::LeaseLost { detail }
            | StopCause::OtherWriter { detail }
            | StopCause::Api { detail }
            | StopCause::Milvus { detail } => f.write_str(detail),
        }
    }
}

/// Whether a stopped drain gave the node its work back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "resumed", rename_all = "camelCase")]
pub enum Resumed {
    /// The run had not suspended it (or it was suspended by someone else).
    NotNeeded,
    Yes,
    /// Resume failed: the mark stays, so the next run (or `status`) finds it.
    Failed {
        error: String,
    },
}

/// How a drain ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// Empty, and the pod has left.
    #[serde(rename_all = "camelCase")]
    Drained {
        node: i64,
        pod: String,
        from: Held,
        took_ms: u64,
    },
    /// Stopped: the pod stays (the engine must not lower the count).
    #[serde(rename_all = "camelCase")]
    Stopped {
        node: i64,
        pod: String,
        cause: StopCause,
        from: Held,
        reached: Held,
        resumed: Resumed,
        /// The mark could not be taken off (or was kept on purpose).
        mark_left: bool,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Drained { node, pod, from, .. } => write!(
                f,
                "{} (pod {pod}): drained, then removed",
                progress(*node, *from, Held::default())
            ),
            Outcome::Stopped {
                node,
                pod,
                cause,
                from,
                reached,
                resumed,
                mark_left,
            } => {
                write!(
                    f,
                    "drain of query node {node} stopped: {cause}; reached {}",
                    progress(*node, *from, *reached)
                )?;
                match resumed {
                    Resumed::Yes => write!(f, "; node {node} resumed")?,
                    Resumed::NotNeeded => {}
                    Resumed::Failed { error } => write!(
                        f,
                        "; node {node} could NOT be resumed ({error}): it stays suspended until a re-run of scale resumes it"
                    )?,
                }
                write!(f, "; pod {pod} kept")?;
                if *mark_left && !matches!(resumed, Resumed::Failed { .. }) {
                    write!(
                        f,
                        " (its {DRAIN_MARK} annotation could not be removed; a re-run removes it)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// What the engine must do next for this drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Patch the pod with [`mark_patch`].
    Mark(DrainMark),
    Suspend(i64),
    /// Both transfers (segments, channels) for the node.
    Transfer(i64),
    /// `distribution/get` for the node after waiting `after`.
    Poll {
        node: i64,
        after: Duration,
    },
    /// `node/list`, to find which node the pod is now (its Milvus restarted).
    Locate,
    Resume(i64),
    /// Patch the pod with [`unmark_patch`].
    Unmark,
    /// Empty: remove the pod now (the node stays suspended until it is
    /// gone); report [`Event::PodLeft`], or [`Event::Stop`] if the pod
    /// cannot be removed.
    Drained {
        node: i64,
        took: Duration,
    },
    Done(Outcome),
}

/// What happened with the last [`Next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ok,
    Failed(String),
    Polled(Distribution),
    PollFailed(Unreachable),
    /// The node now at the pod's IP, if any.
    Located(Option<(i64, NodeState)>),
    PodLeft,
    /// From outside the drain: Ctrl-C, lease lost, another writer, an API
    /// failure elsewhere in the step.
    Stop(StopCause),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Marking,
    Suspending,
    Transferring,
    Polling,
    Locating,
    Drained,
    Resuming,
    Unmarking,
    Finished,
}

#[derive(Debug, Clone, Copy)]
pub struct DrainOptions {
    pub timeout: Duration,
    pub poll_every: Duration,
    pub retransfer_after: Duration,
    pub unreachable_limit: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            timeout: DEFAULT_TIMEOUT,
            poll_every: POLL_EVERY,
            retransfer_after: RETRANSFER_AFTER,
            unreachable_limit: UNREACHABLE_LIMIT,
        }
    }
}

/// One node's drain. Time is passed in (`at`: elapsed since the drain
/// started), so every rule is testable without waiting.
#[derive(Debug, Clone)]
pub struct Drain {
    pod: String,
    node: i64,
    run: String,
    since: String,
    opts: DrainOptions,
    phase: Phase,
    from: Held,
    now: Held,
    /// The run asked Milvus to suspend the node (whether or not it answered).
    suspended_by_us: bool,
    last_shrink: Duration,
    last_transfer: Duration,
    last_error: Option<String>,
    /// Since when every poll has failed.
    failing_since: Option<Duration>,
    stop: Option<StopCause>,
    resumed: Resumed,
    drained_after: Option<Duration>,
    warnings: Vec<String>,
}

impl Drain {
    /// A drain of `node` (QueryCoord's view of it) on `pod`, holding `held`.
    pub fn new(
        pod: &str,
        node: &MappedNode,
        held: Held,
        run: &str,
        since: &str,
        opts: DrainOptions,
    ) -> Drain {
        Drain {
            pod: pod.to_string(),
            node: node.id,
            run: run.to_string(),
            since: since.to_string(),
            opts,
            phase: Phase::Marking,
            from: held,
            now: held,
            // Already suspended by someone else: used as it is, left as found.
            suspended_by_us: false,
            last_shrink: Duration::ZERO,
            last_transfer: Duration::ZERO,
            last_error: None,
            failing_since: None,
            stop: None,
            resumed: Resumed::NotNeeded,
            drained_after: None,
            warnings: Vec::new(),
        }
        .with_state(&node.state)
    }

    fn with_state(mut self, state: &NodeState) -> Drain {
        self.suspended_by_us = *state != NodeState::Suspended && *state != NodeState::Stopping;
        self
    }

    pub fn node(&self) -> i64 {
        self.node
    }

    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// What the node held when the drain started.
    pub fn held_at_start(&self) -> Held {
        self.from
    }

    /// The progress line for the current counts.
    pub fn progress(&self) -> String {
        progress(self.node, self.from, self.now)
    }

    /// Non-fatal things the run should say (a transfer Milvus refused).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn mark(&self) -> DrainMark {
        DrainMark {
            node_id: self.node,
            run: self.run.clone(),
            since: self.since.clone(),
            suspended_by_run: self.suspended_by_us,
        }
    }

    /// The first thing to do: the mark goes on before Milvus is touched,
    /// so a run killed at any later point leaves something to find.
    pub fn start(&mut self) -> Next {
        self.phase = Phase::Marking;
        Next::Mark(self.mark())
    }

    /// Feeds what happened; returns what to do next.
    pub fn on(&mut self, event: Event, at: Duration) -> Next {
        if let Event::Stop(cause) = event {
            return self.stop(cause);
        }
        match (self.phase, event) {
            (Phase::Marking, Event::Ok) => self.after_mark(),
            (Phase::Marking, Event::Failed(e)) => {
                // A merge patch is all or nothing, but a timeout leaves it
                // unknown: take it off to be sure. Milvus is untouched.
                self.stop = Some(StopCause::Api { detail: e });
                self.phase = Phase::Unmarking;
                Next::Unmark
            }
            (Phase::Suspending, Event::Ok) => self.transfer(at),
            (Phase::Suspending, Event::Failed(e)) => self.stop(StopCause::Milvus {
                detail: format!("Milvus did not suspend query node {}: {e}", self.node),
            }),
            (Phase::Transferring, ev) => {
                if let Event::Failed(e) = ev {
                    // Not fatal: QueryCoord empties a suspended node itself.
                    self.warnings
                        .push(format!("transfer off node {} refused: {e}", self.node));
                }
                self.phase = Phase::Polling;
                Next::Poll {
                    node: self.node,
                    after: Duration::ZERO,
                }
            }
            (Phase::Polling, Event::Polled(d)) => self.polled(Held::of(&d), at),
            (Phase::Polling, Event::PollFailed(u)) if u.is_node_not_found() => {
                self.phase = Phase::Locating;
                Next::Locate
            }
            (Phase::Polling | Phase::Locating, Event::PollFailed(u)) => self.poll_failed(u.to_string(), at),
            (Phase::Locating, Event::Failed(e)) => self.poll_failed(e, at),
            (Phase::Locating, Event::Located(found)) => self.located(found, at),
            (Phase::Drained, Event::PodLeft) => {
                self.phase = Phase::Finished;
                Next::Done(Outcome::Drained {
                    node: self.node,
                    pod: self.pod.clone(),
                    from: self.from,
                    took_ms: millis(self.drained_after.unwrap_or(at)),
                })
            }
            (Phase::Resuming, Event::Ok) => {
                self.resumed = Resumed::Yes;
                self.phase = Phase::Unmarking;
                Next::Unmark
            }
            (Phase::Resuming, Event::Failed(error)) => {
                // Keep the mark: it is how a re-run knows to resume the node.
                self.resumed = Resumed::Failed { error };
                self.finish(true)
            }
            (Phase::Unmarking, Event::Ok) => self.finish(false),
            (Phase::Unmarking, Event::Failed(_)) => self.finish(true),
            (Phase::Finished, _) => self.finish(false),
            // An event that does not answer the last Next: ask again.
            (_, _) => self.repeat(),
        }
    }

    fn after_mark(&mut self) -> Next {
        if self.suspended_by_us {
            self.phase = Phase::Suspending;
            Next::Suspend(self.node)
        } else {
            self.phase = Phase::Transferring;
            Next::Transfer(self.node)
        }
    }

    fn transfer(&mut self, at: Duration) -> Next {
        self.last_transfer = at;
        self.phase = Phase::Transferring;
        Next::Transfer(self.node)
    }

    fn polled(&mut self, held: Held, at: Duration) -> Next {
        if held.total() < self.now.total() {
            self.last_shrink = at;
        }
        self.now = held;
        self.last_error = None;
        self.failing_since = None;
        if held.total() == 0 {
            self.phase = Phase::Drained;
            self.drained_after = Some(at);
            return Next::Drained {
                node: self.node,
                took: at,
            };
        }
        if at >= self.opts.timeout {
            return self.time_out();
        }
        let stalled = at.saturating_sub(self.last_shrink) >= self.opts.retransfer_after
            && at.saturating_sub(self.last_transfer) >= self.opts.retransfer_after;
        if stalled {
            return self.transfer(at);
        }
        Next::Poll {
            node: self.node,
            after: self.opts.poll_every,
        }
    }

    fn poll_failed(&mut self, error: String, at: Duration) -> Next {
        let since = *self.failing_since.get_or_insert(at);
        if at.saturating_sub(since) >= self.opts.unreachable_limit {
            return self.stop(StopCause::Milvus {
                detail: format!(
                    "Milvus did not answer for {}s while query node {} was draining ({error})",
                    self.opts.unreachable_limit.as_secs(),
                    self.node
                ),
            });
        }
        self.last_error = Some(error);
        self.wait_or_time_out(at)
    }

    fn wait_or_time_out(&mut self, at: Duration) -> Next {
        if at >= self.opts.timeout {
            return self.time_out();
        }
        self.phase = Phase::Polling;
        Next::Poll {
            node: self.node,
            after: self.opts.poll_every,
        }
    }

    fn located(&mut self, found: Option<(i64, NodeState)>, at: Duration) -> Next {
        match found {
            // The pod's Milvus restarted and registered anew: an empty node
            // QueryCoord may fill again. Drain the new one.
            Some((id, state)) if id != self.node => {
                let from = self.from;
                *self = Drain {
                    node: id,
                    ..self.clone()
                }
                .with_state(&state);
                self.from = from;
                self.now = Held::default();
                self.last_shrink = at;
                self.phase = Phase::Marking;
                Next::Mark(self.mark())
            }
            Some(_) => self.wait_or_time_out(at),
            // No query node at the pod's IP: it holds nothing to lose.
            None => {
                self.now = Held::default();
                self.phase = Phase::Drained;
                self.drained_after = Some(at);
                Next::Drained {
                    node: self.node,
                    took: at,
                }
            }
        }
    }

    fn time_out(&mut self) -> Next {
        let cause = StopCause::Timeout {
            after_secs: self.opts.timeout.as_secs(),
            last_error: self.last_error.clone(),
        };
        self.stop(cause)
    }

    /// Stops: resume what the run suspended, then take the mark off.
    fn stop(&mut self, cause: StopCause) -> Next {
        if self.phase == Phase::Finished {
            return self.finish(false);
        }
        if self.stop.is_none() {
            self.stop = Some(cause);
        }
        match self.phase {
            Phase::Resuming | Phase::Unmarking => self.repeat(),
            Phase::Marking => {
                self.phase = Phase::Unmarking;
                Next::Unmark
            }
            _ if self.suspended_by_us => {
                self.phase = Phase::Resuming;
                Next::Resume(self.node)
            }
            _ => {
                self.phase = Phase::Unmarking;
                Next::Unmark
            }
        }
    }

    fn repeat(&mut self) -> Next {
        match self.phase {
            Phase::Marking => Next::Mark(self.mark()),
            Phase::Suspending => Next::Suspend(self.node),
            Phase::Transferring => Next::Transfer(self.node),
            Phase::Polling => Next::Poll {
                node: self.node,
                after: self.opts.poll_every,
            },
            Phase::Locating => Next::Locate,
            Phase::Drained => Next::Drained {
                node: self.node,
                took: self.drained_after.unwrap_or_default(),
            },
            Phase::Resuming => Next::Resume(self.node),
            Phase::Unmarking => Next::Unmark,
            Phase::Finished => self.finish(false),
        }
    }

    fn finish(&mut self, mark_left: bool) -> Next {
        self.phase = Phase::Finished;
        let cause = self.stop.clone().unwrap_or(StopCause::Interrupted);
        Next::Done(Outcome::Stopped {
            node: self.node,
            pod: self.pod.clone(),
            cause,
            from: self.from,
            reached: self.now,
            resumed: self.resumed.clone(),
            mark_left,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How the run makes the drained pod the one that leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Removal {
    /// v1.22+: the pod is marked with the lowest pod-deletion-cost before
    /// the count is lowered (what every scale-in does, `core::scale_in`).
    DeletionCost,
    /// Before v1.22 the ReplicaSet controller cannot be told which pod to
    /// remove, and pods of one rollout tie on every rule of its ranking
    /// (`ActivePodsWithRanks.Less`, kubernetes v1.20
    /// pkg/controller/controller_utils.go: ready times and creation have
    /// one-second resolution, and co-located pods share a rank), leaving
    /// the choice to an unstable sort. So the run deletes the drained pod
    /// itself and lowers the count right after. The controller then has at
    /// most the replacement it may have started meanwhile to remove, and its
    /// own first rules put that pod first: unscheduled before scheduled,
    /// Pending before Running, not ready before ready (rules 1–3, ahead of
    /// everything else). Draining every tied pod instead was rejected: when
    /// all pods tie — the usual case for replicas started together — every
    /// query node would be suspended with nowhere for its segments to go.
    DeleteThenLower,
}

impl Removal {
    pub fn for_rules(rules: ControllerRules) -> Removal {
        if rules.deletion_cost {
            Removal::DeletionCost
        } else {
            Removal::DeleteThenLower
        }
    }

    /// One line for `plan`.
    pub fn explain(self) -> &'static str {
        match self {
            Removal::DeletionCost => {
                "the drained pod is marked with the lowest controller.kubernetes.io/pod-deletion-cost before the count is lowered, so the ReplicaSet controller removes exactly it"
            }
            Removal::DeleteThenLower => {
                "this server (< v1.22) ignores pod-deletion-cost and its ReplicaSet ranking leaves equally old pods to chance, so the run deletes the drained pod itself and lowers the count at once; the controller then removes only a replacement it may have started (unscheduled, pending and not-ready pods go first in its ranking)"
            }
        }
    }
}

/// A pod found carrying a drain mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkedPod {
    pub pod: String,
    pub mark: DrainMark,
}

pub fn marked_pods(pods: &[&Pod]) -> Vec<MarkedPod> {
    marked(pods.iter().map(|p| &p.metadata))
}

/// [`marked_pods`] from the pods' metadata.
pub fn marked<'a>(pods: impl IntoIterator<Item = &'a ObjectMeta>) -> Vec<MarkedPod> {
    pods.into_iter()
        .filter_map(|p| {
            Some(MarkedPod {
                pod: p.name.clone()?,
                mark: mark_of(p)?,
            })
        })
        .collect()
}

/// What a run does about marks left by a run that did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Resume the node (the run had suspended it and it still is), then unmark.
    Resume { node: i64, pod: String },
    /// Nothing of the run's left in Milvus: only the mark.
    Unmark { pod: String },
}

/// The repairs for `marked` pods, given QueryCoord's nodes. `None` nodes
/// (Milvus unreachable now) means no repair: the marks stay until a run can
/// see whether the nodes are still suspended.
pub fn repairs(marked: &[MarkedPod], nodes: Option<&[MappedNode]>) -> Vec<Repair> {
    let Some(nodes) = nodes else { return Vec::new() };
    marked
        .iter()
        .map(|m| {
            let still_suspended = nodes.iter().any(|n| {
                n.id == m.mark.node_id
                    && n.state == NodeState::Suspended
                    && n.pod.as_deref().is_none_or(|p| p == m.pod)
            });
            if still_suspended && m.mark.suspended_by_run {
                Repair::Resume {
                    node: m.mark.node_id,
                    pod: m.pod.clone(),
                }
            } else {
                Repair::Unmark { pod: m.pod.clone() }
            }
        })
        .collect()
}

/// One leaving query-node pod, as `plan` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeavingNode {
    /// 1-based scale-in step of the component.
    pub step: usize,
    pub pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<NodeState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// Why there is nothing (or something unusual) to drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The drain part of a query-node scale-in plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainPlan {
    pub component: String,
    pub enabled: bool,
    pub removal: Removal,
    pub timeout_secs: u64,
    pub leaving: Vec<LeavingNode>,
    /// Why Milvus could not be asked now; the run then warns once and
    /// scales in without a drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<Unreachable>,
}

/// What `plan` says for each leaving pod, in step order.
pub fn leaving_nodes(
    victims: &[String],
    mapped: Option<&[MappedNode]>,
    held: &BTreeMap<i64, Result<Held, Unreachable>>,
) -> Vec<LeavingNode> {
    victims
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let node = mapped.and_then(|m| m.iter().find(|n| n.pod.as_deref() == Some(pod)));
            let (held, note) = match (mapped, node) {
                (None, _) => (None, None),
                (Some(_), None) => (
                    None,
                    Some("QueryCoord lists no node at its IP (Milvus not running in it yet): nothing to drain".to_string()),
                ),
                (Some(_), Some(n)) => match held.get(&n.id) {
                    Some(Ok(h)) => (
                        Some(*h),
                        match n.state {
                            NodeState::Stopping => Some("already stopping: QueryCoord is emptying it; the run waits until it is empty".into()),
                            NodeState::Suspended => Some("already suspended by someone else: the run empties it and leaves it suspended if it stops".into()),
                            _ => None,
                        },
                    ),
                    Some(Err(e)) => (None, Some(format!("what it holds is unknown: {e}"))),
                    None => (None, None),
                },
            };
            LeavingNode {
                step: i + 1,
                pod: pod.clone(),
                node: node.map(|n| n.id),
                state: node.map(|n| n.state.clone()),
                held,
                note,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn node(id: i64, state: NodeState) -> MappedNode {
        MappedNode {
            id,
            address: format!("10.0.0.{id}:21123"),
            state,
            pod: Some(format!("qn-{id}")),
            component: Some("queryNode".into()),
        }
    }

    fn dist(segments: usize, channels: usize) -> Distribution {
        Distribution {
            channels: (0..channels).map(|i| format!("ch{i}")).collect(),
            sealed_segments: (0..segments as i64).collect(),
        }
    }

    fn drain(state: NodeState, held: Held) -> Drain {
        let opts = DrainOptions {
            timeout: Duration::from_secs(60),
            poll_every: S,
            retransfer_after: Duration::from_secs(15),
            unreachable_limit: Duration::from_secs(30),
        };
        Drain::new(
            "qn-12",
            &node(12, state),
            held,
            "host/1/abc",
            "2026-12-05T12:00:00Z",
            opts,
        )
    }

    /// A drain of an active node that has been marked, suspended and sent
    /// its transfers: the next event is its first poll.
    fn polling(from: Held) -> Drain {
        let mut d = drain(NodeState::Active, from);
        d.start();
        for _ in 0..3 {
            d.on(Event::Ok, S);
        }
        d
    }

    fn held(segments: usize, channels: usize) -> Held {
        Held { segments, channels }
    }

    #[test]
    fn a_drain_marks_suspends_transfers_and_waits_until_empty() {
        let mut d = drain(NodeState::Active, held(8, 2));
        let Next::Mark(mark) = d.start() else {
            panic!("mark first")
        };
        assert!(mark.suspended_by_run && mark.node_id == 12 && mark.run == "host/1/abc");
        assert_eq!(d.on(Event::Ok, S), Next::Suspend(12));
        assert_eq!(d.on(Event::Ok, S), Next::Transfer(12));
        assert_eq!(
            d.on(Event::Ok, S),
            Next::Poll {
                node: 12,
                after: Duration::ZERO
            }
        );
        assert_eq!(
            d.on(Event::Polled(dist(3, 1)), 2 * S),
            Next::Poll { node: 12, after: S }
        );
        assert_eq!(d.progress(), "node 12: 8 → 3 segments, 2 → 1 channels");
        assert_eq!(
            d.on(Event::Polled(dist(0, 0)), 3 * S),
            Next::Drained {
                node: 12,
                took: 3 * S
            }
        );
        let Next::Done(outcome) = d.on(Event::PodLeft, 4 * S) else {
            panic!("done")
        };
        assert_eq!(
            outcome,
            Outcome::Drained {
                node: 12,
                pod: "qn-12".into(),
                from: held(8, 2),
                took_ms: 3000
            }
        );
        assert_eq!(
            outcome.to_string(),
            "node 12: 8 → 0 segments, 2 → 0 channels (pod qn-12): drained, then removed"
        );
    }

    #[test]
    fn a_stalled_drain_times_out_resumes_the_node_and_keeps_the_pod() {
        let mut d = polling(held(8, 0));
        // No progress for 15 s: the transfers are sent again.
        assert_eq!(
            d.on(Event::Polled(dist(8, 0)), 10 * S),
            Next::Poll { node: 12, after: S }
        );
        assert_eq!(d.on(Event::Polled(dist(8, 0)), 16 * S), Next::Transfer(12));
        d.on(Event::Ok, 16 * S);
        assert_eq!(
            d.on(Event::Polled(dist(5, 0)), 20 * S),
            Next::Poll { node: 12, after: S }
        );
        // Past the timeout: resume, unmark, stopped with what was reached.
        assert_eq!(d.on(Event::Polled(dist(5, 0)), 61 * S), Next::Resume(12));
        assert_eq!(d.on(Event::Ok, 61 * S), Next::Unmark);
        let Next::Done(outcome) = d.on(Event::Ok, 61 * S) else {
            panic!("done")
        };
        let Outcome::Stopped {
            resumed,
            reached,
            mark_left,
            ..
        } = &outcome
        else {
            panic!("stopped")
        };
        assert_eq!(
            (resumed, *reached, *mark_left),
            (&Resumed::Yes, held(5, 0), false)
        );
        assert_eq!(
            outcome.to_string(),
            "drain of query node 12 stopped: not empty within --drain-timeout 60s; reached node 12: 8 → 5 segments; node 12 resumed; pod qn-12 kept"
        );
    }

    #[test]
    fn interruptions_at_every_point_leave_nothing_suspended() {
        // Before Milvus was touched: only the mark comes off.
        let mut d = drain(NodeState::Active, held(1, 0));
        d.start();
        assert_eq!(d.on(Event::Stop(StopCause::Interrupted), S), Next::Unmark);
        assert!(matches!(
            d.on(Event::Ok, S),
            Next::Done(Outcome::Stopped {
                resumed: Resumed::NotNeeded,
                ..
            })
        ));
        // While suspending (the answer unknown): resume to be sure.
        let mut d = drain(NodeState::Active, held(1, 0));
        d.start();
        d.on(Event::Ok, S);
        let lost = StopCause::LeaseLost {
            detail: "lease lost".into(),
        };
        assert_eq!(d.on(Event::Stop(lost.clone()), S), Next::Resume(12));
        // A second stop does not restart the sequence.
        assert_eq!(d.on(Event::Stop(StopCause::Interrupted), S), Next::Resume(12));
        assert_eq!(d.on(Event::Ok, S), Next::Unmark);
        let Next::Done(Outcome::Stopped { cause, .. }) = d.on(Event::Ok, S) else {
            panic!("done")
        };
        assert_eq!(cause, lost);
        // Drained but the pod could not be removed (step failed): resume.
        let mut d = polling(held(1, 0));
        assert!(matches!(d.on(Event::Polled(dist(0, 0)), S), Next::Drained { .. }));
        let api = StopCause::Api {
            detail: "patch refused".into(),
        };
        assert_eq!(d.on(Event::Stop(api), S), Next::Resume(12));
    }

    #[test]
    fn a_failed_resume_keeps_the_mark_for_the_next_run() {
        let mut d = polling(held(4, 0));
        assert_eq!(d.on(Event::Stop(StopCause::Interrupted), S), Next::Resume(12));
        let Next::Done(outcome) = d.on(Event::Failed("no answer within 2s".into()), S) else {
            panic!("done")
        };
        assert!(matches!(
            outcome,
            Outcome::Stopped {
                mark_left: true,
                resumed: Resumed::Failed { .. },
                ..
            }
        ));
        assert!(outcome.to_string().contains("could NOT be resumed"));
    }

    #[test]
    fn a_node_suspended_by_someone_else_is_used_and_left_as_found() {
        let mut d = drain(NodeState::Suspended, held(2, 0));
        let Next::Mark(mark) = d.start() else {
            panic!("mark")
        };
        assert!(!mark.suspended_by_run);
        // No suspend of its own.
        assert_eq!(d.on(Event::Ok, S), Next::Transfer(12));
        d.on(Event::Failed("source node is invalid".into()), S);
        assert_eq!(d.warnings().len(), 1);
        // Stopped: no resume, only the mark.
        assert_eq!(d.on(Event::Stop(StopCause::Interrupted), S), Next::Unmark);
    }

    #[test]
    fn a_restarted_node_is_found_again_by_its_pod() {
        let mut d = polling(held(4, 0));
        let gone = Unreachable::Milvus {
            code: 500,
            message: "failed to get query node distribution, node not found[node=12]".into(),
        };
        assert_eq!(d.on(Event::PollFailed(gone), 5 * S), Next::Locate);
        // Re-registered as node 31: drained in its turn, marked again.
        let Next::Mark(mark) = d.on(Event::Located(Some((31, NodeState::Active))), 6 * S) else {
            panic!("mark again")
        };
        assert_eq!(mark.node_id, 31);
        assert_eq!(d.on(Event::Ok, 6 * S), Next::Suspend(31));
        // Gone with nothing at its IP: nothing left to lose.
        let mut d = polling(held(4, 0));
        d.on(
            Event::PollFailed(Unreachable::Milvus {
                code: 500,
                message: "node not found".into(),
            }),
            S,
        );
        assert!(matches!(d.on(Event::Located(None), S), Next::Drained { .. }));
    }

    #[test]
    fn polls_without_answer_stop_after_the_unreachable_limit_or_the_timeout() {
        let mut d = polling(held(4, 0));
        let t = Unreachable::timeout(2 * S);
        let poll = Next::Poll { node: 12, after: S };
        assert_eq!(d.on(Event::PollFailed(t.clone()), 5 * S), poll);
        // An answer in between starts the count again.
        assert_eq!(d.on(Event::Polled(dist(4, 0)), 10 * S), poll);
        assert_eq!(d.on(Event::PollFailed(t.clone()), 11 * S), poll);
        assert_eq!(d.on(Event::PollFailed(t.clone()), 40 * S), poll);
        // 30 s without an answer: stop, resume.
        assert_eq!(d.on(Event::PollFailed(t.clone()), 41 * S), Next::Resume(12));
        d.on(Event::Ok, 41 * S);
        let Next::Done(Outcome::Stopped { cause, .. }) = d.on(Event::Ok, 41 * S) else {
            panic!("done")
        };
        assert_eq!(
            cause.to_string(),
            "Milvus did not answer for 30s while query node 12 was draining (no answer within 2s)"
        );
        // Failing near the timeout: the timeout says the last error.
        let mut d = polling(held(4, 0));
        assert_eq!(d.on(Event::Polled(dist(3, 0)), 10 * S), poll);
        assert_eq!(d.on(Event::Polled(dist(2, 0)), 20 * S), poll);
        assert_eq!(d.on(Event::Polled(dist(1, 0)), 30 * S), poll);
        assert_eq!(d.on(Event::Polled(dist(1, 0)), 40 * S), poll);
        assert_eq!(d.on(Event::PollFailed(t), 61 * S), Next::Resume(12));
        d.on(Event::Ok, 61 * S);
        let Next::Done(Outcome::Stopped { cause, .. }) = d.on(Event::Ok, 61 * S) else {
            panic!("done")
        };
        assert_eq!(
            cause.to_string(),
            "not empty within --drain-timeout 60s (last error: no answer within 2s)"
        );
    }

    #[test]
    fn a_suspend_milvus_refuses_stops_with_its_reason() {
        let mut d = drain(NodeState::Active, held(4, 0));
        d.start();
        d.on(Event::Ok, S);
        assert_eq!(d.on(Event::Failed("HTTP 500: boom".into()), S), Next::Resume(12));
    }

    #[test]
    fn marks_round_trip_and_repairs_resume_only_what_a_run_suspended() {
        let mark = DrainMark {
            node_id: 12,
            run: "h/1/x".into(),
            since: "t".into(),
            suspended_by_run: true,
        };
        let patch = mark_patch(&mark);
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "qn-12", "annotations": patch["metadata"]["annotations"]}}),
        )
        .expect("pod");
        assert_eq!(read_mark(&pod), Some(mark.clone()));
        assert_eq!(unmark_patch()["metadata"]["annotations"][DRAIN_MARK], Value::Null);
        let other = MarkedPod {
            pod: "qn-13".into(),
            mark: DrainMark {
                node_id: 13,
                suspended_by_run: false,
                ..mark.clone()
            },
        };
        let marked = vec![marked_pods(&[&pod]).remove(0), other];
        let nodes = [node(12, NodeState::Suspended), node(13, NodeState::Suspended)];
        assert_eq!(
            repairs(&marked, Some(&nodes)),
            [
                Repair::Resume {
                    node: 12,
                    pod: "qn-12".into()
                },
                // Suspended by someone else before the run: left so.
                Repair::Unmark { pod: "qn-13".into() }
            ]
        );
        // Already active again: only the mark.
        assert_eq!(
            repairs(&marked[..1], Some(&[node(12, NodeState::Active)])),
            [Repair::Unmark { pod: "qn-12".into() }]
        );
        // Milvus unreachable: the marks stay for a run that can see.
        assert_eq!(repairs(&marked, None), []);
    }

    #[test]
    fn plan_lines_for_leaving_pods() {
        let nodes = [node(12, NodeState::Active), node(13, NodeState::Stopping)];
        let mut held_map = BTreeMap::new();
        held_map.insert(12, Ok(held(8, 2)));
        held_map.insert(13, Err(Unreachable::timeout(2 * S)));
        let l = leaving_nodes(
            &["qn-12".into(), "qn-13".into(), "qn-99".into()],
            Some(&nodes),
            &held_map,
        );
        assert_eq!((l[0].step, l[0].node, l[0].held), (1, Some(12), Some(held(8, 2))));
        assert!(l[1].note.as_deref().is_some_and(|n| n.contains("unknown")));
        assert!(l[2].note.as_deref().is_some_and(|n| n.contains("no node")));
        let blind = leaving_nodes(&["qn-12".into()], None, &BTreeMap::new());
        assert_eq!((blind[0].node, &blind[0].note), (None, &None));
        assert_eq!(
            Removal::for_rules(ControllerRules {
                deletion_cost: false,
                logarithmic: false
            }),
            Removal::DeleteThenLower
        );
    }
}
