//! Scale-in that knows what a Milvus worker needs, on the test bed's real
//! control plane: the grace-period account, the health gate (`--check`,
//! `--pause`), `--remove` (a guarantee from v1.22, refused before), and no
//! deletion-cost mark left on a survivor. Version-dependent assertions
//! follow the server the suite runs against.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use testbed::seed::Scenario;

const QN: &str = "my-release-milvus-querynode";

fn replicas(ns: &str) -> String {
    kubectl(&[
        "get",
        "deployment",
        QN,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

fn history_statuses(ns: &str) -> Vec<(u64, String, String)> {
    let out = helm(&["history", "my-release", "-n", ns, "-o", "json"]);
    let rows: Vec<Value> = serde_json::from_str(&out).expect("json");
    rows.iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap_or(0),
                r["status"].as_str().unwrap_or("").to_string(),
                r["description"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// queryNode=3 release whose query nodes take `stop_ms` to terminate.
fn seeded(prefix: &str, stop_ms: u64) -> testbed::TestNamespace {
    let ns = namespace(prefix);
    slow_terminations(ns.name(), "component=querynode", stop_ms);
    seed_ready(ns.name(), Scenario::QueryNode3DataNode2);
    ns
}

/// Sets the query nodes' `terminationGracePeriodSeconds`, as a post-renderer
/// or a hand patch would.
fn set_grace(ns: &str, seconds: u32) {
    let patch =
        format!(r#"{{"spec":{{"template":{{"spec":{{"terminationGracePeriodSeconds":{seconds}}}}}}}}}"#);
    kubectl(&["patch", "deployment", QN, "-n", ns, "-p", &patch]);
}

/// `jsonpath` over the release's query node pods.
fn querynode_jsonpath(ns: &str, path: &str) -> String {
    pods_jsonpath(ns, "component=querynode", path)
}

/// The names of the release's query node pods.
fn querynode_pods(ns: &str) -> Vec<String> {
    querynode_jsonpath(ns, "{.items[*].metadata.name}")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Every pod annotation of the release's query nodes.
fn querynode_annotations(ns: &str) -> String {
    querynode_jsonpath(
        ns,
        "{range .items[*]}{.metadata.name}={.metadata.annotations}{\"\\n\"}{end}",
    )
}

#[test]
fn plan_and_scale_state_the_grace_shortfall_and_short_grace_needs_the_flag() {
    let ns = seeded("si-grace", 300);
    let ns = ns.name();
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", ns]);
    assert!(
        plan.contains("queryNode: pods get 30s (terminationGracePeriodSeconds), Milvus may take 1800s (queryNode.gracefulStopTimeout, Milvus 2.6.15 default) — short"),
        "{plan}"
    );
    assert!(plan.contains("searches on them fail meanwhile"), "{plan}");
    assert!(
        plan.contains("30s, Kubernetes' default: the Milvus chart sets none"),
        "{plan}"
    );
    // From v1.22 the removed pod is chosen and marked; before, a leaving
    // query node is chosen and drained by the run (it deletes the pod
    // itself, docs/milvus.md), and other removals are a prediction.
    let said = if honours_deletion_cost() {
        "removed ones are chosen; `scale` marks each with controller.kubernetes.io/pod-deletion-cost"
    } else {
        "removed query-node pods are chosen and drained by the run"
    };
    assert!(plan.contains(said), "{plan}");
    let doc = plan_json(ns, "queryNode=2");
    assert_eq!(doc["items"][0]["grace"][0]["podGraceSeconds"], 30);
    assert_eq!(doc["items"][0]["victimsChosen"], honours_deletion_cost());

    // The Operator's way: a grace period past Milvus's timeout is no shortfall.
    set_grace(ns, 2592000);
    wait_ready(ns);
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", ns]);
    assert!(
        plan.contains("pods get 2592000s (terminationGracePeriodSeconds)"),
        "{plan}"
    );
    assert!(!plan.contains("— short"), "{plan}");

    // Below 30 s a query node's handoff is cut short: refused without the flag.
    set_grace(ns, 5);
    wait_ready(ns);
    let err = fails(&["plan", "my-release", "queryNode=2", "-n", ns], 3);
    assert!(
        err.contains("pods get only 5s to stop") && err.contains("--accept-short-grace"),
        "{err}"
    );
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", ns], 3);
    assert!(err.contains("--accept-short-grace"), "{err}");
    assert_eq!(replicas(ns), "3");
    let r = run(plugin().args([
        "scale",
        "my-release",
        "queryNode=2",
        "-n",
        ns,
        "--accept-short-grace",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("queryNode: pods get 5s to stop, Milvus's graceful stop may take 1800s"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("Warning: queryNode: pods get terminationGracePeriodSeconds 5s"),
        "{}",
        r.stderr
    );
    assert_eq!(replicas(ns), "2");
}

#[test]
fn each_step_waits_for_the_removed_pod_to_be_gone_and_runs_the_check_with_its_env() {
    // Query nodes take 1.5 s to stop: a step cannot settle sooner.
    let ns = seeded("si-check", 1500);
    let ns = ns.name();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("check.log");
    let check = format!(
        "echo \"$MILVUS_RELEASE $MILVUS_NAMESPACE $MILVUS_COMPONENT $MILVUS_PREVIOUS_REPLICAS->$MILVUS_REPLICAS $MILVUS_STEP/$MILVUS_STEPS removed=$MILVUS_REMOVED_POD pods=$(kubectl get pods -n $MILVUS_NAMESPACE -l component=querynode --no-headers --kubeconfig {kc} | wc -l)\" >> {log}",
        kc = bed().admin_kubeconfig().display(),
        log = log.display()
    );
    let started = Instant::now();
    let r = run(plugin().args([
        "scale",
        "my-release",
        "queryNode=1",
        "-n",
        ns,
        "--check",
        &check,
        "--pause",
        "1s",
    ]));
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, (step, from, to)) in lines.iter().zip([(1, 3, 2), (2, 2, 1)]) {
        assert!(
            line.starts_with(&format!(
                "my-release {ns} queryNode {from}->{to} {step}/2 removed={QN}-"
            )),
            "{line}"
        );
        // The check ran once the removed pod was gone: exactly `to` pods.
        assert!(line.ends_with(&format!("pods={to}")), "{line}");
    }
    assert!(
        r.stderr.contains("(step 1 of 2)") && r.stderr.contains("gone after"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("pausing 1s before the next step"),
        "{}",
        r.stderr
    );
    // Two graceful stops of 1.5 s and one pause of 1 s at least.
    assert!(took >= Duration::from_millis(4000), "{took:?}");
}

#[test]
fn a_failing_check_stops_cleanly_and_a_rerun_resumes() {
    let ns = seeded("si-checkfail", 300);
    let ns = ns.name();
    let r = run(plugin().args([
        "scale",
        "my-release",
        "queryNode=1",
        "-n",
        ns,
        "--check",
        "echo loading; echo 'collection c1 not loaded' >&2; exit 7",
    ]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let err = r.stderr.lines().last().unwrap_or_default();
    assert!(
        err.starts_with(
            "error: --check failed after queryNode 3 → 2 (exit 7): loading | collection c1 not loaded"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "continue with: kubectl milvus scale my-release queryNode=1 -n {ns}"
        )),
        "{err}"
    );
    assert_eq!(replicas(ns), "2", "stopped after the first step");
    let h = history_statuses(ns);
    assert_eq!(
        h.last().map(|r| (r.0, r.1.as_str())),
        Some((2, "deployed")),
        "{h:?}"
    );
    assert!(h.last().unwrap().2.contains("interrupted"), "{h:?}");
    let out = ok(&["scale", "my-release", "queryNode=1", "-n", ns, "--check", "true"]);
    assert!(out.contains("queryNode 2→1"), "{out}");
    assert_eq!(replicas(ns), "1");
}

/// The server's ReplicaSet controller honours pod-deletion-cost (v1.22+);
/// the branch taken is said where CI shows it.
fn honours_deletion_cost() -> bool {
    let honours = bed().server_minor() >= 22;
    branch(if honours {
        "v1.22+: pod-deletion-cost honoured, removed pods chosen and marked"
    } else {
        "before v1.22: pod-deletion-cost ignored, removed pods a prediction, --remove refused"
    });
    honours
}

/// `--remove POD`: from v1.22 a guarantee — exactly that pod leaves, and no
/// survivor keeps a mark; before, a stated prediction, and `scale` refuses
/// to promise it.
#[test]
fn remove_is_a_guarantee_where_deletion_cost_is_honoured_and_refused_elsewhere() {
    let ns = seeded("si-remove", 300);
    let ns = ns.name();
    let names = querynode_pods(ns);
    // Any pod will do: --remove makes it the one that leaves.
    let pick = names[0].clone();
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", ns, "--remove", &pick]);
    assert_eq!(plan.matches("- removed (step 1)").count(), 1, "{plan}");
    let err = fails(
        &[
            "plan",
            "my-release",
            "queryNode=2",
            "-n",
            ns,
            "--remove",
            "no-such-pod",
        ],
        2,
    );
    assert!(
        err.contains("not a pod of a component this change scales in"),
        "{err}"
    );
    if honours_deletion_cost() {
        let removed = plan
            .lines()
            .find(|l| l.contains("- removed (step 1)"))
            .unwrap_or_default();
        assert!(removed.starts_with(&pick), "{plan}");
        ok(&["scale", "my-release", "queryNode=2", "-n", ns, "--remove", &pick]);
        let left = querynode_pods(ns);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!left.contains(&pick), "{pick} was to leave: {left:?}");
        let annotations = querynode_annotations(ns);
        assert!(
            !annotations.contains("kubectl-milvus.io") && !annotations.contains("-2147483648"),
            "{annotations}"
        );
        assert_eq!(replicas(ns), "2");
    } else {
        assert!(
            plan.contains("--remove needs a server that honours controller.kubernetes.io/pod-deletion-cost"),
            "{plan}"
        );
        let err = fails(
            &["scale", "my-release", "queryNode=2", "-n", ns, "--remove", &pick],
            3,
        );
        assert!(err.contains("--remove needs Kubernetes v1.22+"), "{err}");
        assert_eq!(replicas(ns), "3");
    }
}

#[test]
fn no_survivor_keeps_a_mark_after_a_run_and_other_releases_are_untouched() {
    // A killed run on a v1.22+ server leaves its chosen pod marked; the
    // next run, finished or not, takes the mark off and puts back the cost.
    let ns = seeded("si-unmark", 300);
    let ns = ns.name();
    let names = querynode_pods(ns);
    kubectl(&[
        "annotate",
        "pod",
        &names[0],
        "-n",
        ns,
        "controller.kubernetes.io/pod-deletion-cost=-2147483648",
        "kubectl-milvus.io/deletion-cost-was=",
    ]);
    kubectl(&[
        "annotate",
        "pod",
        &names[1],
        "-n",
        ns,
        "controller.kubernetes.io/pod-deletion-cost=-2147483648",
        "kubectl-milvus.io/deletion-cost-was=25",
    ]);
    // A pod of another release with the same marks is not ours to touch.
    let other = "other-release-pod";
    kubectl(&[
        "run",
        other,
        "-n",
        ns,
        "--image=x",
        "--labels=app.kubernetes.io/instance=other",
        "--annotations=kubectl-milvus.io/deletion-cost-was=",
    ]);
    // A run on another component, interrupted by a failing check: the
    // release's marks go anyway (every query node survives to show it).
    let r = run(plugin().args(["scale", "my-release", "dataNode=1", "-n", ns, "--check", "false"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let annotations = querynode_annotations(ns);
    assert!(!annotations.contains("kubectl-milvus.io"), "{annotations}");
    assert!(!annotations.contains("-2147483648"), "{annotations}");
    assert!(
        annotations.contains(r#""controller.kubernetes.io/pod-deletion-cost":"25""#),
        "{annotations}"
    );
    let kept = kubectl(&[
        "get",
        "pod",
        other,
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(kept.contains("kubectl-milvus.io/deletion-cost-was"), "{kept}");
    // A finished run leaves no mark (v1.22+: it takes its own off).
    ok(&["scale", "my-release", "queryNode=1", "-n", ns]);
    let annotations = querynode_annotations(ns);
    assert!(
        !annotations.contains("kubectl-milvus.io") && !annotations.contains("-2147483648"),
        "{annotations}"
    );
}
