//! The Milvus stand-in: every simulated Milvus pod (label
//! `app.kubernetes.io/name=milvus`, Helm chart and Milvus Operator alike)
//! answers on its metrics port inside the test bed's pod network, and one
//! QueryCoord [`Model`] per instance (`app.kubernetes.io/instance`) holds
//! segments and channels on the query nodes.
//!
//! Knobs per namespace live in the ConfigMap [`KNOBS_CONFIGMAP`] (written by
//! [`set_knobs`]); the simulator that owns the namespace watches it. Tests
//! read a model with [`state`] / [`wait_until`] and add data with
//! [`seed_segments`]: the model lives in the test process's simulator.

pub(crate) mod http;
pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use model::{Loss, Model, Node, NodeKind, NodeState};

use crate::netns::PodNetwork;

/// Per-namespace ConfigMap with the stand-in's knobs (`data["knobs.json"]`).
pub const KNOBS_CONFIGMAP: &str = "milvus-standin";
const KNOBS_KEY: &str = "knobs.json";
/// Default time one segment or channel move takes.
pub const DEFAULT_MOVE_MS: u64 = 50;
/// Metrics port when a pod names none (`metrics`, the chart's and operator's 9091).
const DEFAULT_METRICS_PORT: u16 = 9091;

/// What the stand-in does in one namespace. Instance keys are
/// `app.kubernetes.io/instance` values; `*` means every instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MilvusKnobs {
    /// Sealed segments QueryCoord loads per instance (none by default).
    pub segments: BTreeMap<String, u32>,
    /// DML channels per instance (default: 1 where segments are set).
    pub channels: BTreeMap<String, u32>,
    /// Time one segment/channel move takes (default [`DEFAULT_MOVE_MS`]).
    pub move_ms: Option<u64>,
    /// Transfers, drains and balancing are accepted but never finish.
    pub stall_moves: bool,
    /// Label selectors (as in pod faults): matching pods report unhealthy
    /// (`/healthz` 500, `/management/check/ready` 500).
    pub unhealthy: Vec<String>,
    /// The management routes answer 500 (QueryCoord unavailable).
    pub routes_fail: bool,
    /// No management routes at all: 404, as a Milvus from before them.
    pub no_routes: bool,
    /// node/list says `Normal`/`Stopping`/`Suspend`, as releases before the
    /// rename did (current: `active`/`stopping`/`suspended`).
    pub legacy_state_names: bool,
    /// distribution/get marshals the response itself, as releases before
    /// the string IDs did: segment IDs as JSON numbers, empty lists omitted.
    pub numeric_segment_ids: bool,
}

impl MilvusKnobs {
    fn per_instance(map: &BTreeMap<String, u32>, instance: &str) -> Option<u32> {
        map.get(instance).or_else(|| map.get("*")).copied()
    }
    fn tuning(&self) -> model::Tuning {
        model::Tuning {
            move_time: Duration::from_millis(self.move_ms.unwrap_or(DEFAULT_MOVE_MS)),
            stall_moves: self.stall_moves,
        }
    }
    /// Seed `m` up to this instance's segment and channel counts.
    fn fill(&self, instance: &str, m: &mut Model) {
        let segments = Self::per_instance(&self.segments, instance).unwrap_or(0);
        let channels =
            Self::per_instance(&self.channels, instance).unwrap_or(if segments > 0 { 1 } else { 0 });
        let (s, c) = m.seeded();
        m.seed(segments.saturating_sub(s), channels.saturating_sub(c));
    }
}

// ------------------------------------------------------------- registry ----

/// One namespace's models and knobs, shared by its pods' servers, the tick
/// loop and the test API.
pub(crate) struct NsEntry {
    state: Mutex<NsState>,
    wake: Notify,
}

pub(crate) struct NsState {
    pub knobs: Arc<MilvusKnobs>,
    models: BTreeMap<String, Model>,
}

impl NsState {
    /// The instance's model, made (and seeded to the knobs) on first use.
    pub(crate) fn model(&mut self, instance: &str, knobs: &MilvusKnobs) -> &mut Model {
        self.models.entry(instance.to_string()).or_insert_with(|| {
            let mut m = Model::new();
            knobs.fill(instance, &mut m);
            m
        })
    }
}

