//! Seeded Milvus releases look like real Helm installs to kubectl and helm.

mod common;

use std::time::{Duration, Instant};

use common::{kubectl, pod_lines};
use serde_json::Value;
use testbed::TestBed;
use testbed::clients::run;
use testbed::seed::{
    Driver, RecordShape, Scenario, SeedOptions, parse_manifest, seed_release, wait_release_ready,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_release_runs_every_pod() {
    let bed = TestBed::get();
    let ns = bed.namespace("seed-defaults").await.unwrap();
    let t = Instant::now();
    let rel = seed_release(bed, &ns, Scenario::Defaults, SeedOptions::default())
        .await
        .unwrap();
    wait_release_ready(&ns).await.unwrap();
    eprintln!("defaults seeded and ready in {:?}", t.elapsed());
    assert_eq!(rel.release, "my-release");
    assert_eq!(rel.deployments.len(), 5, "{:?}", rel.deployments);
    assert_eq!(rel.statefulsets.len(), 7, "{:?}", rel.statefulsets);
    assert_eq!(rel.jobs.len(), 2);
    assert!(rel.skipped.is_empty(), "{:?}", rel.skipped);

    let lines = pod_lines(&ns, None);
    let running: Vec<_> = lines.iter().filter(|l| l.contains(" 1/1 Running ")).collect();
    let completed: Vec<_> = lines.iter().filter(|l| l.contains(" 0/1 Completed ")).collect();
    assert_eq!(running.len(), 23, "{}", lines.join("\n"));
    assert_eq!(completed.len(), 2, "{}", lines.join("\n"));
    assert_eq!(lines.len(), 25, "{}", lines.join("\n"));

    // Helm's live metadata is on the objects.
    let ann = kubectl(&[
        "get",
        "deploy",
        "my-release-milvus-querynode",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name} {.metadata.labels.app\\.kubernetes\\.io/managed-by}",
    ]);
    assert_eq!(ann, "my-release Helm");

    // Real helm reads the record.
    let list = run(bed.helm().args(["list", "-n", &ns, "-o", "json"])).unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "my-release");
    assert_eq!(list[0]["status"], "deployed");
    assert_eq!(list[0]["chart"], "milvus-5.0.19");
    let all = run(bed
        .helm()
        .args(["get", "values", "--all", "my-release", "-n", &ns, "-o", "json"]))
    .unwrap();
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["queryNode"]["replicas"], 1);
    let user = run(bed
        .helm()
        .args(["get", "values", "my-release", "-n", &ns, "-o", "json"]))
    .unwrap();
    assert_eq!(user.trim(), "null");
}

fn helm_history(ns: &str, release: &str, driver: Driver) -> Vec<Value> {
    let bed = TestBed::get();
    let mut cmd = bed.helm();
    if driver == Driver::ConfigMap {
        cmd.env("HELM_DRIVER", "configmap");
    }
    let out = run(cmd.args(["history", release, "-n", ns, "-o", "json"])).unwrap();
    serde_json::from_str::<Vec<Value>>(&out).unwrap()
}

