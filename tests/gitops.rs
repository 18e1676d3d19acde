//! Releases owned by GitOps tools (Flux helm-controller, Argo CD), seeded
//! on the test bed with the markers those tools really put on objects
//! (docs/gitops.md): `status` names the owner, `plan` warns, `scale`
//! refuses unless `--force-gitops`.

mod common;

use common::*;
use serde_json::{Value, json};
use testbed::gitops::{
    ArgoOptions, ArgoValues, FluxOptions, SeededArgoApp, SeededFluxRelease, Tracking, seed_argocd_app,
    seed_flux_release,
};
use testbed::seed::{Scenario, SeedOptions};

fn flux(ns: &str, helmrelease: &str) -> SeededFluxRelease {
    flux_of(ns, helmrelease, Scenario::QueryNode3DataNode2)
}

fn flux_of(ns: &str, helmrelease: &str, scenario: Scenario) -> SeededFluxRelease {
    let (ns, hr) = (ns.to_string(), helmrelease.to_string());
    bed()
        .block_on(async move {
            let opts = FluxOptions {
                helmrelease: Some(hr),
                seed: SeedOptions {
                    wait_ready: true,
                    ..Default::default()
                },
            };
            seed_flux_release(bed(), &ns, scenario, opts).await
        })
        .expect("runtime")
        .expect("seed Flux release")
}

fn argo(ns: &str, scenario: Scenario, opts: ArgoOptions) -> SeededArgoApp {
    let ns_owned = ns.to_string();
    let seeded = bed()
        .block_on(async move { seed_argocd_app(bed(), &ns_owned, scenario, opts).await })
        .expect("runtime")
        .expect("seed Argo CD app");
    wait_ready(ns);
    seeded
}

fn helm_records(ns: &str) -> usize {
    kubectl(&["get", "secrets", "-n", ns, "-l", "owner=helm", "-o", "name"])
        .lines()
        .count()
}

fn item<'a>(doc: &'a Value, ns: &str) -> &'a Value {
    doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["namespace"] == ns)
        .unwrap_or_else(|| panic!("no item in namespace {ns}: {doc}"))
}

#[test]
fn flux_release_names_its_helmrelease_and_scale_is_refused_unless_forced() {
    let ns = namespace("gitops-flux");
    let ns = ns.name();
    flux(ns, "milvus-hr");
    let qn = "my-release-milvus-querynode";

    // The HelmRelease (not the Helm release) is named, read from the bed.
    let out = ok(&["status", "my-release", "-n", ns]);
    assert!(
        out.contains(&format!(
            "Managed by:  Flux HelmRelease {ns}/milvus-hr (change spec.values there)\n"
        )),
        "{out}"
    );
    let doc: Value = serde_json::from_str(&ok(&["status", "-n", ns, "-o", "json"])).unwrap();
    assert_eq!(
        item(&doc, ns)["owner"],
        json!({
            "kind": "FluxHelmRelease",
            "namespace": ns,
            "name": "milvus-hr",
            "detectedBy": "fluxLabels",
            "lookup": "found",
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "helmRecord": true
        })
    );

    // plan warns at the top and still plans.
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", ns]);
    assert!(
        plan.starts_with(&format!(
            "Warning: release my-release is managed by Flux HelmRelease {ns}/milvus-hr: change spec.values.queryNode.replicas in Flux HelmRelease {ns}/milvus-hr instead"
        )),
        "{plan}"
    );
    assert!(plan.contains("\nqueryNode   3        3         2"), "{plan}");

    // scale refuses, changes nothing, and says which field to change.
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", ns], 3);
    assert!(
        err.contains(&format!(
            "change spec.values.queryNode.replicas in Flux HelmRelease {ns}/milvus-hr instead"
        )) && err.contains("--force-gitops"),
        "{err}"
    );
    assert_eq!(replicas(ns, qn), "3");
    assert_eq!(helm_records(ns), 1, "a refused scale writes no revision");

    // valuesFrom can override spec.values: the message says so.
    kubectl(&[
        "patch",
        "helmreleases.helm.toolkit.fluxcd.io",
        "milvus-hr",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"valuesFrom":[{"kind":"ConfigMap","name":"milvus-values","valuesKey":"values.yaml","optional":true}]}}"#,
    ]);
    let err = fails(
        &["scale", "my-release", "querynode", "--replicas", "2", "-n", ns],
        3,
    );
    assert!(
        err.contains("its spec.valuesFrom ConfigMap/milvus-values can also set it"),
        "{err}"
    );

    // --force-gitops scales, warning on stderr that Flux will revert it.
    let r = run(plugin().args(["scale", "my-release", "queryNode=2", "--force-gitops", "-n", ns]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "Warning: --force-gitops: scaling my-release behind Flux HelmRelease {ns}/milvus-hr's back"
        )) && r
            .stderr
            .contains("at its next reconcile, unless spec.values.queryNode.replicas"),
        "{}",
        r.stderr
    );
    assert_eq!(replicas(ns, qn), "2");
    assert_eq!(helm_records(ns), 2);
}

