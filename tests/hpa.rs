//! Changing the bounds of the HPA that manages a component
//! (`scale RELEASE COMPONENT --min N --max M`), on the real control plane,
//! whose HPA controller enforces the bounds: for a Helm release installed
//! by the real Helm 4 (server-side), and for a Milvus Operator cluster with
//! the user's own HPA. Checked from the outside with kubectl and helm.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use testbed::operator::{OperatorSample, OperatorSeedOptions};

const QN: &str = "my-release-milvus-querynode";
const QN_HPA: &str = "my-release-milvus-querynode-hpa";

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&kubectl(args)).expect("kubectl json")
}

/// `minReplicas-maxReplicas` of an HPA, as kubectl reads it.
fn hpa_bounds(ns: &str, name: &str) -> String {
    kubectl(&[
        "get",
        "hpa",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.minReplicas}-{.spec.maxReplicas}",
    ])
}

fn ready(ns: &str, deployment: &str) -> i64 {
    json(&["get", "deployment", deployment, "-n", ns, "-o", "json"])["status"]["readyReplicas"]
        .as_i64()
        .unwrap_or(0)
}

/// Waits (up to 90 s: the HPA controller's sync period is 15 s) until
/// `deployment` has `n` ready replicas.
fn wait_ready_count(ns: &str, deployment: &str, n: i64, what: &str) {
    let start = Instant::now();
    while ready(ns, deployment) != n {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{what} was never applied"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn helm_hpa_bounds_are_kept_in_step_with_helm() {
    let ns = namespace("hpa-helm");
    let ns = ns.name();
    // Helm 4's default: server-side apply, so Helm's field manager owns the bounds.
    let chart = helm_install_server_side(ns, &["queryNode.hpa.enabled=true", "queryNode.replicas=-1"]);
    let chart = chart.as_str();
    assert_eq!(hpa_bounds(ns, QN_HPA), "1-5");
    let watched = watch_replicas(ns, QN);

    // plan: before/after bounds, the replicas the HPA will hold, Helm's command.
    let plan = ok(&[
        "plan",
        "my-release",
        "queryNode",
        "--min",
        "3",
        "--max",
        "8",
        "-n",
        ns,
    ]);
    let row = plan
        .lines()
        .find(|l| l.starts_with("queryNode "))
        .unwrap_or_else(|| panic!("{plan}"));
    let cells: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        ["queryNode", QN_HPA, "1-5", "1 → 3", "5 → 8", "1 → 3", "1 → 3", QN],
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "helm upgrade my-release milvus/milvus --namespace {ns} --version 5.0.19-test --reset-then-reuse-values --set queryNode.hpa.minReplicas=3 --set queryNode.hpa.maxReplicas=8"
        )),
        "{plan}"
    );
    let doc: Value = serde_json::from_str(&ok(&[
        "plan",
        "my-release",
        "queryNode",
        "--min",
        "3",
        "-n",
        ns,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        doc["items"][0]["changes"][0]["hpa"],
        serde_json::json!({"name": QN_HPA, "current": {"min": 1, "max": 5}, "values": {"min": 1, "max": 5}, "target": {"min": 3, "max": 5}})
    );
    assert_eq!(hpa_bounds(ns, QN_HPA), "1-5", "plan changes nothing");

    // Raising min: the HPA controller raises the replicas; scale waits for them.
    let out = ok(&[
        "scale",
        "my-release",
        "queryNode",
        "--min",
        "3",
        "--max",
        "8",
        "-n",
        ns,
    ]);
    assert!(
        out.contains("release my-release scaled: queryNode HPA 1-5→3-8 (revision 2)"),
        "{out}"
    );
    assert_eq!(hpa_bounds(ns, QN_HPA), "3-8");
    assert_eq!(ready(ns, QN), 3, "the HPA enforced minReplicas");
    let values: Value =
        serde_json::from_str(&helm(&["get", "values", "my-release", "-n", ns, "-o", "json"])).unwrap();
    assert_eq!(values["queryNode"]["hpa"]["minReplicas"], 3);
    assert_eq!(values["queryNode"]["hpa"]["maxReplicas"], 8);
    let manifest = helm(&["get", "manifest", "my-release", "-n", ns]);
    assert!(
        manifest.contains("  minReplicas: 3\n  maxReplicas: 8\n"),
        "{manifest}"
    );
    let history: Value =
        serde_json::from_str(&helm(&["history", "my-release", "-n", ns, "-o", "json"])).unwrap();
    let rows: Vec<(i64, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [(1, "superseded"), (2, "deployed")]);
    assert!(
        !managers(ns, "hpa", QN_HPA).contains("kubectl-milvus"),
        "{}",
        managers(ns, "hpa", QN_HPA)
    );

    // Real Helm agrees, server-side, with no field conflict: --reuse-values
    // keeps min 3 and takes a new max.
    helm(&[
        "upgrade",
        "my-release",
        chart,
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "queryNode.hpa.maxReplicas=6",
        "--wait",
    ]);
    assert_eq!(hpa_bounds(ns, QN_HPA), "3-6");

    // A max below what runs is lowered one replica at a time.
    let out = ok(&[
        "scale",
        "my-release",
        "querynode",
        "--min",
        "1",
        "--max",
        "1",
        "-n",
        ns,
    ]);
    assert!(out.contains("queryNode HPA 3-6→1-1 (revision 4)"), "{out}");
    assert_eq!(hpa_bounds(ns, QN_HPA), "1-1");
    assert_eq!(ready(ns, QN), 1);
    let seen = watched.values();
    assert_eq!(seen, [1, 3, 2, 1], "replica sequence seen by the watch");

    // The same bounds again: nothing to do, no revision.
    let out = ok(&["scale", "my-release", "queryNode", "--max", "1", "-n", ns]);
    assert!(
        out.starts_with("nothing to do: my-release already at queryNode HPA 1-1"),
        "{out}"
    );

    // Refusals: one line, the right exit code, nothing written.
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["dataNode", "--min", "2"],
            3,
            "dataNode is not managed by a HorizontalPodAutoscaler",
        ),
        (
            &["queryNode=2"],
            3,
            "change its bounds instead, e.g. kubectl milvus scale my-release queryNode --min N --max M",
        ),
        (
            &["queryNode", "--min", "0"],
            2,
            "an HPA's bounds are 1 to 2147483647",
        ),
        (&["queryNode", "--max", "2147483648"], 2, "out of range"),
        (
            &["queryNode", "--min", "5", "--max", "3"],
            2,
            "--min 5 is above --max 3",
        ),
        (&["queryNode", "--min", "2"], 2, "give both --min and --max"),
        (
            &["queryNode", "--replicas", "2", "--min", "2"],
            2,
            "give one or the other",
        ),
        (
            &["queryNode=2", "dataNode", "--min", "2"],
            2,
            "--min/--max takes exactly one COMPONENT",
        ),
        (&["mixCoordinator", "--min", "2"], 3, "coordinator"),
    ];
    for (changes, code, message) in cases {
        let mut args = vec!["scale", "my-release"];
        args.extend_from_slice(changes);
        args.extend(["-n", ns]);
        let err = fails(&args, *code);
        assert!(err.contains(message), "{changes:?}: {err}");
    }
    let revisions = kubectl(&["get", "secrets", "-n", ns, "-l", "owner=helm", "-o", "name"]);
    assert_eq!(revisions.lines().count(), 4, "refusals wrote no revision");
}

