//! The operator stand-in against the Milvus Operator's own rules (each one
//! cited in docs/operator.md), checked from outside: watches on the API
//! server record what the CR and its Deployments and pods went through,
//! and each test asserts the rule on that record. One test per rule; the
//! `slow_` test runs with the operator's real periods.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kubectl;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use testbed::TestBed;
use testbed::operator::upgrade::{self, STOPPED_AT, state};
use testbed::operator::{
    OperatorSample, OperatorSeedOptions, Timings, milvus_resource, seed_operator_cluster, set_timings,
    upgrade_resource,
};
use testbed::sim::{Fault, FaultRule, set_pod_faults};
use tokio::time::Instant;

const CR: &str = "my-release";
const QN0: &str = "my-release-milvus-querynode-0";
const QN1: &str = "my-release-milvus-querynode-1";
const DN: &str = "my-release-milvus-datanode";
const PROXY: &str = "my-release-milvus-proxy";
/// Short periods, the operator's rules (a scale waits for a stable Deployment).
const STRICT: Timings = Timings::FAST_STRICT;

/// One object as a watch delivered it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    kind: &'static str,
    name: String,
    obj: Value,
    deleted: bool,
}

/// Watches the namespace's Milvus CRs, Deployments and pods, recording
/// every event. `start` returns once all three watches have listed.
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Recorder {
    async fn start(ns: &str) -> Recorder {
        let client = TestBed::get().client().await.unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let mut tasks = Vec::new();
        let mut ready = Vec::new();
        macro_rules! watch {
            ($api:expr, $kind:expr) => {{
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                ready.push(rx);
                let seen = seen.clone();
                let api = $api;
                tasks.push(tokio::spawn(async move {
                    let mut tx = Some(tx);
                    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
                    while let Some(ev) = stream.next().await {
                        let (obj, deleted) = match ev {
                            Ok(Event::InitDone) => {
                                if let Some(tx) = tx.take() {
                                    let _ = tx.send(());
                                }
                                continue;
                            }
                            Ok(Event::Apply(o) | Event::InitApply(o)) => (o, false),
                            Ok(Event::Delete(o)) => (o, true),
                            _ => continue,
                        };
                        let obj = serde_json::to_value(&obj).unwrap();
                        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                        seen.lock().unwrap().push(Seen {
                            at: Instant::now(),
                            kind: $kind,
                            name,
                            obj,
                            deleted,
                        });
                    }
                }));
            }};
        }
        watch!(
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &milvus_resource()),
            "milvus"
        );
        watch!(Api::<Deployment>::namespaced(client.clone(), ns), "deploy");
        watch!(Api::<Pod>::namespaced(client.clone(), ns), "pod");
        watch!(
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &upgrade_resource()),
            "upgrade"
        );
        for r in ready {
            tokio::time::timeout(Duration::from_secs(30), r)
                .await
                .expect("watch established")
                .unwrap();
        }
        Recorder { seen, tasks }
    }

    fn all(&self, kind: &str, name: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.kind == kind && s.name == name)
            .cloned()
            .collect()
    }

    /// When `kind/name` was first seen in a state `pred` accepts.
    fn first(&self, kind: &str, name: &str, pred: impl Fn(&Value) -> bool) -> Option<Instant> {
        self.all(kind, name)
            .into_iter()
            .find(|s| pred(&s.obj))
            .map(|s| s.at)
    }

    fn latest(&self, kind: &str, name: &str) -> Option<Value> {
        self.all(kind, name)
            .into_iter()
            .last()
            .filter(|s| !s.deleted)
            .map(|s| s.obj)
    }

    fn cr(&self) -> Value {
        self.latest("milvus", CR).unwrap_or(Value::Null)
    }

    fn deploy(&self, name: &str) -> Value {
        self.latest("deploy", name).unwrap_or(Value::Null)
    }

    /// Every `spec.replicas` a Deployment had, consecutive repeats dropped.
    fn replicas_history(&self, name: &str) -> Vec<i64> {
        let mut out: Vec<i64> = Vec::new();
        for s in self.all("deploy", name) {
            if let Some(n) = s.obj["spec"]["replicas"].as_i64()
                && out.last() != Some(&n)
            {
                out.push(n);
            }
        }
        out
    }

    /// Waits (checking at each recorded event, at most `secs`) until `pred`.
    async fn until(&self, secs: u64, what: &str, pred: impl Fn(&Recorder) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if pred(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs}s waiting for {what}; CR status now: {:#}",
                self.cr()["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Holds for `secs` (checked at every event), else panics with `what`.
    async fn holds(&self, secs: u64, what: &str, pred: impl Fn(&Recorder) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            assert!(
                pred(self),
                "{what} stopped holding; CR status: {:#}",
                self.cr()["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn generation(cr: &Value) -> i64 {
    cr["metadata"]["generation"].as_i64().unwrap_or(0)
}

fn observed(cr: &Value) -> i64 {
    cr["status"]["observedGeneration"].as_i64().unwrap_or(0)
}

fn is_observed(cr: &Value) -> bool {
    generation(cr) > 0 && observed(cr) == generation(cr)
}

/// A generation newer than `before` is observed.
fn observed_since(cr: &Value, before: i64) -> bool {
    generation(cr) > before && is_observed(cr)
}

fn condition<'a>(cr: &'a Value, ty: &str) -> &'a Value {
    cr["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .unwrap_or(&Value::Null)
}

fn annotation<'a>(cr: &'a Value, key: &str) -> Option<&'a str> {
    cr["metadata"]["annotations"][key].as_str()
}

fn available(d: &Value) -> bool {
    d["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// `kubectl ARGS` off the runtime.
async fn kctl(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    blocking(move || kubectl(&args.iter().map(String::as_str).collect::<Vec<_>>())).await
}

/// `kubectl annotate milvus my-release KEY=VALUE|KEY-`, off the runtime.
async fn annotate(ns: &str, change: &str) {
    kctl(&["annotate", "milvus", CR, "-n", ns, change]).await;
}

/// A merge patch of the CR, off the runtime.
async fn merge(ns: &str, body: &str) {
    kctl(&["patch", "milvus", CR, "-n", ns, "--type", "merge", "-p", body]).await;
}

/// A namespace with `sample` seeded (no dependency releases unless asked)
/// under `timings`, and a recorder on it.
async fn seeded(
    prefix: &str,
    sample: OperatorSample,
    dependencies: bool,
    timings: Timings,
) -> (testbed::TestNamespace, Recorder) {
    let bed = TestBed::get();
    let ns = bed.namespace(prefix).await.unwrap();
    set_timings(&ns, timings).await.unwrap();
    let opts = OperatorSeedOptions {
        dependencies,
        ..OperatorSeedOptions::default()
    };
    seed_operator_cluster(bed, &ns, sample, opts).await.unwrap();
    let rec = Recorder::start(&ns).await;
    rec.until(30, "the seeded CR observed", |r| is_observed(&r.cr()))
        .await;
    (ns, rec)
}

/// Patches the query- and data-node counts and waits until the generation
/// is observed with both Deployments ready at them.
async fn scale_both(ns: &str, rec: &Recorder, query: i64, data: i64) {
    let body = format!(
        r#"{{"spec":{{"components":{{"queryNode":{{"replicas":{query}}},"dataNode":{{"replicas":{data}}}}}}}}}"#
    );
    merge(ns, &body).await;
    rec.until(60, &format!("{query} query and {data} data nodes"), |r| {
        is_observed(&r.cr())
            && r.deploy(QN0)["status"]["readyReplicas"] == query
            && r.deploy(DN)["status"]["readyReplicas"] == data
            && r.deploy(QN0)["status"]["replicas"] == query
            && r.deploy(DN)["status"]["replicas"] == data
    })
    .await;
}

/// Two-deployment mode serves from the slot the CR's
/// `milvus.io/querynode-current-group-id` names; a pod-template change
/// (an upgrade) is rolled out to the idle slot, which then serves; the idle
/// one ends at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_moves_the_serving_slot_to_the_idle_deployment() {
    let (ns, rec) = seeded("op-upgrade", OperatorSample::ClusterDefault, false, STRICT).await;
    let key = "milvus.io/querynode-current-group-id";
    assert_eq!(annotation(&rec.cr(), key), Some("0"));
    assert_eq!(rec.deploy(QN1)["spec"]["replicas"], 0);
    assert_eq!(
        rec.deploy(QN1)["spec"]["template"]["spec"]["containers"][0]["image"],
        "dummy"
    );
    let new = "milvusdb/milvus:v2.6.16";
    merge(
        &ns,
        &format!(r#"{{"spec":{{"components":{{"image":"{new}"}}}}}}"#),
    )
    .await;
    rec.until(90, "slot 1 serving the new image, slot 0 at 0", |r| {
        let (cr, q0, q1) = (r.cr(), r.deploy(QN0), r.deploy(QN1));
        is_observed(&cr)
            && annotation(&cr, key) == Some("1")
            && q1["spec"]["template"]["spec"]["containers"][0]["image"] == new
            && q1["status"]["availableReplicas"] == 1
            && q0["spec"]["replicas"] == 0
            && q0["status"]["replicas"].as_i64().unwrap_or(0) == 0
            && cr["metadata"]["labels"]["milvus.io/querynode-rolling-id"].is_null()
    })
    .await;
    // The rollout was marked on the CR while it ran.
    let marked = rec
        .all("milvus", CR)
        .iter()
        .any(|s| s.obj["metadata"]["labels"]["milvus.io/querynode-rolling-id"].is_string());
    assert!(marked, "no milvus.io/querynode-rolling-id label seen");
    // One up on the new slot, then one down on the old (never both down).
    assert_eq!(rec.replicas_history(QN1), [0, 1]);
    assert_eq!(rec.replicas_history(QN0), [1, 0]);
    let q1_up = rec
        .first("deploy", QN1, |d| d["status"]["availableReplicas"] == 1)
        .expect("slot 1 available");
    let q0_down = rec
        .first("deploy", QN0, |d| d["spec"]["replicas"] == 0)
        .expect("slot 0 lowered");
    assert!(q1_up < q0_down, "slot 0 was lowered before slot 1 served");
    assert_eq!(
        rec.cr()["status"]["componentsDeployStatus"]["querynode"]["image"],
        new
    );
}

/// Deployment groups keep their rollout state under
/// `milvus.io/querynode-<hex of sha256(group)[..8]>-current-group-id`; the
/// ungrouped key means nothing to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_groups_key_their_rollout_state_by_a_hash_of_the_group() {
    let (ns, rec) = seeded("op-groupkey", OperatorSample::DeploymentGroups, false, STRICT).await;
    // `printf g1 | sha256sum`, `printf g2 | sha256sum`: first 16 hex digits.
    let g1 = "milvus.io/querynode-711430f6164e9380-current-group-id";
    let g2 = "milvus.io/querynode-4d2f4b668cfc48e6-current-group-id";
    let cr = rec.cr();
    assert_eq!((annotation(&cr, g1), annotation(&cr, g2)), (Some("0"), Some("0")));
    assert_eq!(annotation(&cr, "milvus.io/querynode-current-group-id"), None);
    // A leftover ungrouped key naming slot 1 changes nothing: g1-0 serves.
    annotate(&ns, "milvus.io/querynode-current-group-id=1").await;
    let g1_replicas = r#"[{"op":"replace","path":"/spec/components/queryNode/groups/0/replicas","value":3}]"#;
    kctl(&[
        "patch",
        "milvus",
        CR,
        "-n",
        &ns,
        "--type",
        "json",
        "-p",
        g1_replicas,
    ])
    .await;
    let (g1_0, g1_1) = (
        "my-release-milvus-querynode-g1-0",
        "my-release-milvus-querynode-g1-1",
    );
    rec.until(60, "g1 at 3 on its slot 0", |r| {
        is_observed(&r.cr()) && r.deploy(g1_0)["status"]["readyReplicas"] == 3
    })
    .await;
    assert_eq!(rec.replicas_history(g1_1), [0], "the idle slot was never scaled");
    assert_eq!(annotation(&rec.cr(), g1), Some("0"));
}

/// A seeded cluster whose `component` pods take `delay_ms` to start, then
/// `spec.components.<key>.replicas: 3`; returns the generation before it.
async fn slow_start_then_patch(
    prefix: &str,
    component: &str,
    delay_ms: u64,
    key: &str,
) -> (testbed::TestNamespace, Recorder, i64) {
    let (ns, rec) = seeded(prefix, OperatorSample::ClusterDefault, false, STRICT).await;
    let slow = FaultRule::new(
        &format!("app.kubernetes.io/component={component}"),
        Fault::SlowStart { delay_ms },
    );
    set_pod_faults(&ns, vec![slow]).await.unwrap();
    let before = generation(&rec.cr());
    merge(
        &ns,
        &format!(r#"{{"spec":{{"components":{{"{key}":{{"replicas":3}}}}}}}}"#),
    )
    .await;
    (ns, rec, before)
}

/// A one-Deployment component: `observedGeneration` is set in the pass that
/// writes the Deployment's spec, before its pods are ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deployment_components_are_observed_when_written_not_when_ready() {
    let (ns, rec, before) = slow_start_then_patch("op-obs1", "datanode", 15_000, "dataNode").await;
    rec.until(30, "the new generation observed", |r| {
        observed_since(&r.cr(), before)
    })
    .await;
    let d: Value =
        serde_json::from_str(&kctl(&["get", "deploy", DN, "-n", &ns, "-o", "json"]).await).unwrap();
    assert_eq!(
        d["spec"]["replicas"], 3,
        "spec written before the generation is observed"
    );
    assert!(
        d["status"]["readyReplicas"].as_i64().unwrap_or(0) < 3,
        "observed only after the pods were ready: {:#}",
        d["status"]
    );
}

/// A two-Deployment component: the pass that scales ends in a requeue, and
/// the next passes requeue until the serving Deployment is stable (all pods
/// ready and available); only then is the generation observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployment_components_are_observed_once_the_serving_deployment_is_stable() {
    let (_ns, rec, before) = slow_start_then_patch("op-obs2", "querynode", 5_000, "queryNode").await;
    rec.until(10, "querynode-0 at 3", |r| r.deploy(QN0)["spec"]["replicas"] == 3)
        .await;
    // While the new pods start, the generation stays unobserved.
    rec.holds(3, "generation unobserved while pods start", |r| {
        let cr = r.cr();
        generation(&cr) > before && !is_observed(&cr)
    })
    .await;
    rec.until(60, "the new generation observed", |r| {
        observed_since(&r.cr(), before)
    })
    .await;
    let at = rec.first("milvus", CR, |cr| observed_since(cr, before)).unwrap();
    let stable = rec
        .first("deploy", QN0, |d| {
            d["status"]["availableReplicas"] == 3 && d["status"]["readyReplicas"] == 3
        })
        .expect("querynode-0 available at 3");
    assert!(stable <= at, "observed before querynode-0 was stable");
    assert_eq!(rec.replicas_history(QN0), [1, 3], "scale-out at once");
}

/// Any workload's requeue holds back the status write of the whole pass: a
/// data-node change is written to its Deployment but not observed while a
/// new query node cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_elsewhere_freezes_observed_generation() {
    let (ns, rec) = seeded("op-freeze", OperatorSample::ClusterDefault, false, STRICT).await;
    // New query-node pods stay Pending (the running one is not affected).
    let stuck = FaultRule::new("app.kubernetes.io/component=querynode", Fault::StuckPending);
    set_pod_faults(&ns, vec![stuck]).await.unwrap();
    merge(&ns, r#"{"spec":{"components":{"queryNode":{"replicas":2}}}}"#).await;
    rec.until(10, "querynode-0 at 2", |r| r.deploy(QN0)["spec"]["replicas"] == 2)
        .await;
    merge(&ns, r#"{"spec":{"components":{"dataNode":{"replicas":2}}}}"#).await;
    rec.until(20, "datanode written and ready at 2", |r| {
        r.deploy(DN)["spec"]["replicas"] == 2 && r.deploy(DN)["status"]["readyReplicas"] == 2
    })
    .await;
    rec.holds(4, "generation unobserved", |r| !is_observed(&r.cr()))
        .await;
    set_pod_faults(&ns, vec![]).await.unwrap();
    rec.until(30, "observed once the query node is ready", |r| {
        is_observed(&r.cr()) && r.deploy(QN0)["status"]["readyReplicas"] == 2
    })
    .await;
}

async fn etcd_replicas(ns: &str, n: u32) {
    let to = format!("--replicas={n}");
    kctl(&["scale", "statefulset", "my-release-etcd", "-n", ns, &to]).await;
}

/// With a dependency not ready the pass skips every Deployment and still
/// observes the generation (`ReconcileMilvus` returns early).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_not_ready_is_observed_without_touching_deployments() {
    let (ns, rec) = seeded("op-deps", OperatorSample::ClusterMinimum, true, STRICT).await;
    assert_eq!(condition(&rec.cr(), "EtcdReady")["status"], "True");
    etcd_replicas(&ns, 0).await;
    rec.until(30, "EtcdReady False", |r| {
        condition(&r.cr(), "EtcdReady")["status"] == "False"
    })
    .await;
    assert_eq!(condition(&rec.cr(), "EtcdReady")["reason"], "EtcdNotReady");
    let before = generation(&rec.cr());
    merge(&ns, r#"{"spec":{"components":{"queryNode":{"replicas":2}}}}"#).await;
    rec.until(30, "the new generation observed", |r| {
        observed_since(&r.cr(), before)
    })
    .await;
    rec.holds(2, "querynode-0 untouched", |r| r.replicas_history(QN0) == [1])
        .await;
    etcd_replicas(&ns, 1).await;
    rec.until(60, "querynode-0 at 2 once etcd is back", |r| {
        r.deploy(QN0)["status"]["readyReplicas"] == 2
    })
    .await;
}

/// A paused component (`spec.components.queryNode.paused`) and manual mode
/// (`spec.components.enableManualMode`): the generation is observed, the
/// Deployments are not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_and_manual_mode_are_observed_without_touching_deployments() {
    let (ns, rec) = seeded("op-paused", OperatorSample::ClusterDefault, false, STRICT).await;
    for (what, body, undo) in [
        (
            "paused",
            r#"{"spec":{"components":{"queryNode":{"paused":true,"replicas":2}}}}"#,
            r#"{"spec":{"components":{"queryNode":{"paused":false,"replicas":1}}}}"#,
        ),
        (
            "manual mode",
            r#"{"spec":{"components":{"enableManualMode":true,"queryNode":{"replicas":3}}}}"#,
            r#"{"spec":{"components":{"enableManualMode":false,"queryNode":{"replicas":1}}}}"#,
        ),
    ] {
        let before = generation(&rec.cr());
        merge(&ns, body).await;
        rec.until(30, what, |r| {
            let cr = r.cr();
            generation(&cr) > before && is_observed(&cr)
        })
        .await;
        rec.holds(2, what, |r| r.replicas_history(QN0) == [1]).await;
        let paused_gen = generation(&rec.cr());
        merge(&ns, undo).await;
        rec.until(30, "back to normal", |r| observed_since(&r.cr(), paused_gen))
            .await;
    }
    assert_eq!(rec.replicas_history(QN0), [1]);
}

/// `milvus.io/pause-reconcile: "true"`: nothing is written and the
/// generation is never observed, through several status syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_reconcile_holds_every_write_and_observed_generation() {
    let (ns, rec) = seeded("op-pausec", OperatorSample::ClusterDefault, false, STRICT).await;
    let before = generation(&rec.cr());
    annotate(&ns, "milvus.io/pause-reconcile=true").await;
    merge(
        &ns,
        r#"{"spec":{"components":{"queryNode":{"replicas":2},"dataNode":{"replicas":2}}}}"#,
    )
    .await;
    rec.until(10, "the patch seen", |r| generation(&r.cr()) > before)
        .await;
    // FAST syncs every 1-2 s: four seconds cover several.
    rec.holds(4, "nothing applied, nothing observed", |r| {
        !is_observed(&r.cr()) && r.replicas_history(QN0) == [1] && r.replicas_history(DN) == [1]
    })
    .await;
    annotate(&ns, "milvus.io/pause-reconcile-").await;
    rec.until(60, "applied once the pause is lifted", |r| {
        is_observed(&r.cr())
            && r.deploy(QN0)["status"]["readyReplicas"] == 2
            && r.deploy(DN)["spec"]["replicas"] == 2
    })
    .await;
}

/// The operator does not watch Deployments: a hand edit stands until a
/// status sync copies the Deployment's status into the CR, whose write
/// triggers the pass that reverts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edit_goes_back_at_the_next_status_sync_not_at_once() {
    let bed = TestBed::get();
    let ns = bed.namespace("op-handedit").await.unwrap();
    // Healthy resources are synced every 10 min here: none during the test.
    let slow_sync = Timings {
        sync_healthy_ms: 600_000,
        ..STRICT
    };
    set_timings(&ns, slow_sync).await.unwrap();
    let opts = OperatorSeedOptions {
        dependencies: false,
        ..OperatorSeedOptions::default()
    };
    seed_operator_cluster(bed, &ns, OperatorSample::ClusterDefault, opts)
        .await
        .unwrap();
    let rec = Recorder::start(&ns).await;
    rec.until(30, "Healthy, updated and observed", |r| {
        let cr = r.cr();
        is_observed(&cr)
            && cr["status"]["status"] == "Healthy"
            && condition(&cr, "MilvusUpdated")["status"] == "True"
    })
    .await;
    kctl(&["scale", "deploy", PROXY, "-n", &ns, "--replicas=3"]).await;
    rec.until(10, "the hand edit seen", |r| {
        r.deploy(PROXY)["spec"]["replicas"] == 3
    })
    .await;
    rec.holds(5, "the hand edit standing", |r| {
        r.deploy(PROXY)["spec"]["replicas"] == 3
    })
    .await;
    // The next healthy sync (2 s from now) writes the status, and its pass
    // sets the count back.
    let edited = rec.cr()["metadata"]["resourceVersion"].clone();
    set_timings(&ns, STRICT).await.unwrap();
    rec.until(15, "the proxy back at 1", |r| {
        r.deploy(PROXY)["spec"]["replicas"] == 1
    })
    .await;
    assert_ne!(
        rec.cr()["metadata"]["resourceVersion"],
        edited,
        "a status write came first"
    );
}

