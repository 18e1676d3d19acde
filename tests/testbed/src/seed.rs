//! Seed a Milvus Helm release into a namespace the way Helm leaves it: every
//! object of a real rendered manifest (with Helm's live labels/annotations),
//! plus the release record(s) encoded exactly like Helm's storage drivers.
//! Also: wait for a release's workloads, and install our tiny test chart with
//! the real helm binary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Map, Value, json};

use crate::TestBed;

/// One rendered chart output (see `tests/fixtures/rendered/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// `a-defaults.yaml`: 5 Milvus Deployments + etcd/minio/pulsar + 2 Jobs.
    Defaults,
    /// `b-standalone.yaml`: `cluster.enabled=false` (deps still on).
    Standalone,
    /// `b2-standalone-docs-flags.yaml`: the chart README's standalone flags.
    StandaloneDocsFlags,
    /// `c-querynode3-datanode2.yaml`.
    QueryNode3DataNode2,
    /// `d-querynode-hpa.yaml`.
    QueryNodeHpa,
    /// `d2-querynode-hpa-replicas-minus1.yaml` (no `spec.replicas`).
    QueryNodeHpaReplicasMinus1,
    /// `e-resource-groups.yaml` (`replicaResourceGroups={rg1,rg2}`).
    ResourceGroups,
    /// `e2-resource-groups-querynode2.yaml`.
    ResourceGroupsQueryNode2,
    /// `f-fullnameoverride.yaml` (`fullnameOverride=vdb`).
    FullnameOverride,
    /// `g-release-named-milvus.yaml` (release `milvus`).
    ReleaseNamedMilvus,
    /// `h-nameoverride.yaml` (`nameOverride=vectordb`).
    NameOverride,
    /// `i-separate-coordinators-indexnode.yaml`.
    SeparateCoordinatorsIndexNode,
    /// `j-attu-cdc-external-woodpecker.yaml`.
    AttuCdcExternalWoodpecker,
    /// `k-mixcoord-active-standby.yaml`.
    MixcoordActiveStandby,
    /// `l-kafka.yaml`.
    Kafka,
    /// `m-pulsarv2.yaml`.
    PulsarV2,
    /// `history/milvus-4.2.3-cluster-nodeps.yaml`: pre-2.6 topology (separate
    /// coordinators + indexnode, deps disabled), chart 4.2.3 / Milvus 2.4.7.
    Legacy423ClusterNoDeps,
}

impl Scenario {
    pub const ALL: [Scenario; 17] = [
        Scenario::Defaults,
        Scenario::Standalone,
        Scenario::StandaloneDocsFlags,
        Scenario::QueryNode3DataNode2,
        Scenario::QueryNodeHpa,
        Scenario::QueryNodeHpaReplicasMinus1,
        Scenario::ResourceGroups,
        Scenario::ResourceGroupsQueryNode2,
        Scenario::FullnameOverride,
        Scenario::ReleaseNamedMilvus,
        Scenario::NameOverride,
        Scenario::SeparateCoordinatorsIndexNode,
        Scenario::AttuCdcExternalWoodpecker,
        Scenario::MixcoordActiveStandby,
        Scenario::Kafka,
        Scenario::PulsarV2,
        Scenario::Legacy423ClusterNoDeps,
    ];

