//! The in-cluster dependencies the Milvus Operator installs for a CR, as
//! it leaves them: **Helm releases** named `<cr>-etcd`, `<cr>-minio`,
//! `<cr>-pulsar` / `<cr>-kafka` (`pkg/helm/helm.go`, Helm v3 SDK, Secret
//! driver) with their workloads. Seeded here as Helm v3-shaped release
//! records (encoded like `seed.rs` encodes Milvus releases) plus the
//! StatefulSets (and MinIO's Deployment in standalone mode), so a tool
//! listing Helm releases sees them and must not take them for Milvus
//! releases (their chart is `etcd`/`minio`/`pulsar`/`kafka`, not `milvus`).
//! Services, ConfigMaps, PVCs and Pulsar's init Jobs are not seeded.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::seed::encode_release;

/// One dependency release the operator would install.
#[derive(Debug, Clone)]
pub struct DependencyRelease {
    /// `<cr>-etcd`, …
    pub release: String,
    /// Chart name and version, appVersion.
    pub chart: &'static str,
    pub chart_version: &'static str,
    pub app_version: &'static str,
    /// `spec.dependencies.<dep>.inCluster.values` (the release's `config`).
    pub values: Value,
    /// Workload objects (StatefulSets, or a Deployment for standalone MinIO).
    pub objects: Vec<Value>,
}

fn int(values: &Value, ptr: &str, default: i64) -> i64 {
    values.pointer(ptr).and_then(Value::as_i64).unwrap_or(default)
}

/// A workload of release `at.0` in namespace `at.1`: pods labelled with
/// `selector` + `extra_labels`, one container named after the last name part.
fn workload(
    kind: &str,
    name: &str,
    replicas: i64,
    selector: Value,
    extra_labels: Value,
    image: &str,
    at: (&str, &str),
) -> Value {
    let (release, ns) = at;
    let mut labels = selector.as_object().cloned().unwrap_or_default();
    if let Some(extra) = extra_labels.as_object() {
        labels.extend(extra.clone());
    }
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": name.rsplit('-').next().unwrap_or(name), "image": image}]},
        },
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(format!("{name}-headless"));
        spec["podManagementPolicy"] = json!("Parallel");
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": ns},
        },
        "spec": spec,
    })
}

