//! The Milvus Operator in the bed, checked from the outside with real
//! kubectl/helm: the real CRD, every sample seeded as the operator leaves
//! it, and the stand-in's reconciliation (scale through the CR, revert of a
//! hand scale, `replicas: -1`, garbage collection).

mod common;

use std::time::Duration;

use common::{kubectl, pod_lines};
use serde_json::Value;
use testbed::TestBed;
use testbed::clients::run;
use testbed::operator::{CrdInstall, OperatorSample, OperatorSeedOptions, seed_operator_cluster, stand_in};

const OWNED: &str = "app.kubernetes.io/managed-by=milvus-operator";

/// `kubectl get <args> -o json` parsed (blocking call off the runtime).
async fn get_json(args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.extend(["-o", "json"]);
        let out = kubectl(&a);
        serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    })
    .await
    .unwrap()
}

async fn deployments(ns: &str, instance: &str) -> Vec<Value> {
    let sel = format!("app.kubernetes.io/instance={instance},{OWNED}");
    let v = get_json(vec![
        "get".into(),
        "deploy".into(),
        "-n".into(),
        ns.into(),
        "-l".into(),
        sel,
    ])
    .await;
    v["items"].as_array().cloned().unwrap_or_default()
}

fn names(items: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = items
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    n.sort();
    n
}

fn replicas_of(items: &[Value], name: &str) -> Option<i64> {
    items
        .iter()
        .find(|d| d["metadata"]["name"] == name)
        .and_then(|d| d["spec"]["replicas"].as_i64())
}

/// `kubectl patch milvus my-release --type merge -p PATCH`, as a user does.
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

async fn milvus(ns: &str, name: &str) -> Value {
    get_json(vec![
        "get".into(),
        "milvus".into(),
        name.into(),
        "-n".into(),
        ns.into(),
    ])
    .await
}