/// `scale my-release queryNode --min 1 --max 1` from HPA bounds 3-3 (3
/// query nodes that take `stop_ms` each to go, installed by Helm 4),
/// returned with its arguments once its first step (max 3 → 2) is in the HPA.
fn slow_bounds_run(ns: &str, stop_ms: u64) -> (std::process::Child, [&str; 9]) {
    slow_terminations(ns, "component=querynode", stop_ms);
    helm_install_server_side(
        ns,
        &[
            "queryNode.hpa.enabled=true",
            "queryNode.replicas=-1",
            "queryNode.hpa.minReplicas=3",
            "queryNode.hpa.maxReplicas=3",
        ],
    );
    // The HPA controller brings the Deployment (1 without spec.replicas) to min 3.
    wait_ready_count(ns, QN, 3, "the HPA's min 3");
    let args = [
        "scale",
        "my-release",
        "queryNode",
        "--min",
        "1",
        "--max",
        "1",
        "-n",
        ns,
    ];
    let mut child = spawn_plugin(&args, bed().admin_kubeconfig());
    let start = Instant::now();
    while hpa_bounds(ns, QN_HPA) != "1-2" {
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().expect("wait").is_some() {
            child.kill().ok();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the first step (max 3 → 2) never reached the HPA (now {}):\n{}{}",
                hpa_bounds(ns, QN_HPA),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, args)
}

/// A bounds run killed mid-way (SIGKILL: no clean-up at all) is repaired
/// and finished by the same command run again: one revision, Helm's values
/// and the HPA at the new bounds, the HPA's fields handed back to Helm.
#[test]
fn a_killed_bounds_run_is_repaired_by_a_rerun() {
    let ns = namespace("hpa-kill");
    let ns = ns.name();
    let (mut child, args) = slow_bounds_run(ns, 3000);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let history = || -> Vec<(i64, String)> {
        let h: Value =
            serde_json::from_str(&helm(&["history", "my-release", "-n", ns, "-o", "json"])).unwrap();
        h.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["revision"].as_i64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        history(),
        [(1, "deployed".to_string()), (2, "pending-upgrade".to_string())],
        "the killed run left its revision pending"
    );

    let r = run(plugin().args(args));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("repairing revision 2"), "{}", r.stderr);
    assert!(r.stdout.contains("→1-1 (revision 2)"), "{}", r.stdout);
    assert_eq!(hpa_bounds(ns, QN_HPA), "1-1");
    assert_eq!(ready(ns, QN), 1);
    assert_eq!(
        history(),
        [(1, "superseded".to_string()), (2, "deployed".to_string())]
    );
    let values: Value =
        serde_json::from_str(&helm(&["get", "values", "my-release", "-n", ns, "-o", "json"])).unwrap();
    assert_eq!(values["queryNode"]["hpa"]["minReplicas"], 1);
    assert_eq!(values["queryNode"]["hpa"]["maxReplicas"], 1);
    assert!(
        !managers(ns, "hpa", QN_HPA).contains("kubectl-milvus"),
        "{}",
        managers(ns, "hpa", QN_HPA)
    );
}