    /// Fixture path relative to `tests/fixtures/rendered/`.
    pub fn fixture(self) -> &'static str {
        use Scenario::*;
        match self {
            Defaults => "a-defaults.yaml",
            Standalone => "b-standalone.yaml",
            StandaloneDocsFlags => "b2-standalone-docs-flags.yaml",
            QueryNode3DataNode2 => "c-querynode3-datanode2.yaml",
            QueryNodeHpa => "d-querynode-hpa.yaml",
            QueryNodeHpaReplicasMinus1 => "d2-querynode-hpa-replicas-minus1.yaml",
            ResourceGroups => "e-resource-groups.yaml",
            ResourceGroupsQueryNode2 => "e2-resource-groups-querynode2.yaml",
            FullnameOverride => "f-fullnameoverride.yaml",
            ReleaseNamedMilvus => "g-release-named-milvus.yaml",
            NameOverride => "h-nameoverride.yaml",
            SeparateCoordinatorsIndexNode => "i-separate-coordinators-indexnode.yaml",
            AttuCdcExternalWoodpecker => "j-attu-cdc-external-woodpecker.yaml",
            MixcoordActiveStandby => "k-mixcoord-active-standby.yaml",
            Kafka => "l-kafka.yaml",
            PulsarV2 => "m-pulsarv2.yaml",
            Legacy423ClusterNoDeps => "history/milvus-4.2.3-cluster-nodeps.yaml",
        }
    }

    /// Release name the fixture was rendered with.
    pub fn fixture_release(self) -> &'static str {
        match self {
            Scenario::ReleaseNamedMilvus => "milvus",
            _ => "my-release",
        }
    }

    /// Chart version and appVersion for the record's `chart.metadata`.
    pub fn chart_version(self) -> (&'static str, &'static str) {
        match self {
            Scenario::Legacy423ClusterNoDeps => ("4.2.3", "2.4.7"),
            _ => ("5.0.19", "2.6.15"),
        }
    }

    /// The user-supplied values (`config`) matching the fixture's `--set`
    /// flags; `None` when there were none (Helm then omits `config`).
    pub fn user_values(self) -> Option<Value> {
        use Scenario::*;
        let v = match self {
            Defaults | ReleaseNamedMilvus => return None,
            Standalone => json!({"cluster": {"enabled": false}}),
            StandaloneDocsFlags => json!({"cluster": {"enabled": false}, "etcd": {"replicaCount": 1},
                "minio": {"mode": "standalone"}, "pulsarv3": {"enabled": false}}),
            QueryNode3DataNode2 => json!({"dataNode": {"replicas": 2}, "queryNode": {"replicas": 3}}),
            QueryNodeHpa => json!({"queryNode": {"hpa": {"enabled": true}}}),
            QueryNodeHpaReplicasMinus1 => {
                json!({"queryNode": {"hpa": {"enabled": true}, "replicas": -1}})
            }
            ResourceGroups => json!({"replicaResourceGroups": ["rg1", "rg2"]}),
            ResourceGroupsQueryNode2 => {
                json!({"queryNode": {"replicas": 2}, "replicaResourceGroups": ["rg1", "rg2"]})
            }
            FullnameOverride => json!({"fullnameOverride": "vdb"}),
            NameOverride => json!({"nameOverride": "vectordb"}),
            SeparateCoordinatorsIndexNode => json!({
                "dataCoordinator": {"enabled": true}, "indexCoordinator": {"enabled": true},
                "indexNode": {"enabled": true}, "mixCoordinator": {"enabled": false},
                "queryCoordinator": {"enabled": true}, "rootCoordinator": {"enabled": true}}),
            AttuCdcExternalWoodpecker => json!({"attu": {"enabled": true}, "cdc": {"enabled": true},
                "pulsarv3": {"enabled": false}, "streaming": {"woodpecker": {"embedded": false}},
                "woodpecker": {"enabled": true}}),
            MixcoordActiveStandby => {
                json!({"mixCoordinator": {"activeStandby": {"enabled": true}, "replicas": 2}})
            }
            Kafka => json!({"kafka": {"enabled": true}, "pulsarv3": {"enabled": false}}),
            PulsarV2 => json!({"pulsar": {"enabled": true}, "pulsarv3": {"enabled": false}}),
            Legacy423ClusterNoDeps => json!({
                "dataCoordinator": {"enabled": true}, "etcd": {"enabled": false},
                "externalEtcd": {"enabled": true}, "externalPulsar": {"enabled": true},
                "externalS3": {"enabled": true}, "indexCoordinator": {"enabled": true},
                "indexNode": {"enabled": true}, "kafka": {"enabled": false},
                "minio": {"enabled": false}, "mixCoordinator": {"enabled": false},
                "pulsar": {"enabled": false}, "pulsarv3": {"enabled": false},
                "queryCoordinator": {"enabled": true}, "rootCoordinator": {"enabled": true},
                "streaming": {"enabled": false}}),
        };
        Some(v)
    }
}

