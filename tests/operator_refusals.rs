//! The plugin against the operator's rules (issue 16 §2): the states in
//! which the Milvus Operator would not apply a new count — or would apply
//! it differently — must be found and refused before anything is written,
//! with the reason and what to do; deployment groups must be followed by
//! their own rollout key. Each test puts the resource in one such state the
//! way a user or the operator would, runs the plugin, and checks its answer
//! and that the resource's generation did not move.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use testbed::operator::{OperatorSample, OperatorSeedOptions};

const CR: &str = "my-release";

fn milvus(ns: &str) -> Value {
    serde_json::from_str(&kubectl(&["get", "milvus", CR, "-n", ns, "-o", "json"])).expect("json")
}

fn generation(ns: &str) -> Value {
    milvus(ns)["metadata"]["generation"].clone()
}

fn patch(ns: &str, body: &str) {
    kubectl(&["patch", "milvus", CR, "-n", ns, "--type", "merge", "-p", body]);
}

/// `kubectl annotate milvus my-release KEY=VALUE`.
fn annotate(ns: &str, key_value: &str) {
    kubectl(&["annotate", "milvus", CR, "-n", ns, key_value]);
}

/// Polls the resource until `f` holds (at most 30 s).
fn wait_for(ns: &str, what: &str, f: impl Fn(&Value) -> bool) {
    let start = std::time::Instant::now();
    while !f(&milvus(ns)) {
        assert!(start.elapsed() < Duration::from_secs(30), "never {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn seeded(prefix: &str, sample: OperatorSample) -> testbed::TestNamespace {
    let ns = namespace(prefix);
    seed_operator(
        ns.name(),
        sample,
        OperatorSeedOptions {
            dependencies: false,
            ..Default::default()
        },
    );
    ns
}

/// A refused `scale`: non-zero, one line naming `why` (any of the words),
/// and the resource's generation unchanged.
fn refused(ns: &str, args: &[&str], why: &[&str]) {
    let before = generation(ns);
    let r = run(plugin().args([&["scale", CR, "-n", ns, "--timeout", "30s"][..], args].concat()));
    assert_ne!(r.code, 0, "scale went ahead:\n{}{}", r.stdout, r.stderr);
    let err = r.stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        why.iter().any(|w| err.contains(w)),
        "the error does not name the cause ({why:?}): {}",
        r.stderr
    );
    assert_eq!(generation(ns), before, "the resource was written: {}", r.stderr);
}

#[test]
fn pause_reconcile_is_refused_before_writing() {
    let ns = seeded("op2-pausec", OperatorSample::ClusterDefault);
    let ns = ns.name();
    annotate(ns, "milvus.io/pause-reconcile=true");
    refused(ns, &["queryNode=2"], &["pause-reconcile"]);
}

#[test]
fn a_paused_component_is_refused_before_writing() {
    let ns = seeded("op2-paused", OperatorSample::ClusterDefault);
    let ns = ns.name();
    patch(ns, r#"{"spec":{"components":{"queryNode":{"paused":true}}}}"#);
    refused(ns, &["queryNode=2"], &["paused"]);
}

#[test]
fn manual_mode_is_refused_before_writing() {
    let ns = seeded("op2-manual", OperatorSample::ClusterDefault);
    let ns = ns.name();
    patch(ns, r#"{"spec":{"components":{"enableManualMode":true}}}"#);
    refused(ns, &["queryNode=2"], &["enableManualMode", "manual mode"]);
}

#[test]
fn a_dependency_not_ready_is_refused_before_writing() {
    let ns = namespace("op2-deps");
    let ns = ns.name();
    seed_operator(ns, OperatorSample::ClusterMinimum, OperatorSeedOptions::default());
    kubectl(&[
        "scale",
        "statefulset",
        "my-release-etcd",
        "-n",
        ns,
        "--replicas=0",
    ]);
    wait_for(ns, "EtcdReady False", |cr| {
        cr["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "EtcdReady" && c["status"] == "False")
    });
    refused(ns, &["queryNode=2"], &["EtcdReady"]);
}

#[test]
fn a_mode_change_in_flight_is_refused_before_writing() {
    let ns = seeded("op2-mode", OperatorSample::ClusterDefault);
    let ns = ns.name();
    annotate(ns, "milvus.io/changing-querynode-mode=true");
    refused(ns, &["queryNode=2"], &["changing-querynode-mode", "mode change"]);
}

#[test]
fn a_rollout_in_flight_is_refused_before_writing() {
    let ns = seeded("op2-rolling", OperatorSample::ClusterDefault);
    let ns = ns.name();
    // An upgrade whose new query nodes take two minutes to start: the
    // operator marks the rollout on the resource while it runs.
    faults(
        ns,
        vec![testbed::sim::FaultRule::new(
            "app.kubernetes.io/component=querynode",
            testbed::sim::Fault::SlowStart { delay_ms: 120_000 },
        )],
    );
    patch(
        ns,
        r#"{"spec":{"components":{"image":"milvusdb/milvus:v2.6.16"}}}"#,
    );
    wait_for(ns, "a rollout marked", |cr| {
        cr["metadata"]["labels"]["milvus.io/querynode-rolling-id"].is_string()
    });
    refused(ns, &["dataNode=2"], &["rolling-id", "rollout"]);
}

#[test]
fn force_image_update_mode_is_refused_before_a_scale_in() {
    let ns = seeded("op2-force", OperatorSample::ClusterDefault);
    let ns = ns.name();
    ok(&["scale", CR, "queryNode=2", "-n", ns]);
    patch(ns, r#"{"spec":{"components":{"imageUpdateMode":"force"}}}"#);
    refused(ns, &["queryNode=1"], &["force"]);
}

/// A group's serving slot comes from its hashed key; a leftover ungrouped
/// `querynode-current-group-id: "1"` must not make the plugin follow the
/// idle `…-g1-1`.
#[test]
fn deployment_groups_follow_their_hashed_rollout_key() {
    let ns = seeded("op2-groups", OperatorSample::DeploymentGroups);
    let ns = ns.name();
    annotate(ns, "milvus.io/querynode-current-group-id=1");
    let out = ok(&["plan", CR, "queryNode=3", "-n", ns]);
    let row = out
        .lines()
        .find(|l| l.starts_with("queryNode/g1 "))
        .unwrap_or_else(|| panic!("no queryNode/g1 row:\n{out}"));
    // COMPONENT SPEC CURRENT TARGET STEPS DEPLOYMENTS
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cols[1], cols[2]),
        ("2", "2"),
        "SPEC and CURRENT of queryNode/g1: {row}"
    );
    assert!(row.ends_with("my-release-milvus-querynode-g1-0"), "{row}");
    let r = run(plugin().args(["scale", CR, "queryNode=3", "-n", ns, "--timeout", "60s"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// Before a scale-in step the resource's health is read: while it says
/// Unhealthy (a proxy that never gets ready), `scale` waits or stops and
/// says why — it does not lower anything.
#[test]
fn a_scale_in_waits_for_a_healthy_resource() {
    let ns = seeded("op2-health", OperatorSample::ClusterDefault);
    let ns = ns.name();
    ok(&["scale", CR, "queryNode=2", "-n", ns]);
    faults(
        ns,
        vec![testbed::sim::FaultRule::new(
            "app.kubernetes.io/component=proxy",
            testbed::sim::Fault::NeverReady,
        )],
    );
    wait_for(ns, "Unhealthy", |cr| cr["status"]["status"] == "Unhealthy");
    refused(ns, &["queryNode=1"], &["Unhealthy", "MilvusReady"]);
}

/// `status.state` of MilvusUpgrade `name`.
fn upgrade_state(ns: &str, name: &str) -> String {
    kubectl(&[
        "get",
        "milvusupgrade",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.status.state}",
    ])
}

/// A `MilvusUpgrade` in flight stops every component and then writes the
/// counts it recorded back over any other (docs/operator.md,
/// "MilvusUpgrade"): while one runs for the resource, `plan` warns and
/// `scale` refuses before writing; once it has finished (a no-requeue
/// state) the same `scale` runs. One for another Milvus never blocks.
#[test]
fn a_milvus_upgrade_in_flight_is_refused_until_it_finishes() {
    use testbed::operator::upgrade::manifest;
    let ns = seeded("op2-upgrade", OperatorSample::ClusterDefault);
    let ns = ns.name();
    // Another Milvus's upgrade (never past Pending: no such Milvus) does
    // not block a scale of this one.
    apply(&manifest("other", ns, ns, "another", "2.6.15", "2.6.16").to_string());
    ok(&["scale", CR, "queryNode=2", "-n", ns, "--timeout", "120s"]);
    // This one's upgrade, held in BackupMeta: its backup pod does not start.
    faults(
        ns,
        vec![testbed::sim::FaultRule::new(
            "milvus.io/task-kind=backup-meta",
            testbed::sim::Fault::SlowStart { delay_ms: 600_000 },
        )],
    );
    apply(&manifest("to-2-6-16", ns, ns, CR, "2.6.15", "2.6.16").to_string());
    wait_until("the upgrade in BackupMeta", Duration::from_secs(60), || {
        upgrade_state(ns, "to-2-6-16") == "BackupMeta"
    });
    let stopped = milvus(ns);
    assert_eq!(stopped["spec"]["components"]["queryNode"]["replicas"], 0);

    // `plan` warns, naming the upgrade and what to do.
    let r = run(plugin().args(["plan", CR, "queryNode=3", "-n", ns]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let warning = r
        .stdout
        .lines()
        .find(|l| l.contains("MilvusUpgrade to-2-6-16"))
        .unwrap_or_else(|| panic!("no warning of the upgrade:\n{}", r.stdout));
    assert!(warning.starts_with("Warning: "), "{warning}");
    assert!(
        warning.contains("kubectl get milvusupgrade to-2-6-16"),
        "{warning}"
    );
    assert!(!r.stdout.contains("MilvusUpgrade other"), "{}", r.stdout);

    // `scale` refuses before writing: exit 3, one line, the resource as
    // the upgrade left it.
    let before = milvus(ns);
    let err = fails(&["scale", CR, "queryNode=3", "-n", ns, "--timeout", "60s"], 3);
    assert!(
        err.contains("MilvusUpgrade to-2-6-16") && err.contains("kubectl get milvusupgrade to-2-6-16 -n"),
        "{err}"
    );
    assert!(!err.contains("MilvusUpgrade other"), "{err}");
    let after = milvus(ns);
    assert_eq!(after["metadata"]["generation"], before["metadata"]["generation"]);
    assert_eq!(after["spec"], before["spec"]);

    // Finished: the recorded counts are back, and the same scale runs.
    faults(ns, vec![]);
    wait_until("the upgrade Succeeded", Duration::from_secs(120), || {
        upgrade_state(ns, "to-2-6-16") == "Succeeded"
    });
    // (The new image is then rolled out; `scale` would refuse that too.)
    wait_for(ns, "the recorded count back, rolled out and Healthy", |cr| {
        let rolling = cr["metadata"]["labels"]
            .as_object()
            .is_some_and(|l| l.keys().any(|k| k.ends_with("-rolling-id")));
        cr["spec"]["components"]["queryNode"]["replicas"] == 2
            && !rolling
            && cr["status"]["status"] == "Healthy"
            && cr["status"]["observedGeneration"] == cr["metadata"]["generation"]
    });
    let r = run(plugin().args(["scale", CR, "queryNode=3", "-n", ns, "--timeout", "180s"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(milvus(ns)["spec"]["components"]["queryNode"]["replicas"], 3);
}