/// Someone else writes the HPA's bounds while a bounds run waits for a
/// step: the run stops within seconds (not at the step's timeout), and
/// their bounds stand.
#[test]
fn another_writer_of_the_hpa_mid_bounds_run_stops_it_at_once() {
    let ns = namespace("hpa-writer");
    let ns = ns.name();
    // The step's pod takes 30 s to go (the chart's grace, which caps the
    // simulator's): a stop while it is still terminating is the watch's,
    // not the step's end.
    let (child, _) = slow_bounds_run(ns, 30_000);
    kubectl(&[
        "patch",
        "hpa",
        QN_HPA,
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"maxReplicas":5}}"#,
    ]);
    // The step ends once the HPA controller has the Deployment at 2 and
    // the removed pod is gone: not yet, when the run has stopped.
    let stderr = stopped_at_once(child, || {
        replicas(ns, QN) != "2" || terminating_pods(ns, "component=querynode") == 1
    });
    assert!(
        stderr.contains(&format!(
            "another writer changed the bounds of HorizontalPodAutoscaler {QN_HPA} to 1-5 (this run expected 1-2); this run wrote nothing over it"
        )),
        "{stderr}"
    );
    // No "continue with" that would undo their change; Helm's record keeps
    // what runs, so the next `helm upgrade --reuse-values` keeps it too.
    assert!(!stderr.contains("continue with"), "{stderr}");
    assert!(
        stderr.contains("stopped at queryNode HPA 1-5 and recorded it as revision 2"),
        "{stderr}"
    );
    let values: Value =
        serde_json::from_str(&helm(&["get", "values", "my-release", "-n", ns, "-o", "json"])).unwrap();
    assert_eq!(values["queryNode"]["hpa"]["maxReplicas"], 5);
    // Nothing of ours over it, then or later.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hpa_bounds(ns, QN_HPA), "1-5");
}