/// Scale-in of a two-Deployment component goes one replica per pass (each
/// waiting for the last removed pod to be gone); a one-Deployment component
/// takes the count at once. Nothing touches the query-node pods themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_deployment_scale_in_lowers_one_replica_per_pass() {
    let (ns, rec) = seeded("op-scalein", OperatorSample::ClusterDefault, false, STRICT).await;
    scale_both(&ns, &rec, 3, 3).await;
    scale_both(&ns, &rec, 1, 1).await;
    assert_eq!(rec.replicas_history(QN0), [1, 3, 2, 1]);
    assert_eq!(rec.replicas_history(DN), [1, 3, 1]);
    // No drain, no choice of pod: no query-node pod was ever annotated.
    let seen = rec.seen.lock().unwrap().clone();
    for s in seen.iter().filter(|s| s.kind == "pod" && s.name.starts_with(QN0)) {
        let ann = &s.obj["metadata"]["annotations"];
        assert!(
            ann["controller.kubernetes.io/pod-deletion-cost"].is_null(),
            "{}: {ann}",
            s.name
        );
    }
}

/// `imageUpdateMode: force`: terminating Milvus pods are killed at the end
/// of each pass and status sync (`handleTerminatingPods`), so a leaving pod
/// does not get its grace period, and a two-Deployment component is set to
/// its count at once. Without it the pod keeps terminating and the CR says
/// so (`MilvusUpdated` "Milvus has terminating pods").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_mode_kills_terminating_pods() {
    let (ns, rec) = seeded("op-force", OperatorSample::ClusterDefault, false, STRICT).await;
    scale_both(&ns, &rec, 3, 2).await;
    let long = |c: &str| {
        FaultRule::new(
            &format!("app.kubernetes.io/component={c}"),
            Fault::TerminatingGrace { grace_ms: 120_000 },
        )
    };
    set_pod_faults(&ns, vec![long("querynode"), long("datanode")])
        .await
        .unwrap();
    let terminating = |r: &Recorder, prefix: &str| {
        let seen = r.seen.lock().unwrap();
        let mut last: std::collections::BTreeMap<String, Seen> = Default::default();
        for s in seen
            .iter()
            .filter(|s| s.kind == "pod" && s.name.starts_with(prefix))
        {
            last.insert(s.name.clone(), s.clone());
        }
        last.values()
            .filter(|s| !s.deleted && !s.obj["metadata"]["deletionTimestamp"].is_null())
            .count()
    };
    // Without force: the leaving data node keeps terminating, the CR says so.
    merge(&ns, r#"{"spec":{"components":{"dataNode":{"replicas":1}}}}"#).await;
    rec.until(20, "a terminating data node", |r| terminating(r, DN) == 1)
        .await;
    rec.until(20, "MilvusUpdated saying so", |r| {
        condition(&r.cr(), "MilvusUpdated")["message"] == "Milvus has terminating pods"
    })
    .await;
    rec.holds(4, "it keeps terminating", |r| terminating(r, DN) == 1)
        .await;
    // With force: the next pass ends it.
    merge(&ns, r#"{"spec":{"components":{"imageUpdateMode":"force"}}}"#).await;
    rec.until(20, "the data node gone", |r| terminating(r, DN) == 0)
        .await;
    // And a query-node scale-in goes to its count at once, its pods killed.
    merge(&ns, r#"{"spec":{"components":{"queryNode":{"replicas":1}}}}"#).await;
    rec.until(20, "querynode-0 at 1", |r| r.deploy(QN0)["spec"]["replicas"] == 1)
        .await;
    rec.until(20, "no terminating query node", |r| {
        terminating(r, QN0) == 0 && r.deploy(QN0)["status"]["replicas"] == 1
    })
    .await;
    assert_eq!(rec.replicas_history(QN0), [1, 3, 1]);
}

/// The operator's own periods (`Timings::REAL`): `minReadySeconds` 30 with
/// maxUnavailable 0 keeps a scaled-out query-node Deployment unavailable for
/// about 30 s and its generation unobserved until then; a data-node change
/// is observed in its own pass while its Deployment is still unavailable; a
/// hand edit goes back within one 60 s healthy sync. Slow (about 3 min).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_real_timings_min_ready_seconds_and_sync_periods() {
    let (ns, rec) = seeded("op-real", OperatorSample::ClusterDefault, false, STRICT).await;
    set_timings(&ns, Timings::REAL).await.unwrap();
    // A metadata change is an event: its pass puts minReadySeconds 30 on
    // every Deployment.
    annotate(&ns, "test/poke=1").await;
    // Pods ready for less than 30 s stop counting as available meanwhile.
    rec.until(
        90,
        "minReadySeconds 30 everywhere, every pod available again",
        |r| {
            [QN0, QN1, DN, PROXY].iter().all(|n| {
                let d = r.deploy(n);
                d["spec"]["minReadySeconds"] == 30
                    && d["status"]["observedGeneration"] == d["metadata"]["generation"]
                    && d["status"]["availableReplicas"].as_i64().unwrap_or(0)
                        == d["spec"]["replicas"].as_i64().unwrap_or(1)
            })
        },
    )
    .await;
    let before = generation(&rec.cr());
    merge(&ns, r#"{"spec":{"components":{"dataNode":{"replicas":2}}}}"#).await;
    rec.until(10, "the data-node change observed in its pass", |r| {
        observed_since(&r.cr(), before)
    })
    .await;
    let dn = rec.deploy(DN);
    assert_eq!(dn["spec"]["replicas"], 2);
    assert_ne!(dn["status"]["availableReplicas"], 2, "{:#}", dn["status"]);
    rec.until(60, "datanode available at 2", |r| {
        r.deploy(DN)["status"]["availableReplicas"] == 2
    })
    .await;

    let before = generation(&rec.cr());
    merge(&ns, r#"{"spec":{"components":{"queryNode":{"replicas":2}}}}"#).await;
    let patched = Instant::now();
    rec.until(20, "querynode-0 at 2 with minReadySeconds 30", |r| {
        let d = r.deploy(QN0);
        d["spec"]["replicas"] == 2 && d["spec"]["minReadySeconds"] == 30
    })
    .await;
    let d = rec.deploy(QN0);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
    rec.until(20, "both query nodes ready", |r| {
        r.deploy(QN0)["status"]["readyReplicas"] == 2
    })
    .await;
    let ready_at = Instant::now();
    rec.until(60, "querynode-0 available", |r| {
        available(&r.deploy(QN0)) && r.deploy(QN0)["status"]["availableReplicas"] == 2
    })
    .await;
    assert!(
        ready_at.elapsed() >= Duration::from_secs(25),
        "available {:?} after ready",
        ready_at.elapsed()
    );
    let unobserved_until_available = rec
        .all("milvus", CR)
        .iter()
        .filter(|s| s.at > patched && s.at < ready_at)
        .all(|s| !is_observed(&s.obj));
    assert!(
        unobserved_until_available,
        "observed before querynode-0 was available"
    );
    // A later 15 s requeue finds it stable.
    rec.until(30, "the query-node change observed", |r| {
        observed_since(&r.cr(), before)
    })
    .await;

    kctl(&["scale", "deploy", PROXY, "-n", &ns, "--replicas=2"]).await;
    let edited = Instant::now();
    rec.until(90, "the proxy back at 1", |r| {
        r.deploy(PROXY)["spec"]["replicas"] == 1
    })
    .await;
    assert!(
        edited.elapsed() <= Duration::from_secs(80),
        "{:?}",
        edited.elapsed()
    );
}

// ------------------------------------------------------- MilvusUpgrade ----

const UPGRADE: &str = "to-2-6-16";
const BACKUP_POD: &str = "to-2-6-16-backup-meta";

impl Recorder {
    fn upgrade(&self) -> Value {
        self.latest("upgrade", UPGRADE).unwrap_or(Value::Null)
    }

    /// Every `status.state` the upgrade was seen in, repeats dropped.
    fn upgrade_states(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.all("upgrade", UPGRADE) {
            let st = s.obj["status"]["state"].as_str().unwrap_or("").to_string();
            if out.last() != Some(&st) {
                out.push(st);
            }
        }
        out
    }
}

fn components(cr: &Value) -> std::collections::BTreeMap<String, i64> {
    cr["spec"]["components"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v["replicas"].as_i64().map(|n| (k.clone(), n)))
        .collect()
}

/// A cluster at queryNode 2 / dataNode 2, and an upgrade of it to 2.6.16
/// held in `BackupMeta` (its backup pod does not start): what it did on
/// the way there is checked.
async fn upgrade_held_in_backup_meta(
    prefix: &str,
) -> (
    testbed::TestNamespace,
    Recorder,
    std::collections::BTreeMap<String, i64>,
) {
    let (ns, rec) = seeded(prefix, OperatorSample::ClusterDefault, false, STRICT).await;
    scale_both(&ns, &rec, 2, 2).await;
    let before = components(&rec.cr());
    set_pod_faults(
        &ns,
        vec![FaultRule::new(
            "milvus.io/task-kind=backup-meta",
            Fault::SlowStart { delay_ms: 600_000 },
        )],
    )
    .await
    .unwrap();
    let up = upgrade::manifest(UPGRADE, &ns, &ns, CR, "2.6.15", "2.6.16");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), up.to_string()).unwrap();
    kctl(&["apply", "-f", file.path().to_str().unwrap()]).await;
    rec.until(60, "the upgrade in BackupMeta with its pod", |r| {
        r.upgrade()["status"]["state"] == state::BACKUP_META && r.latest("pod", BACKUP_POD).is_some()
    })
    .await;
    // Stopped: every component at 0 in the spec, every Deployment at 0.
    let cr = rec.cr();
    assert!(components(&cr).values().all(|n| *n == 0), "{:?}", components(&cr));
    for d in [QN0, QN1, DN, PROXY] {
        assert_eq!(rec.deploy(d)["spec"]["replicas"], 0, "{d}");
        assert_eq!(
            rec.deploy(d)["status"]["replicas"].as_i64().unwrap_or(0),
            0,
            "{d}"
        );
    }
    // The counts and the image recorded before the stop.
    let status = rec.upgrade()["status"].clone();
    let recorded: std::collections::BTreeMap<String, i64> =
        serde_json::from_value(status["replicasBeforeUprade"].clone()).expect("replicasBeforeUprade");
    assert_eq!(recorded, before, "recorded counts");
    assert_eq!(status["replicasBeforeUprade"]["queryNode"], 2);
    assert_eq!(status["replicasBeforeUprade"]["dataNode"], 2);
    assert_eq!(status["sourceImage"], "milvusdb/milvus:v2.6.15");
    assert_eq!(status["backupPVC"], UPGRADE);
    // The backup ran only after the Deployments were at 0 and the
    // deregistration wait (1 s under FAST timings) had passed.
    let stopped_at: jiff::Timestamp = annotation(&cr, STOPPED_AT)
        .expect("milvus.io/stopped-at")
        .parse()
        .unwrap();
    let pod = rec.latest("pod", BACKUP_POD).unwrap();
    let created: jiff::Timestamp = pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        created.duration_since(stopped_at).as_secs() >= 1,
        "backup pod at {created}, stopped at {stopped_at}"
    );
    assert_eq!(pod["metadata"]["labels"]["milvus.io/upgrade"], UPGRADE);
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "MilvusUpgrade");
    // Created without a status (Pending), then the two states.
    let mut states = rec.upgrade_states();
    states.retain(|s| !s.is_empty());
    assert_eq!(states, [state::OLD_VERSION_STOPPING, state::BACKUP_META]);
    // It stays there while the backup pod does not finish.
    rec.holds(3, "BackupMeta with every component at 0", |r| {
        r.upgrade()["status"]["state"] == state::BACKUP_META && components(&r.cr()).values().all(|n| *n == 0)
    })
    .await;
    (ns, rec, before)
}