/// The dependency releases for a defaulted CR (see `webhook::apply_defaults`).
pub fn planned(cr: &Value, ns: &str) -> Vec<DependencyRelease> {
    let name = cr.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let dep = cr.pointer("/spec/dependencies").cloned().unwrap_or(Value::Null);
    let external = |d: &str| dep.pointer(&format!("/{d}/external")).and_then(Value::as_bool) == Some(true);
    let values = |d: &str| {
        dep.pointer(&format!("/{d}/inCluster/values"))
            .cloned()
            .unwrap_or(json!({}))
    };
    let mut out = Vec::new();

    if !external("etcd") {
        let v = values("etcd");
        let release = format!("{name}-etcd");
        let sel = json!({"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": release});
        let extra = json!({"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "etcd-8.12.0"});
        let objects = vec![workload(
            "StatefulSet",
            &release,
            int(&v, "/replicaCount", 3),
            sel,
            extra,
            "milvusdb/etcd:3.5.25-r1",
            (&release, ns),
        )];
        out.push(DependencyRelease {
            release,
            chart: "etcd",
            chart_version: "8.12.0",
            app_version: "3.5.25",
            values: v,
            objects,
        });
    }
    if !external("storage") {
        let v = values("storage");
        let release = format!("{name}-minio");
        let sel = json!({"app": "minio", "release": release});
        let extra = json!({"chart": "minio-8.0.17", "heritage": "Helm"});
        let image = "minio/minio:RELEASE.2023-03-20T20-16-18Z";
        let obj = if v.get("mode").and_then(Value::as_str) == Some("standalone") {
            workload("Deployment", &release, 1, sel, extra, image, (&release, ns))
        } else {
            workload(
                "StatefulSet",
                &release,
                int(&v, "/replicas", 4),
                sel,
                extra,
                image,
                (&release, ns),
            )
        };
        out.push(DependencyRelease {
            release,
            chart: "minio",
            chart_version: "8.0.17",
            app_version: "master",
            values: v,
            objects: vec![obj],
        });
    }
    match dep.get("msgStreamType").and_then(Value::as_str) {
        Some("pulsar") if !external("pulsar") => {
            let v = values("pulsar");
            let release = format!("{name}-pulsar");
            let enabled =
                |c: &str| v.pointer(&format!("/components/{c}")).and_then(Value::as_bool) != Some(false);
            let mut objects = Vec::new();
            // Replica defaults of the Milvus chart's Pulsar values.
            for (component, values_key, default) in [
                ("zookeeper", "zookeeper", 3),
                ("bookie", "bookkeeper", 3),
                ("broker", "broker", 2),
                ("proxy", "proxy", 2),
                ("recovery", "autorecovery", 1),
            ] {
                if component == "recovery" && !enabled("autorecovery") {
                    continue;
                }
                let sel = json!({"app": "pulsar", "release": release, "component": component});
                let extra = json!({"cluster": release, "heritage": "Helm", "chart": "pulsar-3.3.0"});
                let n = int(&v, &format!("/{values_key}/replicaCount"), default);
                objects.push(workload(
                    "StatefulSet",
                    &format!("{release}-{component}"),
                    n,
                    sel,
                    extra,
                    "apachepulsar/pulsar:3.0.7",
                    (&release, ns),
                ));
            }
            out.push(DependencyRelease {
                release,
                chart: "pulsar",
                chart_version: "3.3.0",
                app_version: "3.0.7",
                values: v,
                objects,
            });
        }
        Some("kafka") if !external("kafka") => {
            let v = values("kafka");
            let release = format!("{name}-kafka");
            let sel = json!({"app.kubernetes.io/name": "kafka", "app.kubernetes.io/instance": release, "app.kubernetes.io/component": "kafka"});
            let extra = json!({"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "kafka-15.5.1"});
            let objects = vec![workload(
                "StatefulSet",
                &release,
                int(&v, "/replicaCount", 3),
                sel,
                extra,
                "bitnami/kafka:3.1.0",
                (&release, ns),
            )];
            out.push(DependencyRelease {
                release,
                chart: "kafka",
                chart_version: "15.5.1",
                app_version: "3.1.0",
                values: v,
                objects,
            });
        }
        _ => {}
    }
    out
}

/// The manifest text Helm stores: each object as a YAML document.
fn manifest(objects: &[Value], chart: &str) -> String {
    let mut out = String::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or("").to_lowercase();
        let mut o = o.clone();
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            // Live-only metadata Helm adds at install time, not in the manifest.
            m.remove("annotations");
            m.remove("namespace");
        }
        let yaml = serde_saphyr::to_string(&o).unwrap_or_else(|_| o.to_string());
        out.push_str(&format!("---\n# Source: {chart}/templates/{kind}.yaml\n{yaml}"));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The Helm v3 release record (JSON) of `d`, revision 1, deployed.
pub fn record(d: &DependencyRelease, ns: &str) -> Value {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
        .to_string();
    json!({
        "name": d.release,
        "info": {"first_deployed": now, "last_deployed": now, "deleted": "",
                 "description": "Install complete", "status": "deployed"},
        "chart": {
            "metadata": {"name": d.chart, "version": d.chart_version, "appVersion": d.app_version,
                         "description": format!("{} chart vendored by milvus-operator", d.chart),
                         "apiVersion": "v2", "type": "application"},
            "lock": null, "templates": [], "values": {}, "schema": null, "files": [],
        },
        "config": d.values,
        "manifest": manifest(&d.objects, d.chart),
        "version": 1,
        "namespace": ns,
    })
}

/// Create the workloads and the `sh.helm.release.v1.<release>.v1` Secret of
/// each dependency of `cr`. Returns the releases created.
pub async fn seed_dependencies(
    client: &kube::Client,
    ns: &str,
    cr: &Value,
) -> Result<Vec<DependencyRelease>> {
    let planned = planned(cr, ns);
    for d in &planned {
        for o in &d.objects {
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            let pp = PostParams {
                field_manager: Some("helm".into()),
                ..PostParams::default()
            };
            let r = if o["kind"] == "Deployment" {
                let obj: Deployment = serde_json::from_value(o.clone())?;
                Api::<Deployment>::namespaced(client.clone(), ns)
                    .create(&pp, &obj)
                    .await
                    .map(|_| ())
            } else {
                let obj: StatefulSet = serde_json::from_value(o.clone())?;
                Api::<StatefulSet>::namespaced(client.clone(), ns)
                    .create(&pp, &obj)
                    .await
                    .map(|_| ())
            };
            match r {
                Ok(()) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e).with_context(|| format!("create {} {name}", o["kind"])),
            }
        }
        let payload = encode_release(&record(d, ns))?;
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("sh.helm.release.v1.{}.v1", d.release)),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([
                    ("name".to_string(), d.release.clone()),
                    ("owner".to_string(), "helm".to_string()),
                    ("status".to_string(), "deployed".to_string()),
                    ("version".to_string(), "1".to_string()),
                    (
                        "modifiedAt".to_string(),
                        jiff::Timestamp::now().as_second().to_string(),
                    ),
                ])),
                ..Default::default()
            },
            type_: Some("helm.sh/release.v1".into()),
            data: Some(BTreeMap::from([(
                "release".to_string(),
                ByteString(payload.into_bytes()),
            )])),
            ..Default::default()
        };
        match Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("create Helm record of {}", d.release)),
        }
    }
    Ok(planned)
}
