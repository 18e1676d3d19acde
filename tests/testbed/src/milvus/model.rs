//! A small QueryCoord of one Milvus instance: which query node holds which
//! sealed segments and DML channels, and how they move. Pure (time is passed
//! in); [`super`] drives it from pod events and a tick loop.
//!
//! Rules (Milvus sources in tests/testbed/README.md, "Milvus stand-in"):
//! - Every Milvus pod that starts takes the next server ID of its instance
//!   (sessions draw IDs from one counter); pods carrying a query node
//!   (querynode, streamingnode's embedded one, standalone) register it with
//!   address `<pod IP>:21123` in state `active`.
//! - A node is read-only (nothing is loaded onto it, the balancer empties it)
//!   while `suspended` (node/suspend) or `stopping` (its pod is terminating).
//!   Emptying RO nodes and evening out active ones is the balance checker's
//!   job: it pauses while balance is suspended. Loading segments that no node
//!   holds (first load, or after a loss) never pauses.
//! - Moves take `move_ms` each, one at a time per source node.
//! - A node that goes away while holding segments or channels loses them:
//!   recorded in [`Loss`], then they are reloaded onto the remaining nodes.
//! - With streaming nodes (2.6), channels live on streaming nodes' embedded
//!   query nodes and sealed segments on the others.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Port a query node registers in its session (`queryNode.port`).
pub const QUERY_NODE_PORT: u16 = 21123;
/// First segment ID: real ones are large int64s (beyond 2^53, why Milvus
/// sends them as strings).
const SEGMENT_ID_BASE: i64 = 453_718_238_469_834_000;

/// What kind of process holds a query node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeKind {
    QueryNode,
    /// A 2.6 streaming node's embedded query node.
    StreamingNode,
    Standalone,
}

/// Lifecycle state of a node in QueryCoord's node manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeState {
    Active,
    Stopping,
}

/// One query node as QueryCoord sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: i64,
    pub address: String,
    pub pod: String,
    pub kind: NodeKind,
    pub state: NodeState,
    pub suspended: bool,
    pub segments: BTreeSet<i64>,
    pub channels: BTreeSet<String>,
}

impl Node {
    /// Read-only: gets nothing new, emptied by the balancer.
    pub fn read_only(&self) -> bool {
        self.suspended || self.state == NodeState::Stopping
    }
    fn holds(&self, item: &Item) -> bool {
        match item {
            Item::Segment(s) => self.segments.contains(s),
            Item::Channel(c) => self.channels.contains(c),
        }
    }
    fn count(&self, kind: ItemKind) -> usize {
        match kind {
            ItemKind::Segment => self.segments.len(),
            ItemKind::Channel => self.channels.len(),
        }
    }
}

/// Segments and channels a node held when it went away.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loss {
    pub node_id: i64,
    pub pod: String,
    pub address: String,
    pub segments: Vec<i64>,
    pub channels: Vec<String>,
    /// Unix milliseconds.
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Item {
    Segment(i64),
    Channel(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Segment,
    Channel,
}

impl Item {
    fn kind(&self) -> ItemKind {
        match self {
            Item::Segment(_) => ItemKind::Segment,
            Item::Channel(_) => ItemKind::Channel,
        }
    }
}

/// A load (`from: None`) or move in progress or queued.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub item: Item,
    pub from: Option<i64>,
    pub to: i64,
    #[serde(skip)]
    started: Option<Instant>,
}

/// Behaviour knobs the model reads on every step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    pub move_time: Duration,
    /// Moves off a node (transfers, drains, balancing) never finish.
    pub stall_moves: bool,
}

/// Why a management request was refused (the text Milvus puts after the
/// route's "failed to …, ").
pub type Refusal = String;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    next_server_id: i64,
    next_segment: i64,
    next_channel: u32,
    collection_id: i64,
    pub nodes: BTreeMap<i64, Node>,
    /// Server IDs of every Milvus pod of the instance, by pod name.
    pub server_ids: BTreeMap<String, i64>,
    pub balance_suspended: bool,
    pub unplaced: BTreeSet<Item>,
    pub moves: Vec<Move>,
    pub lost: Vec<Loss>,
}

