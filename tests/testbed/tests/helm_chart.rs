//! The test chart installs with real helm (Helm 4, client-side apply).

mod common;

use common::kubectl;
use serde_json::Value;
use testbed::TestBed;
use testbed::clients::run;
use testbed::seed::install_test_chart;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chart_installs_and_becomes_ready() {
    let bed = TestBed::get();
    let ns = bed.namespace("chart").await.unwrap();
    install_test_chart(&ns, "tc", &[("queryNode.replicas", "2")])
        .await
        .unwrap();
    for c in ["proxy", "querynode", "datanode", "streamingnode", "mixcoord"] {
        let ready = kubectl(&[
            "get",
            "deploy",
            &format!("tc-milvus-{c}"),
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        assert_eq!(ready, if c == "querynode" { "2" } else { "1" }, "{c}");
    }
    let pods = common::pod_lines(&ns, Some("app.kubernetes.io/instance=tc,component=querynode"));
    assert_eq!(pods.len(), 2);
    let user: Value = serde_json::from_str(
        &run(bed.helm().args(["get", "values", "tc", "-n", &ns, "-o", "json"])).unwrap(),
    )
    .unwrap();
    assert_eq!(user["queryNode"]["replicas"], 2);
    // helm upgrade --reuse-values works too (client-side apply recorded).
    run(bed
        .helm()
        .args(["upgrade", "tc"])
        .arg(testbed::seed::test_chart_dir())
        .args(["-n", &ns, "--reuse-values", "--set", "dataNode.replicas=2"]))
    .unwrap();
    let hist: Vec<Value> =
        serde_json::from_str(&run(bed.helm().args(["history", "tc", "-n", &ns, "-o", "json"])).unwrap())
            .unwrap();
    assert_eq!(hist.len(), 2);
    testbed::seed::wait_release_ready(&ns).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chart_hpa_and_resource_groups() {
    let bed = TestBed::get();
    let ns = bed.namespace("chart-hpa").await.unwrap();
    install_test_chart(
        &ns,
        "milvus",
        &[
            ("queryNode.hpa.enabled", "true"),
            ("queryNode.replicas", "-1"),
            ("replicaResourceGroups", "{rg1,rg2}"),
        ],
    )
    .await
    .unwrap();
    let deploys = kubectl(&[
        "get",
        "deploy",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    for d in [
        "milvus-querynode-rg1",
        "milvus-querynode-rg2",
        "milvus-streamingnode-rg1",
        "milvus-mixcoord",
    ] {
        assert!(deploys.split(' ').any(|x| x == d), "{d} in {deploys}");
    }
    let hpa = kubectl(&[
        "get",
        "hpa",
        "milvus-querynode-hpa",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.maxReplicas}",
    ]);
    assert_eq!(hpa, "5");
}