#[test]
fn operator_hpa_bounds_change_the_users_hpa_not_the_resource() {
    let ns = namespace("hpa-op");
    let ns = ns.name();
    seed_operator(ns, OperatorSample::Hpa, OperatorSeedOptions::default());
    let hpa = "my-release-milvus-proxy-hpa";
    let proxy = "my-release-milvus-proxy";
    let cr = || json(&["get", "milvus", "my-release", "-n", ns, "-o", "json"]);
    let generation = cr()["metadata"]["generation"].clone();
    wait_ready_count(ns, proxy, 2, "the HPA's min 2");

    let plan = ok(&["plan", "my-release", "proxy", "--min", "3", "-n", ns]);
    assert!(plan.contains(&format!("proxy       {hpa}   2 → 3")), "{plan}");
    assert!(
        plan.contains(&format!(
            "kubectl patch hpa {hpa} -n {ns} --type merge -p '{{\"spec\":{{\"minReplicas\":3,\"maxReplicas\":10}}}}'"
        )),
        "{plan}"
    );

    let out = ok(&["scale", "my-release", "proxy", "--min", "3", "-n", ns]);
    assert!(
        out.contains(&format!(
            "Milvus my-release scaled: proxy HorizontalPodAutoscaler {hpa} 2-10→3-10"
        )),
        "{out}"
    );
    assert_eq!(hpa_bounds(ns, hpa), "3-10");
    assert_eq!(ready(ns, proxy), 3, "the HPA enforced minReplicas");
    // The resource is not written: still -1, same generation.
    let now = cr();
    assert_eq!(now["spec"]["components"]["proxy"]["replicas"], -1);
    assert_eq!(now["metadata"]["generation"], generation);

    // Without an HPA, bounds are refused with the way to set a count.
    let e = fails(&["scale", "my-release", "queryNode", "--min", "2", "-n", ns], 3);
    assert!(e.contains("queryNode=N"), "{e}");
}

/// Values that fix a count under an HPA (`queryNode.replicas` defaults to
/// 1, so the chart renders both `replicas:` and the HPA): `status` says what
/// the next server-side `helm upgrade` really does, and a bounds change
/// sets the count to -1 in its revision, so that real Helm's next
/// `upgrade --reuse-values` works and never resets the HPA's count.
#[test]
fn a_bounds_change_leaves_the_count_to_the_hpa_for_the_next_helm_upgrade() {
    let ns = namespace("hpa-fixed");
    let ns = ns.name();
    let chart = helm_install_server_side(
        ns,
        &[
            "queryNode.hpa.enabled=true",
            "queryNode.hpa.minReplicas=2",
            "queryNode.hpa.maxReplicas=4",
        ],
    );
    wait_ready_count(ns, QN, 2, "the HPA's min 2");
    let status = ok(&["status", "my-release", "-n", ns]);
    assert!(
        status.contains(
            "the next helm upgrade (server-side apply, Helm 4) fails with a conflict over .spec.replicas"
        ),
        "{status}"
    );
    let plan = ok(&["plan", "my-release", "queryNode", "--max", "3", "-n", ns]);
    assert!(
        plan.contains("this revision sets queryNode.replicas=-1")
            && plan.contains("--set queryNode.hpa.maxReplicas=3 --set queryNode.replicas=-1"),
        "{plan}"
    );
    ok(&["scale", "my-release", "queryNode", "--max", "3", "-n", ns]);
    let values: Value =
        serde_json::from_str(&helm(&["get", "values", "my-release", "-n", ns, "-o", "json"])).unwrap();
    assert_eq!(values["queryNode"]["replicas"], -1, "{values}");
    assert!(
        !ok(&["status", "my-release", "-n", ns]).contains("both set replicas"),
        "the fight is over"
    );

    let watched = watch_replicas(ns, QN);
    helm(&[
        "upgrade",
        "my-release",
        chart.as_str(),
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "queryNode.hpa.maxReplicas=4",
        "--wait",
    ]);
    assert_eq!(hpa_bounds(ns, QN_HPA), "2-4");
    wait_ready_count(ns, QN, 2, "the HPA's count after the upgrade");
    // From v1.22 the HPA's write through /scale takes `spec.replicas` over
    // from Helm, which then leaves it alone (before the mend this very
    // upgrade failed on it). Older servers record no owner for /scale
    // writes: Helm still owns the field it no longer renders and the server
    // drops it to its default for a moment, until the HPA brings it back.
    let seen = watched.values();
    if bed().server_minor() >= 22 {
        assert!(!seen.contains(&1), "the upgrade reset the HPA's count: {seen:?}");
    } else {
        branch(&format!(
            "server v1.{} records no owner for /scale writes: the HPA's count is only checked to come back ({seen:?})",
            bed().server_minor()
        ));
    }
}