impl NsEntry {
    pub(crate) fn lock(&self) -> MutexGuard<'_, NsState> {
        // A panicking test thread must not wedge the stand-in.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Something changed: let the tick loop look.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
    fn set_knobs(&self, knobs: MilvusKnobs) {
        let mut st = self.lock();
        for (instance, m) in st.models.iter_mut() {
            knobs.fill(instance, m);
        }
        st.knobs = Arc::new(knobs);
        drop(st);
        self.wake();
    }
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Arc<NsEntry>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> MutexGuard<'static, HashMap<String, Arc<NsEntry>>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn entry(ns: &str) -> Arc<NsEntry> {
    registry()
        .entry(ns.to_string())
        .or_insert_with(|| {
            Arc::new(NsEntry {
                state: Mutex::new(NsState {
                    knobs: Arc::new(MilvusKnobs::default()),
                    models: BTreeMap::new(),
                }),
                wake: Notify::new(),
            })
        })
        .clone()
}

// ------------------------------------------------------------- test API ----

/// A snapshot of an instance's QueryCoord model (`None`: no Milvus pod of it
/// has started in this process's simulator and nothing was seeded).
pub fn state(ns: &str, instance: &str) -> Option<Model> {
    let e = registry().get(ns).cloned()?;
    let st = e.lock();
    st.models.get(instance).cloned()
}

/// Poll [`state`] until `pred` holds (the model changes on its own: loads,
/// moves, drains).
pub async fn wait_until(
    ns: &str,
    instance: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Model) -> bool,
) -> Result<Model> {
    let last = Mutex::new(None);
    crate::eventually(timeout, Duration::from_millis(20), what, || {
        let m = state(ns, instance);
        let hit = m.as_ref().filter(|m| pred(m)).cloned();
        *last.lock().unwrap_or_else(|e| e.into_inner()) = m;
        async move { hit }
    })
    .await
    .with_context(|| {
        let last = last.lock().unwrap_or_else(|e| e.into_inner()).take();
        format!(
            "model of {ns}/{instance} now: {}",
            serde_json::to_string(&last).unwrap_or_default()
        )
    })
}

/// Create sealed segments and channels in an instance; QueryCoord loads them
/// onto its nodes (now, or when query nodes come up).
pub fn seed_segments(ns: &str, instance: &str, segments: u32, channels: u32) {
    let e = entry(ns);
    let mut st = e.lock();
    let knobs = st.knobs.clone();
    st.model(instance, &knobs).seed(segments, channels);
    drop(st);
    e.wake();
}

/// Write a namespace's knobs (replaces previous ones) and apply them here at
/// once when this process simulates the namespace.
pub async fn set_knobs(ns: &str, knobs: MilvusKnobs) -> Result<()> {
    let client = crate::TestBed::get().client().await?;
    let value = serde_json::to_string(&knobs)?;
    crate::sim::write_configmap(&client, ns, KNOBS_CONFIGMAP, KNOBS_KEY, value).await?;
    entry(ns).set_knobs(knobs);
    Ok(())
}

// ------------------------------------------------------- simulator hooks ----

/// Which Milvus instance and component a pod is (labels only: the chart's
/// `component`, the operator's `app.kubernetes.io/component`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    pub instance: String,
    pub component: String,
    pub metrics_port: u16,
}

pub(crate) fn identify(pod: &Pod) -> Option<Identity> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get("app.kubernetes.io/name").map(String::as_str) != Some("milvus") {
        return None;
    }
    let instance = labels.get("app.kubernetes.io/instance")?.clone();
    let component = labels
        .get("component")
        .or_else(|| labels.get("app.kubernetes.io/component"))?
        .clone();
    let metrics_port = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("metrics"))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(DEFAULT_METRICS_PORT);
    Some(Identity {
        instance,
        component,
        metrics_port,
    })
}

fn node_kind(component: &str) -> Option<NodeKind> {
    match component {
        "querynode" => Some(NodeKind::QueryNode),
        // `milvus run streamingnode` also enables the query node role.
        "streamingnode" => Some(NodeKind::StreamingNode),
        "standalone" => Some(NodeKind::Standalone),
        _ => None,
    }
}