/// Helm storage driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    #[default]
    Secret,
    ConfigMap,
}

/// JSON layout of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordShape {
    /// What Helm 4 writes (`apply_method`, `modtime`s, no zero times).
    #[default]
    Helm4,
    /// What Helm 3 writes (no `apply_method`/`modtime`s, `info.deleted: ""`).
    Helm3,
}

/// How the live objects were applied (recorded as `apply_method` in Helm 4
/// records; objects get the matching managedFields, manager `helm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplyMethod {
    /// Server-side apply (Helm 4's default for installs). Fails on old API
    /// servers for this chart: v1.20 rejects Service ports without
    /// `protocol` under SSA ("associative list with keys has an element that
    /// omits key field"), exactly as a real `helm install` (SSA) would.
    ServerSide,
    /// Client-side create (Helm 3, or Helm 4 `--server-side=false`): works on
    /// every server, hence the default.
    #[default]
    ClientSide,
}

#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Release name; default: the fixture's (`my-release`, or `milvus` for
    /// [`Scenario::ReleaseNamedMilvus`]). A different name is substituted
    /// textually for the fixture's name everywhere in the manifest.
    pub release: Option<String>,
    pub driver: Driver,
    pub shape: RecordShape,
    pub apply_method: ApplyMethod,
    /// Number of revisions to store (>= 1); older ones are `superseded`.
    pub revisions: u32,
    /// Make the last revision `pending-upgrade` (the one before stays
    /// `deployed`, as during a real upgrade). Implies >= 2 revisions.
    pub last_pending_upgrade: bool,
    /// Leave the revision before the last one `deployed` too, as a run that
    /// failed after writing its revision but before superseding the old one
    /// leaves it. Implies >= 2 revisions.
    pub stale_deployed: bool,
    /// Wait until the workloads are ready before returning.
    pub wait_ready: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            release: None,
            driver: Driver::Secret,
            shape: RecordShape::Helm4,
            apply_method: ApplyMethod::ClientSide,
            revisions: 1,
            last_pending_upgrade: false,
            stale_deployed: false,
            wait_ready: false,
        }
    }
}

/// What [`seed_release`] created.
#[derive(Debug, Clone)]
pub struct SeededRelease {
    pub release: String,
    pub namespace: String,
    pub scenario: Scenario,
    /// Last revision number.
    pub revision: u32,
    pub deployments: Vec<String>,
    pub statefulsets: Vec<String>,
    pub jobs: Vec<String>,
    pub hpas: Vec<String>,
    /// Names of the release record objects (Secrets or ConfigMaps), oldest first.
    pub records: Vec<String>,
    /// The (rewritten) manifest stored in the record.
    pub manifest: String,
    /// Objects not created, with the reason (e.g. kind unknown to the server).
    pub skipped: Vec<String>,
}

/// `tests/fixtures` of the repository.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The test chart (`tests/testbed/charts/milvus`).
pub fn test_chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/milvus")
}

/// Helm's `InstallOrder` (pkg/release/util/kind_sorter.go), for the kinds
/// that matter here: ServiceAccounts before the pods that use them, etc.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

pub(crate) fn kind_rank(kind: &str) -> usize {
    INSTALL_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(INSTALL_ORDER.len())
}

/// Rewrite the fixture text for `ns` (and another release name).
pub(crate) fn rewrite_manifest(text: &str, ns: &str, from_release: &str, to_release: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let trimmed = body.trim_start();
        let indent = &body[..body.len() - trimmed.len()];
        if trimmed == "namespace: default" {
            out.push_str(&format!("{indent}namespace: {ns}\n"));
        } else if trimmed == "namespace: \"default\"" {
            out.push_str(&format!("{indent}namespace: \"{ns}\"\n"));
        } else {
            out.push_str(line);
        }
    }
    let mut out = out.replace(".default.svc", &format!(".{ns}.svc"));
    if from_release != to_release {
        out = out.replace(from_release, to_release);
    }
    out
}