/// `MilvusUpgrade` (milvusupgrade_fsm.go): the old version is stopped
/// (every component's count recorded, then set to 0; the Deployments
/// reach 0; `milvus.io/stopped-at`; the deregistration wait), the
/// meta-migration task pods run (`BackupMeta`, `UpdatingMeta`), then the
/// target image and the recorded counts are written back and the state is
/// `Succeeded`, a no-requeue state: nothing is written after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_upgrade_stops_every_component_and_writes_the_recorded_counts_back() {
    let (ns, rec, before) = upgrade_held_in_backup_meta("op-mup").await;
    set_pod_faults(&ns, vec![]).await.unwrap();
    rec.until(60, "Succeeded", |r| {
        r.upgrade()["status"]["state"] == state::SUCCEEDED
    })
    .await;
    let cr = rec.cr();
    assert_eq!(components(&cr), before, "the recorded counts written back");
    assert_eq!(cr["spec"]["components"]["image"], "milvusdb/milvus:v2.6.16");
    assert_eq!(annotation(&cr, STOPPED_AT), None);
    let states = rec.upgrade_states();
    let from = states.iter().position(|s| s == state::BACKUP_META).unwrap();
    assert_eq!(
        states[from..],
        [state::BACKUP_META, state::UPDATING_META, state::SUCCEEDED]
    );
    let up = rec.upgrade();
    assert_eq!(up["status"]["metaBackuped"], true);
    assert_eq!(up["status"]["metaStorageChanged"], true);
    let upgraded = up["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Upgraded")
        .cloned()
        .expect("condition Upgraded");
    assert_eq!(
        (&upgraded["status"], &upgraded["reason"]),
        (&"True".into(), &"Succeeded".into())
    );
    assert!(rec.latest("pod", "to-2-6-16-update-meta").is_some());
    // Finished: a count written now stands (the upgrade writes no more).
    merge(&ns, r#"{"spec":{"components":{"dataNode":{"replicas":3}}}}"#).await;
    let three = |r: &Recorder| r.cr()["spec"]["components"]["dataNode"]["replicas"] == 3;
    rec.until(20, "dataNode 3 seen", three).await;
    rec.holds(4, "dataNode 3 standing", three).await;
}

