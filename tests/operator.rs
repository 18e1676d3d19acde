//! Milvus Operator clusters end to end: the real binary against `Milvus`
//! resources seeded from the operator's samples on the test bed, whose
//! stand-in plays the operator (Deployments, status, reverting hand edits).
//! Everything is checked from the outside with kubectl.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use testbed::operator::{OperatorSample, OperatorSeedOptions, SeededOperatorCluster};
use testbed::seed::Scenario;

const QN: &str = "my-release-milvus-querynode-0";

fn seed_op(ns: &str, sample: OperatorSample, name: Option<&str>) -> SeededOperatorCluster {
    seed_operator(
        ns,
        sample,
        OperatorSeedOptions {
            name: name.map(str::to_string),
            ..Default::default()
        },
    )
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&kubectl(args)).expect("kubectl json")
}

fn milvus(ns: &str, name: &str) -> Value {
    json(&["get", "milvus", name, "-n", ns, "-o", "json"])
}

fn cr_replicas(ns: &str, name: &str, component: &str) -> Value {
    milvus(ns, name)["spec"]["components"][component]["replicas"].clone()
}

fn deployment(ns: &str, name: &str) -> Value {
    json(&[
        "get",
        "deployment",
        name,
        "-n",
        ns,
        "-o",
        "json",
        "--show-managed-fields",
    ])
}

/// `kubectl patch milvus my-release --type merge -p <patch>`.
fn patch_milvus(ns: &str, patch: &str) {
    kubectl(&[
        "patch",
        "milvus",
        "my-release",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        patch,
    ]);
}

/// `kubectl annotate --overwrite milvus my-release KEY=VALUE`.
fn annotate_milvus(ns: &str, key_value: &str) {
    kubectl(&[
        "annotate",
        "--overwrite",
        "milvus",
        "my-release",
        "-n",
        ns,
        key_value,
    ]);
}

/// `kubectl patch` of `my-release`'s query-node replicas, as a user writes them.
fn patch_query_nodes(ns: &str, replicas: u32) {
    patch_milvus(
        ns,
        &format!(r#"{{"spec":{{"components":{{"queryNode":{{"replicas":{replicas}}}}}}}}}"#),
    );
}

/// Polls `f` every 100 ms until it holds.
fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No field manager of ours on a Deployment: the operator's are never written.
fn untouched_by_us(ns: &str, name: &str) {
    let d = deployment(ns, name);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(!managers.is_empty(), "{name}: managedFields were read");
    assert!(!managers.contains(&"kubectl-milvus"), "{name}: {managers:?}");
}

#[test]
fn status_shows_the_resource_its_deployments_dependencies_and_pods() {
    let ns = namespace("op-status");
    let ns = ns.name();
    let seeded = seed_op(ns, OperatorSample::ClusterDefault, None);
    assert!(!seeded.dependency_releases.is_empty(), "{seeded:?}");

    let out = ok(&["status", "my-release", "-n", ns]);
    assert!(out.starts_with(&format!(
        "Milvus:      my-release (namespace {ns}, managed by milvus-operator)\nStatus:      Healthy (generation "
    )), "{out}");
    assert!(
        out.contains("Conditions:  ") && out.contains("MilvusReady=True"),
        "{out}"
    );
    for dep in &seeded.dependency_releases {
        assert!(out.contains(dep.as_str()), "dependency {dep} missing:\n{out}");
    }
    // The serving slot of the query node, and every worker and coordinator.
    let line = |c: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{c} ")))
            .map(str::to_string)
    };
    let qn = line("queryNode").expect("queryNode row");
    assert!(
        qn.split_whitespace().collect::<Vec<_>>()[..4] == ["queryNode", "worker", "1", "1"],
        "{qn}"
    );
    assert!(
        line("mixCoord").is_some_and(|l| l.contains("coordinator")),
        "{out}"
    );
    let wide = ok(&["status", "my-release", "-n", ns, "-o", "wide"]);
    assert!(wide.contains(&format!("Deployment/{QN}")), "{wide}");

    // The pod table is `kubectl get pods` of the namespace, byte for byte:
    // the resource's pods and its dependencies' (nothing else runs there).
    eventually_equal(|| {
        let mine = pod_table(&ok(&["status", "my-release", "-n", ns]));
        (mine, kubectl(&["get", "pods", "-n", ns]))
    });

    let doc: Value = serde_json::from_str(&ok(&["status", "-n", ns, "-o", "json"])).expect("json");
    let item = &doc["items"][0];
    assert_eq!(
        doc["items"].as_array().map(Vec::len),
        Some(1),
        "dependencies are not Milvus releases"
    );
    assert_eq!(item["managedBy"], "milvus-operator");
    assert_eq!(item["release"], "my-release");
    assert_eq!(item["milvusStatus"], "Healthy");
    assert_eq!(item["observedGeneration"], item["generation"]);
    let qn = item["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["component"] == "queryNode"))
        .expect("queryNode");
    assert_eq!(qn["workload"], QN);
    assert_eq!(qn["desired"], serde_json::json!({"kind": "count", "value": 1}));
    assert_eq!(qn["live"]["ready"], 1);
    let yaml = ok(&["status", "-n", ns, "-o", "yaml"]);
    assert!(yaml.contains("managedBy: milvus-operator"), "{yaml}");

    let all = ok(&["status", "-A", "-o", "json"]);
    let all: Value = serde_json::from_str(&all).expect("json");
    assert!(
        all["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["namespace"] == ns && i["managedBy"] == "milvus-operator"),
        "-A lists the resource"
    );
}

#[test]
fn helm_releases_and_resources_show_side_by_side() {
    let ns = namespace("op-mixed");
    let ns = ns.name();
    seed_ready(ns, Scenario::Defaults);
    seed_op(ns, OperatorSample::ClusterMixcoord, Some("op"));
    let doc: Value = serde_json::from_str(&ok(&["status", "-n", ns, "-o", "json"])).expect("json");
    let items: Vec<(String, String)> = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["release"].to_string(), i["managedBy"].to_string()))
        .collect();
    assert_eq!(
        items,
        [
            ("\"my-release\"".to_string(), "\"helm\"".to_string()),
            ("\"op\"".to_string(), "\"milvus-operator\"".to_string())
        ]
    );
    let table = ok(&["status", "-n", ns]);
    assert!(
        table.contains("Release:     my-release") && table.contains("Milvus:      op "),
        "{table}"
    );
    // Each keeps its own pods: the resource's pods are not the release's.
    let helm_pods = pod_table(&ok(&["status", "my-release", "-n", ns]));
    assert!(!helm_pods.contains("op-milvus-"), "{helm_pods}");
    let op = ok(&["status", "op", "-n", ns]);
    assert!(!pod_table(&op).contains("my-release-"), "{op}");
    let err = fails(&["status", "nope", "-n", ns], 2);
    assert!(
        err.contains("Milvus releases here: my-release") && err.contains("here: op"),
        "{err}"
    );
}