fn helm_values(ns: &str, release: &str, driver: Driver, all: bool) -> Value {
    let bed = TestBed::get();
    let mut cmd = bed.helm();
    if driver == Driver::ConfigMap {
        cmd.env("HELM_DRIVER", "configmap");
    }
    cmd.args(["get", "values", release, "-n", ns, "-o", "json"]);
    if all {
        cmd.arg("--all");
    }
    serde_json::from_str(&run(&mut cmd).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_reads_history_and_values_for_both_drivers() {
    let bed = TestBed::get();
    for driver in [Driver::Secret, Driver::ConfigMap] {
        let ns = bed.namespace("seed-driver").await.unwrap();
        let opts = SeedOptions {
            driver,
            revisions: 3,
            ..Default::default()
        };
        let rel = seed_release(bed, &ns, Scenario::QueryNode3DataNode2, opts)
            .await
            .unwrap();
        assert_eq!(rel.records.len(), 3);
        let hist = helm_history(&ns, "my-release", driver);
        let statuses: Vec<&str> = hist.iter().map(|h| h["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["superseded", "superseded", "deployed"], "{driver:?}");
        assert_eq!(hist[2]["chart"], "milvus-5.0.19");
        assert_eq!(hist[2]["app_version"], "2.6.15");
        let user = helm_values(&ns, "my-release", driver, false);
        assert_eq!(
            user,
            serde_json::json!({"dataNode": {"replicas": 2}, "queryNode": {"replicas": 3}})
        );
        let all = helm_values(&ns, "my-release", driver, true);
        assert_eq!(all["queryNode"]["replicas"], 3);
        assert_eq!(all["proxy"]["replicas"], 1);
        assert_eq!(all["etcd"]["replicaCount"], 3);
        // The other driver sees nothing.
        let other = if driver == Driver::Secret {
            Driver::ConfigMap
        } else {
            Driver::Secret
        };
        let mut cmd = bed.helm();
        if other == Driver::ConfigMap {
            cmd.env("HELM_DRIVER", "configmap");
        }
        let out = run(cmd.args(["list", "-n", &ns, "-q"])).unwrap();
        assert_eq!(out.trim(), "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm3_shape_and_pending_upgrade() {
    let bed = TestBed::get();
    let ns = bed.namespace("seed-pending").await.unwrap();
    let opts = SeedOptions {
        shape: RecordShape::Helm3,
        last_pending_upgrade: true,
        revisions: 2,
        ..Default::default()
    };
    seed_release(bed, &ns, Scenario::Standalone, opts).await.unwrap();
    let hist = helm_history(&ns, "my-release", Driver::Secret);
    let statuses: Vec<&str> = hist.iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["deployed", "pending-upgrade"]);
    let meta = run(bed
        .helm()
        .args(["get", "metadata", "my-release", "-n", &ns, "-o", "json"]))
    .unwrap();
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["status"], "pending-upgrade");
    // Helm 4 reports a v3-shaped record's apply method as defaulted client-side.
    let text = run(bed.helm().args(["get", "metadata", "my-release", "-n", &ns])).unwrap();
    assert!(text.to_lowercase().contains("client-side"), "{text}");
    // And refuses to upgrade while the last revision is pending (the lock).
    let out = bed
        .helm()
        .args(["upgrade", "my-release"])
        .arg(testbed::seed::test_chart_dir())
        .args(["-n", &ns, "--server-side=false"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another operation"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_legacy_and_named_scenarios() {
    let bed = TestBed::get();
    let ns = bed.namespace("seed-mix").await.unwrap();
    // HPA: autoscaling/v2 in the fixture, v2beta2 on a 1.20 server.
    let rel = seed_release(
        bed,
        &ns,
        Scenario::QueryNodeHpaReplicasMinus1,
        SeedOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(rel.hpas, ["my-release-milvus-querynode-hpa"]);
    let target = kubectl(&[
        "get",
        "hpa",
        "my-release-milvus-querynode-hpa",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.scaleTargetRef.name}",
    ]);
    assert_eq!(target, "my-release-milvus-querynode");

    // Release named milvus (names without the -milvus infix) in the same namespace.
    let rel = seed_release(
        bed,
        &ns,
        Scenario::ReleaseNamedMilvus,
        SeedOptions {
            driver: Driver::ConfigMap,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        rel.deployments.contains(&"milvus-querynode".to_string()),
        "{:?}",
        rel.deployments
    );

    // Pre-2.6 topology, chart 4.2.3.
    let ns2 = bed.namespace("seed-legacy").await.unwrap();
    let rel = seed_release(
        bed,
        &ns2,
        Scenario::Legacy423ClusterNoDeps,
        SeedOptions {
            wait_ready: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for c in [
        "rootcoord",
        "querycoord",
        "datacoord",
        "indexcoord",
        "indexnode",
        "querynode",
        "datanode",
        "proxy",
    ] {
        assert!(
            rel.deployments.contains(&format!("my-release-milvus-{c}")),
            "{c}: {:?}",
            rel.deployments
        );
    }
    let list = run(bed.helm().args(["list", "-n", &ns2, "-o", "json"])).unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["chart"], "milvus-4.2.3");
    assert_eq!(list[0]["app_version"], "2.4.7");
    let user = helm_values(&ns2, "my-release", Driver::Secret, false);
    assert_eq!(user["mixCoordinator"]["enabled"], false);
    assert_eq!(user["streaming"]["enabled"], false);
    wait_release_ready(&ns).await.unwrap();
}

/// Offline: every scenario's fixture parses and names its workloads.
#[test]
fn every_scenario_fixture_parses() {
    for s in Scenario::ALL {
        let path = testbed::seed::fixtures_dir().join("rendered").join(s.fixture());
        let text = std::fs::read_to_string(&path).unwrap();
        let objs = parse_manifest(&text).unwrap();
        let deployments = objs.iter().filter(|o| o["kind"] == "Deployment").count();
        assert!(deployments >= 1, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_release_ready_times_out_with_reasons() {
    let bed = TestBed::get();
    let ns = bed.namespace("seed-notready").await.unwrap();
    testbed::sim::set_pod_faults(
        &ns,
        vec![testbed::sim::FaultRule::new(
            "component=querynode",
            testbed::sim::Fault::NeverReady,
        )],
    )
    .await
    .unwrap();
    seed_release(bed, &ns, Scenario::FullnameOverride, SeedOptions::default())
        .await
        .unwrap();
    let err = testbed::seed::wait_release_ready_timeout(&ns, Duration::from_secs(8))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Deployment/vdb-querynode"), "{err}");
}