impl Model {
    pub fn new() -> Model {
        Model {
            next_server_id: 1,
            next_segment: SEGMENT_ID_BASE,
            collection_id: 453_718_238_469_800_001,
            ..Model::default()
        }
    }

    /// The query node of a pod.
    pub fn node_of_pod(&self, pod: &str) -> Option<&Node> {
        self.nodes.values().find(|n| n.pod == pod)
    }

    /// Sealed segments held, by pod.
    pub fn segments_by_pod(&self) -> BTreeMap<String, usize> {
        self.nodes
            .values()
            .map(|n| (n.pod.clone(), n.segments.len()))
            .collect()
    }

    /// IDs of suspended nodes.
    pub fn suspended_nodes(&self) -> Vec<i64> {
        self.nodes
            .values()
            .filter(|n| n.suspended)
            .map(|n| n.id)
            .collect()
    }

    /// Every segment lost so far (a segment lost twice appears twice).
    pub fn lost_segments(&self) -> Vec<i64> {
        self.lost
            .iter()
            .flat_map(|l| l.segments.iter().copied())
            .collect()
    }

    /// Is a collection loaded (anything to hold)? Replicas exist only then.
    pub fn loaded(&self) -> bool {
        self.next_segment > SEGMENT_ID_BASE || self.next_channel > 0
    }

    /// Sealed segments and channels ever created (loaded or not).
    pub fn seeded(&self) -> (u32, u32) {
        ((self.next_segment - SEGMENT_ID_BASE) as u32, self.next_channel)
    }

    /// Create `segments` sealed segments and `channels` DML channels; QueryCoord
    /// loads them onto the nodes.
    pub fn seed(&mut self, segments: u32, channels: u32) {
        for _ in 0..segments {
            self.unplaced.insert(Item::Segment(self.next_segment));
            self.next_segment += 1;
        }
        for _ in 0..channels {
            let name = format!(
                "by-dev-rootcoord-dml_{}_{}v0",
                self.next_channel, self.collection_id
            );
            self.unplaced.insert(Item::Channel(name));
            self.next_channel += 1;
        }
    }

    /// A Milvus pod started: its server ID (a new one for every start, even
    /// of a pod name seen before), and its query node if it has one.
    pub fn pod_started(&mut self, pod: &str, ip: &str, kind: Option<NodeKind>) -> i64 {
        let id = self.next_server_id;
        self.next_server_id += 1;
        self.server_ids.insert(pod.to_string(), id);
        if let Some(kind) = kind {
            self.nodes.insert(
                id,
                Node {
                    id,
                    address: format!("{ip}:{QUERY_NODE_PORT}"),
                    pod: pod.to_string(),
                    kind,
                    state: NodeState::Active,
                    suspended: false,
                    segments: BTreeSet::new(),
                    channels: BTreeSet::new(),
                },
            );
        }
        id
    }