#[test]
fn plan_shows_steps_and_the_kubectl_patch_and_changes_nothing() {
    let ns = namespace("op-plan");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    let before = milvus(ns, "my-release")["metadata"]["generation"].clone();
    let out = ok(&["plan", "my-release", "queryNode=3", "dataNode=+1", "-n", ns]);
    assert!(
        out.starts_with(&format!(
            "Plan for Milvus my-release (namespace {ns}, managed by milvus-operator):"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["queryNode", "1", "1", "3", "1", "→", "3", QN]),
        "{out}"
    );
    assert!(out.contains(&format!(
        "kubectl patch milvus my-release -n {ns} --type merge -p '{{\"spec\":{{\"components\":{{\"queryNode\":{{\"replicas\":3}},\"dataNode\":{{\"replicas\":2}}}}}}}}'"
    )), "{out}");
    assert!(out.contains(&format!("{QN}-")) && out.contains("+ new"), "{out}");
    let doc: Value = serde_json::from_str(&ok(&[
        "plan",
        "my-release",
        "queryNode=3",
        "-n",
        ns,
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(doc["items"][0]["managedBy"], "milvus-operator");
    assert!(doc["items"][0].get("helmCommand").is_none());
    assert_eq!(
        milvus(ns, "my-release")["metadata"]["generation"],
        before,
        "plan wrote nothing"
    );
}

#[test]
fn scale_patches_the_resource_out_at_once_and_in_one_by_one() {
    let ns = namespace("op-scale");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    let r = run(plugin().args(["scale", "my-release", "queryNode=3", "-n", ns]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("Milvus my-release scaled: queryNode 1→3\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("queryNode: 1 → 3") && r.stderr.contains(&format!("{QN}: 3/3 ready")),
        "{}",
        r.stderr
    );
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 3);
    let d = deployment(ns, QN);
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["status"]["readyReplicas"].as_i64()
        ),
        (Some(3), Some(3))
    );
    // The final pod table is kubectl's, and shows the three query nodes.
    let table = pod_table(&r.stdout);
    assert_eq!(
        table.matches("my-release-milvus-querynode-0-").count(),
        3,
        "{table}"
    );

    // One replica at a time, seen in the resource itself (not only in what
    // the plugin says it did).
    let in_resource = watch_cr_replicas(ns, "my-release", "queryNode");
    let r = run(plugin().args(["scale", "my-release", "querynode", "--replicas", "1", "-n", ns]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        in_resource.values(),
        [3, 2, 1],
        "the resource's queryNode replicas, as a watch saw them"
    );
    let steps: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("queryNode: ") && l.contains(" → "))
        .collect();
    assert_eq!(steps, ["queryNode: 3 → 2", "queryNode: 2 → 1"], "{}", r.stderr);
    // The operator gives pods 30 days; Milvus's stop is the version's default.
    // (After a warning, where the resource was not Healthy yet when the
    // run began: the run waits for it before the first step.)
    assert!(
        r.stderr.lines().any(|l| l.starts_with("queryNode: pods get 2592000s to stop, Milvus's graceful stop may take 1800s (queryNode.gracefulStopTimeout, Milvus ")),
        "{}",
        r.stderr
    );
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 1);
    let d = deployment(ns, QN);
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["status"]["readyReplicas"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let pods = kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/component=querynode",
        "-o",
        "name",
    ]);
    assert_eq!(pods.lines().count(), 1, "{pods}");
    untouched_by_us(ns, QN);
    assert_eq!(
        deployment(ns, "my-release-milvus-querynode-1")["spec"]["replicas"],
        0
    );

    let again = ok(&["scale", "my-release", "queryNode=1", "-n", ns]);
    assert_eq!(again, "nothing to do: Milvus my-release already at queryNode=1\n");
}

#[test]
fn deployment_groups_each_take_the_value() {
    let ns = namespace("op-groups");
    let ns = ns.name();
    seed_op(ns, OperatorSample::DeploymentGroups, None);
    let out = ok(&["scale", "my-release", "dataNode=1", "-n", ns]);
    assert!(out.contains("dataNode/g1 2→1, dataNode/g2 2→1"), "{out}");
    let groups = &milvus(ns, "my-release")["spec"]["components"]["dataNode"]["groups"];
    assert_eq!(
        (groups[0]["replicas"].clone(), groups[1]["replicas"].clone()),
        (1.into(), 1.into())
    );
    for g in ["g1", "g2"] {
        let name = format!("my-release-milvus-datanode-{g}");
        assert_eq!(deployment(ns, &name)["status"]["readyReplicas"], 1);
        untouched_by_us(ns, &name);
    }
}

#[test]
fn refusals_change_nothing() {
    let ns = namespace("op-refuse");
    let ns = ns.name();
    seed_op(ns, OperatorSample::Hpa, None);
    let generation = milvus(ns, "my-release")["metadata"]["generation"].clone();
    let e = fails(&["scale", "my-release", "mixCoord=2", "-n", ns], 3);
    assert!(
        e.contains("mixCoord is a coordinator: Milvus adds worker nodes only"),
        "{e}"
    );
    let e = fails(&["scale", "my-release", "proxy=3", "-n", ns], 3);
    assert!(e.contains("proxy is managed by HorizontalPodAutoscaler "), "{e}");
    let e = fails(&["scale", "grouped", "dataNode=3", "-n", ns], 3);
    assert!(e.contains("dataNode/zone-a"), "{e}");
    let e = fails(&["scale", "my-release", "queryNode=0", "-n", ns], 3);
    assert!(
        e.contains("scaling queryNode to 0 stops it serving; pass --force"),
        "{e}"
    );
    let e = fails(&["scale", "my-release", "queryNode=-5", "-n", ns], 2);
    assert!(e.contains("below zero"), "{e}");
    let e = fails(&["plan", "my-release", "etcd=2", "-n", ns], 2);
    assert!(
        e.contains("scalable components of Milvus my-release: proxy, queryNode, dataNode, streamingNode"),
        "{e}"
    );
    // Scale-in options the operator's ownership rules out are refused, never skipped.
    let pod = "my-release-milvus-querynode-0-x";
    for args in [
        &["scale", "my-release", "queryNode=1", "--remove", pod][..],
        &["plan", "my-release", "queryNode=1", "--remove", pod][..],
    ] {
        let e = fails(&[args, &["-n", ns]].concat(), 2);
        assert!(
            e.contains("--remove is not supported for Milvus my-release"),
            "{e}"
        );
    }
    for gate in [&["--pause", "30s"][..], &["--check", "true"][..]] {
        let e = fails(
            &[&["scale", "my-release", "queryNode=1", "-n", ns][..], gate].concat(),
            2,
        );
        assert!(e.contains("--pause and --check are not supported"), "{e}");
    }
    assert_eq!(milvus(ns, "my-release")["metadata"]["generation"], generation);

    let standalone = namespace("op-standalone");
    let standalone = standalone.name();
    seed_op(standalone, OperatorSample::Default, None);
    let e = fails(&["scale", "my-release", "queryNode=2", "-n", standalone], 3);
    assert!(
        e.contains("Milvus my-release runs standalone (a single pod); only cluster mode has worker components to scale"),
        "{e}"
    );
}

#[test]
fn a_name_both_helm_and_operator_use_needs_managed_by() {
    let ns = namespace("op-both");
    let ns = ns.name();
    // Names that do not collide: the resource's dependencies left out, the
    // release's Deployments renamed by fullnameOverride.
    seed_operator(
        ns,
        OperatorSample::ClusterMixcoord,
        OperatorSeedOptions {
            name: Some("twin".into()),
            dependencies: false,
            ..Default::default()
        },
    );
    seed(
        ns,
        Scenario::FullnameOverride,
        testbed::seed::SeedOptions {
            release: Some("twin".into()),
            ..Default::default()
        },
    );
    let e = fails(&["plan", "twin", "queryNode=2", "-n", ns], 2);
    assert!(
        e.contains("--managed-by helm or --managed-by milvus-operator"),
        "{e}"
    );
    let op = ok(&[
        "plan",
        "twin",
        "queryNode=2",
        "-n",
        ns,
        "--managed-by",
        "milvus-operator",
    ]);
    assert!(op.contains("kubectl patch milvus twin"), "{op}");
    let helm = ok(&["plan", "twin", "queryNode=2", "-n", ns, "--managed-by", "helm"]);
    assert!(helm.contains("helm upgrade twin"), "{helm}");
}

/// A scale-in of 3 query nodes to 1 whose removed pods take `stop_ms` to
/// go, returned once its first step (3 → 2) is in the resource.
fn slow_scale_in(ns: &str, stop_ms: u64) -> Child {
    seed_op(ns, OperatorSample::ClusterDefault, None);
    ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
    slow_terminations(ns, "app.kubernetes.io/component=querynode", stop_ms);
    let child = spawn_plugin(
        &["scale", "my-release", "queryNode=1", "-n", ns],
        bed().admin_kubeconfig(),
    );
    eventually("the first step in the resource", Duration::from_secs(30), || {
        cr_replicas(ns, "my-release", "queryNode") == 2
    });
    child
}

#[test]
fn killed_mid_scale_in_a_rerun_carries_on() {
    let ns = namespace("op-kill");
    let ns = ns.name();
    // The removed pod outlives the killed run's Lease (15 s): the re-run
    // finds its step still under way once it holds the lock.
    let mut child = slow_scale_in(ns, 20_000);
    child.kill().expect("SIGKILL"); // no chance to clean up
    child.wait().expect("reaped");
    assert_eq!(
        cr_replicas(ns, "my-release", "queryNode"),
        2,
        "the resource records the step"
    );
    let r = run(plugin().args(["scale", "my-release", "queryNode=1", "-n", ns]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("Milvus my-release scaled: queryNode 2→1"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(&format!("{QN}: 2/2 ready")),
        "waits for the killed run's step first: {}",
        r.stderr
    );
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 1);
    assert_eq!(deployment(ns, QN)["status"]["readyReplicas"], 1);
    untouched_by_us(ns, QN);
}

#[test]
fn another_writer_mid_run_stops_it_at_once() {
    let ns = namespace("op-writer");
    let ns = ns.name();
    // The step's pod takes 5 minutes to go (the operator's 30-day grace
    // allows it): a stop while it is still
    // terminating is the other-writer watch's, not the step's end.
    let child = slow_scale_in(ns, 300_000);
    let leaving = leaving_pod(ns, "app.kubernetes.io/component=querynode");
    patch_query_nodes(ns, 5);
    // Stopped while the pod it drained is still leaving (and no other).
    let stderr = stopped_at_once(child, || {
        leaving.alone_terminating(ns, "app.kubernetes.io/component=querynode")
    });
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: another writer changed spec.components.queryNode.replicas of Milvus my-release to 5 (this run expected 2)"),
        "{stderr}"
    );
    // Nothing of ours over it, then or later.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 5);
}

/// A run that had to wait for the lock starts from what the holder left:
/// the resource is read again once the lock is held, so a holder that
/// finished meanwhile is not taken for "another writer".
#[test]
fn a_run_that_waited_for_the_lock_starts_from_what_the_holder_left() {
    let ns = namespace("op-waited");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    // A holder that has gone quiet: the new run reads, then waits for it.
    apply(&lease_yaml(
        ns,
        "elsewhere/7/cafe",
        &micro(jiff::Timestamp::now()),
    ));
    let mut child = spawn_plugin(
        &["scale", "my-release", "queryNode=3", "-n", ns],
        bed().admin_kubeconfig(),
    );
    let (mut stderr, mut seen) = stderr_until(&mut child, "waiting up to");
    // The holder's last step lands and it lets go of the lock.
    patch_query_nodes(ns, 2);
    kubectl(&["delete", "lease", "kubectl-milvus.scale.my-release", "-n", ns]);
    let out = child.wait_with_output().expect("wait");
    std::io::Read::read_to_string(&mut stderr, &mut seen).expect("rest of stderr");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{seen}");
    assert!(
        stdout.starts_with("Milvus my-release scaled: queryNode 2→3"),
        "{stdout}"
    );
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 3);
}

