//! What `status` shows of Milvus's own view: each component's `/healthz`,
//! QueryCoord's query nodes (ID, state, what they hold, their pod), the
//! balance, and NOTEs for what someone left behind. Also which requests
//! that costs, bounded per instance.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::api::{Balance, Health, NodeInfo, NodeState, Unreachable};
use super::drain::{Held, MarkedPod};
use super::nodes::{MappedNode, MilvusPod, map_nodes};
use crate::core::components::{self, Role};
use crate::core::lock;

/// The bounds on what `status` asks Milvus, per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Each request's own timeout (through the API server).
    pub per_request: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// `/healthz` requests: pods asked per component, at most.
    pub health_per_component: usize,
    /// `distribution/get` requests: query nodes counted, at most.
    pub distributions: usize,
    /// All of it for one instance: what has not answered by then is shown
    /// as unknown.
    pub overall: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            per_request: Duration::from_secs(2),
            concurrency: 8,
            health_per_component: 3,
            distributions: 32,
            overall: Duration::from_secs(4),
        }
    }
}

/// The pods whose `/healthz` is asked: up to `health_per_component` running
/// pods of each component, ready ones first (a not-ready pod's health is the
/// likely interesting one too, but readiness already tells it).
pub fn health_targets(pods: &[MilvusPod], budget: &Budget) -> Vec<MilvusPod> {
    let mut by_component: BTreeMap<&str, Vec<&MilvusPod>> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.askable()) {
        by_component.entry(&p.component).or_default().push(p);
    }
    by_component
        .into_values()
        .flat_map(|mut ps| {
            ps.sort_by(|a, b| b.ready.cmp(&a.ready).then(a.name.cmp(&b.name)));
            ps.into_iter().take(budget.health_per_component).cloned()
        })
        .collect()
}

/// The pod that answers the QueryCoord management routes: a ready proxy
/// (only the Proxy registers them: internal/proxy/management.go [8af3285]
/// l.39–90), or the standalone pod, which runs a proxy too.
pub fn management_pods(pods: &[MilvusPod]) -> Vec<MilvusPod> {
    let mut out: Vec<MilvusPod> = pods
        .iter()
        .filter(|p| p.askable() && matches!(p.component.as_str(), "proxy" | "standalone"))
        .cloned()
        .collect();
    out.sort_by(|a, b| b.ready.cmp(&a.ready).then(a.name.cmp(&b.name)));
    out
}

/// The nodes whose distribution `status` counts: query nodes first (the
/// ones a scale-in drains), up to the budget.
pub fn distribution_targets(mapped: &[MappedNode], budget: &Budget) -> Vec<i64> {
    let mut ids: Vec<(bool, i64)> = mapped
        .iter()
        .map(|m| (m.component.as_deref() != Some("queryNode"), m.id))
        .collect();
    ids.sort();
    ids.into_iter()
        .take(budget.distributions)
        .map(|(_, id)| id)
        .collect()
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentHealth {
    pub component: String,
    pub asked: usize,
    pub healthy: usize,
    /// Per pod, only those not healthy (`pod: reason`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One node of QueryCoord, with what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryNodeView {
    #[serde(flatten)]
    pub node: MappedNode,
    /// Unknown when not asked (budget) or not answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// The run draining it, from the pod's mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained_by: Option<String>,
}

/// Milvus's view of one instance, as `status` shows it and `-o json|yaml`
/// carries it (the `milvus` field of the instance document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MilvusView {
    /// Set when QueryCoord could not be asked at all: the one line
    /// `status` prints instead of the node table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<Unreachable>,
    pub components: Vec<ComponentHealth>,
    pub query_nodes: Vec<QueryNodeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Requests it cost (for `docs/benchmarks.md`).
    pub requests: usize,
}

/// Everything gathered for one instance.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// The instance's Milvus pods (components with a metrics port).
    pub pods: Vec<MilvusPod>,
    /// `/healthz` per asked pod.
    pub health: Vec<(MilvusPod, Health)>,
    /// `node/list` through a management pod; `None` when not asked.
    pub nodes: Option<Result<Vec<NodeInfo>, Unreachable>>,
    pub held: BTreeMap<i64, Result<Held, Unreachable>>,
    pub balance: Option<Result<Balance, Unreachable>>,
    /// Pods carrying a drain mark.
    pub marked: Vec<MarkedPod>,
    /// The run holding the instance's Lease right now, if one does.
    pub live_run: Option<String>,
    pub requests: usize,
}