/// Parse a multi-document manifest into objects (empty documents dropped).
pub fn parse_manifest(text: &str) -> Result<Vec<Value>> {
    let mut objs = Vec::new();
    // Split ourselves: documents are independent and some are comment-only.
    for doc in text.split("\n---") {
        let doc = doc.strip_prefix("---").unwrap_or(doc);
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        // Some chart configs repeat a key (Pulsar's `httpNumThreads`); Go's
        // YAML decoder as used by Helm/kubectl keeps the last one.
        let mut opts = serde_saphyr::Options::default();
        opts.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
        let v: Value = serde_saphyr::from_str_with_options(doc, opts).context("parse manifest document")?;
        if v.is_object() {
            objs.push(v);
        }
    }
    Ok(objs)
}

/// Encode a release like Helm's `encodeRelease`: compact JSON → gzip → base64.
pub fn encode_release(release: &Value) -> Result<String> {
    let json = serde_json::to_vec(release)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&json)?;
    Ok(STANDARD.encode(gz.finish()?))
}

/// Inverse of [`encode_release`] (gunzip only when gzip magic is present, like Helm).
pub fn decode_release(payload: &str) -> Result<Value> {
    let bytes = STANDARD.decode(payload.trim()).context("base64")?;
    let json = if bytes.starts_with(&[0x1f, 0x8b, 0x08]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)?;
        out
    } else {
        bytes
    };
    Ok(serde_json::from_slice(&json)?)
}

/// Seed `scenario` into `ns`. See the module docs.
pub async fn seed_release(
    bed: &TestBed,
    ns: &str,
    scenario: Scenario,
    opts: SeedOptions,
) -> Result<SeededRelease> {
    seed_release_rendered(bed, ns, scenario, opts, &PostRender::default()).await
}

/// What a Helm client other than `helm` itself does to the rendered objects
/// before installing them (e.g. Flux helm-controller's post-renderer).
#[derive(Debug, Clone)]
pub struct PostRender {
    /// Added to `metadata.labels` of every rendered object, overwriting
    /// (Flux's origin labels). Part of the manifest stored in the record,
    /// as Helm stores the post-rendered manifest.
    pub labels: BTreeMap<String, String>,
    /// managedFields manager of the created objects (`helm`; Flux: `helm-controller`).
    pub field_manager: String,
}

impl Default for PostRender {
    fn default() -> Self {
        PostRender {
            labels: BTreeMap::new(),
            field_manager: "helm".into(),
        }
    }
}