/// New HPA bounds for a Flux-owned release: the refusal names the bounds
/// fields of the HelmRelease, not `replicas`.
#[test]
fn flux_refusal_of_new_hpa_bounds_names_the_bounds_fields() {
    let ns = namespace("gitops-bounds");
    let ns = ns.name();
    flux_of(ns, "milvus-hr", Scenario::QueryNodeHpa);
    let hr = format!("Flux HelmRelease {ns}/milvus-hr");

    let plan = ok(&["plan", "my-release", "queryNode", "--max", "4", "-n", ns]);
    assert!(
        plan.starts_with(&format!(
            "Warning: release my-release is managed by {hr}: change spec.values.queryNode.hpa.maxReplicas in {hr} instead"
        )),
        "{plan}"
    );
    let err = fails(
        &[
            "scale",
            "my-release",
            "queryNode",
            "--min",
            "2",
            "--max",
            "4",
            "-n",
            ns,
        ],
        3,
    );
    assert!(
        err.contains(&format!(
            "change spec.values.queryNode.hpa.minReplicas in {hr}; spec.values.queryNode.hpa.maxReplicas in {hr} instead"
        )),
        "{err}"
    );
    assert_eq!(helm_records(ns), 1, "a refused scale writes no revision");
}

#[test]
fn an_unreadable_helmrelease_is_known_from_the_labels() {
    let ns = namespace("gitops-flux-rbac");
    let ns = ns.name();
    flux(ns, "my-release");
    // The README's Roles grant nothing on helmreleases: a 403 there.
    let (status_rules, scale_rules) = readme_rules();
    let status_kc = restricted(ns, "status", status_rules);
    let scale_kc = restricted(ns, "scale", scale_rules);

    let r = run(plugin().args(["status", "-n", ns]).env("KUBECONFIG", &status_kc));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "Managed by:  Flux HelmRelease {ns}/my-release (change spec.values there); HelmRelease not readable: forbidden; known from the objects' labels"
        )),
        "{}",
        r.stdout
    );
    let r = run(plugin()
        .args(["scale", "my-release", "queryNode=2", "-n", ns])
        .env("KUBECONFIG", &scale_kc));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("Flux HelmRelease"), "{}", r.stderr);
    assert_eq!(helm_records(ns), 1);
}

#[test]
fn argo_rendered_instance_is_shown_from_its_live_objects_and_never_scaled() {
    let ns = namespace("gitops-argo");
    let ns = ns.name();
    let app = argo(ns, Scenario::Defaults, ArgoOptions::default());
    let app_ns = app.app_namespace.name();
    assert_eq!(helm_records(ns), 0, "Argo CD leaves no Helm record");

    let out = ok(&["status", "-n", ns]);
    assert!(out.starts_with("Release:     my-release (namespace "), "{out}");
    assert!(
        out.contains(&format!(
            "Revision:    none (no Helm record: rendered by Argo CD Application {app_ns}/my-milvus; read-only)\n"
        )) && out.contains(&format!(
            "Managed by:  Argo CD Application {app_ns}/my-milvus (change its Helm values in Git; self-heal reverts live changes)\n"
        )) && out.contains("Mode:        cluster, message queue pulsar\n"),
        "{out}"
    );
    for row in [
        "proxy ",
        "queryNode ",
        "dataNode ",
        "streamingNode ",
        "mixCoordinator ",
    ] {
        assert!(out.lines().any(|l| l.starts_with(row)), "no {row}row:\n{out}");
    }
    assert!(
        out.contains("StatefulSet/my-release-etcd                 3/3"),
        "{out}"
    );
    // The pods of its Deployments and StatefulSets, exactly as kubectl
    // prints them (Job pods are not attributed without a manifest).
    eventually_equal(|| {
        (
            pod_table(&ok(&["status", "my-milvus", "-n", ns])),
            kubectl(&["get", "pods", "-n", ns, "-l", "!job-name"]),
        )
    });

    // By its release name too, and in -A as JSON.
    assert!(ok(&["status", "my-release", "-n", ns]).contains("Managed by:  Argo CD"));
    let doc: Value = serde_json::from_str(&ok(&["status", "-A", "-o", "json"])).unwrap();
    let it = item(&doc, ns);
    assert_eq!(
        (
            it["managedBy"].as_str(),
            it["storage"].as_str(),
            it["revision"].as_u64()
        ),
        (Some("argocd"), Some("none"), Some(0))
    );
    assert_eq!(
        it["owner"],
        json!({
            "kind": "ArgoCDApplication",
            "namespace": app_ns,
            "name": "my-milvus",
            "detectedBy": "argoTrackingId",
            "lookup": "found",
            "apiVersion": "argoproj.io/v1alpha1",
            "helmRecord": false,
            "selfHeal": true
        })
    );

    // plan warns and plans; scale refuses, forced or not, changing nothing.
    let plan = ok(&["plan", "my-milvus", "queryNode=2", "-n", ns]);
    assert!(
        plan.starts_with(&format!(
            "Warning: my-release has no Helm record: it is rendered by Argo CD Application {app_ns}/my-milvus: change spec.source.helm.valuesObject.queryNode.replicas (or a parameter queryNode.replicas) in Argo CD Application {app_ns}/my-milvus instead"
        )),
        "{plan}"
    );
    assert!(plan.contains("queryNode   1        1         2"), "{plan}");
    for forced in [false, true] {
        let mut args = vec!["scale", "my-milvus", "queryNode=2", "-n", ns];
        if forced {
            args.push("--force-gitops");
        }
        let err = fails(&args, 3);
        assert!(
            err.contains("spec.source.helm.valuesObject.queryNode.replicas")
                && err.contains("--force-gitops cannot help"),
            "{err}"
        );
    }
    assert_eq!(replicas(ns, "my-release-milvus-querynode"), "1");
    assert_eq!(helm_records(ns), 0);
}