pub fn view(g: &Gathered) -> MilvusView {
    let mut components: BTreeMap<String, ComponentHealth> = BTreeMap::new();
    for (pod, h) in &g.health {
        let c = components
            .entry(pod.component.clone())
            .or_insert_with(|| ComponentHealth {
                component: pod.component.clone(),
                asked: 0,
                healthy: 0,
                problems: Vec::new(),
            });
        c.asked += 1;
        match h {
            Health::Healthy => c.healthy += 1,
            Health::Unhealthy { reason } => c.problems.push(format!("{}: {reason}", pod.name)),
            Health::Unknown { why } => c.problems.push(format!("{}: {why}", pod.name)),
        }
    }
    let mut notes = Vec::new();
    let (mapped, unreachable) = match &g.nodes {
        Some(Ok(nodes)) => (map_nodes(nodes, &g.pods), None),
        Some(Err(e)) => (Vec::new(), Some(e.clone())),
        None => (Vec::new(), None),
    };
    let balance = match &g.balance {
        Some(Ok(b)) => Some(*b),
        _ => None,
    };
    if balance == Some(Balance::Suspended) {
        notes.push(
            "QueryCoord's balance is suspended (kubectl-milvus never suspends it): stopping and suspended query nodes are not emptied and segments stay where they are; whoever suspended it should resume it (POST /management/querycoord/balance/resume on a proxy's metrics port)"
                .to_string(),
        );
    }
    let query_nodes: Vec<QueryNodeView> = mapped
        .iter()
        .map(|n| {
            let mark = g
                .marked
                .iter()
                .find(|m| m.mark.node_id == n.id && n.pod.as_deref() == Some(m.pod.as_str()));
            QueryNodeView {
                node: n.clone(),
                held: g.held.get(&n.id).and_then(|r| r.as_ref().ok().copied()),
                drained_by: mark.map(|m| lock::readable(&m.mark.run).to_string()),
            }
        })
        .collect();
    for q in &query_nodes {
        notes.extend(node_note(q, &g.marked, g.live_run.as_deref()));
    }
    // Marks whose node QueryCoord no longer lists under that pod: harmless,
    // but a run should take them off.
    if unreachable.is_none() && g.nodes.is_some() {
        for m in &g.marked {
            let listed = mapped
                .iter()
                .any(|n| n.id == m.mark.node_id && n.pod.as_deref() == Some(m.pod.as_str()));
            if !listed && g.live_run.as_deref() != Some(m.mark.run.as_str()) {
                notes.push(format!(
                    "pod {} carries a drain mark of a kubectl milvus scale run that did not finish ({}); its node {} is gone, nothing is suspended: the next scale takes the mark off",
                    m.pod,
                    lock::readable(&m.mark.run),
                    m.mark.node_id
                ));
            }
        }
    }
    MilvusView {
        unreachable,
        components: components.into_values().collect(),
        query_nodes,
        balance,
        notes,
        requests: g.requests,
    }
}