/// `operation: rollback` while the upgrade runs (`DetermineCurrentState`,
/// `RollbackNewVersionStopping` … `RollbackOldVersionStarting`): the
/// source image and the recorded counts come back, `RollbackedSucceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_restores_the_source_image_and_the_recorded_counts() {
    let (ns, rec, before) = upgrade_held_in_backup_meta("op-mup-rb").await;
    kctl(&[
        "patch",
        "milvusupgrade",
        UPGRADE,
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"operation":"rollback"}}"#,
    ])
    .await;
    rec.until(60, "RollbackedSucceeded", |r| {
        r.upgrade()["status"]["state"] == state::ROLLBACK_SUCCEEDED
    })
    .await;
    let cr = rec.cr();
    assert_eq!(components(&cr), before);
    assert_eq!(cr["spec"]["components"]["image"], "milvusdb/milvus:v2.6.15");
    let up = rec.upgrade();
    assert_eq!(up["status"]["isRollbacking"], true);
    assert!(
        up["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Rollbacked"
                && c["status"] == "True"
                && c["reason"] == "RollbackedSucceeded"),
        "{:#}",
        up["status"]
    );
    // Never backed up: no rollback-meta pod was needed.
    assert!(rec.latest("pod", "to-2-6-16-rollback-meta").is_none());
}
