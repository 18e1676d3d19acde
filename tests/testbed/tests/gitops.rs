//! GitOps-owned Milvus releases carry exactly the documented markers.

mod common;

use common::kubectl;
use serde_json::Value;
use testbed::TestBed;
use testbed::clients::run;
use testbed::gitops::{
    ArgoOptions, ArgoValues, FluxOptions, Tracking, seed_argocd_app, seed_flux_release, tracking_id,
};
use testbed::seed::{Scenario, SeedOptions};

fn get(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(&a)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_release_has_origin_labels_record_and_helmrelease() {
    let bed = TestBed::get();
    let ns = bed.namespace("flux").await.unwrap();
    let opts = FluxOptions {
        helmrelease: Some("milvus-hr".into()),
        seed: SeedOptions {
            revisions: 2,
            ..SeedOptions::default()
        },
    };
    let s = seed_flux_release(bed, &ns, Scenario::QueryNode3DataNode2, opts)
        .await
        .unwrap();
    assert_eq!(s.release.release, "my-release");

    let d = get(&["get", "deploy", "my-release-milvus-querynode", "-n", &ns]);
    let labels = &d["metadata"]["labels"];
    assert_eq!(labels["helm.toolkit.fluxcd.io/name"], "milvus-hr");
    assert_eq!(labels["helm.toolkit.fluxcd.io/namespace"], ns.name());
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(labels["app.kubernetes.io/instance"], "my-release");
    assert_eq!(
        d["metadata"]["annotations"]["meta.helm.sh/release-name"],
        "my-release"
    );
    assert_eq!(d["spec"]["replicas"], 3);
    // kubectl hides managedFields unless asked.
    let d = get(&[
        "get",
        "deploy",
        "my-release-milvus-querynode",
        "-n",
        &ns,
        "--show-managed-fields",
    ]);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"helm-controller"), "{managers:?}");
    assert!(!managers.contains(&"helm"), "{managers:?}");
    // Every object of the release is labelled, e.g. the etcd StatefulSet.
    let sts = get(&["get", "sts", "my-release-etcd", "-n", &ns]);
    assert_eq!(
        sts["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"],
        "milvus-hr"
    );

    // The stored (post-rendered) manifest carries the labels too; the record
    // itself only Helm's own labels.
    let manifest = run(bed.helm().args(["get", "manifest", "my-release", "-n", &ns])).unwrap();
    assert!(
        manifest.contains("helm.toolkit.fluxcd.io/name: milvus-hr"),
        "{}",
        &manifest[..400.min(manifest.len())]
    );
    let secret = get(&["get", "secret", "sh.helm.release.v1.my-release.v2", "-n", &ns]);
    let mut keys: Vec<&str> = secret["metadata"]["labels"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["modifiedAt", "name", "owner", "status", "version"]);
    assert!(
        secret["metadata"]["annotations"].is_null(),
        "{:#}",
        secret["metadata"]
    );
    let values = run(bed
        .helm()
        .args(["get", "values", "my-release", "-n", &ns, "-o", "json"]))
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&values).unwrap()["queryNode"]["replicas"],
        3
    );

    // The HelmRelease names the release, holds its values, and reports history.
    let hr = get(&["get", "hr", "milvus-hr", "-n", &ns]);
    assert_eq!(hr["apiVersion"], "helm.toolkit.fluxcd.io/v2");
    assert_eq!(hr["spec"]["releaseName"], "my-release");
    assert_eq!(hr["spec"]["values"]["queryNode"]["replicas"], 3);
    assert_eq!(hr["spec"]["values"]["dataNode"]["replicas"], 2);
    assert_eq!(hr["status"]["storageNamespace"], ns.name());
    let h0 = &hr["status"]["history"][0];
    assert_eq!(
        (h0["name"].as_str(), h0["namespace"].as_str()),
        (Some("my-release"), Some(ns.name()))
    );
    assert_eq!(h0["version"], 2);
    assert_eq!(h0["status"], "deployed");
    assert_eq!(hr["status"]["history"][1]["version"], 1);
    assert_eq!(hr["status"]["conditions"][0]["type"], "Ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_app_has_tracking_markers_and_no_helm_record() {
    let bed = TestBed::get();
    let ns = bed.namespace("argo-ann").await.unwrap();
    let s = seed_argocd_app(bed, &ns, Scenario::QueryNode3DataNode2, ArgoOptions::default())
        .await
        .unwrap();
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    let d = get(&["get", "deploy", "my-release-milvus-querynode", "-n", &ns]);
    assert_eq!(
        d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        format!("my-milvus:apps/Deployment:{ns}/my-release-milvus-querynode")
    );
    assert!(d["metadata"]["annotations"]["meta.helm.sh/release-name"].is_null());
    // Annotation tracking keeps the chart's instance label.
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/instance"],
        "my-release"
    );
    assert_eq!(d["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    let svc = get(&["get", "svc", "my-release-milvus", "-n", &ns]);
    assert_eq!(
        svc["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        format!("my-milvus:/Service:{ns}/my-release-milvus")
    );
    assert_eq!(tracking_id("a", "v1", "Service", "n", "s"), "a:/Service:n/s");
    // No Helm release anywhere in the namespace.
    let secrets = get(&["get", "secret", "-n", &ns, "-l", "owner=helm"]);
    assert_eq!(secrets["items"].as_array().unwrap().len(), 0);
    let list = run(bed.helm().args(["list", "-n", &ns, "-o", "json"])).unwrap();
    assert_eq!(list.trim(), "[]");

    let app = get(&["get", "app", "my-milvus", "-n", s.app_namespace.name()]);
    assert_eq!(app["spec"]["source"]["helm"]["releaseName"], "my-release");
    assert_eq!(
        app["spec"]["source"]["helm"]["valuesObject"]["queryNode"]["replicas"],
        3
    );
    assert_eq!(app["spec"]["destination"]["namespace"], ns.name());
    assert_eq!(app["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
    assert_eq!(app["status"]["sync"]["status"], "Synced");
    let listed = app["status"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["kind"] == "Deployment" && r["name"] == "my-release-milvus-querynode");
    assert!(listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_label_tracking_overwrites_the_instance_label() {
    let bed = TestBed::get();
    let ns = bed.namespace("argo-label").await.unwrap();
    let opts = ArgoOptions {
        app: Some("milvus-prod".into()),
        tracking: Tracking::Label,
        values: ArgoValues::Parameters,
        ..ArgoOptions::default()
    };
    let s = seed_argocd_app(bed, &ns, Scenario::QueryNode3DataNode2, opts)
        .await
        .unwrap();
    let d = get(&["get", "deploy", "my-release-milvus-querynode", "-n", &ns]);
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/instance"],
        "milvus-prod"
    );
    assert!(d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"].is_null());
    let app = get(&["get", "app", "milvus-prod", "-n", s.app_namespace.name()]);
    let params = app["spec"]["source"]["helm"]["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "queryNode.replicas" && p["value"] == "3"),
        "{params:?}"
    );

    let ns2 = bed.namespace("argo-both").await.unwrap();
    let opts = ArgoOptions {
        tracking: Tracking::AnnotationAndLabel,
        values: ArgoValues::String,
        ..ArgoOptions::default()
    };
    let s2 = seed_argocd_app(bed, &ns2, Scenario::Defaults, opts)
        .await
        .unwrap();
    let d = get(&["get", "deploy", "my-release-milvus-proxy", "-n", &ns2]);
    assert_eq!(d["metadata"]["labels"]["app.kubernetes.io/instance"], "my-milvus");
    assert_eq!(
        d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        format!("my-milvus:apps/Deployment:{ns2}/my-release-milvus-proxy")
    );
    let app = get(&["get", "app", "my-milvus", "-n", s2.app_namespace.name()]);
    assert!(app["spec"]["source"]["helm"]["values"].is_string());
}