fn node_note(q: &QueryNodeView, marked: &[MarkedPod], live_run: Option<&str>) -> Option<String> {
    let n = &q.node;
    let pod = n.pod.as_deref();
    let mark = marked
        .iter()
        .find(|m| m.mark.node_id == n.id && pod == Some(m.pod.as_str()));
    match (&n.state, mark) {
        // One read cannot tell a live holder of the lock from a killed one
        // (its renewals are by its own clock): say both.
        (_, Some(m)) if live_run == Some(m.mark.run.as_str()) => Some(format!(
            "query node {} (pod {}) is being drained by kubectl milvus scale on {}, which holds the release's lock: at work, or killed without giving it up; a scale run takes over once the lock has gone {}s unrenewed and resumes the node first",
            n.id,
            m.pod,
            lock::readable(&m.mark.run),
            lock::LEASE_DURATION.as_secs()
        )),
        (NodeState::Suspended, Some(m)) if m.mark.suspended_by_run => Some(format!(
            "query node {} (pod {}) was suspended by a kubectl milvus scale run that did not finish ({}, since {}): run the scale again (it resumes the node first), or resume it with POST /management/querycoord/node/resume node_id={}",
            n.id,
            m.pod,
            lock::readable(&m.mark.run),
            m.mark.since,
            n.id
        )),
        (NodeState::Suspended, _) => Some(format!(
            "query node {} ({}) is suspended, not by kubectl-milvus: it takes no new segments and QueryCoord empties it; if nobody is draining it, resume it with POST /management/querycoord/node/resume node_id={}",
            n.id,
            pod.map_or_else(|| format!("address {}", n.address), |p| format!("pod {p}")),
            n.id
        )),
        (_, None) if pod.is_none() => Some(format!(
            "query node {} at {} matches no running pod of this instance: a node whose pod is gone stays listed until its session expires",
            n.id, n.address
        )),
        _ => None,
    }
}

/// The pods whose `/healthz` is part of "the service is healthy" between
/// scale-in steps: the proxies (clients' way in) and the coordinators (or
/// the standalone pod, which is both).
pub fn gate_targets(pods: &[MilvusPod]) -> Vec<MilvusPod> {
    pods.iter()
        .filter(|p| p.askable())
        .filter(|p| {
            matches!(p.component.as_str(), "proxy" | "standalone")
                || components::by_user_name(&p.component).is_some_and(|c| c.role == Role::Coordinator)
        })
        .cloned()
        .collect()
}

/// Milvus's verdict between steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Healthy,
    /// `pod: reason` per pod that is not.
    Unhealthy(Vec<String>),
    /// Nothing answered: the run warns once and goes on as without Milvus.
    Unreachable(Unreachable),
}

/// Healthy when every asked pod says so. When some answer and others do
/// not, the silent ones count as unhealthy (Milvus is reachable, those pods
/// are not serving); when none answers, Milvus is unreachable.
pub fn gate(results: &[(MilvusPod, Health)]) -> Gate {
    if results.is_empty() {
        return Gate::Unreachable(Unreachable::NoPod {
            component: "proxy or coordinator".into(),
        });
    }
    let answered = results.iter().any(|(_, h)| !matches!(h, Health::Unknown { .. }));
    if !answered && let Some((_, Health::Unknown { why })) = results.first() {
        return Gate::Unreachable(why.clone());
    }
    let bad: Vec<String> = results
        .iter()
        .filter_map(|(p, h)| match h {
            Health::Healthy => None,
            Health::Unhealthy { reason } => Some(format!("{}: {reason}", p.name)),
            Health::Unknown { why } => Some(format!("{}: {why}", p.name)),
        })
        .collect();
    if bad.is_empty() {
        Gate::Healthy
    } else {
        Gate::Unhealthy(bad)
    }
}