/// Poll (every 200 ms, at most `secs`) until `check` returns Some.
async fn until<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn expected(sample: OperatorSample, cr: &str) -> Vec<String> {
    let v26 = [
        "datanode",
        "mixcoord",
        "proxy",
        "querynode-0",
        "querynode-1",
        "standalone",
        "streamingnode",
    ];
    let parts: Vec<&str> = match sample {
        OperatorSample::ClusterDefault | OperatorSample::ClusterMinimum | OperatorSample::ClusterMixcoord => {
            v26.to_vec()
        }
        // hpa.yaml's second CR puts its data node in group zone-a.
        OperatorSample::Hpa if cr == "grouped" => {
            let mut v: Vec<&str> = v26.iter().copied().filter(|p| *p != "datanode").collect();
            v.push("datanode-zone-a");
            v
        }
        OperatorSample::Hpa => v26.to_vec(),
        OperatorSample::Default => vec!["standalone"],
        OperatorSample::DeploymentGroups => vec![
            "datanode-g1",
            "datanode-g2",
            "mixcoord",
            "proxy-g1",
            "proxy-g2",
            "querynode-g1-0",
            "querynode-g1-1",
            "querynode-g2-0",
            "querynode-g2-1",
            "standalone",
            "streamingnode-g1",
            "streamingnode-g2",
        ],
        // Image v2.5.11 and no streamingMode: the pre-2.6 topology, no
        // streaming node (UseStreamingNode), index node defaulted.
        OperatorSample::StreamingNode => {
            vec![
                "datanode",
                "indexnode",
                "mixcoord",
                "proxy",
                "querynode-0",
                "querynode-1",
                "standalone",
            ]
        }
    };
    let mut v: Vec<String> = parts.iter().map(|p| format!("{cr}-milvus-{p}")).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_is_installed_on_this_server() {
    let bed = TestBed::get();
    let s = stand_in(bed).await.unwrap();
    match (s.crd_install(), bed.server_minor()) {
        (CrdInstall::AlreadyPresent, _) => {}
        (CrdInstall::DefaultsDropped(n), 20) => assert_eq!(n, 50),
        (CrdInstall::Unchanged, m) => assert!(m >= 21, "v1.{m} accepted the CRD unchanged"),
        (other, m) => panic!("unexpected CRD install {other:?} on v1.{m}"),
    }
    let crd = get_json(vec!["get".into(), "crd".into(), "milvuses.milvus.io".into()]).await;
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{:#}", crd["status"]);
    let served: Vec<&str> = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["served"] == true)
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(served, ["v1alpha1", "v1beta1"]);
    // The short name works with the real kubectl.
    run(bed.kubectl().args(["get", "mi", "-A"])).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_gives_the_operators_deployments() {
    let bed = TestBed::get();
    let mut seeds = Vec::new();
    for sample in OperatorSample::ALL {
        let ns = bed.namespace(&format!("op-{sample:?}")).await.unwrap();
        seeds.push(async move {
            let s = seed_operator_cluster(bed, &ns, sample, OperatorSeedOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{sample:?}: {e:#}"));
            (ns, sample, s)
        });
    }
    let seeded = futures::future::join_all(seeds).await;
    for (ns, sample, s) in &seeded {
        for cr in &s.crs {
            let items = deployments(ns, cr).await;
            assert_eq!(names(&items), expected(*sample, cr), "{sample:?} {cr}");
            let m = milvus(ns, cr).await;
            assert_eq!(m["status"]["status"], "Healthy", "{sample:?}: {:#}", m["status"]);
            assert_eq!(m["status"]["observedGeneration"], m["metadata"]["generation"]);
            for d in &items {
                let name = d["metadata"]["name"].as_str().unwrap();
                let labels = &d["metadata"]["labels"];
                assert_eq!(labels["app.kubernetes.io/instance"], cr.as_str(), "{name}");
                assert_eq!(labels["app.kubernetes.io/name"], "milvus", "{name}");
                assert_eq!(
                    labels["app.kubernetes.io/managed-by"], "milvus-operator",
                    "{name}"
                );
                let comp = labels["app.kubernetes.io/component"].as_str().unwrap();
                assert!(
                    name.starts_with(&format!("{cr}-milvus-{comp}")),
                    "{name} vs {comp}"
                );
                let owner = &d["metadata"]["ownerReferences"][0];
                assert_eq!(
                    (owner["kind"].as_str(), owner["name"].as_str()),
                    (Some("Milvus"), Some(cr.as_str()))
                );
                assert_eq!(owner["controller"], true);
                let pod = &d["spec"]["template"]["spec"];
                assert_eq!(pod["terminationGracePeriodSeconds"], 2592000, "{name}");
                assert_eq!(pod["containers"][0]["name"], comp, "{name}");
                let prestop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"].clone();
                if comp == "proxy" || comp == "standalone" {
                    assert_eq!(prestop, serde_json::json!(["sleep", "30"]), "{name}");
                } else {
                    assert!(prestop.is_null(), "{name}");
                }
            }
        }
    }

    // Default replicas and slots of a default cluster.
    let (ns, _, s) = &seeded[0];
    let items = deployments(ns, &s.name).await;
    let r = |n: &str| replicas_of(&items, &format!("my-release-milvus-{n}"));
    assert_eq!(
        [
            r("mixcoord"),
            r("proxy"),
            r("datanode"),
            r("streamingnode"),
            r("querynode-0"),
            r("querynode-1"),
            r("standalone")
        ],
        [Some(1), Some(1), Some(1), Some(1), Some(1), Some(0), Some(0)]
    );
    let qn1 = items
        .iter()
        .find(|d| d["metadata"]["name"] == "my-release-milvus-querynode-1")
        .unwrap();
    assert_eq!(qn1["metadata"]["labels"]["milvus.io/querynode-group-id"], "1");
    assert_eq!(qn1["spec"]["template"]["spec"]["containers"][0]["image"], "dummy");
    let m = milvus(ns, "my-release").await;
    assert_eq!(
        m["metadata"]["annotations"]["milvus.io/querynode-current-group-id"],
        "0"
    );
    assert_eq!(
        m["status"]["componentsDeployStatus"]["querynode"]["status"]["readyReplicas"],
        1
    );
    assert_eq!(m["status"]["endpoint"], format!("my-release-milvus.{ns}:19530"));
    // Pods: 5 Milvus + etcd 3 + minio 4 + pulsar 11, all ready.
    let lines = pod_lines(ns, None);
    assert_eq!(lines.len(), 23, "{}", lines.join("\n"));
    assert!(
        lines.iter().all(|l| l.contains(" 1/1 Running ")),
        "{}",
        lines.join("\n")
    );

    // The dependency releases are Helm releases, of other charts.
    let list = run(bed.helm().args(["list", "-n", ns, "-o", "json"])).unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    let mut charts: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["chart"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    charts.sort();
    assert_eq!(
        charts,
        [
            ("my-release-etcd".to_string(), "etcd-8.12.0".to_string()),
            ("my-release-minio".to_string(), "minio-8.0.17".to_string()),
            ("my-release-pulsar".to_string(), "pulsar-3.3.0".to_string()),
        ]
    );

    // Groups: the deployment-group label and per-group status.
    let (ns, _, s) = seeded
        .iter()
        .find(|(_, smp, _)| *smp == OperatorSample::DeploymentGroups)
        .unwrap();
    let items = deployments(ns, &s.name).await;
    let g2 = items
        .iter()
        .find(|d| d["metadata"]["name"] == "my-release-milvus-querynode-g2-0")
        .unwrap();
    assert_eq!(g2["metadata"]["labels"]["milvus.io/deployment-group"], "g2");
    assert_eq!(g2["spec"]["replicas"], 2);
    assert_eq!(replicas_of(&items, "my-release-milvus-proxy-g1"), Some(1));
    let m = milvus(ns, "my-release").await;
    assert_eq!(
        m["status"]["deploymentGroupsDeployStatus"]["querynode"]["g1"]["status"]["readyReplicas"],
        2
    );

    // Standalone: one Deployment, etcd 1 and MinIO as a Deployment.
    let (ns, _, _) = seeded
        .iter()
        .find(|(_, smp, _)| *smp == OperatorSample::Default)
        .unwrap();
    let lines = pod_lines(ns, None);
    assert_eq!(lines.len(), 3, "{}", lines.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patching_the_cr_scales_and_a_hand_scale_is_reverted() {
    let bed = TestBed::get();
    let ns = bed.namespace("op-scale").await.unwrap();
    seed_operator_cluster(
        bed,
        &ns,
        OperatorSample::ClusterDefault,
        OperatorSeedOptions::default(),
    )
    .await
    .unwrap();
    let gen0 = milvus(&ns, "my-release").await["metadata"]["generation"]
        .as_i64()
        .unwrap();
    patch_milvus(&ns, r#"{"spec":{"components":{"queryNode":{"replicas":3}}}}"#);
    let m = until(
        60,
        "observedGeneration to move and Healthy at 3 query nodes",
        || async {
            let m = milvus(&ns, "my-release").await;
            let generation = m["metadata"]["generation"].as_i64()?;
            let qn = &m["status"]["componentsDeployStatus"]["querynode"]["status"];
            (generation > gen0
                && m["status"]["observedGeneration"] == generation
                && m["status"]["status"] == "Healthy"
                && qn["readyReplicas"] == 3)
                .then_some(m)
        },
    )
    .await;
    assert_eq!(
        m["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "MilvusReady")
            .unwrap()["status"],
        "True"
    );
    // Settled: no status churn (the stand-in writes status only on change).
    let rv = m["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        milvus(&ns, "my-release").await["metadata"]["resourceVersion"],
        rv,
        "CR keeps changing"
    );
    let items = deployments(&ns, "my-release").await;
    assert_eq!(replicas_of(&items, "my-release-milvus-querynode-0"), Some(3));
    assert_eq!(replicas_of(&items, "my-release-milvus-querynode-1"), Some(0));
    let qn_pods = pod_lines(
        &ns,
        Some("app.kubernetes.io/component=querynode,app.kubernetes.io/instance=my-release"),
    );
    assert_eq!(qn_pods.len(), 3, "{}", qn_pods.join("\n"));
    assert!(
        qn_pods.iter().all(|l| l.contains(" 1/1 Running ")),
        "{}",
        qn_pods.join("\n")
    );

    // A hand scale of an owned Deployment goes back to the CR's value.
    let before = get_json(vec![
        "get".into(),
        "deploy".into(),
        "my-release-milvus-proxy".into(),
        "-n".into(),
        ns.to_string(),
    ])
    .await;
    let gen_before = before["metadata"]["generation"].as_i64().unwrap();
    kubectl(&[
        "scale",
        "deploy",
        "my-release-milvus-proxy",
        "-n",
        &ns,
        "--replicas=4",
    ]);
    until(30, "the stand-in to restore proxy replicas to 1", || async {
        let d = get_json(vec![
            "get".into(),
            "deploy".into(),
            "my-release-milvus-proxy".into(),
            "-n".into(),
            ns.to_string(),
        ])
        .await;
        // Generation +2: our scale, then the revert.
        (d["metadata"]["generation"].as_i64()? >= gen_before + 2 && d["spec"]["replicas"] == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_minus_one_leaves_spec_replicas_to_the_hpa() {
    let bed = TestBed::get();
    let ns = bed.namespace("op-hpa").await.unwrap();
    let s = seed_operator_cluster(bed, &ns, OperatorSample::Hpa, OperatorSeedOptions::default())
        .await
        .unwrap();
    assert_eq!(s.crs, ["my-release", "grouped"]);
    assert_eq!(
        s.hpas,
        ["my-release-milvus-proxy-hpa", "grouped-milvus-datanode-zone-a"]
    );
    // The HPA's minReplicas (2) wins; the stand-in does not touch it.
    until(60, "the HPA to lift the proxy to its minReplicas", || async {
        let items = deployments(&ns, "my-release").await;
        (replicas_of(&items, "my-release-milvus-proxy") == Some(2)).then_some(())
    })
    .await;
    kubectl(&[
        "scale",
        "deploy",
        "my-release-milvus-proxy",
        "-n",
        &ns,
        "--replicas=5",
    ]);
    // Make the stand-in reconcile for sure: change the spec, wait for it.
    patch_milvus(&ns, r#"{"spec":{"components":{"dataNode":{"replicas":2}}}}"#);
    until(60, "datanode at 2 and the CR observed", || async {
        let m = milvus(&ns, "my-release").await;
        let items = deployments(&ns, "my-release").await;
        (m["status"]["observedGeneration"] == m["metadata"]["generation"]
            && replicas_of(&items, "my-release-milvus-datanode") == Some(2))
        .then_some(())
    })
    .await;
    let items = deployments(&ns, "my-release").await;
    assert_eq!(replicas_of(&items, "my-release-milvus-proxy"), Some(5));
    // The grouped CR's HPA-owned group Deployment exists at the API default of 1.
    let items = deployments(&ns, "grouped").await;
    assert_eq!(replicas_of(&items, "grouped-milvus-datanode-zone-a"), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_cr_garbage_collects_its_deployments() {
    let bed = TestBed::get();
    let ns = bed.namespace("op-delete").await.unwrap();
    let opts = OperatorSeedOptions {
        dependencies: false,
        ..OperatorSeedOptions::default()
    };
    seed_operator_cluster(bed, &ns, OperatorSample::ClusterMixcoord, opts)
        .await
        .unwrap();
    assert_eq!(deployments(&ns, "my-release").await.len(), 7);
    kubectl(&["delete", "milvus", "my-release", "-n", &ns, "--wait=false"]);
    until(90, "the garbage collector to delete the Deployments", || async {
        deployments(&ns, "my-release").await.is_empty().then_some(())
    })
    .await;
    // And the stand-in did not recreate them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(deployments(&ns, "my-release").await.is_empty());
}
