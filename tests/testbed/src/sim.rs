//! Pod-lifecycle simulator: a "fake kubelet" for one test process.
//!
//! It registers its own Node (tainted so a real scheduler never uses it),
//! heartbeats it, and plays the kubelet for pods in the namespaces this
//! process owns (label [`OWNER_LABEL`] = simulator id). The real controllers
//! (ReplicaSet, StatefulSet, Job, ...) create and delete pods; the simulator
//! binds them to its node and walks them through
//! `ContainerCreating → Running/Ready` (or `Completed` for Job pods), and
//! finishes deletions after a short grace so `Terminating` is visible.
//!
//! Faults are configured per namespace with a ConfigMap [`FAULTS_CONFIGMAP`]
//! holding JSON rules (written by [`set_pod_faults`]); the simulator watches it
//! and also re-reads it when it first sees a pod, so rules written before a
//! workload is created always apply to its pods.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::milvus;
use crate::netns::PodIps;

/// Namespace label naming the simulator that plays kubelet for its pods.
pub const OWNER_LABEL: &str = "kubectl-milvus.test/simulator";
/// Taint key (and node label) of simulator nodes.
pub const TAINT_KEY: &str = "kubectl-milvus.test/simulated";
/// Per-namespace ConfigMap with fault rules (`data["rules.json"]`).
pub const FAULTS_CONFIGMAP: &str = "pod-simulator";
const RULES_KEY: &str = "rules.json";
/// Heartbeat period for node status and Lease.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A simulator node whose Lease is older than this belongs to a dead process.
const STALE_NODE: Duration = Duration::from_secs(180);

/// Timings of the simulated lifecycle.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Bound → `ContainerCreating` is written right away; this is the time
    /// until containers are running (a `SlowStart` fault replaces it).
    pub creating_delay: Duration,
    /// Additional time from running to ready.
    pub ready_delay: Duration,
    /// How long a deleted pod stays `Terminating` before the simulator
    /// removes it (capped by the pod's own grace period).
    pub terminating_grace: Duration,
    /// How long a Job pod runs before it is `Completed`.
    pub job_run: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            creating_delay: Duration::from_millis(300),
            ready_delay: Duration::from_millis(400),
            terminating_grace: Duration::from_millis(1000),
            job_run: Duration::from_millis(300),
        }
    }
}

impl SimConfig {
    /// Defaults overridden by `TESTBED_SIM_CREATING_MS`, `TESTBED_SIM_READY_MS`,
    /// `TESTBED_SIM_TERMINATING_MS`, `TESTBED_SIM_JOB_MS`.
    pub fn from_env() -> SimConfig {
        let ms = |k: &str, d: Duration| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
                .unwrap_or(d)
        };
        let d = SimConfig::default();
        SimConfig {
            creating_delay: ms("TESTBED_SIM_CREATING_MS", d.creating_delay),
            ready_delay: ms("TESTBED_SIM_READY_MS", d.ready_delay),
            terminating_grace: ms("TESTBED_SIM_TERMINATING_MS", d.terminating_grace),
            job_run: ms("TESTBED_SIM_JOB_MS", d.job_run),
        }
    }
}

/// One fault rule: pods matching `selector` get `fault`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Equality label selector: `k=v,k2=v2` (also `k!=v`, bare `k`); empty
    /// matches every pod of the namespace.
    pub selector: String,
    pub fault: Fault,
}

impl FaultRule {
    pub fn new(selector: &str, fault: Fault) -> FaultRule {
        FaultRule {
            selector: selector.to_string(),
            fault,
        }
    }
}

/// What goes wrong for matching pods. Several rules may match one pod; for
/// each aspect (start outcome, start delay, termination grace) the first
/// matching rule that sets it wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Fault {
    /// Running but never ready: `0/1 Running`.
    NeverReady,
    /// `CrashLoopBackOff` with this restart count.
    CrashLoop { restarts: i32 },
    /// Never bound to the node: stays `Pending`.
    StuckPending,
    /// `ContainerCreating` lasts this long (instead of `creating_delay`).
    SlowStart { delay_ms: u64 },
    /// Stay `Terminating` this long after deletion.
    TerminatingGrace { grace_ms: u64 },
}