/// [`seed_release`] through a post-renderer: the labels land on the
/// objects and in the stored manifest (re-serialized as YAML documents).
pub async fn seed_release_rendered(
    bed: &TestBed,
    ns: &str,
    scenario: Scenario,
    opts: SeedOptions,
    post: &PostRender,
) -> Result<SeededRelease> {
    let client = bed.client().await?;
    let fixture = fixtures_dir().join("rendered").join(scenario.fixture());
    let raw =
        std::fs::read_to_string(&fixture).with_context(|| format!("read fixture {}", fixture.display()))?;
    let release = opts
        .release
        .clone()
        .unwrap_or_else(|| scenario.fixture_release().to_string());
    if release != scenario.fixture_release() && scenario.fixture_release() == "milvus" {
        // "milvus" also occurs in labels, images and config: no safe rename.
        bail!("{scenario:?} is rendered for release `milvus`; it cannot be renamed to `{release}`");
    }
    let mut manifest = rewrite_manifest(&raw, ns, scenario.fixture_release(), &release);
    let mut objects = parse_manifest(&manifest)?;
    if !post.labels.is_empty() {
        for o in &mut objects {
            let meta = o["metadata"].as_object_mut().context("object without metadata")?;
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            for (k, v) in &post.labels {
                labels[k] = json!(v);
            }
        }
        manifest = objects
            .iter()
            .map(|o| Ok(format!("---\n{}", serde_saphyr::to_string(o)?)))
            .collect::<Result<String>>()
            .context("serialize post-rendered manifest")?;
    }
    objects.sort_by_key(|o| kind_rank(o["kind"].as_str().unwrap_or("")));

    let mut seeded = SeededRelease {
        release: release.clone(),
        namespace: ns.to_string(),
        scenario,
        revision: 0,
        deployments: Vec::new(),
        statefulsets: Vec::new(),
        jobs: Vec::new(),
        hpas: Vec::new(),
        records: Vec::new(),
        manifest: manifest.clone(),
        skipped: Vec::new(),
    };

    let discovery = discover(&client).await?;

    // Resolve kinds and decorate like Helm does at install time.
    let mut planned: Vec<(ApiResource, Scope, Value)> = Vec::new();
    for mut obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let Some((ar, caps)) = resolve(&discovery, &mut obj, ns) else {
            seeded.skipped.push(format!(
                "{kind} {name}: {api_version} is not served by this API server"
            ));
            continue;
        };
        let meta = obj["metadata"]
            .as_object_mut()
            .context("object without metadata")?;
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if labels.is_null() {
            *labels = json!({});
        }
        labels["app.kubernetes.io/managed-by"] = json!("Helm");
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if ann.is_null() {
            *ann = json!({});
        }
        ann["meta.helm.sh/release-name"] = json!(release);
        ann["meta.helm.sh/release-namespace"] = json!(ns);
        match kind.as_str() {
            "Deployment" => seeded.deployments.push(name.clone()),
            "StatefulSet" => seeded.statefulsets.push(name.clone()),
            "Job" => seeded.jobs.push(name.clone()),
            "HorizontalPodAutoscaler" => seeded.hpas.push(name.clone()),
            _ => {}
        }
        planned.push((ar, caps.scope, obj));
    }

    // Create kind group by kind group (in install order), each group in parallel.
    apply_in_install_order(
        &client,
        ns,
        &planned,
        opts.apply_method,
        post.field_manager.as_str(),
    )
    .await?;

    write_records(&client, ns, scenario, &opts, &release, &manifest, &mut seeded).await?;
    if opts.wait_ready {
        wait_release_ready(ns).await?;
    }
    Ok(seeded)
}

/// API discovery of the groups the rendered charts use.
pub(crate) async fn discover(client: &kube::Client) -> Result<Discovery> {
    Discovery::new(client.clone())
        .filter(&[
            "",
            "apps",
            "batch",
            "autoscaling",
            "policy",
            "rbac.authorization.k8s.io",
            "networking.k8s.io",
        ])
        .run()
        .await
        .context("API discovery")
}

/// The API resource of a manifest object, as the server serves it: an
/// `autoscaling/v2` HPA becomes `autoscaling/v2beta2` where v2 is not
/// served (GA only from 1.23; same fields). A namespaced object gets
/// `ns`. `None` when its kind is not served.
pub(crate) fn resolve(
    discovery: &Discovery,
    obj: &mut Value,
    ns: &str,
) -> Option<(ApiResource, ApiCapabilities)> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
    let mut resolved = discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, &kind));
    if resolved.is_none() && kind == "HorizontalPodAutoscaler" {
        resolved = discovery.resolve_gvk(&GroupVersionKind::gvk("autoscaling", "v2beta2", &kind));
        if resolved.is_some() {
            obj["apiVersion"] = json!("autoscaling/v2beta2");
        }
    }
    let (ar, caps) = resolved?;
    if caps.scope == Scope::Namespaced
        && let Some(meta) = obj["metadata"].as_object_mut()
    {
        meta.insert("namespace".into(), json!(ns));
    }
    Some((ar, caps))
}

