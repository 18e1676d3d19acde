//! Seed a Milvus Operator sample (`tests/fixtures/milvus-operator/samples`)
//! the way it ends up on a cluster running the operator: the CR(s) with the
//! webhook's defaults, the dependency Helm releases the operator installs,
//! any HPA of the sample; the stand-in then creates the Deployments and
//! writes status. Mirrors `crate::seed` (Helm releases).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

use super::crd::milvus_resource;
use super::{deps, stand_in, topology, webhook};
use crate::TestBed;
use crate::seed::{fixtures_dir, parse_manifest, wait_release_ready_timeout};

/// One sample of `config/samples/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorSample {
    /// `milvus_cluster_default.yaml`: cluster, everything defaulted.
    ClusterDefault,
    /// `milvus_cluster_minimum.yaml`: etcd 1, small Pulsar, MinIO standalone.
    ClusterMinimum,
    /// `milvus_cluster_mixcoord.yaml`: `mixCoord.replicas: 1`.
    ClusterMixcoord,
    /// `milvus_default.yaml`: no spec at all ⇒ standalone.
    Default,
    /// `milvus_deployment_groups.yaml`: proxy/dataNode/queryNode/streamingNode groups g1, g2.
    DeploymentGroups,
    /// `milvus_streaming_node.yaml` (image v2.5.11, `enableRollingUpdate: false`).
    StreamingNode,
    /// `hpa.yaml`: `proxy.replicas: -1` + HPA, and CR `grouped` with a
    /// `dataNode` group at -1 + HPA.
    Hpa,
}

impl OperatorSample {
    pub const ALL: [OperatorSample; 7] = [
        OperatorSample::ClusterDefault,
        OperatorSample::ClusterMinimum,
        OperatorSample::ClusterMixcoord,
        OperatorSample::Default,
        OperatorSample::DeploymentGroups,
        OperatorSample::StreamingNode,
        OperatorSample::Hpa,
    ];

    /// File under `tests/fixtures/milvus-operator/samples/`.
    pub fn file(self) -> &'static str {
        use OperatorSample::*;
        match self {
            ClusterDefault => "milvus_cluster_default.yaml",
            ClusterMinimum => "milvus_cluster_minimum.yaml",
            ClusterMixcoord => "milvus_cluster_mixcoord.yaml",
            Default => "milvus_default.yaml",
            DeploymentGroups => "milvus_deployment_groups.yaml",
            StreamingNode => "milvus_streaming_node.yaml",
            Hpa => "hpa.yaml",
        }
    }
}

/// The CR name every sample uses (substituted by `OperatorSeedOptions::name`).
pub const SAMPLE_NAME: &str = "my-release";

#[derive(Debug, Clone)]
pub struct OperatorSeedOptions {
    /// CR name instead of the sample's `my-release` (substituted textually
    /// in the sample, so HPA names and targets follow).
    pub name: Option<String>,
    /// Seed the dependency Helm releases and workloads (default true).
    pub dependencies: bool,
    /// Wait until every CR is `Healthy` at its generation and every
    /// workload in the namespace is ready (default true).
    pub wait_ready: bool,
    pub timeout: Duration,
}

impl Default for OperatorSeedOptions {
    fn default() -> Self {
        OperatorSeedOptions {
            name: None,
            dependencies: true,
            wait_ready: true,
            timeout: Duration::from_secs(180),
        }
    }
}

/// What [`seed_operator_cluster`] created.
#[derive(Debug, Clone)]
pub struct SeededOperatorCluster {
    /// The (first) CR's name.
    pub name: String,
    pub namespace: String,
    pub sample: OperatorSample,
    /// Every CR of the sample (hpa.yaml has two).
    pub crs: Vec<String>,
    /// Deployments the stand-in keeps for them, by the operator's rules.
    pub deployments: Vec<String>,
    /// Dependency Helm releases (`<cr>-etcd`, …) and their workloads.
    pub dependency_releases: Vec<String>,
    pub dependency_workloads: Vec<String>,
    pub hpas: Vec<String>,
    /// The CRs as created (webhook defaults applied).
    pub objects: Vec<Value>,
}