/// Write the fault rules of a namespace (replaces previous rules; empty
/// clears). Uses the shared test bed's admin client.
pub async fn set_pod_faults(ns: &str, rules: Vec<FaultRule>) -> Result<()> {
    let client = crate::TestBed::get().client().await?;
    set_pod_faults_with(&client, ns, &rules).await
}

/// [`set_pod_faults`] with an explicit client.
pub async fn set_pod_faults_with(client: &kube::Client, ns: &str, rules: &[FaultRule]) -> Result<()> {
    write_configmap(
        client,
        ns,
        FAULTS_CONFIGMAP,
        RULES_KEY,
        serde_json::to_string(rules)?,
    )
    .await
}

/// Server-side apply `data[key] = value` of the test bed's ConfigMap `name`.
pub(crate) async fn write_configmap(
    client: &kube::Client,
    ns: &str,
    name: &str,
    key: &str,
    value: String,
) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {key: value},
    });
    api.patch(
        name,
        &PatchParams::apply("kubectl-milvus-testbed").force(),
        &Patch::Apply(cm),
    )
    .await
    .with_context(|| format!("write {ns}/{name}"))?;
    Ok(())
}

/// A running simulator (lives on the test bed's background runtime).
pub struct Simulator {
    id: String,
    config: SimConfig,
}

impl Simulator {
    /// Node name, also the value of [`OWNER_LABEL`] on owned namespaces.
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn node_name(&self) -> &str {
        &self.id
    }
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Register the node and start the background tasks on the current
    /// runtime. Pod IPs come from `ips` (the test bed's pod network).
    pub async fn start(client: kube::Client, config: SimConfig, ips: Arc<PodIps>) -> Result<Simulator> {
        let id = simulator_id();
        let ctx = Arc::new(Ctx {
            client,
            node: id.clone(),
            config: config.clone(),
            ips,
        });
        register_node(&ctx).await?;
        tokio::spawn(heartbeat_loop(ctx.clone()));
        tokio::spawn(namespace_loop(ctx.clone()));
        Ok(Simulator { id, config })
    }
}

/// `sim-<host>-<pid>-<4 hex>`: unique per process even if a pid is reused.
fn simulator_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    let mut host: String = host
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    host.truncate(20);
    let host = host.trim_matches('-');
    let host = if host.is_empty() { "host" } else { host };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("sim-{host}-{}-{:04x}", std::process::id(), nanos & 0xffff)
}

struct Ctx {
    client: kube::Client,
    node: String,
    config: SimConfig,
    ips: Arc<PodIps>,
}

/// A pod's IP, given back when its driver ends.
struct IpLease {
    ips: Arc<PodIps>,
    ip: Ipv4Addr,
}

impl Drop for IpLease {
    fn drop(&mut self) {
        self.ips.release(self.ip);
    }
}

/// Aborts a task when dropped (per-namespace helpers end with their namespace).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn now() -> String {
    // Kubernetes `Time` is RFC 3339 with second precision.
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

// ---------------------------------------------------------------- node ----

fn node_conditions() -> Value {
    let t = now();
    let cond = |ty: &str, status: &str, reason: &str, msg: &str| {
        json!({"type": ty, "status": status, "reason": reason, "message": msg,
               "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "simulated"
        ),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "simulated"),
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "simulated kubelet (kubectl-milvus testbed)"
        ),
    ])
}

fn node_status() -> Value {
    let res = json!({"cpu": "1000", "memory": "4Ti", "pods": "10000", "ephemeral-storage": "10Ti"});
    json!({
        "capacity": res,
        "allocatable": res,
        "conditions": node_conditions(),
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": "localhost"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "testbed", "systemUUID": "testbed", "bootID": "testbed",
            "kernelVersion": "simulated", "osImage": "kubectl-milvus testbed simulator",
            "containerRuntimeVersion": "sim://1.0", "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux", "architecture": "amd64",
        },
    })
}

async fn register_node(ctx: &Ctx) -> Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": ctx.node,
            "labels": {
                TAINT_KEY: "true",
                "kubernetes.io/hostname": ctx.node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
        "status": node_status(),
    }))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("register simulator node"),
    }
    // Status on create is accepted by most versions, but make sure.
    nodes
        .patch_status(
            &ctx.node,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": node_status()})),
        )
        .await
        .context("set simulator node status")?;
    renew_lease(ctx).await?;
    Ok(())
}