/// Creates `planned` kind group by kind group in Helm's install order, each
/// group in parallel.
pub(crate) async fn apply_in_install_order(
    client: &kube::Client,
    ns: &str,
    planned: &[(ApiResource, Scope, Value)],
    method: ApplyMethod,
    manager: &str,
) -> Result<()> {
    let mut i = 0;
    while i < planned.len() {
        let rank = kind_rank(planned[i].2["kind"].as_str().unwrap_or(""));
        let mut j = i;
        while j < planned.len() && kind_rank(planned[j].2["kind"].as_str().unwrap_or("")) == rank {
            j += 1;
        }
        futures::stream::iter(planned[i..j].iter().cloned())
            .map(|(ar, scope, obj)| {
                let client = client.clone();
                async move { apply_object(client, ns, &ar, scope, obj, method, manager).await }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        i = j;
    }
    Ok(())
}

pub(crate) async fn apply_object(
    client: kube::Client,
    ns: &str,
    ar: &ApiResource,
    scope: Scope,
    obj: Value,
    method: ApplyMethod,
    manager: &str,
) -> Result<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let api: Api<DynamicObject> = match scope {
        Scope::Namespaced => Api::namespaced_with(client, ns, ar),
        Scope::Cluster => Api::all_with(client, ar),
    };
    let what = || format!("{} {name}", ar.kind);
    match method {
        ApplyMethod::ServerSide => {
            api.patch(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&obj))
                .await
                .with_context(what)?;
        }
        ApplyMethod::ClientSide => {
            let dynobj: DynamicObject = serde_json::from_value(obj).with_context(what)?;
            let pp = PostParams {
                field_manager: Some(manager.into()),
                ..PostParams::default()
            };
            match api.create(&pp, &dynobj).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 && scope == Scope::Cluster => {}
                Err(e) => return Err(e).with_context(what),
            }
        }
    }
    Ok(())
}

