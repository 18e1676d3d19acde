//! `kubectl milvus status` against the real API server of the test bed.

mod common;

use common::*;
use serde_json::Value;
use testbed::seed::{Driver, RecordShape, Scenario, SeedOptions};
use testbed::sim::{Fault, FaultRule};

fn json_status(ns: &str, release: &str) -> Value {
    let out = ok(&["status", release, "-n", ns, "-o", "json"]);
    serde_json::from_str(&out).expect("status -o json is JSON")
}

/// (component, workload, desired) per component row.
fn component_rows(doc: &Value) -> Vec<(String, String, String)> {
    doc["items"][0]["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            let desired = match c["desired"]["kind"].as_str() {
                Some("count") => c["desired"]["value"].to_string(),
                other => other.unwrap_or("?").to_string(),
            };
            (
                c["component"].as_str().unwrap().to_string(),
                c["workload"].as_str().unwrap().to_string(),
                desired,
            )
        })
        .collect()
}

#[test]
fn default_release_shows_components_dependencies_and_every_pod_like_kubectl() {
    let ns = namespace("st-defaults");
    let ns = ns.name();
    seed_ready(ns, Scenario::Defaults);

    let out = ok(&["status", "my-release", "-n", ns]);
    assert!(
        out.contains("Chart:       milvus-5.0.19 (Milvus 2.6.15)"),
        "{out}"
    );
    assert!(
        out.contains("Mode:        cluster, message queue pulsar"),
        "{out}"
    );
    for key in [
        "proxy",
        "queryNode",
        "dataNode",
        "streamingNode",
        "mixCoordinator",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{key} "))),
            "no row for {key}:\n{out}"
        );
    }
    assert!(
        out.contains("StatefulSet/my-release-etcd                 3/3"),
        "{out}"
    );

    // The pod table is exactly what kubectl prints for the namespace (it
    // holds only this release): 23 long-running pods + 2 Completed job pods.
    eventually_equal(|| {
        (
            pod_table(&ok(&["status", "my-release", "-n", ns])),
            kubectl(&["get", "pods", "-n", ns]),
        )
    });
    let table = pod_table(&out);
    assert_eq!(table.lines().count(), 1 + 23 + 2, "{table}");
    assert_eq!(table.matches("Completed").count(), 2, "{table}");
    assert_eq!(table.matches(" 1/1 ").count(), 23, "{table}");

    // -o wide adds IP and NODE, like kubectl.
    eventually_equal(|| {
        (
            pod_table(&ok(&["status", "my-release", "-n", ns, "-o", "wide"])),
            kubectl(&["get", "pods", "-n", ns, "-o", "wide"]),
        )
    });
}