async fn renew_lease(ctx: &Ctx) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": ctx.node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": ctx.node, "leaseDurationSeconds": 40, "renewTime": now_micro()},
    });
    leases
        .patch(
            &ctx.node,
            &PatchParams::apply("kubectl-milvus-testbed-sim").force(),
            &Patch::Apply(lease),
        )
        .await
        .context("renew node lease")?;
    Ok(())
}

async fn heartbeat_loop(ctx: Arc<Ctx>) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut tick = 0u64;
    loop {
        if tick.is_multiple_of(6) {
            gc_stale_nodes(&ctx).await;
        }
        tick += 1;
        tokio::time::sleep(HEARTBEAT).await;
        let r = nodes
            .patch_status(
                &ctx.node,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": node_conditions()}})),
            )
            .await;
        if let Err(kube::Error::Api(e)) = &r
            && e.code == 404
        {
            // Someone deleted our node (e.g. a GC racing a pause): recreate.
            let _ = register_node(&ctx).await;
        }
        let _ = renew_lease(&ctx).await;
    }
}

/// Delete simulator nodes of processes that are gone (stale Lease), so their
/// pods get cleaned by the pod GC controller and `kubectl get nodes` stays tidy.
async fn gc_stale_nodes(ctx: &Ctx) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let Ok(list) = nodes.list(&ListParams::default().labels(TAINT_KEY)).await else {
        return;
    };
    let now = jiff::Timestamp::now();
    for n in list {
        let Some(name) = n.metadata.name.clone() else {
            continue;
        };
        if name == ctx.node {
            continue;
        }
        let renewed = match leases.get_opt(&name).await {
            Ok(Some(l)) => l.spec.and_then(|s| s.renew_time).map(|t| t.0),
            Ok(None) => n.metadata.creation_timestamp.map(|t| t.0),
            Err(_) => continue,
        };
        let stale = renewed
            .map(|t| now.duration_since(t).as_secs_f64() > STALE_NODE.as_secs_f64())
            .unwrap_or(true);
        if stale {
            let _ = nodes.delete(&name, &DeleteParams::default()).await;
            let _ = leases.delete(&name, &DeleteParams::default()).await;
        }
    }
}

// ----------------------------------------------------------- namespaces ----

async fn namespace_loop(ctx: Arc<Ctx>) {
    let selector = format!("{OWNER_LABEL}={}", ctx.node);
    let client = ctx.client.clone();
    per_namespace(client, &selector, |name| {
        tokio::spawn(namespace_task(ctx.clone(), name))
    })
    .await
}

/// Watches the namespaces `selector` picks and runs one task per namespace
/// (`start`), aborted when the namespace goes.
pub(crate) async fn per_namespace(
    client: kube::Client,
    selector: &str,
    start: impl Fn(String) -> tokio::task::JoinHandle<()>,
) {
    let api: Api<Namespace> = Api::all(client);
    let cfg = watcher::Config::default().labels(selector);
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Apply(ns)) | Ok(Event::InitApply(ns)) => {
                let Some(name) = ns.metadata.name else { continue };
                tasks.entry(name.clone()).or_insert_with(|| start(name));
            }
            Ok(Event::Delete(ns)) => {
                if let Some(t) = ns.metadata.name.and_then(|n| tasks.remove(&n)) {
                    t.abort();
                }
            }
            _ => {}
        }
    }
}

type Rules = Arc<Vec<FaultRule>>;

async fn namespace_task(ctx: Arc<Ctx>, ns: String) {
    let (rules_tx, rules_rx) = watch::channel::<Rules>(Arc::new(Vec::new()));
    tokio::spawn(rules_watch(ctx.clone(), ns.clone(), rules_tx));
    let _milvus = AbortOnDrop(tokio::spawn(milvus::namespace_task(
        ctx.client.clone(),
        ns.clone(),
    )));

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut stream = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut drivers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
    let mut seen_in_init: Vec<String> = Vec::new();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(_) => continue,
        };
        match ev {
            Event::Init => seen_in_init.clear(),
            Event::InitDone => {
                // Pods that vanished while the watch was down.
                drivers.retain(|uid, tx| {
                    let keep = seen_in_init.contains(uid);
                    if !keep {
                        let _ = tx.send(None);
                    }
                    keep
                });
            }
            Event::Apply(pod) | Event::InitApply(pod) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                seen_in_init.push(uid.clone());
                let pod = Arc::new(pod);
                match drivers.get(&uid) {
                    Some(tx) => {
                        let _ = tx.send(Some(pod));
                    }
                    None => {
                        let (tx, rx) = watch::channel(Some(pod));
                        drivers.insert(uid, tx);
                        tokio::spawn(drive_pod(ctx.clone(), ns.clone(), rx, rules_rx.clone()));
                    }
                }
            }
            Event::Delete(pod) => {
                if let Some(tx) = pod.metadata.uid.and_then(|u| drivers.remove(&u)) {
                    let _ = tx.send(None);
                }
            }
        }
    }
}