/// The one line `status` (and `plan`) print when Milvus could not be asked.
pub fn unreachable_line(why: &Unreachable) -> String {
    format!("Milvus's own view is not shown: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::milvus::drain::DrainMark;
    use crate::core::milvus::fixtures::{gathered, pod};

    #[test]
    fn the_view_counts_health_nodes_and_what_they_hold() {
        let v = view(&gathered());
        assert_eq!(v.components.len(), 2);
        let qn = v
            .components
            .iter()
            .find(|c| c.component == "queryNode")
            .expect("qn");
        assert_eq!((qn.asked, qn.healthy, qn.problems.len()), (2, 1, 1));
        assert_eq!(v.query_nodes.len(), 3);
        assert_eq!(
            v.query_nodes[0].held,
            Some(Held {
                segments: 8,
                channels: 2
            })
        );
        assert_eq!(v.query_nodes[1].held, None, "its count timed out");
        assert_eq!(v.query_nodes[2].node.component.as_deref(), Some("streamingNode"));
        // Suspended by someone else: a NOTE saying how to resume.
        assert_eq!(v.notes.len(), 1);
        assert!(v.notes[0].contains("not by kubectl-milvus"), "{}", v.notes[0]);
    }

    #[test]
    fn a_node_left_suspended_by_a_killed_run_is_a_note_naming_the_repair() {
        let mut g = gathered();
        g.marked = vec![MarkedPod {
            pod: "qn-b".into(),
            mark: DrainMark {
                node_id: 12,
                run: "host/41/abc".into(),
                since: "2026-12-05T12:00:00Z".into(),
                suspended_by_run: true,
            },
        }];
        let v = view(&g);
        assert!(v.notes[0].contains("did not finish (host/41"), "{}", v.notes[0]);
        assert_eq!(v.query_nodes[1].drained_by.as_deref(), Some("host/41"));
        // While that run holds the lock, it may be at work or dead: the NOTE
        // says both, and names no manual resume.
        g.live_run = Some("host/41/abc".into());
        let notes = view(&g).notes;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("at work, or killed without giving it up"),
            "{}",
            notes[0]
        );
        assert!(!notes[0].contains("POST"), "{}", notes[0]);
    }

    #[test]
    fn balance_suspended_and_unreachable_querycoord() {
        let mut g = gathered();
        g.balance = Some(Ok(Balance::Suspended));
        assert!(view(&g).notes.iter().any(|n| n.contains("balance is suspended")));
        g.nodes = Some(Err(Unreachable::NoRoute {
            path: "/management/querycoord/node/list".into(),
        }));
        let v = view(&g);
        assert!(v.query_nodes.is_empty());
        assert_eq!(
            unreachable_line(v.unreachable.as_ref().expect("why")),
            "Milvus's own view is not shown: Milvus does not serve /management/querycoord/node/list (a release older than this route)"
        );
    }

    #[test]
    fn the_gate_asks_proxies_and_coordinators_and_needs_all_healthy() {
        let pods = [
            pod("proxy-0", "proxy", "10.0.0.2"),
            pod("mixcoord-0", "mixCoordinator", "10.0.0.3"),
            pod("qn-a", "queryNode", "10.0.0.5"),
        ];
        let t = gate_targets(&pods);
        assert_eq!(
            t.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["proxy-0", "mixcoord-0"]
        );
        let ok = |p: &MilvusPod| (p.clone(), Health::Healthy);
        assert_eq!(gate(&[ok(&t[0]), ok(&t[1])]), Gate::Healthy);
        let sick = (
            t[1].clone(),
            Health::Unhealthy {
                reason: "Not all components are healthy, 0/1".into(),
            },
        );
        assert_eq!(
            gate(&[ok(&t[0]), sick]),
            Gate::Unhealthy(vec!["mixcoord-0: Not all components are healthy, 0/1".into()])
        );
        let silent = |p: &MilvusPod| {
            (
                p.clone(),
                Health::Unknown {
                    why: Unreachable::timeout(Duration::from_secs(2)),
                },
            )
        };
        assert!(matches!(gate(&[ok(&t[0]), silent(&t[1])]), Gate::Unhealthy(_)));
        assert!(matches!(
            gate(&[silent(&t[0]), silent(&t[1])]),
            Gate::Unreachable(_)
        ));
        assert!(matches!(gate(&[]), Gate::Unreachable(_)));
    }

    #[test]
    fn requests_are_bounded_per_instance() {
        let mut pods: Vec<MilvusPod> = (0..20)
            .map(|i| pod(&format!("qn-{i:02}"), "queryNode", "10.0.1.1"))
            .collect();
        pods.push(pod("proxy-0", "proxy", "10.0.0.2"));
        pods.push(MilvusPod {
            running: false,
            ..pod("proxy-1", "proxy", "10.0.0.3")
        });
        let b = Budget::default();
        let t = health_targets(&pods, &b);
        assert_eq!(t.len(), 4, "3 query nodes + the one running proxy");
        assert_eq!(management_pods(&pods).len(), 1);
        let mapped: Vec<MappedNode> = (0..40)
            .map(|i| MappedNode {
                id: i,
                address: String::new(),
                state: NodeState::Active,
                pod: None,
                component: Some(if i % 2 == 0 { "queryNode" } else { "streamingNode" }.into()),
            })
            .collect();
        let d = distribution_targets(&mapped, &b);
        assert_eq!(d.len(), 32);
        assert!(d[..20].iter().all(|id| id % 2 == 0), "query nodes first");
    }
}