/// Apply `sample` into `ns` (a namespace of this process, e.g. from
/// `bed.namespace()`); starts the operator stand-in if needed.
pub async fn seed_operator_cluster(
    bed: &TestBed,
    ns: &str,
    sample: OperatorSample,
    opts: OperatorSeedOptions,
) -> Result<SeededOperatorCluster> {
    stand_in(bed).await?;
    let client = bed.client().await?;
    let path = fixtures_dir().join("milvus-operator/samples").join(sample.file());
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let name = opts.name.clone().unwrap_or_else(|| SAMPLE_NAME.to_string());
    let text = if name == SAMPLE_NAME {
        text
    } else {
        text.replace(SAMPLE_NAME, &name)
    };
    let docs = parse_manifest(&text)?;
    let mut seeded = SeededOperatorCluster {
        name: name.clone(),
        namespace: ns.to_string(),
        sample,
        crs: Vec::new(),
        deployments: Vec::new(),
        dependency_releases: Vec::new(),
        dependency_workloads: Vec::new(),
        hpas: Vec::new(),
        objects: Vec::new(),
    };
    let milvuses: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &milvus_resource());
    for mut doc in docs {
        match doc["kind"].as_str().unwrap_or("") {
            "Milvus" => {
                webhook::apply_defaults(&mut doc, ns);
                let cr_name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
                let obj: DynamicObject = serde_json::from_value(doc.clone()).context("Milvus object")?;
                milvuses
                    .create(&PostParams::default(), &obj)
                    .await
                    .with_context(|| format!("create Milvus {cr_name}"))?;
                if opts.dependencies {
                    for d in deps::seed_dependencies(&client, ns, &doc).await? {
                        seeded.dependency_workloads.extend(
                            d.objects
                                .iter()
                                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string)),
                        );
                        seeded.dependency_releases.push(d.release);
                    }
                }
                seeded
                    .deployments
                    .extend(topology::deployment_names(&doc, &cr_name));
                seeded.crs.push(cr_name);
                seeded.objects.push(doc);
            }
            "HorizontalPodAutoscaler" => {
                seeded.hpas.push(create_hpa(&client, ns, doc).await?);
            }
            other => bail!("{}: unexpected kind {other:?}", sample.file()),
        }
    }
    if opts.wait_ready {
        for cr in &seeded.crs {
            wait_milvus_healthy(ns, cr, opts.timeout).await?;
        }
        wait_release_ready_timeout(ns, opts.timeout).await?;
    }
    Ok(seeded)
}

/// Create an `autoscaling/v2` HPA, as `autoscaling/v2beta2` where v2 is not
/// served (before 1.23; same fields).
async fn create_hpa(client: &kube::Client, ns: &str, mut doc: Value) -> Result<String> {
    let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
    let discovery = Discovery::new(client.clone())
        .filter(&["autoscaling"])
        .run()
        .await
        .context("API discovery")?;
    let kind = "HorizontalPodAutoscaler";
    let (ar, _) = match discovery.resolve_gvk(&GroupVersionKind::gvk("autoscaling", "v2", kind)) {
        Some(found) => found,
        None => {
            doc["apiVersion"] = json!("autoscaling/v2beta2");
            discovery
                .resolve_gvk(&GroupVersionKind::gvk("autoscaling", "v2beta2", kind))
                .context("neither autoscaling/v2 nor v2beta2 is served")?
        }
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj: DynamicObject = serde_json::from_value(doc)?;
    api.create(&PostParams::default(), &obj)
        .await
        .with_context(|| format!("create HPA {name}"))?;
    Ok(name)
}

/// Wait (watching) until Milvus `name` in `ns` reports `status.status:
/// Healthy`, `MilvusUpdated` True and `status.observedGeneration` =
/// `metadata.generation`. (Healthy alone is not enough: like the operator,
/// the stand-in's status sync can report Healthy while a two-Deployment
/// workload is still at 0 — a Deployment at 0 is Available.)
pub async fn wait_milvus_healthy(ns: &str, name: &str, timeout: Duration) -> Result<()> {
    let client = TestBed::get().client().await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &milvus_resource());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut last = String::from("not found");
    let run = async {
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(o) | Event::InitApply(o)) = ev {
                let v = serde_json::to_value(&o).unwrap_or(Value::Null);
                let status = v.pointer("/status/status").and_then(Value::as_str).unwrap_or("");
                let observed = v.pointer("/status/observedGeneration").and_then(Value::as_i64);
                let generation = o.metadata.generation;
                last = format!(
                    "status {status:?}, observedGeneration {observed:?} of {generation:?}, MilvusReady: {}",
                    v.pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|cs| cs.iter().find(|c| c["type"] == "MilvusReady"))
                        .and_then(|c| c["message"].as_str())
                        .unwrap_or("-")
                );
                let updated = v
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "MilvusUpdated" && c["status"] == "True")
                    });
                if status == "Healthy" && updated && observed == generation {
                    return;
                }
            }
        }
    };
    if tokio::time::timeout(timeout, run).await.is_err() {
        bail!("Milvus {ns}/{name} not Healthy after {timeout:?}: {last}");
    }
    Ok(())
}