async fn rules_watch(ctx: Arc<Ctx>, ns: String, tx: watch::Sender<Rules>) {
    let mut events = configmap_events(ctx.client.clone(), &ns, FAULTS_CONFIGMAP);
    loop {
        // Ends with its namespace's task (every receiver gone), not at the
        // next event: a deleted namespace sends none, and a lingering watch
        // per finished test would pile up over a long run.
        let ev = tokio::select! {
            ev = events.next() => ev,
            () = tx.closed() => return,
        };
        let Some(cm) = ev else { return };
        let _ = tx.send(Arc::new(cm.as_ref().map(parse_rules).unwrap_or_default()));
    }
}

/// One ConfigMap of a namespace as it changes: `Some` on create/update,
/// `None` when deleted.
pub(crate) fn configmap_events(
    client: kube::Client,
    ns: &str,
    name: &str,
) -> impl Stream<Item = Option<ConfigMap>> + Send + 'static {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher::watcher(api, cfg)
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(Event::Apply(cm)) | Ok(Event::InitApply(cm)) => Some(Some(cm)),
                Ok(Event::Delete(_)) => Some(None),
                _ => None,
            }
        })
        .boxed()
}

fn parse_rules(cm: &ConfigMap) -> Vec<FaultRule> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(RULES_KEY))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

async fn fetch_rules(ctx: &Ctx, ns: &str) -> Option<Rules> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    match api.get_opt(FAULTS_CONFIGMAP).await {
        Ok(Some(cm)) => Some(Arc::new(parse_rules(&cm))),
        Ok(None) => Some(Arc::new(Vec::new())),
        Err(_) => None,
    }
}

// ------------------------------------------------------------- selector ----

/// Equality-based label selector match (`a=b`, `a==b`, `a!=b`, `a`, `!a`).
pub fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels.get(k.trim()).map(String::as_str) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels.get(k.trim()).map(String::as_str) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                !labels.contains_key(k.trim())
            } else {
                labels.contains_key(term)
            }
        })
}

/// The faults in force for one pod.
#[derive(Debug, Default, Clone, PartialEq)]
struct Effective {
    stuck_pending: bool,
    outcome: Option<Fault>,
    start_delay: Option<Duration>,
    grace: Option<Duration>,
}

fn effective(rules: &[FaultRule], pod: &Pod) -> Effective {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let mut e = Effective::default();
    for r in rules.iter().filter(|r| selector_matches(&r.selector, labels)) {
        match &r.fault {
            Fault::StuckPending => e.stuck_pending = true,
            Fault::NeverReady | Fault::CrashLoop { .. } => {
                if e.outcome.is_none() {
                    e.outcome = Some(r.fault.clone());
                }
            }
            Fault::SlowStart { delay_ms } => {
                e.start_delay.get_or_insert(Duration::from_millis(*delay_ms));
            }
            Fault::TerminatingGrace { grace_ms } => {
                e.grace.get_or_insert(Duration::from_millis(*grace_ms));
            }
        }
    }
    e
}

// ------------------------------------------------------------------ pods ----

fn is_job_pod(pod: &Pod) -> bool {
    let owned_by_job = pod
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.kind == "Job"));
    let restart = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    owned_by_job || matches!(restart, Some("Never") | Some("OnFailure"))
}

/// What the simulator wants the pod's containers to look like.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Creating,
    Running { ready: bool },
    CrashLoop { restarts: i32 },
    Completed,
}