/// Build and store revisions 1..=n of the record.
async fn write_records(
    client: &kube::Client,
    ns: &str,
    scenario: Scenario,
    opts: &SeedOptions,
    release: &str,
    manifest: &str,
    seeded: &mut SeededRelease,
) -> Result<()> {
    let base_path = fixtures_dir().join("helm-release/release-v4-rev2-deployed-qn3-dn2.json");
    let base: Value = serde_json::from_slice(
        &std::fs::read(&base_path).with_context(|| format!("read {}", base_path.display()))?,
    )?;
    let n = if opts.last_pending_upgrade || opts.stale_deployed {
        opts.revisions.max(2)
    } else {
        opts.revisions.max(1)
    };
    let now = jiff::Timestamp::now();
    // Revisions one minute apart, the last one now.
    let time_of = |rev: u32| {
        let ts = now - jiff::SignedDuration::from_secs(60 * i64::from(n - rev));
        ts.strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string()
    };
    let (chart_version, app_version) = scenario.chart_version();
    for rev in 1..=n {
        let (status, description) = if rev == n && opts.last_pending_upgrade {
            ("pending-upgrade", "Preparing upgrade")
        } else if rev == n || ((opts.last_pending_upgrade || opts.stale_deployed) && rev == n - 1) {
            (
                "deployed",
                if rev == 1 {
                    "Install complete"
                } else {
                    "Upgrade complete"
                },
            )
        } else {
            (
                "superseded",
                if rev == 1 {
                    "Install complete"
                } else {
                    "Upgrade complete"
                },
            )
        };
        let mut r = base.clone();
        let obj = r.as_object_mut().context("release JSON is not an object")?;
        obj.insert("name".into(), json!(release));
        obj.insert("namespace".into(), json!(ns));
        obj.insert("version".into(), json!(rev));
        obj.insert("manifest".into(), json!(manifest));
        match scenario.user_values() {
            Some(v) => {
                obj.insert("config".into(), v);
            }
            None => {
                obj.remove("config");
            }
        }
        let mut info = Map::new();
        info.insert("first_deployed".into(), json!(time_of(1)));
        info.insert("last_deployed".into(), json!(time_of(rev)));
        if opts.shape == RecordShape::Helm3 {
            info.insert("deleted".into(), json!(""));
        }
        info.insert("description".into(), json!(description));
        info.insert("status".into(), json!(status));
        if let Some(notes) = base["info"].get("notes") {
            info.insert("notes".into(), notes.clone());
        }
        obj.insert("info".into(), Value::Object(info));
        if let Some(meta) = obj.get_mut("chart").and_then(|c| c.get_mut("metadata")) {
            meta["version"] = json!(chart_version);
            meta["appVersion"] = json!(app_version);
        }
        match opts.shape {
            RecordShape::Helm4 => {
                let m = match opts.apply_method {
                    ApplyMethod::ServerSide => "ssa",
                    ApplyMethod::ClientSide => "csa",
                };
                obj.insert("apply_method".into(), json!(m));
            }
            RecordShape::Helm3 => to_helm3_shape(obj),
        }
        // Keep Helm's field order: the Go struct order of the fixture, with
        // apply_method last.
        let payload = encode_release(&r)?;
        let name = format!("sh.helm.release.v1.{release}.v{rev}");
        let secs = now.as_second().to_string();
        let mut labels = BTreeMap::from([
            ("name".to_string(), release.to_string()),
            ("owner".to_string(), "helm".to_string()),
            ("status".to_string(), status.to_string()),
            ("version".to_string(), rev.to_string()),
            ("modifiedAt".to_string(), secs.clone()),
        ]);
        if status == "pending-upgrade" {
            // Created by `Create` (createdAt) with the previous revision's
            // labels copied in (hence also modifiedAt), as Helm does.
            labels.insert("createdAt".into(), secs);
        }
        match opts.driver {
            Driver::Secret => {
                let s = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.into()),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    type_: Some("helm.sh/release.v1".into()),
                    data: Some(BTreeMap::from([(
                        "release".to_string(),
                        ByteString(payload.into_bytes()),
                    )])),
                    ..Default::default()
                };
                Api::<Secret>::namespaced(client.clone(), ns)
                    .create(&PostParams::default(), &s)
                    .await
                    .with_context(|| format!("create Secret {name}"))?;
            }
            Driver::ConfigMap => {
                let c = ConfigMap {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.into()),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([("release".to_string(), payload)])),
                    ..Default::default()
                };
                Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .create(&PostParams::default(), &c)
                    .await
                    .with_context(|| format!("create ConfigMap {name}"))?;
            }
        }
        seeded.records.push(name);
        seeded.revision = rev;
    }
    Ok(())
}

/// Drop the Helm-4-only fields (see the SYNTHETIC v3 fixture).
fn to_helm3_shape(obj: &mut Map<String, Value>) {
    obj.remove("apply_method");
    if let Some(chart) = obj.get_mut("chart").and_then(Value::as_object_mut) {
        chart.remove("schemamodtime");
        chart.remove("modtime");
        for key in ["templates", "files"] {
            if let Some(list) = chart.get_mut(key).and_then(Value::as_array_mut) {
                for f in list.iter_mut().filter_map(Value::as_object_mut) {
                    f.remove("modtime");
                }
            }
        }
    }
}

/// Wait (watching) until every Deployment and StatefulSet in `ns` has all
/// replicas ready and up to date, and every Job has completed. 180 s limit.
pub async fn wait_release_ready(ns: &str) -> Result<()> {
    wait_release_ready_timeout(ns, Duration::from_secs(180)).await
}