#[test]
fn every_topology_gives_the_right_rows() {
    /// (values key, workload, desired replicas) rows expected of a topology.
    type Rows = &'static [(&'static str, &'static str, &'static str)];
    let cases: &[(Scenario, &str, Rows)] = &[
        (
            Scenario::QueryNode3DataNode2,
            "my-release",
            &[
                ("proxy", "my-release-milvus-proxy", "1"),
                ("queryNode", "my-release-milvus-querynode", "3"),
                ("dataNode", "my-release-milvus-datanode", "2"),
                ("streamingNode", "my-release-milvus-streamingnode", "1"),
                ("mixCoordinator", "my-release-milvus-mixcoord", "1"),
            ],
        ),
        (
            Scenario::Standalone,
            "my-release",
            &[("standalone", "my-release-milvus-standalone", "1")],
        ),
        (
            Scenario::FullnameOverride,
            "my-release",
            &[
                ("proxy", "vdb-proxy", "1"),
                ("queryNode", "vdb-querynode", "1"),
                ("dataNode", "vdb-datanode", "1"),
                ("streamingNode", "vdb-streamingnode", "1"),
                ("mixCoordinator", "vdb-mixcoord", "1"),
            ],
        ),
        (
            Scenario::ReleaseNamedMilvus,
            "milvus",
            &[
                ("proxy", "milvus-proxy", "1"),
                ("queryNode", "milvus-querynode", "1"),
                ("dataNode", "milvus-datanode", "1"),
                ("streamingNode", "milvus-streamingnode", "1"),
                ("mixCoordinator", "milvus-mixcoord", "1"),
            ],
        ),
        (
            Scenario::ResourceGroupsQueryNode2,
            "my-release",
            &[
                ("proxy", "my-release-milvus-proxy", "1"),
                ("queryNode", "my-release-milvus-querynode-rg1", "2"),
                ("queryNode", "my-release-milvus-querynode-rg2", "2"),
                ("dataNode", "my-release-milvus-datanode", "1"),
                ("streamingNode", "my-release-milvus-streamingnode-rg1", "1"),
                ("streamingNode", "my-release-milvus-streamingnode-rg2", "1"),
                ("mixCoordinator", "my-release-milvus-mixcoord", "1"),
            ],
        ),
        (
            Scenario::Legacy423ClusterNoDeps,
            "my-release",
            &[
                ("proxy", "my-release-milvus-proxy", "1"),
                ("queryNode", "my-release-milvus-querynode", "1"),
                ("dataNode", "my-release-milvus-datanode", "1"),
                ("indexNode", "my-release-milvus-indexnode", "1"),
                ("rootCoordinator", "my-release-milvus-rootcoord", "1"),
                ("queryCoordinator", "my-release-milvus-querycoord", "1"),
                ("dataCoordinator", "my-release-milvus-datacoord", "1"),
                ("indexCoordinator", "my-release-milvus-indexcoord", "1"),
            ],
        ),
    ];
    for (scenario, release, expected) in cases {
        let ns = namespace("st-topo");
        seed_ready(ns.name(), *scenario);
        let doc = json_status(ns.name(), release);
        let rows = component_rows(&doc);
        let expected: Vec<(String, String, String)> = expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(rows, expected, "{scenario:?}");
        let item = &doc["items"][0];
        for c in item["components"].as_array().unwrap() {
            assert!(c["notes"].is_null(), "{scenario:?}: unexpected note {c}");
            assert_eq!(c["live"]["ready"], c["live"]["replicas"], "{scenario:?}: {c}");
        }
        if *scenario == Scenario::Standalone {
            assert_eq!(item["mode"], "standalone");
        }
        if *scenario == Scenario::Legacy423ClusterNoDeps {
            assert_eq!(item["chartVersion"], "4.2.3");
        }
        // Every pod of the release, and nothing else, is listed.
        let pods = item["pods"].as_array().unwrap().len();
        let live = kubectl(&["get", "pods", "-n", ns.name(), "--no-headers"])
            .lines()
            .count();
        assert_eq!(pods, live, "{scenario:?}");
    }
}

#[test]
fn pods_of_other_releases_never_appear() {
    let ns = namespace("st-two");
    let ns = ns.name();
    seed(
        ns,
        Scenario::Defaults,
        SeedOptions {
            wait_ready: true,
            ..Default::default()
        },
    );
    seed(
        ns,
        Scenario::Defaults,
        SeedOptions {
            release: Some("other".into()),
            wait_ready: true,
            ..Default::default()
        },
    );
    let doc = json_status(ns, "my-release");
    let names: Vec<&str> = doc["items"][0]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 25);
    assert!(names.iter().all(|n| n.starts_with("my-release-")), "{names:?}");
    // No RELEASE: both releases, each with its own pods.
    let all: Value = serde_json::from_str(&ok(&["status", "-n", ns, "-o", "json"])).unwrap();
    let releases: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["release"].as_str().unwrap())
        .collect();
    assert_eq!(releases, ["my-release", "other"]);
}

