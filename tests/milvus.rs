//! Asking Milvus itself, from the outside: `status` shows the stand-in's
//! node IDs and what they hold, `plan` shows the drain, and `scale` drains
//! each leaving query node before its pod goes — no segment lost, a stalled
//! drain stopped with the pod kept and the node resumed, a killed run
//! repaired by the next, an unreachable Milvus scaled as before with a
//! warning, an Operator cluster drained too.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use testbed::milvus::{self as standin, MilvusKnobs, Model};
use testbed::seed::Scenario;
use testbed::sim::{Fault, FaultRule};

const QN: &str = "my-release-milvus-querynode";
const WAIT: Duration = Duration::from_secs(90);

fn knobs(ns: &str, k: MilvusKnobs) {
    let ns = ns.to_string();
    bed()
        .block_on(async move { standin::set_knobs(&ns, k).await })
        .expect("runtime")
        .expect("knobs");
}

fn segments(n: u32) -> MilvusKnobs {
    MilvusKnobs {
        segments: [("*".to_string(), n)].into(),
        ..MilvusKnobs::default()
    }
}

fn model_until(
    ns: &str,
    instance: &str,
    what: &str,
    f: impl Fn(&Model) -> bool + Send + Sync + 'static,
) -> Model {
    let (ns, instance, what) = (ns.to_string(), instance.to_string(), what.to_string());
    bed()
        .block_on(async move { standin::wait_until(&ns, &instance, WAIT, &what, f).await })
        .expect("runtime")
        .expect("model")
}

fn model(ns: &str, instance: &str) -> Model {
    standin::state(ns, instance).expect("the stand-in's model")
}

/// A queryNode=3 release holding `n` segments, loaded and balanced.
fn seeded(prefix: &str, k: MilvusKnobs, n: usize) -> testbed::TestNamespace {
    bed()
        .pod_network()
        .expect("the Milvus stand-in needs the test bed's pod network");
    let ns = namespace(prefix);
    knobs(ns.name(), k);
    seed_ready(ns.name(), Scenario::QueryNode3DataNode2);
    model_until(ns.name(), "my-release", "loaded and balanced", move |m| {
        !m.busy() && m.unplaced.is_empty() && m.nodes.values().map(|n| n.segments.len()).sum::<usize>() == n
    });
    ns
}

/// Query-node pods stop at once (what a short grace period does) and new
/// ones take a realistic 5 s to start (docs/milvus.md).
fn abrupt_stops(ns: &str) {
    faults(
        ns,
        vec![
            FaultRule::new("component=querynode", Fault::TerminatingGrace { grace_ms: 0 }),
            FaultRule::new("component=querynode", Fault::SlowStart { delay_ms: 5000 }),
        ],
    );
}

fn drain_marks(ns: &str) -> String {
    kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-o",
        r#"jsonpath={.items[*].metadata.annotations.kubectl-milvus\.io/drain}"#,
    ])
}

#[test]
fn status_shows_the_stand_ins_node_ids_and_counts() {
    let ns = seeded("mv-status", segments(12), 12);
    let m = model(ns.name(), "my-release");
    let out = ok(&["status", "my-release", "-n", ns.name()]);
    assert!(out.contains("MILVUS NODE"), "{out}");
    for n in m.nodes.values() {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&n.id.to_string()) && l.contains(&n.pod))
            .unwrap_or_else(|| panic!("node {} ({}) in:\n{out}", n.id, n.pod));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2], n.segments.len().to_string(), "{row}");
    }
    let json: Value =
        serde_json::from_str(&ok(&["status", "my-release", "-n", ns.name(), "-o", "json"])).expect("json");
    let doc = &json["items"][0];
    let nodes = doc["milvus"]["queryNodes"].as_array().expect("milvus.queryNodes");
    let ids: Vec<i64> = nodes.iter().filter_map(|n| n["id"].as_i64()).collect();
    assert_eq!(ids, m.nodes.keys().copied().collect::<Vec<_>>());
    assert_eq!(
        nodes
            .iter()
            .filter_map(|n| n["held"]["segments"].as_u64())
            .sum::<u64>(),
        12
    );
}

#[test]
fn status_and_plan_say_one_line_when_milvus_cannot_be_asked() {
    let ns = seeded(
        "mv-old",
        MilvusKnobs {
            no_routes: true,
            ..segments(3)
        },
        3,
    );
    let out = ok(&["status", "my-release", "-n", ns.name()]);
    let notes: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Milvus's own view is not shown"))
        .collect();
    assert_eq!(notes.len(), 1, "{out}");
    assert!(
        notes[0].contains("does not serve /management/querycoord/node/list"),
        "{out}"
    );
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", ns.name()]);
    assert!(plan.contains("Milvus cannot be asked now"), "{plan}");
}