#[test]
fn without_the_right_to_read_milvuses_helm_releases_still_show() {
    let ns = namespace("op-rbac");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterMixcoord, Some("op")); // installs the CRD
    seed_ready(ns, Scenario::Defaults);
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| k8s_openapi::api::rbac::v1::PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let kc = restricted(
        ns,
        "no-milvuses",
        vec![
            rule(&[""], &["secrets", "configmaps", "pods"], &["list"]),
            rule(&["apps"], &["deployments", "statefulsets"], &["list"]),
            rule(&["autoscaling"], &["horizontalpodautoscalers"], &["list"]),
        ],
    );
    let r = run(plugin().args(["status", "-n", ns]).env("KUBECONFIG", &kc));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Release:     my-release") && !r.stdout.contains("Milvus:      op"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("warning: forbidden: you cannot list milvuses.milvus.io"),
        "{}",
        r.stderr
    );
}

/// The README's Roles are enough for Operator clusters too: `status` and
/// `plan` with the first, `scale` with both, and `scale` without the second
/// refused before anything is written.
#[test]
fn the_readme_rbac_is_sufficient_for_operator_clusters() {
    let (status_rules, scale_rules) = readme_rules();
    let ns = namespace("op-readme-rbac");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    let status_kc = restricted(ns, "status", status_rules);
    let scale_kc = restricted(ns, "scale", scale_rules);
    let generation = milvus(ns, "my-release")["metadata"]["generation"].clone();
    let r = run(plugin()
        .args(["status", "my-release", "-n", ns])
        .env("KUBECONFIG", &status_kc));
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    assert!(r.stdout.starts_with("Milvus:      my-release"), "{}", r.stdout);
    let r = run(plugin()
        .args(["plan", "my-release", "queryNode=2", "-n", ns])
        .env("KUBECONFIG", &status_kc));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(plugin()
        .args(["scale", "my-release", "queryNode=2", "-n", ns])
        .env("KUBECONFIG", &status_kc));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: taking the release's lock (a Lease): forbidden: you cannot create leases.coordination.k8s.io in namespace "), "{}", r.stderr);
    assert_eq!(
        milvus(ns, "my-release")["metadata"]["generation"],
        generation,
        "a refused scale wrote nothing"
    );
    let r = run(plugin()
        .args(["scale", "my-release", "queryNode=2", "-n", ns])
        .env("KUBECONFIG", &scale_kc));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 2);
}