#[test]
fn pod_states_match_kubectl() {
    let ns = namespace("st-states");
    let ns = ns.name();
    let rules = vec![
        FaultRule::new("component=querynode", Fault::CrashLoop { restarts: 4 }),
        FaultRule::new("component=datanode", Fault::NeverReady),
        FaultRule::new("component=proxy", Fault::StuckPending),
        FaultRule::new("component=streamingnode", Fault::SlowStart { delay_ms: 600_000 }),
    ];
    faults(ns, rules);
    seed(ns, Scenario::Defaults, SeedOptions::default());
    // Compare like with like: wait until the system has settled — every
    // pod in the state it keeps (the faulty ones in theirs, the rest Running
    // and ready or Completed) — so that two reads a moment apart must agree.
    let settled_as = |row: &str| -> bool {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let (name, ready, state) = (cells[0], cells[1], cells[2]);
        let component = |c: &str| name.starts_with(&format!("my-release-milvus-{c}-"));
        if component("querynode") {
            state == "CrashLoopBackOff" && cells[3] == "4"
        } else if component("datanode") {
            (ready, state) == ("0/1", "Running")
        } else if component("proxy") || name.starts_with("my-release-pulsarv3-proxy-") {
            // The fault's selector (component=proxy) matches Pulsar's too.
            state == "Pending"
        } else if component("streamingnode") {
            state == "ContainerCreating"
        } else {
            state == "Completed" || (state == "Running" && ready.split_once('/').is_some_and(|(a, b)| a == b))
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let pods = kubectl(&["get", "pods", "-n", ns]);
        if pods.matches("Completed").count() == 2 && pods.lines().skip(1).all(settled_as) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never settled:\n{pods}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = pod_table(&ok(&["status", "my-release", "-n", ns]));
    assert!(out.contains("0/1     Pending"), "{out}");
    assert!(out.contains("0/1     ContainerCreating"), "{out}");
    assert!(out.contains("0/1     Running"), "{out}");
    let crash = out
        .lines()
        .find(|l| l.contains("CrashLoopBackOff"))
        .expect("crash row");
    let cells: Vec<&str> = crash.split_whitespace().collect();
    assert_eq!(cells[2..4], ["CrashLoopBackOff", "4"], "{crash}");
    // The rows are the server's own (its Table view, what kubectl prints):
    // byte-identical on every server version, whether or not it adds
    // "(… ago)" to RESTARTS (v1.20 does not, newer servers do).
    eventually_equal(|| {
        (
            pod_table(&ok(&["status", "my-release", "-n", ns])),
            kubectl(&["get", "pods", "-n", ns]),
        )
    });
}

#[test]
fn terminating_pods_show_like_kubectl() {
    let ns = namespace("st-term");
    let ns = ns.name();
    let rules = vec![FaultRule::new(
        "component=querynode",
        Fault::TerminatingGrace { grace_ms: 60_000 },
    )];
    faults(ns, rules);
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    scale_deployment(ns, "my-release-milvus-querynode", 1);
    // The ReplicaSet controller marks the two pods for deletion just after
    // `kubectl scale` returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while kubectl(&["get", "pods", "-n", ns]).matches("Terminating").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "pods never went Terminating"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = pod_table(&ok(&["status", "my-release", "-n", ns]));
    assert_eq!(out.matches("Terminating").count(), 2, "{out}");
    eventually_equal(|| {
        (
            pod_table(&ok(&["status", "my-release", "-n", ns])),
            kubectl(&["get", "pods", "-n", ns]),
        )
    });
}

#[test]
fn drift_and_hpa_fights_are_reported() {
    let ns = namespace("st-drift");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNodeHpa);
    kubectl(&[
        "scale",
        "deployment",
        "my-release-milvus-datanode",
        "-n",
        ns,
        "--replicas=2",
    ]);
    let doc = json_status(ns, "my-release");
    let comps = doc["items"][0]["components"].as_array().unwrap();
    let data = comps.iter().find(|c| c["component"] == "dataNode").unwrap();
    assert!(
        data["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("drift: values say 1, the Deployment has 2"),
        "{data}"
    );
    let qn = comps.iter().find(|c| c["component"] == "queryNode").unwrap();
    assert_eq!(qn["hpa"]["name"], "my-release-milvus-querynode-hpa");
    assert_eq!(
        (qn["hpa"]["min"].as_i64(), qn["hpa"]["max"].as_i64()),
        (Some(1), Some(5))
    );
    assert!(
        qn["notes"][0].as_str().unwrap().contains("both set replicas"),
        "{qn}"
    );
    let table = ok(&["status", "my-release", "-n", ns]);
    assert!(table.contains("1-5 (now"), "{table}");
}

#[test]
fn configmap_driver_and_helm3_records_are_read() {
    let ns = namespace("st-drivers");
    let ns = ns.name();
    seed(
        ns,
        Scenario::QueryNode3DataNode2,
        SeedOptions {
            driver: Driver::ConfigMap,
            shape: RecordShape::Helm3,
            revisions: 3,
            ..Default::default()
        },
    );
    let doc = json_status(ns, "my-release");
    let item = &doc["items"][0];
    assert_eq!(item["storage"], "ConfigMap");
    assert_eq!(item["revision"], 3);
    assert_eq!(component_rows(&doc)[1].2, "3");
}

#[test]
fn json_and_yaml_are_the_same_document_and_hold_no_secrets() {
    let ns = namespace("st-json");
    let ns = ns.name();
    seed_ready(ns, Scenario::Defaults);
    let json = ok(&["status", "my-release", "-n", ns, "-o", "json"]);
    let yaml = ok(&["status", "my-release", "-n", ns, "-o", "yaml"]);
    let from_json: Value = serde_json::from_str(&json).unwrap();
    let from_yaml: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(from_json["kind"], "MilvusStatusList");
    assert_eq!(from_json["apiVersion"], "kubectl-milvus/v1alpha1");
    assert_eq!(
        from_json["items"][0]["components"],
        from_yaml["items"][0]["components"]
    );
    // MinIO credentials live in the values; they must never be printed.
    for out in [
        &json,
        &yaml,
        &ok(&["status", "my-release", "-n", ns, "-o", "wide"]),
    ] {
        assert!(!out.contains("minioadmin"), "secret material printed");
    }
}

#[test]
fn all_namespaces_finds_releases_everywhere() {
    let a = namespace("st-all-a");
    let b = namespace("st-all-b");
    seed(a.name(), Scenario::Standalone, SeedOptions::default());
    seed(b.name(), Scenario::FullnameOverride, SeedOptions::default());
    let doc: Value = serde_json::from_str(&ok(&["status", "-A", "-o", "json"])).unwrap();
    let found: Vec<(String, String)> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["namespace"].as_str().unwrap().to_string(),
                i["release"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        found.contains(&(a.name().to_string(), "my-release".to_string())),
        "{found:?}"
    );
    assert!(
        found.contains(&(b.name().to_string(), "my-release".to_string())),
        "{found:?}"
    );
    // With -A the pod tables get kubectl's leading NAMESPACE column.
    let table = ok(&["status", "-A"]);
    let header = table
        .lines()
        .find(|l| l.starts_with("NAMESPACE "))
        .unwrap_or_default();
    assert!(
        header
            .split_whitespace()
            .eq(["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]),
        "{table}"
    );
}

/// `-o json` and `-o yaml` are the scripting interface: every field, as a
/// ready Helm release prints it, pinned by a snapshot (names and times
/// redacted; see `redacted`).
#[test]
fn json_and_yaml_output_of_a_helm_release() {
    let ns = namespace("st-snap");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let json = status_doc_redacted(&["my-release"], ns);
    insta::assert_json_snapshot!("helm_status", json);
    let plan = plan_json(ns, "queryNode=1");
    insta::assert_json_snapshot!("helm_plan", plan_redacted(&plan, ns));
}