    /// The pod of server `id` began its graceful stop: its query node is
    /// `stopping`.
    pub fn pod_stopping(&mut self, id: i64) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.state = NodeState::Stopping;
        }
    }

    /// The pod of server `id` is gone: its node leaves; what it still held
    /// is lost. (By ID: a new pod of the same name may already run.)
    pub fn pod_gone(&mut self, id: i64, now_ms: i64) {
        self.server_ids.retain(|_, v| *v != id);
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        self.moves.retain(|m| m.to != id && m.from != Some(id));
        if node.segments.is_empty() && node.channels.is_empty() {
            return;
        }
        self.unplaced
            .extend(node.segments.iter().copied().map(Item::Segment));
        self.unplaced
            .extend(node.channels.iter().cloned().map(Item::Channel));
        self.lost.push(Loss {
            node_id: id,
            pod: node.pod,
            address: node.address,
            segments: node.segments.into_iter().collect(),
            channels: node.channels.into_iter().collect(),
            at_ms: now_ms,
        });
    }

    pub fn streaming(&self) -> bool {
        self.nodes.values().any(|n| n.kind == NodeKind::StreamingNode)
    }

    /// May `n` hold `kind`? With streaming nodes, channels live on those and
    /// segments on the others.
    fn fits(&self, n: &Node, kind: ItemKind) -> bool {
        match (self.streaming(), kind) {
            (false, _) => true,
            (true, ItemKind::Channel) => n.kind == NodeKind::StreamingNode,
            (true, ItemKind::Segment) => n.kind != NodeKind::StreamingNode,
        }
    }

    /// Nodes that may receive `kind` (a replica's read-write nodes that fit).
    fn eligible(&self, kind: ItemKind) -> Vec<i64> {
        self.nodes
            .values()
            .filter(|n| !n.read_only() && self.fits(n, kind))
            .map(|n| n.id)
            .collect()
    }

    /// Count of `kind` on a node, including moves planned onto it.
    fn load_of(&self, id: i64, kind: ItemKind) -> usize {
        let held = self.nodes.get(&id).map_or(0, |n| n.count(kind));
        let incoming = self
            .moves
            .iter()
            .filter(|m| m.to == id && m.item.kind() == kind)
            .count();
        held + incoming
    }

    fn least_loaded(&self, among: &[i64], kind: ItemKind) -> Option<i64> {
        among
            .iter()
            .copied()
            .min_by_key(|id| (self.load_of(*id, kind), *id))
    }

    fn moving(&self, item: &Item) -> bool {
        self.moves.iter().any(|m| &m.item == item)
    }

    /// Does the model have anything to do on its own?
    pub fn busy(&self) -> bool {
        !self.moves.is_empty()
            || (!self.unplaced.is_empty()
                && self.unplaced.iter().any(|i| !self.eligible(i.kind()).is_empty()))
            || (!self.balance_suspended && !self.balancer_plan().is_empty())
    }

    /// One step: finish due moves, plan what QueryCoord would do next, start
    /// queued moves (one per source node at a time).
    pub fn tick(&mut self, now: Instant, t: Tuning) {
        // Finish.
        let mut done = Vec::new();
        for (i, m) in self.moves.iter().enumerate() {
            let stalled = t.stall_moves && m.from.is_some();
            if let Some(s) = m.started
                && !stalled
                && now.duration_since(s) >= t.move_time
            {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let m = self.moves.remove(i);
            self.apply(m);
        }
        // Plan: loads of what no node holds.
        let unplaced: Vec<Item> = self
            .unplaced
            .iter()
            .filter(|i| !self.moving(i))
            .cloned()
            .collect();
        for item in unplaced {
            let eligible = self.eligible(item.kind());
            if let Some(to) = self.least_loaded(&eligible, item.kind()) {
                self.moves.push(Move {
                    item,
                    from: None,
                    to,
                    started: None,
                });
            }
        }
        // Plan: the balance checker (drain read-only nodes, even out).
        if !self.balance_suspended {
            let plan = self.balancer_plan();
            self.moves.extend(plan);
        }
        // Start.
        let mut busy_sources: BTreeSet<Option<i64>> = self
            .moves
            .iter()
            .filter(|m| m.started.is_some() && m.from.is_some())
            .map(|m| m.from)
            .collect();
        for m in self.moves.iter_mut().filter(|m| m.started.is_none()) {
            if m.from.is_none() || busy_sources.insert(m.from) {
                m.started = Some(now);
            }
        }
    }

    /// The balancer's next moves: one off each node that holds what it
    /// should not (read-only nodes: anything; a channel loaded on a query node
    /// before a streaming node came up) and has no move under way; when no
    /// node is being emptied, one item from the fullest to the emptiest
    /// active node if they differ by more than one.
    fn balancer_plan(&self) -> Vec<Move> {
        let sources: BTreeSet<i64> = self.moves.iter().filter_map(|m| m.from).collect();
        let mut plan = Vec::new();
        let mut draining = false;
        for n in self.nodes.values() {
            let misplaced: Vec<Item> = n
                .segments
                .iter()
                .map(|s| Item::Segment(*s))
                .chain(n.channels.iter().cloned().map(Item::Channel))
                .filter(|i| n.read_only() || !self.fits(n, i.kind()))
                .collect();
            draining |= !misplaced.is_empty();
            if sources.contains(&n.id) {
                continue;
            }
            let next = misplaced.into_iter().find_map(|item| {
                let to = self.least_loaded(&self.eligible(item.kind()), item.kind())?;
                Some(Move {
                    item,
                    from: Some(n.id),
                    to,
                    started: None,
                })
            });
            plan.extend(next);
        }
        if draining || !sources.is_empty() {
            return plan;
        }
        for kind in [ItemKind::Segment, ItemKind::Channel] {
            let eligible = self.eligible(kind);
            let (Some(max), Some(min)) = (
                eligible
                    .iter()
                    .copied()
                    .max_by_key(|id| (self.load_of(*id, kind), std::cmp::Reverse(*id))),
                self.least_loaded(&eligible, kind),
            ) else {
                continue;
            };
            if self.load_of(max, kind) > self.load_of(min, kind) + 1 {
                let node = &self.nodes[&max];
                let item = match kind {
                    ItemKind::Segment => node.segments.iter().next_back().map(|s| Item::Segment(*s)),
                    ItemKind::Channel => node.channels.iter().next_back().cloned().map(Item::Channel),
                };
                if let Some(item) = item {
                    plan.push(Move {
                        item,
                        from: Some(max),
                        to: min,
                        started: None,
                    });
                    break;
                }
            }
        }
        plan
    }

    fn apply(&mut self, m: Move) {
        if !self.nodes.contains_key(&m.to) {
            return;
        }
        match m.from {
            None => {
                if !self.unplaced.remove(&m.item) {
                    return;
                }
            }
            Some(from) => {
                let Some(src) = self.nodes.get_mut(&from) else {
                    return;
                };
                let held = match &m.item {
                    Item::Segment(s) => src.segments.remove(s),
                    Item::Channel(c) => src.channels.remove(c),
                };
                if !held {
                    return;
                }
            }
        }
        if let Some(dst) = self.nodes.get_mut(&m.to) {
            match m.item {
                Item::Segment(s) => dst.segments.insert(s),
                Item::Channel(c) => dst.channels.insert(c),
            };
        }
    }

    // ------------------------------------------------- management calls ----

    /// `SuspendNode`: the node becomes read-only.
    pub fn suspend_node(&mut self, id: i64) -> Result<(), Refusal> {
        let n = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| format!("failed to suspend query node: node not found[node={id}]"))?;
        n.suspended = true;
        Ok(())
    }

    /// `ResumeNode`: read-write again (embedded streaming query nodes refuse).
    pub fn resume_node(&mut self, id: i64) -> Result<(), Refusal> {
        let n = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| format!("failed to resume query node: node not found[node={id}]"))?;
        if n.kind == NodeKind::StreamingNode {
            return Err("embedded query node in streaming node can't be resumed: invalid parameter".into());
        }
        n.suspended = false;
        Ok(())
    }

    fn check_source(&self, id: i64) -> Result<(), Refusal> {
        match self.nodes.get(&id) {
            Some(n) if n.state != NodeState::Stopping => Ok(()),
            _ => Err(format!(
                "the source node is invalid: node not available[node={id}]"
            )),
        }
    }

    /// `TransferSegment` / `TransferChannel`: queue moves off `source`.
    pub fn transfer(
        &mut self,
        kind: ItemKind,
        source: i64,
        target: Option<i64>,
        only: Option<Item>,
    ) -> Result<(), Refusal> {
        self.check_source(source)?;
        if !self.loaded() {
            // No replica holds the node: nothing to do, and Milvus says OK.
            return Ok(());
        }
        let dst: Vec<i64> = match target {
            None => self
                .eligible(kind)
                .into_iter()
                .filter(|id| *id != source)
                .collect(),
            Some(t) => {
                match self.nodes.get(&t) {
                    Some(n) if n.state != NodeState::Stopping => {
                        if kind == ItemKind::Segment && n.kind == NodeKind::StreamingNode {
                            return Err("embedded query node in streaming node can't be the destination of transfer segment: invalid parameter".into());
                        }
                    }
                    // Milvus names the source here (ops_services.go).
                    _ => {
                        return Err(format!(
                            "the target node is invalid: node not available[node={source}]"
                        ));
                    }
                }
                if t == source { vec![] } else { vec![t] }
            }
        };
        let src = &self.nodes[&source];
        let items: Vec<Item> = match only {
            None => match kind {
                ItemKind::Segment => src.segments.iter().map(|s| Item::Segment(*s)).collect(),
                ItemKind::Channel => src.channels.iter().cloned().map(Item::Channel).collect(),
            },
            Some(item) => {
                if !src.holds(&item) {
                    return Err(match item {
                        Item::Segment(s) => {
                            format!("segment not found in source node: segment not found[segment={s}]")
                        }
                        Item::Channel(c) => {
                            format!("channel not found in source node: channel not found[channel={c}]")
                        }
                    });
                }
                vec![item]
            }
        };
        for item in items {
            if self.moving(&item) {
                continue;
            }
            if let Some(to) = self.least_loaded(&dst, kind) {
                self.moves.push(Move {
                    item,
                    from: Some(source),
                    to,
                    started: None,
                });
            }
        }
        Ok(())
    }

    /// `CheckQueryNodeDistribution`: does `target` hold all `source` holds?
    pub fn check_distribution(&self, source: i64, target: i64) -> Result<(), Refusal> {
        let src = self
            .nodes
            .get(&source)
            .ok_or_else(|| format!("source node not found: node not found[node={source}]"))?;
        let dst = self
            .nodes
            .get(&target)
            .ok_or_else(|| format!("target node not found: node not found[node={target}]"))?;
        if let Some(c) = src.channels.iter().find(|c| !dst.channels.contains(*c)) {
            return Err(format!("channel lack[channel={c}]"));
        }
        if let Some(s) = src.segments.iter().find(|s| !dst.segments.contains(*s)) {
            return Err(format!("segment lack[segment={s}]"));
        }
        Ok(())
    }

    /// `GetQueryNodeDistribution`.
    pub fn distribution(&self, id: i64) -> Result<&Node, Refusal> {
        self.nodes
            .get(&id)
            .ok_or_else(|| format!("failed to get query node distribution: node not found[node={id}]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tuning = Tuning {
        move_time: Duration::from_millis(10),
        stall_moves: false,
    };

    fn settle(m: &mut Model) -> Instant {
        let mut now = Instant::now();
        for _ in 0..10_000 {
            m.tick(now, T);
            if !m.busy() {
                return now;
            }
            now += Duration::from_millis(10);
        }
        panic!("model never settled: {m:?}");
    }

    fn counts(m: &Model) -> Vec<usize> {
        m.nodes.values().map(|n| n.segments.len()).collect()
    }

    #[test]
    fn loads_then_balances_onto_a_new_node() {
        let mut m = Model::new();
        m.pod_started("coord", "198.18.0.1", None);
        let a = m.pod_started("qn-a", "198.18.0.2", Some(NodeKind::QueryNode));
        let b = m.pod_started("qn-b", "198.18.0.3", Some(NodeKind::QueryNode));
        assert_eq!(
            (a, b),
            (2, 3),
            "sequential server IDs, shared with other components"
        );
        m.seed(12, 2);
        settle(&mut m);
        assert_eq!(counts(&m), vec![6, 6]);
        m.pod_started("qn-c", "198.18.0.4", Some(NodeKind::QueryNode));
        settle(&mut m);
        assert_eq!(counts(&m), vec![4, 4, 4]);
        assert_eq!(m.nodes[&a].address, "198.18.0.2:21123");
    }

    #[test]
    fn suspended_node_is_emptied_only_while_balance_runs() {
        let mut m = Model::new();
        let a = m.pod_started("qn-a", "198.18.0.2", Some(NodeKind::QueryNode));
        m.pod_started("qn-b", "198.18.0.3", Some(NodeKind::QueryNode));
        m.seed(10, 2);
        settle(&mut m);
        m.balance_suspended = true;
        m.suspend_node(a).unwrap();
        assert_eq!(m.suspended_nodes(), vec![a]);
        settle(&mut m);
        assert!(
            !m.nodes[&a].segments.is_empty(),
            "balance suspended: nothing moves by itself"
        );
        m.transfer(ItemKind::Segment, a, None, None).unwrap();
        m.transfer(ItemKind::Channel, a, None, None).unwrap();
        settle(&mut m);
        assert!(m.nodes[&a].segments.is_empty() && m.nodes[&a].channels.is_empty());
        m.resume_node(a).unwrap();
        m.balance_suspended = false;
        settle(&mut m);
        assert_eq!(counts(&m), vec![5, 5]);
    }

    #[test]
    fn a_removed_node_loses_what_it_held_and_it_is_reloaded() {
        let mut m = Model::new();
        m.pod_started("qn-a", "198.18.0.2", Some(NodeKind::QueryNode));
        let b = m.pod_started("qn-b", "198.18.0.3", Some(NodeKind::QueryNode));
        m.seed(8, 0);
        settle(&mut m);
        let held: Vec<i64> = m.nodes[&b].segments.iter().copied().collect();
        m.pod_gone(b, 42);
        assert_eq!(m.lost.len(), 1);
        assert_eq!(m.lost_segments(), held);
        assert!(m.node_of_pod("qn-b").is_none());
        assert_eq!(m.segments_by_pod().get("qn-a"), Some(&4));
        assert_eq!(m.lost[0].segments, held);
        assert_eq!(m.lost[0].node_id, b);
        settle(&mut m);
        assert_eq!(counts(&m), vec![8]);
    }

    #[test]
    fn a_pod_name_started_again_gets_a_new_id_and_outlives_its_predecessor() {
        let mut m = Model::new();
        let old = m.pod_started("qn-0", "198.18.0.2", Some(NodeKind::QueryNode));
        let new = m.pod_started("qn-0", "198.18.0.3", Some(NodeKind::QueryNode));
        assert_ne!(old, new);
        m.pod_gone(old, 1);
        assert_eq!(m.server_ids.get("qn-0"), Some(&new));
        assert_eq!(m.node_of_pod("qn-0").map(|n| n.id), Some(new));
    }

    #[test]
    fn stalled_moves_never_finish_but_loads_do() {
        let mut m = Model::new();
        let a = m.pod_started("qn-a", "198.18.0.2", Some(NodeKind::QueryNode));
        m.pod_started("qn-b", "198.18.0.3", Some(NodeKind::QueryNode));
        m.seed(4, 0);
        let stall = Tuning {
            stall_moves: true,
            ..T
        };
        let mut now = Instant::now();
        for _ in 0..100 {
            m.tick(now, stall);
            now += Duration::from_millis(10);
        }
        assert_eq!(counts(&m), vec![2, 2]);
        m.transfer(ItemKind::Segment, a, None, None).unwrap();
        for _ in 0..100 {
            m.tick(now, stall);
            now += Duration::from_millis(10);
        }
        assert_eq!(m.nodes[&a].segments.len(), 2);
    }

    #[test]
    fn transfer_refusals_are_milvus_shaped() {
        let mut m = Model::new();
        let a = m.pod_started("qn-a", "198.18.0.2", Some(NodeKind::QueryNode));
        let s = m.pod_started("sn-a", "198.18.0.3", Some(NodeKind::StreamingNode));
        m.seed(2, 1);
        settle(&mut m);
        assert_eq!(
            m.transfer(ItemKind::Segment, 99, None, None).unwrap_err(),
            "the source node is invalid: node not available[node=99]"
        );
        assert_eq!(
            m.transfer(ItemKind::Segment, a, Some(77), None).unwrap_err(),
            format!("the target node is invalid: node not available[node={a}]")
        );
        assert!(
            m.transfer(ItemKind::Segment, a, Some(s), None)
                .unwrap_err()
                .contains("embedded query node")
        );
        assert!(
            m.transfer(ItemKind::Segment, a, None, Some(Item::Segment(1)))
                .unwrap_err()
                .contains("segment not found")
        );
        assert!(m.resume_node(s).is_err());
        // Streaming: channels on the streaming node, segments on the query node.
        assert_eq!(m.nodes[&s].channels.len(), 1);
        assert_eq!(m.nodes[&a].segments.len(), 2);
    }

    #[test]
    fn stopping_node_drains_and_check_distribution_tells() {
        let mut m = Model::new();
        let a = m.pod_started("qn-a", "198.18.0.2", Some(NodeKind::QueryNode));
        let b = m.pod_started("qn-b", "198.18.0.3", Some(NodeKind::QueryNode));
        m.seed(6, 0);
        settle(&mut m);
        assert!(
            m.check_distribution(a, b)
                .unwrap_err()
                .starts_with("segment lack")
        );
        m.pod_stopping(a);
        settle(&mut m);
        assert!(m.nodes[&a].segments.is_empty());
        assert_eq!(m.nodes[&a].state, NodeState::Stopping);
        m.check_distribution(a, b).unwrap();
        m.pod_gone(a, 1);
        assert!(m.lost.is_empty(), "an emptied node loses nothing");
    }
}