/// [`wait_release_ready`] with a custom timeout; the error lists what is not ready.
pub async fn wait_release_ready_timeout(ns: &str, timeout: Duration) -> Result<()> {
    let client = TestBed::get().client().await?;
    #[derive(Debug)]
    enum Obj {
        D(Box<Deployment>),
        S(Box<StatefulSet>),
        J(Box<Job>),
    }
    let d = watcher::watcher(
        Api::<Deployment>::namespaced(client.clone(), ns),
        Default::default(),
    )
    .default_backoff()
    .map(|e| e.map(|e| map_event(e, |o| Obj::D(Box::new(o)))));
    let s = watcher::watcher(
        Api::<StatefulSet>::namespaced(client.clone(), ns),
        Default::default(),
    )
    .default_backoff()
    .map(|e| e.map(|e| map_event(e, |o| Obj::S(Box::new(o)))));
    let j = watcher::watcher(Api::<Job>::namespaced(client.clone(), ns), Default::default())
        .default_backoff()
        .map(|e| e.map(|e| map_event(e, |o| Obj::J(Box::new(o)))));
    let mut events = futures::stream::select_all([d.boxed(), s.boxed(), j.boxed()]);
    // key "Kind/name" -> Some(reason not ready) | None (ready)
    let mut state: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut init_done = 0;
    let run = async {
        while let Some(ev) = events.next().await {
            let Ok(ev) = ev else { continue };
            match ev {
                Event::InitDone => init_done += 1,
                Event::Init => {}
                Event::Apply(o) | Event::InitApply(o) => {
                    let (k, v) = readiness(&o);
                    state.insert(k, v);
                }
                Event::Delete(o) => {
                    state.remove(&readiness(&o).0);
                }
            }
            if init_done >= 3 && state.values().all(Option::is_none) {
                return;
            }
        }
    };
    fn readiness(o: &Obj) -> (String, Option<String>) {
        match o {
            Obj::D(d) => {
                let name = d.metadata.name.clone().unwrap_or_default();
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = d.status.clone().unwrap_or_default();
                let gen_ok = st.observed_generation >= d.metadata.generation;
                let ok = gen_ok
                    && st.ready_replicas.unwrap_or(0) == want
                    && st.updated_replicas.unwrap_or(0) == want
                    && st.replicas.unwrap_or(0) == want;
                let why = format!("{}/{} ready", st.ready_replicas.unwrap_or(0), want);
                (format!("Deployment/{name}"), (!ok).then_some(why))
            }
            Obj::S(s) => {
                let name = s.metadata.name.clone().unwrap_or_default();
                let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = s.status.clone().unwrap_or_default();
                let gen_ok = st.observed_generation >= s.metadata.generation;
                let ok = gen_ok && st.ready_replicas.unwrap_or(0) == want && st.replicas == want;
                let why = format!("{}/{} ready", st.ready_replicas.unwrap_or(0), want);
                (format!("StatefulSet/{name}"), (!ok).then_some(why))
            }
            Obj::J(j) => {
                let name = j.metadata.name.clone().unwrap_or_default();
                let want = j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
                let done = j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
                (
                    format!("Job/{name}"),
                    (done < want).then(|| format!("{done}/{want} succeeded")),
                )
            }
        }
    }
    if tokio::time::timeout(timeout, run).await.is_err() {
        let pending: Vec<String> = state
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|why| format!("{k}: {why}")))
            .collect();
        bail!(
            "workloads in {ns} not ready after {timeout:?}: {}",
            pending.join(", ")
        );
    }
    Ok(())
}

fn map_event<A, B>(e: Event<A>, f: impl Fn(A) -> B) -> Event<B> {
    match e {
        Event::Apply(o) => Event::Apply(f(o)),
        Event::Delete(o) => Event::Delete(f(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(f(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// `helm install <release> tests/testbed/charts/milvus -n <ns> --server-side=false --set k=v…`
/// with the real helm, then wait until its workloads are ready.
pub async fn install_test_chart(ns: &str, release: &str, sets: &[(&str, &str)]) -> Result<()> {
    let bed = TestBed::get();
    let mut cmd = bed.helm();
    cmd.args(["install", release])
        .arg(test_chart_dir())
        .args(["-n", ns, "--server-side=false"]);
    for (k, v) in sets {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let mut cmd = tokio::process::Command::from(cmd);
    let out = cmd.output().await.context("run helm install")?;
    if !out.status.success() {
        bail!(
            "helm install {release} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_release_ready(ns).await
}