#[test]
fn label_tracked_instance_is_confirmed_by_its_application() {
    let ns = namespace("gitops-argo-label");
    let ns = ns.name();
    let app = argo(
        ns,
        Scenario::QueryNode3DataNode2,
        ArgoOptions {
            tracking: Tracking::Label,
            values: ArgoValues::Parameters,
            ..Default::default()
        },
    );
    let app_ns = app.app_namespace.name();
    let doc: Value = serde_json::from_str(&ok(&["status", "my-milvus", "-n", ns, "-o", "json"])).unwrap();
    let it = item(&doc, ns);
    assert_eq!(it["owner"]["detectedBy"], "argoInstanceLabel", "{it}");
    assert_eq!(it["owner"]["namespace"], app_ns, "{it}");
    let err = fails(&["scale", "my-milvus", "queryNode=4", "-n", ns], 3);
    assert!(
        err.contains("change spec.source.helm.parameters[")
            && err.contains(&format!(
                "] (name queryNode.replicas) in Argo CD Application {app_ns}/my-milvus instead"
            )),
        "{err}"
    );
    assert_eq!(replicas(ns, "my-release-milvus-querynode"), "3");

    // Without the Application, the chart's own instance label proves nothing.
    kubectl(&["delete", "applications.argoproj.io", "--all", "-n", app_ns]);
    let err = fails(&["status", "-n", ns], 2);
    assert!(err.contains("no Milvus Helm releases found"), "{err}");
}

#[test]
fn argo_rendered_grace_check_reads_the_live_milvus_configuration() {
    let ns = namespace("gitops-argo-grace");
    let ns = ns.name();
    argo(ns, Scenario::Defaults, ArgoOptions::default());
    // The user's Milvus configuration lives in the chart's ConfigMap
    // (`user.yaml`), which Argo CD applied with everything else: no Helm
    // record holds it.
    kubectl(&[
        "patch",
        "configmap",
        "my-release-milvus",
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"user.yaml":"queryNode:\n  gracefulStopTimeout: 25\n"}}"#,
    ]);
    let plan = ok(&["plan", "my-milvus", "queryNode=0", "--force", "-n", ns]);
    assert!(
        plan.contains("Milvus may take 25s (queryNode.gracefulStopTimeout in user.yaml)"),
        "{plan}"
    );
}

/// `-o json` of an Argo CD-rendered instance (no Helm record), every field
/// pinned by a snapshot (names and times redacted), `-o yaml` the same.
#[test]
fn json_and_yaml_output_of_an_argo_rendered_instance() {
    let ns = namespace("gitops-snap");
    let ns = ns.name();
    // (The Application's namespace, `argocd-<suffix>`, redacts to argocd-HASH.)
    let _app = argo(ns, Scenario::Defaults, ArgoOptions::default());
    let json = status_doc_redacted(&[], ns);
    insta::assert_json_snapshot!("argo_status", json);
}