/// A running Milvus pod: registered in its model, serving on its metrics
/// port. Dropping it is the pod going away (what its node held is lost).
pub(crate) struct MilvusPod {
    instance: String,
    server_id: i64,
    entry: Arc<NsEntry>,
    server: Option<(tokio::task::AbortHandle, Arc<http::PodCtx>)>,
}

impl MilvusPod {
    /// The pod's graceful stop began: its components report `Stopping`
    /// (unhealthy) and its query node turns `stopping`.
    pub(crate) fn stopping(&self) {
        if let Some((_, ctx)) = &self.server {
            ctx.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(m) = self.entry.lock().models.get_mut(&self.instance) {
            m.pod_stopping(self.server_id);
        }
        self.entry.wake();
    }
}

impl Drop for MilvusPod {
    fn drop(&mut self) {
        if let Some((task, _)) = &self.server {
            task.abort();
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        if let Some(m) = self.entry.lock().models.get_mut(&self.instance) {
            m.pod_gone(self.server_id, now_ms);
        }
        self.entry.wake();
    }
}

/// A Milvus pod's containers started: register it and, inside the pod
/// network, listen on `ip:<metrics port>` (on the current runtime).
pub(crate) fn pod_started(ns: &str, pod: &Pod, ip: Ipv4Addr, net: Option<&PodNetwork>) -> Option<MilvusPod> {
    let id = identify(pod)?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let entry = entry(ns);
    let server_id = {
        let mut st = entry.lock();
        let knobs = st.knobs.clone();
        st.model(&id.instance, &knobs)
            .pod_started(&name, &ip.to_string(), node_kind(&id.component))
    };
    entry.wake();
    let server = net.and_then(|net| {
        let addr = SocketAddrV4::new(ip, id.metrics_port);
        let listener = net.bind_tcp(addr).and_then(tokio::net::TcpListener::from_std);
        match listener {
            Ok(l) => {
                let ctx = Arc::new(http::PodCtx {
                    instance: id.instance.clone(),
                    component: id.component.clone(),
                    labels: pod.metadata.labels.clone().unwrap_or_default(),
                    entry: entry.clone(),
                    stopping: false.into(),
                });
                let task = tokio::spawn(http::serve(l, ctx.clone())).abort_handle();
                Some((task, ctx))
            }
            Err(e) => {
                eprintln!(
                    "testbed: Milvus stand-in for {ns}/{name} cannot listen on {addr} in {}: {e}",
                    net.netns
                );
                None
            }
        }
    });
    Some(MilvusPod {
        instance: id.instance,
        server_id,
        entry,
        server,
    })
}

/// Per-namespace work of the simulator: follow the knobs ConfigMap and move
/// the models along. Ends (and forgets the namespace) when dropped.
pub(crate) async fn namespace_task(client: kube::Client, ns: String) {
    struct Forget(String);
    impl Drop for Forget {
        fn drop(&mut self) {
            registry().remove(&self.0);
        }
    }
    let _forget = Forget(ns.clone());
    let e = entry(&ns);
    let knobs = async {
        let mut events = crate::sim::configmap_events(client, &ns, KNOBS_CONFIGMAP);
        while let Some(cm) = events.next().await {
            let knobs = cm
                .as_ref()
                .and_then(|cm| cm.data.as_ref()?.get(KNOBS_KEY).cloned())
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            e.set_knobs(knobs);
        }
    };
    let ticks = async {
        loop {
            let (busy, step) = {
                let mut st = e.lock();
                let tuning = st.knobs.tuning();
                let now = Instant::now();
                let mut busy = false;
                for m in st.models.values_mut() {
                    m.tick(now, tuning);
                    busy |= m.busy();
                }
                let step = (tuning.move_time / 4).clamp(Duration::from_millis(5), Duration::from_millis(25));
                (busy, step)
            };
            if busy {
                tokio::time::sleep(step).await;
            } else {
                e.wake.notified().await;
            }
        }
    };
    tokio::join!(knobs, ticks);
}