/// A cluster without the operator's CRD (every `milvus.io` request answered
/// 404, as such a server does) works as before: Helm releases shown,
/// planned and scaled, nothing printed about the operator.
#[test]
fn without_the_crd_helm_releases_work_as_before() {
    use testbed::proxy::{FaultProxy, Mode, Rule};
    let ns = namespace("op-nocrd");
    let ns = ns.name();
    seed_ready(ns, Scenario::Defaults);
    let proxy = FaultProxy::start(bed()).expect("proxy");
    proxy.push_rule(Rule {
        path_contains: Some("/apis/milvus.io/".into()),
        method: None,
        mode: Mode::Status(404),
        times: None,
    });
    let through = |args: &[&str]| run(plugin().args(args).env("KUBECONFIG", proxy.kubeconfig()));
    let r = through(&["status", "-n", ns]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    assert!(r.stdout.starts_with("Release:     my-release"), "{}", r.stdout);
    let r = through(&["plan", "my-release", "queryNode=2", "-n", ns]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    let r = through(&["scale", "my-release", "queryNode=2", "-n", ns]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("release my-release scaled: queryNode 1→2"),
        "{}",
        r.stdout
    );
    let asked = proxy
        .requests()
        .iter()
        .filter(|s| s.path.contains("/apis/milvus.io/"))
        .count();
    assert!(
        asked >= 3,
        "each command looked for Milvus resources ({asked} requests)"
    );
    let e = fails(&["status", "nope", "-n", ns], 2);
    assert!(e.contains("Milvus releases here: my-release"), "{e}");
}

/// GitOps ownership of the resource itself, with the markers' real formats
/// (docs/gitops.md): `plan` warns, `scale` refuses (exit 3, changing
/// nothing) unless forced, as for a Helm release.
#[test]
fn gitops_owned_resources_are_warned_refused_and_forced_alike() {
    let ns = namespace("op-gitops");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    let generation = || milvus(ns, "my-release")["metadata"]["generation"].clone();
    let before = generation();

    // Argo CD annotation tracking: `<app>:<group>/<kind>:<namespace>/<name>`,
    // naming the resource itself.
    let id = format!("argocd.argoproj.io/tracking-id=my-milvus:milvus.io/Milvus:{ns}/my-release");
    kubectl(&["annotate", "milvus", "my-release", "-n", ns, &id]);
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", ns]);
    assert!(
        plan.starts_with("Warning: Milvus my-release is managed by Argo CD Application my-milvus: change spec.components.queryNode.replicas of Milvus my-release in the Git source Argo CD Application my-milvus syncs instead (Argo CD reverts live changes"),
        "{plan}"
    );
    let status = ok(&["status", "my-release", "-n", ns]);
    assert!(
        status.contains("Managed by:  Argo CD Application my-milvus (change it in Git"),
        "{status}"
    );
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", ns], 3);
    assert!(
        err.starts_with("error: Milvus my-release is managed by Argo CD Application my-milvus: ")
            && err
                .trim_end()
                .ends_with("; --force-gitops scales anyway, for an emergency")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(generation(), before, "a refusal writes nothing");
    // A copied annotation naming another object is not Argo CD's.
    let copied = format!("argocd.argoproj.io/tracking-id=my-milvus:apps/Deployment:{ns}/other");
    annotate_milvus(ns, &copied);
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", ns]);
    assert!(!plan.contains("Warning: Milvus my-release is managed"), "{plan}");
    kubectl(&[
        "annotate",
        "milvus",
        "my-release",
        "-n",
        ns,
        "argocd.argoproj.io/tracking-id-",
    ]);

    // A Flux Kustomization applying it: kustomize-controller's labels.
    kubectl(&[
        "label",
        "milvus",
        "my-release",
        "-n",
        ns,
        "kustomize.toolkit.fluxcd.io/name=apps",
        "kustomize.toolkit.fluxcd.io/namespace=flux-system",
    ]);
    let doc: Value = serde_json::from_str(&ok(&[
        "plan",
        "my-release",
        "queryNode=2",
        "-n",
        ns,
        "-o",
        "json",
    ]))
    .expect("json");
    let warning = doc["items"][0]["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.starts_with("Milvus my-release is managed by Flux Kustomization flux-system/apps: change spec.components.queryNode.replicas")
            && warning.contains("kustomize-controller applies the object from Git again"),
        "{doc}"
    );
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", ns], 3);
    assert!(
        err.contains("Milvus my-release is managed by Flux Kustomization flux-system/apps")
            && err.contains("--force-gitops scales anyway"),
        "{err}"
    );
    assert_eq!(generation(), before, "a refusal writes nothing");

    // Forced: scaled, with the owner named on stderr.
    let r = run(plugin().args(["scale", "my-release", "queryNode=2", "--force-gitops", "-n", ns]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "Warning: --force-gitops: scaling my-release behind Flux Kustomization flux-system/apps's back"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 2);
}

/// `-o json` of a ready Operator cluster, every field pinned by a snapshot
/// (names and times redacted), and `-o yaml` saying the same.
#[test]
fn json_and_yaml_output_of_an_operator_cluster() {
    let ns = namespace("op-snap");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    let json = status_doc_redacted(&["my-release"], ns);
    insta::assert_json_snapshot!("operator_status", json);
    let plan = plan_json(ns, "queryNode=2");
    insta::assert_json_snapshot!("operator_plan", plan_redacted(&plan, ns));
}

/// Scaling an Operator cluster's component to 0 needs `--force`; with it,
/// the resource and the Deployment reach 0 and no pod is left.
#[test]
fn scale_to_zero_with_force() {
    let ns = namespace("op-zero");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    let e = fails(&["scale", "my-release", "queryNode=0", "-n", ns], 3);
    assert!(
        e.contains("scaling queryNode to 0 stops it serving; pass --force"),
        "{e}"
    );
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 1);
    let in_resource = watch_cr_replicas(ns, "my-release", "queryNode");
    let r = run(plugin().args(["scale", "my-release", "queryNode=0", "-n", ns, "--force"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("Milvus my-release scaled: queryNode 1→0"),
        "{}",
        r.stdout
    );
    assert_eq!(in_resource.values(), [1, 0]);
    let d = deployment(ns, QN);
    assert_eq!(d["spec"]["replicas"], 0, "{d}");
    assert_eq!(
        pods_jsonpath(
            ns,
            "app.kubernetes.io/component=querynode",
            "{.items[*].metadata.name}"
        ),
        ""
    );
}

/// An Operator scale-in stopped mid-step — by Ctrl-C, or by its own
/// `--timeout` — ends at once with exit 1, says where the resource stands
/// and the command that carries on, and writes nothing more.
#[test]
fn scale_stopped_by_ctrl_c_or_timeout() {
    for stop in ["ctrl-c", "timeout"] {
        let ns = namespace("op-stop");
        let ns = ns.name();
        seed_op(ns, OperatorSample::ClusterDefault, None);
        ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
        // The step's pod takes 5 minutes to go (the operator's 30-day grace
        // allows it): whatever stops the run,
        // it is not the step's end.
        slow_terminations(ns, "app.kubernetes.io/component=querynode", 300_000);
        let mut args = vec!["scale", "my-release", "queryNode=1", "-n", ns];
        if stop == "timeout" {
            args.extend(["--timeout", "5s"]);
        }
        let child = spawn_plugin(&args, bed().admin_kubeconfig());
        let leaving = leaving_pod(ns, "app.kubernetes.io/component=querynode");
        if stop == "ctrl-c" {
            std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .expect("kill");
        }
        let (code, _, stderr) = exits_within(child, Duration::from_secs(120));
        assert_eq!(code, 1, "{stop}: {stderr}");
        assert!(
            leaving.alone_terminating(ns, "app.kubernetes.io/component=querynode"),
            "{stop}: stopped mid-step, {} alone leaving",
            leaving.name
        );
        let last = stderr.lines().last().unwrap_or_default();
        let why = if stop == "ctrl-c" {
            "error: interrupted by a signal; ".to_string()
        } else {
            format!("error: {QN} did not reach 2 ready replicas within 5s")
        };
        assert!(last.starts_with(&why), "{stop}: {stderr}");
        assert!(
            last.ends_with(&format!(
                "stopped at queryNode=2 and recorded it in Milvus my-release; continue with: kubectl milvus scale my-release queryNode=1 -n {ns}"
            )),
            "{stop}: {stderr}"
        );
        assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 2, "{stop}");
        let leases = kubectl(&["get", "leases", "-n", ns, "-o", "name"]);
        assert!(
            leases.trim().is_empty(),
            "{stop}: the Lease is given up: {leases}"
        );
    }
}

#[test]
fn what_the_operator_would_leave_unapplied_is_refused_before_writing_and_warned_by_plan() {
    let ns = namespace("op-blocked");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    let replicas_before = cr_replicas(ns, "my-release", "queryNode");
    // Each state as the operator (or a user) sets it, what `scale` must say,
    // and the patch that lifts it again.
    // (A rollout is marked by the operator itself and dropped once none
    // runs: tests/operator_refusals.rs starts a real one.)
    let cases: [(&str, &str, &str); 3] = [
        (
            r#"{"metadata":{"annotations":{"milvus.io/pause-reconcile":"true"}}}"#,
            &format!("kubectl annotate milvus my-release -n {ns} milvus.io/pause-reconcile-"),
            r#"{"metadata":{"annotations":{"milvus.io/pause-reconcile":null}}}"#,
        ),
        (
            r#"{"spec":{"components":{"queryNode":{"paused":true}}}}"#,
            "spec.components.queryNode.paused is true in Milvus my-release: the Milvus Operator leaves queryNode's Deployments untouched while it is paused",
            r#"{"spec":{"components":{"queryNode":{"paused":false}}}}"#,
        ),
        (
            r#"{"spec":{"components":{"enableManualMode":true}}}"#,
            "spec.components.enableManualMode is true in Milvus my-release",
            r#"{"spec":{"components":{"enableManualMode":false}}}"#,
        ),
    ];
    for (set, says, lift) in cases {
        patch_milvus(ns, set);
        let e = fails(&["scale", "my-release", "queryNode=2", "-n", ns], 3);
        assert!(e.contains(says), "{e}");
        assert!(e.trim_end().ends_with("nothing was changed"), "{e}");
        // A dry run is refused alike; `plan` reads only, and warns.
        fails(&["scale", "my-release", "queryNode=2", "--dry-run", "-n", ns], 3);
        let p = ok(&["plan", "my-release", "queryNode=2", "-n", ns]);
        assert!(p.contains(says), "{p}");
        assert!(p.contains("`scale` refuses"), "{p}");
        assert_eq!(cr_replicas(ns, "my-release", "queryNode"), replicas_before);
        assert_eq!(deployment(ns, QN)["spec"]["replicas"], 1);
        patch_milvus(ns, lift);
    }
    // A paused one-Deployment component still scales (its Deployment only
    // gets `spec.paused`): no warning.
    patch_milvus(ns, r#"{"spec":{"components":{"dataNode":{"paused":true}}}}"#);
    let p = ok(&["plan", "my-release", "dataNode=2", "-n", ns]);
    assert!(!p.contains("paused"), "{p}");
    patch_milvus(ns, r#"{"spec":{"components":{"dataNode":{"paused":false}}}}"#);
    // With every state lifted the same request runs.
    ok(&["scale", "my-release", "queryNode=2", "-n", ns]);
    assert_eq!(deployment(ns, QN)["spec"]["replicas"], 2);
}

#[test]
fn force_image_updates_refuse_a_scale_in_whose_leaving_pod_would_be_killed() {
    let ns = namespace("op-force");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    ok(&["scale", "my-release", "queryNode=2", "-n", ns]);
    patch_milvus(ns, r#"{"spec":{"components":{"imageUpdateMode":"force"}}}"#);
    // Scaling out loses no pod: not refused.
    let p = ok(&["plan", "my-release", "queryNode=3", "-n", ns]);
    assert!(!p.contains("imageUpdateMode"), "{p}");
    let e = fails(&["scale", "my-release", "queryNode=1", "-n", ns], 3);
    assert!(
        e.contains("spec.components.imageUpdateMode is force in Milvus my-release: the Milvus Operator kills (kill -9) every terminating Milvus pod at each status sync"),
        "{e}"
    );
    assert!(e.contains("--accept-short-grace"), "{e}");
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 2);
    // Accepted: the run says the leaving pod is killed, not given 30 days.
    let r = run(plugin().args([
        "scale",
        "my-release",
        "queryNode=1",
        "--accept-short-grace",
        "-n",
        ns,
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.contains(&"Warning: spec.components.imageUpdateMode is force in Milvus my-release: leaving pods are killed at the operator's next status sync, not given their grace period (--accept-short-grace)"),
        "{}",
        r.stderr
    );
    assert!(
        lines.iter().any(|l| l.starts_with("queryNode: imageUpdateMode is force: a leaving pod is killed at the Milvus Operator's next status sync (within 30-60 s), not given its 2592000s grace period")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("pods get 2592000s to stop"), "{}", r.stderr);
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 1);
}

/// `observedGeneration` is not proof: the operator observes a generation
/// of a paused component without touching its Deployments. A run that
/// finds the serving Deployment without the count stops at once, with the
/// cause, instead of waiting out its timeout.
#[test]
fn an_observed_step_left_unapplied_stops_the_run_with_its_cause() {
    let ns = namespace("op-unapplied");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
    slow_terminations(ns, "app.kubernetes.io/component=querynode", 4000);
    let started = Instant::now();
    let child = spawn_plugin(
        &["scale", "my-release", "queryNode=1", "--timeout", "90s", "-n", ns],
        bed().admin_kubeconfig(),
    );
    eventually("the first step in the resource", Duration::from_secs(30), || {
        cr_replicas(ns, "my-release", "queryNode") == 2
    });
    // Paused while the first step's pod stops: the second step is written
    // and observed, and never applied.
    patch_milvus(ns, r#"{"spec":{"components":{"queryNode":{"paused":true}}}}"#);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped by its timeout: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: the Milvus Operator observed generation ")
            && last.contains(" of Milvus my-release but Deployment my-release-milvus-querynode-0 has 2 replicas, not 1: spec.components.queryNode.paused is true"),
        "{stderr}"
    );
    assert!(
        last.contains("continue with: kubectl milvus scale my-release queryNode=1"),
        "{stderr}"
    );
    assert_eq!(cr_replicas(ns, "my-release", "queryNode"), 1);
    assert_eq!(deployment(ns, QN)["spec"]["replicas"], 2);
}

/// With the operator's own periods (`minReadySeconds` 30, status syncs every
/// 30/60 s) a scale-out leaves the resource Unhealthy for a while after
/// its pods are ready; a scale-in step in the same run must not start
/// before the resource says Healthy again. Watched independently: the
/// resource version that carries the scale-in's count also carries its
/// status at that moment. Slow (about 3 min).
#[test]
fn slow_real_timings_a_scale_in_step_waits_for_a_healthy_resource() {
    let ns = namespace("op-health-real");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    ok(&["scale", "my-release", "queryNode=2", "-n", ns]);
    let owned = ns.to_string();
    bed()
        .block_on(
            async move { testbed::operator::set_timings(&owned, testbed::operator::Timings::REAL).await },
        )
        .expect("runtime")
        .expect("timings");
    // A metadata change is an event: its pass puts minReadySeconds 30 on
    // every Deployment. The stand-in reads the new timings from a watched
    // ConfigMap, so a poke may come before it has them: poke until every
    // serving Deployment has them and is available under them.
    let settled = || {
        let list = json(&[
            "get",
            "deployments",
            "-n",
            ns,
            "-l",
            "app.kubernetes.io/instance=my-release",
            "-o",
            "json",
        ]);
        // (The standalone Deployment of a cluster stays at 0, untouched.)
        let serving = |d: &&Value| d["spec"]["replicas"].as_i64().unwrap_or(1) > 0;
        let waiting: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(serving)
            .filter(|d| {
                d["spec"]["minReadySeconds"] != 30
                    || d["status"]["observedGeneration"] != d["metadata"]["generation"]
                    || d["status"]["availableReplicas"].as_i64().unwrap_or(0)
                        != d["spec"]["replicas"].as_i64().unwrap_or(1)
            })
            .map(|d| format!("{} {}", d["metadata"]["name"], d["spec"]["minReadySeconds"]))
            .collect();
        let status = milvus(ns, "my-release")["status"]["status"].clone();
        (
            waiting.is_empty() && status == "Healthy",
            format!("{waiting:?}, resource {status}"),
        )
    };
    let start = Instant::now();
    for poke in 1.. {
        annotate_milvus(ns, &format!("test/poke={poke}"));
        let pass = Instant::now();
        let mut state = settled();
        while !state.0 && pass.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(500));
            state = settled();
        }
        if state.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "never settled under the real timings: {}",
            state.1
        );
    }

    let watch = CrWatch::start(ns);
    assert_eq!(watch.first["status"]["status"], "Healthy");
    let r = run(plugin().args([
        "scale",
        "my-release",
        "dataNode=2",
        "queryNode=1",
        "--timeout",
        "4m",
        "-n",
        ns,
    ]));
    let versions = watch.stop();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let state = |v: &Value| {
        (
            v["spec"]["components"]["dataNode"]["replicas"].as_i64(),
            v["spec"]["components"]["queryNode"]["replicas"].as_i64(),
            v["status"]["status"].as_str().unwrap_or_default().to_string(),
        )
    };
    let seen: Vec<_> = versions.iter().map(state).collect();
    let scaled_in = seen
        .iter()
        .position(|(_, qn, _)| *qn == Some(1))
        .unwrap_or_else(|| panic!("queryNode=1 never written: {seen:?}"));
    // The scale-out made it Unhealthy before the scale-in was written …
    assert!(
        seen[..scaled_in]
            .iter()
            .any(|(dn, _, status)| *dn == Some(2) && status == "Unhealthy"),
        "{seen:?}"
    );
    // … and the scale-in was written only once it said Healthy again.
    assert_eq!(seen[scaled_in].2, "Healthy", "{seen:?}");
    assert!(
        r.stderr.contains("waiting: Milvus my-release is Unhealthy"),
        "{}",
        r.stderr
    );
}

/// Every version `my-release` takes while it runs: `kubectl get -w`.
struct CrWatch {
    child: Child,
    versions: std::sync::mpsc::Receiver<Value>,
    reader: std::thread::JoinHandle<()>,
    /// The version current when the watch was established.
    first: Value,
}

impl CrWatch {
    fn start(ns: &str) -> CrWatch {
        let mut child = bed()
            .kubectl()
            .args(["get", "milvus", "my-release", "-n", ns, "-w", "-o", "json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl watch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, versions) = std::sync::mpsc::channel::<Value>();
        let reader = std::thread::spawn(move || {
            let stream = serde_json::Deserializer::from_reader(std::io::BufReader::new(stdout));
            for v in stream.into_iter::<Value>() {
                let Ok(v) = v else { break };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        // Established once it has sent the current version.
        let first = versions
            .recv_timeout(Duration::from_secs(30))
            .expect("the watch's first version");
        CrWatch {
            child,
            versions,
            reader,
            first,
        }
    }

    /// Every version seen, the first included.
    fn stop(mut self) -> Vec<Value> {
        self.child.kill().expect("stop the watch");
        let _ = self.child.wait();
        self.reader.join().expect("reader");
        std::iter::once(self.first)
            .chain(self.versions.try_iter())
            .collect()
    }
}

/// What `MilvusUpdated` says of a version.
fn updated_message(v: &Value) -> String {
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "MilvusUpdated")
        .map(|c| {
            format!(
                "{} {}",
                c["status"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .unwrap_or_default()
}

/// The operator's own word that a leaving pod is gone: `MilvusUpdated`
/// says "Milvus has terminating pods" while one stops (refreshed at each
/// status sync). The next scale-in step is written only once it no longer
/// does, watched independently.
#[test]
fn a_scale_in_step_is_over_when_the_resource_no_longer_reports_terminating_pods() {
    let ns = namespace("op-terminating");
    let ns = ns.name();
    seed_op(ns, OperatorSample::ClusterDefault, None);
    ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
    slow_terminations(ns, "app.kubernetes.io/component=querynode", 3000);
    let watch = CrWatch::start(ns);
    let r = run(plugin().args(["scale", "my-release", "queryNode=1", "--timeout", "2m", "-n", ns]));
    let versions = watch.stop();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let seen: Vec<(Option<i64>, String)> = versions
        .iter()
        .map(|v| {
            (
                v["spec"]["components"]["queryNode"]["replicas"].as_i64(),
                updated_message(v),
            )
        })
        .collect();
    let second = seen
        .iter()
        .position(|(qn, _)| *qn == Some(1))
        .unwrap_or_else(|| panic!("queryNode=1 never written: {seen:?}"));
    // The first step's pod was reported terminating …
    assert!(
        seen[..second]
            .iter()
            .any(|(qn, m)| *qn == Some(2) && m.contains("terminating pods")),
        "{seen:?}"
    );
    // … and the second step written once that report was gone.
    assert!(!seen[second].1.contains("terminating pods"), "{seen:?}");
}