/// Per-pod driver. Exits when the pod is gone or not ours.
async fn drive_pod(
    ctx: Arc<Ctx>,
    ns: String,
    mut pod_rx: watch::Receiver<Option<Arc<Pod>>>,
    mut rules_rx: watch::Receiver<Rules>,
) {
    let Some(first) = pod_rx.borrow_and_update().clone() else {
        return;
    };
    let name = first.metadata.name.clone().unwrap_or_default();
    let uid = first.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);

    // Fresh read: rules written before this pod was created must apply.
    rules_rx.borrow_and_update();
    let mut rules = fetch_rules(&ctx, &ns)
        .await
        .unwrap_or_else(|| rules_rx.borrow().clone());

    let current = |rx: &watch::Receiver<Option<Arc<Pod>>>| rx.borrow().clone();

    // Phase 1: bind (unless stuck, already bound, or deleted).
    loop {
        let Some(pod) = current(&pod_rx) else { return };
        if pod.metadata.deletion_timestamp.is_some() {
            return terminate(&ctx, &pods, &pod_rx, &rules, &name, &uid).await;
        }
        match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(n) if n == ctx.node => break,
            Some(_) => return, // someone else's pod (a real kubelet on a foreign cluster)
            None => {}
        }
        if effective(&rules, &pod).stuck_pending {
            tokio::select! {
                r = pod_rx.changed() => if r.is_err() { return },
                r = rules_rx.changed() => {
                    if r.is_err() { return }
                    rules = rules_rx.borrow_and_update().clone();
                }
            }
            continue;
        }
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": ctx.node},
        });
        match pods
            .create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &binding)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Bound meanwhile (by us or someone else): re-read and decide.
                match pods.get_opt(&name).await {
                    Ok(Some(p)) if p.metadata.uid.as_deref() == Some(&uid) => {
                        let bound_to_us =
                            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(ctx.node.as_str());
                        if bound_to_us {
                            break;
                        }
                        return;
                    }
                    _ => return,
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }

    // Phase 2: ContainerCreating, then the steady stage.
    let lease = match ctx.ips.alloc() {
        Ok(ip) => IpLease {
            ips: ctx.ips.clone(),
            ip,
        },
        Err(e) => {
            eprintln!("testbed: no pod IP for {ns}/{name}: {e:#}");
            return;
        }
    };
    let pod_ip = lease.ip.to_string();
    // Set once the containers run (a Milvus pod registers and listens).
    let mut milvus_pod: Option<milvus::MilvusPod> = None;
    let start_time = now();
    let mut applied: Option<Stage> = None;
    let started_at = tokio::time::Instant::now();
    loop {
        let Some(pod) = current(&pod_rx) else { return };
        if pod.metadata.deletion_timestamp.is_some() {
            if let Some(m) = &milvus_pod {
                m.stopping();
            }
            return terminate(&ctx, &pods, &pod_rx, &rules, &name, &uid).await;
        }
        let eff = effective(&rules, &pod);
        let elapsed = started_at.elapsed();
        let creating = eff.start_delay.unwrap_or(ctx.config.creating_delay);
        let ready_at = creating + ctx.config.ready_delay;
        // The stage for "now" and when the next change is due.
        let (want, next_in): (Stage, Option<Duration>) = if elapsed < creating {
            (Stage::Creating, Some(creating - elapsed))
        } else {
            match &eff.outcome {
                Some(Fault::NeverReady) => (Stage::Running { ready: false }, None),
                Some(Fault::CrashLoop { restarts }) => (Stage::CrashLoop { restarts: *restarts }, None),
                _ if is_job_pod(&pod) => {
                    let done_at = creating + ctx.config.job_run;
                    if elapsed < done_at {
                        (Stage::Running { ready: true }, Some(done_at - elapsed))
                    } else {
                        (Stage::Completed, None)
                    }
                }
                _ if elapsed < ready_at => (Stage::Running { ready: false }, Some(ready_at - elapsed)),
                _ => (Stage::Running { ready: true }, None),
            }
        };
        if matches!(want, Stage::Running { .. }) && milvus_pod.is_none() {
            milvus_pod = milvus::pod_started(&ns, &pod, lease.ip, ctx.ips.network());
        }
        // A finished Job pod never goes back (like a real kubelet).
        if applied != Some(Stage::Completed) && applied != Some(want) {
            let status = pod_status(&pod, want, &pod_ip, &start_time);
            match pods
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
            {
                Ok(_) => applied = Some(want),
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            }
        }
        let sleep = next_in.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            r = pod_rx.changed() => if r.is_err() { return },
            r = rules_rx.changed() => {
                if r.is_err() { return }
                rules = rules_rx.borrow_and_update().clone();
            }
        }
    }
}