#[test]
fn plan_shows_each_leaving_node_and_what_it_holds() {
    let ns = seeded("mv-plan", segments(12), 12);
    let m = model(ns.name(), "my-release");
    let out = ok(&["plan", "my-release", "queryNode=1", "-n", ns.name()]);
    assert!(out.contains("Drain:"), "{out}");
    let steps: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("step "))
        .collect();
    assert_eq!(steps.len(), 2, "{out}");
    for line in steps {
        let node = m
            .nodes
            .values()
            .find(|n| line.contains(&format!("pod {},", n.pod)))
            .unwrap_or_else(|| panic!("a stand-in node in {line}"));
        assert!(
            line.contains(&format!(
                "node {} (active) holds {} sealed segment",
                node.id,
                node.segments.len()
            )),
            "{line}"
        );
    }
    assert!(out.contains("Which pod leaves:"), "{out}");
}

#[test]
fn a_3_to_1_scale_in_drains_each_leaving_node_and_loses_no_segment() {
    let ns = seeded("mv-drain", segments(12), 12);
    abrupt_stops(ns.name());
    let r = run(plugin().args(["scale", "my-release", "queryNode=1", "-n", ns.name()]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(replicas(ns.name(), QN), "1");
    let end = model_until(ns.name(), "my-release", "settled", |m| !m.busy());
    assert!(end.lost.is_empty(), "segments lost: {:?}\n{out}", end.lost);
    assert_eq!(end.nodes.values().map(|n| n.segments.len()).sum::<usize>(), 12);
    assert!(out.contains(" → 0 segments"), "progress in:\n{out}");
    assert_eq!(drain_marks(ns.name()), "", "marks leave with their pods");
    assert!(end.nodes.values().all(|n| !n.suspended), "{:?}", end.nodes);
}

#[test]
fn without_a_drain_the_same_scale_in_loses_segments() {
    let ns = seeded("mv-nodrain", segments(12), 12);
    abrupt_stops(ns.name());
    ok(&[
        "scale",
        "my-release",
        "queryNode=1",
        "--no-drain",
        "-n",
        ns.name(),
    ]);
    let end = model_until(ns.name(), "my-release", "a loss recorded", |m| !m.lost.is_empty());
    assert!(!end.lost.is_empty());
}

#[test]
fn a_stalled_drain_stops_within_its_timeout_with_the_pod_kept_and_the_node_resumed() {
    let ns = seeded("mv-stall", segments(9), 9);
    knobs(
        ns.name(),
        MilvusKnobs {
            stall_moves: true,
            ..segments(9)
        },
    );
    let started = std::time::Instant::now();
    let r = run(plugin().args([
        "scale",
        "my-release",
        "queryNode=2",
        "--drain-timeout",
        "3s",
        "-n",
        ns.name(),
    ]));
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("drain of query node"), "{all}");
    assert!(all.contains("resumed"), "{all}");
    assert!(all.contains("kept"), "{all}");
    assert!(all.contains("continue with"), "{all}");
    assert_eq!(replicas(ns.name(), QN), "3", "the pod stays");
    let m = model(ns.name(), "my-release");
    assert!(m.nodes.values().all(|n| !n.suspended), "{:?}", m.nodes);
    assert_eq!(drain_marks(ns.name()), "");
}

#[test]
fn ctrl_c_mid_drain_resumes_the_node_and_keeps_the_pod() {
    let ns = seeded("mv-sigint", segments(6), 6);
    knobs(
        ns.name(),
        MilvusKnobs {
            stall_moves: true,
            ..segments(6)
        },
    );
    let child = spawn_plugin(
        &["scale", "my-release", "queryNode=2", "-n", ns.name()],
        bed().admin_kubeconfig(),
    );
    model_until(ns.name(), "my-release", "a node suspended", |m| {
        m.nodes.values().any(|n| n.suspended)
    });
    // SIGINT, as Ctrl-C sends it.
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by a signal"), "{stderr}");
    assert!(stderr.contains("resumed query node"), "{stderr}");
    assert!(stderr.contains("continue with"), "{stderr}");
    assert_eq!(replicas(ns.name(), QN), "3", "the pod stays");
    let m = model(ns.name(), "my-release");
    assert!(m.nodes.values().all(|n| !n.suspended), "{:?}", m.nodes);
    assert_eq!(drain_marks(ns.name()), "");
}

#[test]
fn an_unreachable_milvus_still_scales_with_one_warning() {
    let ns = seeded(
        "mv-unreach",
        MilvusKnobs {
            no_routes: true,
            ..segments(3)
        },
        3,
    );
    let r = run(plugin().args(["scale", "my-release", "queryNode=1", "-n", ns.name()]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(all.matches("without a drain").count(), 1, "warned once:\n{all}");
    assert_eq!(replicas(ns.name(), QN), "1");
}

#[test]
fn a_killed_run_leaves_what_a_rerun_finds_and_repairs() {
    let ns = seeded("mv-kill", segments(6), 6);
    knobs(
        ns.name(),
        MilvusKnobs {
            stall_moves: true,
            ..segments(6)
        },
    );
    let mut child = spawn_plugin(
        &["scale", "my-release", "queryNode=2", "-n", ns.name()],
        bed().admin_kubeconfig(),
    );
    model_until(ns.name(), "my-release", "a node suspended", |m| {
        m.nodes.values().any(|n| n.suspended)
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_ne!(drain_marks(ns.name()), "", "the mark says who suspended the node");
    // The dead run's lock stays until a run takes it over, and one read
    // cannot tell a dead holder from a live one: status shows the drain and
    // says both, with the repair.
    let out = ok(&["status", "my-release", "-n", ns.name()]);
    assert!(out.contains("(drain by "), "{out}");
    assert!(
        out.contains("which holds the release's lock: at work, or killed without giving it up; a scale run takes over once the lock has gone 15s unrenewed and resumes the node first"),
        "{out}"
    );
    knobs(ns.name(), segments(6));
    let r = run(plugin().args(["scale", "my-release", "queryNode=2", "-n", ns.name()]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("resumed query node"), "{out}");
    assert_eq!(replicas(ns.name(), QN), "2");
    let end = model_until(ns.name(), "my-release", "settled", |m| !m.busy());
    assert!(end.nodes.values().all(|n| !n.suspended), "{:?}", end.nodes);
    assert!(end.lost.is_empty(), "{:?}", end.lost);
    assert_eq!(drain_marks(ns.name()), "");
}

#[test]
fn an_operator_cluster_drains_too() {
    bed().pod_network().expect("pod network");
    let ns = namespace("mv-operator");
    knobs(ns.name(), segments(12));
    seed_operator(
        ns.name(),
        testbed::operator::OperatorSample::ClusterMixcoord,
        testbed::operator::OperatorSeedOptions {
            name: Some("my-milvus".into()),
            dependencies: false,
            ..Default::default()
        },
    );
    kubectl(&[
        "patch",
        "milvus",
        "my-milvus",
        "-n",
        ns.name(),
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"components":{"queryNode":{"replicas":3}}}}"#,
    ]);
    model_until(ns.name(), "my-milvus", "three loaded query nodes", |m| {
        !m.busy()
            && m.unplaced.is_empty()
            && m.nodes
                .values()
                .filter(|n| n.pod.contains("querynode") && !n.segments.is_empty())
                .count()
                == 3
    });
    // status reads the pods as printed rows: each node is matched to its
    // pod by the row's IP, and asked at its Deployment's metrics port.
    let m = model(ns.name(), "my-milvus");
    let json: Value =
        serde_json::from_str(&ok(&["status", "my-milvus", "-n", ns.name(), "-o", "json"])).expect("json");
    let nodes = json["items"][0]["milvus"]["queryNodes"]
        .as_array()
        .expect("milvus.queryNodes");
    let shown: Vec<(i64, &str)> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_i64()?, n["pod"].as_str()?)))
        .collect();
    let expected: Vec<(i64, &str)> = m.nodes.iter().map(|(id, n)| (*id, n.pod.as_str())).collect();
    assert_eq!(shown, expected, "{json:#}");
    faults(
        ns.name(),
        vec![
            FaultRule::new(
                "app.kubernetes.io/component=querynode",
                Fault::TerminatingGrace { grace_ms: 0 },
            ),
            FaultRule::new(
                "app.kubernetes.io/component=querynode",
                Fault::SlowStart { delay_ms: 5000 },
            ),
        ],
    );
    let r = run(plugin().args(["scale", "my-milvus", "queryNode=1", "-n", ns.name()]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    let end = model_until(ns.name(), "my-milvus", "settled", |m| !m.busy());
    assert!(end.lost.is_empty(), "segments lost: {:?}\n{out}", end.lost);
    assert!(out.contains(" → 0 segments"), "{out}");
}

/// Prints real `status`, `plan` and `scale` output of a drain, for the
/// README (`cargo test --test milvus readme_output -- --ignored --nocapture`).
#[test]
#[ignore = "prints output for the README"]
fn readme_output() {
    let ns = seeded("mv-readme", segments(24), 24);
    // Pods older than the slow start, so the new rule only holds new ones.
    std::thread::sleep(Duration::from_secs(6));
    abrupt_stops(ns.name());
    let n = ns.name();
    println!(
        "$ kubectl milvus status my-release -n {n}\n{}",
        ok(&["status", "my-release", "-n", n])
    );
    println!(
        "$ kubectl milvus plan my-release queryNode=2 -n {n}\n{}",
        ok(&["plan", "my-release", "queryNode=2", "-n", n])
    );
    let r = run(plugin().args(["scale", "my-release", "queryNode=2", "-n", n]));
    println!(
        "$ kubectl milvus scale my-release queryNode=2 -n {n}\n{}{}",
        r.stderr, r.stdout
    );
    let end = model_until(n, "my-release", "settled", |m| !m.busy());
    println!("lost: {:?}", end.lost);
}