/// The pod's `status` for a stage, as a kubelet would write it.
fn pod_status(pod: &Pod, stage: Stage, pod_ip: &str, start_time: &str) -> Value {
    let t = now();
    let spec = pod.spec.clone().unwrap_or_default();
    let cond = |ty: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({"type": ty, "status": if ok {"True"} else {"False"},
                           "lastProbeTime": null, "lastTransitionTime": t});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    };
    let container_id = |n: &str| format!("sim://{}-{n}", pod.metadata.uid.as_deref().unwrap_or(""));
    let image_of = |image: &Option<String>| image.clone().unwrap_or_default();

    let init_done = !matches!(stage, Stage::Creating);
    let init_statuses: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let state = if init_done {
                json!({"terminated": {"exitCode": 0, "reason": "Completed",
                                      "startedAt": start_time, "finishedAt": t,
                                      "containerID": container_id(&c.name)}})
            } else {
                json!({"waiting": {"reason": "PodInitializing"}})
            };
            json!({"name": c.name, "image": image_of(&c.image), "imageID": "",
                   "ready": init_done, "restartCount": 0, "state": state,
                   "containerID": if init_done { json!(container_id(&c.name)) } else { Value::Null }})
        })
        .collect();
    let has_init = !init_statuses.is_empty();

    let (phase, ready) = match stage {
        Stage::Creating => ("Pending", false),
        Stage::Running { ready } => ("Running", ready),
        Stage::CrashLoop { .. } => ("Running", false),
        Stage::Completed => ("Succeeded", false),
    };
    let statuses: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let image = image_of(&c.image);
            let cid = container_id(&c.name);
            match stage {
                Stage::Creating => json!({
                    "name": c.name, "image": image, "imageID": "", "ready": false,
                    "restartCount": 0, "started": false,
                    "state": {"waiting": {"reason": if has_init {"PodInitializing"} else {"ContainerCreating"}}},
                }),
                Stage::Running { ready } => json!({
                    "name": c.name, "image": image, "imageID": format!("sim://{image}"),
                    "containerID": cid, "ready": ready, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": t}},
                }),
                Stage::CrashLoop { restarts } => json!({
                    "name": c.name, "image": image, "imageID": format!("sim://{image}"),
                    "containerID": cid, "ready": false, "restartCount": restarts, "started": false,
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                        "message": format!("back-off 5m0s restarting failed container={} pod={}",
                            c.name, pod.metadata.name.as_deref().unwrap_or(""))}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": t, "finishedAt": t, "containerID": cid}},
                }),
                Stage::Completed => json!({
                    "name": c.name, "image": image, "imageID": format!("sim://{image}"),
                    "containerID": cid, "ready": false, "restartCount": 0, "started": false,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                        "startedAt": start_time, "finishedAt": t, "containerID": cid}},
                }),
            }
        })
        .collect();

    let not_ready_reason = match stage {
        Stage::Completed => Some("PodCompleted"),
        _ if !ready => Some("ContainersNotReady"),
        _ => None,
    };
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "conditions": [
            cond("Initialized", init_done, if init_done { None } else { Some("ContainersNotInitialized") }),
            cond("Ready", ready, not_ready_reason),
            cond("ContainersReady", ready, not_ready_reason),
            cond("PodScheduled", true, None),
        ],
        "containerStatuses": statuses,
    });
    if has_init {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    status
}

/// Keep a deleted pod `Terminating` for the grace, then remove it like a
/// kubelet does (delete with grace 0, guarded by uid).
async fn terminate(
    ctx: &Ctx,
    pods: &Api<Pod>,
    pod_rx: &watch::Receiver<Option<Arc<Pod>>>,
    rules: &Rules,
    name: &str,
    uid: &str,
) {
    let Some(pod) = pod_rx.borrow().clone() else {
        return;
    };
    let eff = effective(rules, &pod);
    let mut grace = eff.grace.unwrap_or(ctx.config.terminating_grace);
    if let Some(secs) = pod.metadata.deletion_grace_period_seconds {
        grace = grace.min(Duration::from_secs(secs.max(0) as u64));
    }
    // A pod never bound to a node is deleted by the API server directly;
    // only bound pods wait for "their kubelet".
    tokio::time::sleep(grace).await;
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    for _ in 0..5 {
        match pods.delete(name, &dp).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}
