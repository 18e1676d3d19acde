//! A Milvus chart synced by Argo CD: `helm template` output applied with
//! Argo CD's resource-tracking markers, and the `Application`.

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::{ApiResource, Scope};
use serde_json::{Value, json};

use super::crds::install_crds;
use crate::seed::{
    ApplyMethod, Scenario, discover, fixtures_dir, kind_rank, parse_manifest, resolve, rewrite_manifest,
};
use crate::{TestBed, TestNamespace};

/// Argo CD's tracking annotation.
pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Default `application.instanceLabelKey`.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// `application.resourceTrackingMethod` (argo `util/argo/resource_tracking.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tracking {
    /// Annotation `argocd.argoproj.io/tracking-id` only (default since v3.0);
    /// the chart's own `app.kubernetes.io/instance` stays.
    #[default]
    Annotation,
    /// Label `app.kubernetes.io/instance` = app instance name, overwriting
    /// the chart's (default v2.2–v2.14).
    Label,
    /// Both (the label cut to 63 chars, trailing non-alphanumerics removed).
    AnnotationAndLabel,
}

/// Where the Milvus values sit in `spec.source.helm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArgoValues {
    /// `valuesObject` (a map).
    #[default]
    Object,
    /// `values` (a YAML string).
    String,
    /// `parameters: [{name: "queryNode.replicas", value: "3"}, …]` (leaves only).
    Parameters,
}

#[derive(Debug, Clone)]
pub struct ArgoOptions {
    /// Application name; default `my-milvus`.
    pub app: Option<String>,
    /// `spec.source.helm.releaseName`; default: the fixture's release
    /// (`my-release`). Objects are named after it.
    pub release: Option<String>,
    pub tracking: Tracking,
    pub values: ArgoValues,
}

impl Default for ArgoOptions {
    fn default() -> Self {
        ArgoOptions {
            app: None,
            release: None,
            tracking: Tracking::Annotation,
            values: ArgoValues::Object,
        }
    }
}

#[derive(Debug)]
pub struct SeededArgoApp {
    pub app: String,
    /// Namespace of the Application: a per-test namespace standing for
    /// Argo CD's control-plane namespace (so the instance name is the app name).
    pub app_namespace: TestNamespace,
    /// Destination namespace (the objects).
    pub namespace: String,
    pub release: String,
    pub deployments: Vec<String>,
    pub statefulsets: Vec<String>,
    /// The Application as created.
    pub object: Value,
    pub skipped: Vec<String>,
}

/// `BuildAppInstanceValue`: `<app>:<group>/<kind>:<namespace>/<name>`.
pub fn tracking_id(app: &str, api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    format!("{app}:{group}/{kind}:{namespace}/{name}")
}

/// The label value of `annotation+label`: at most 63 chars, no trailing
/// non-alphanumerics.
fn label_value(app: &str) -> String {
    let cut: String = app.chars().take(63).collect();
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn parameters(prefix: &str, v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                parameters(&key, child, out);
            }
        }
        Value::String(s) => out.push(json!({"name": prefix, "value": s})),
        other => out.push(json!({"name": prefix, "value": other.to_string()})),
    }
}

fn application_resource() -> ApiResource {
    ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Application".into(),
        plural: "applications".into(),
    }
}

/// Seed `scenario` into `ns` as Argo CD syncs it, and its Application into
/// a new per-test namespace (returned; deleted on drop like any test namespace).
pub async fn seed_argocd_app(
    bed: &TestBed,
    ns: &str,
    scenario: Scenario,
    opts: ArgoOptions,
) -> Result<SeededArgoApp> {
    let client = bed.client().await?;
    install_crds(&client).await?;
    let app = opts.app.clone().unwrap_or_else(|| "my-milvus".to_string());
    let release = opts
        .release
        .clone()
        .unwrap_or_else(|| scenario.fixture_release().to_string());
    if release != scenario.fixture_release() && scenario.fixture_release() == "milvus" {
        bail!("{scenario:?} is rendered for release `milvus`; it cannot be renamed");
    }
    let fixture = fixtures_dir().join("rendered").join(scenario.fixture());
    let raw = std::fs::read_to_string(&fixture).with_context(|| format!("read {}", fixture.display()))?;
    let manifest = rewrite_manifest(&raw, ns, scenario.fixture_release(), &release);
    let mut objects = parse_manifest(&manifest)?;
    objects.sort_by_key(|o| kind_rank(o["kind"].as_str().unwrap_or("")));

    let discovery = discover(&client).await?;
    let mut seeded = SeededArgoApp {
        app: app.clone(),
        app_namespace: bed.namespace("argocd").await?,
        namespace: ns.to_string(),
        release: release.clone(),
        deployments: Vec::new(),
        statefulsets: Vec::new(),
        object: Value::Null,
        skipped: Vec::new(),
    };
    let mut planned: Vec<(ApiResource, Scope, Value)> = Vec::new();
    let mut resources: Vec<Value> = Vec::new();
    for mut obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
        let Some((ar, caps)) = resolve(&discovery, &mut obj, ns) else {
            seeded
                .skipped
                .push(format!("{kind} {name}: {api_version} is not served"));
            continue;
        };
        let meta = obj["metadata"]
            .as_object_mut()
            .context("object without metadata")?;
        // Cluster-scoped objects are tracked under the destination namespace.
        let id = tracking_id(&app, &api_version, &kind, ns, &name);
        if matches!(opts.tracking, Tracking::Annotation | Tracking::AnnotationAndLabel) {
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            if !ann.is_object() {
                *ann = json!({});
            }
            ann[TRACKING_ANNOTATION] = json!(id);
        }
        if matches!(opts.tracking, Tracking::Label | Tracking::AnnotationAndLabel) {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            let v = if opts.tracking == Tracking::Label {
                app.clone()
            } else {
                label_value(&app)
            };
            labels[INSTANCE_LABEL] = json!(v);
        }
        match kind.as_str() {
            "Deployment" => seeded.deployments.push(name.clone()),
            "StatefulSet" => seeded.statefulsets.push(name.clone()),
            _ => {}
        }
        resources.push(
            json!({"group": group, "version": version, "kind": kind, "namespace": ns,
                              "name": name, "status": "Synced", "health": {"status": "Healthy"}}),
        );
        planned.push((ar, caps.scope, obj));
    }
    // Kind group by kind group in Helm's install order (Argo's sync waves
    // order similarly); each group in parallel.
    crate::seed::apply_in_install_order(
        &client,
        ns,
        &planned,
        ApplyMethod::ClientSide,
        "argocd-controller",
    )
    .await?;

    let (chart_version, _) = scenario.chart_version();
    let mut helm = json!({"releaseName": release});
    let values = scenario.user_values().unwrap_or_else(|| json!({}));
    match opts.values {
        ArgoValues::Object => helm["valuesObject"] = values,
        ArgoValues::String => {
            helm["values"] = json!(serde_saphyr::to_string(&values).context("values as YAML")?)
        }
        ArgoValues::Parameters => {
            let mut p = Vec::new();
            parameters("", &values, &mut p);
            helm["parameters"] = json!(p);
        }
    }
    let app_ns = seeded.app_namespace.name().to_string();
    let application: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        // Real apps often carry `resources-finalizer.argocd.argoproj.io`; with
        // no Argo CD controller to clear it the test namespace would never go.
        "metadata": {"name": app, "namespace": app_ns},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://zilliztech.github.io/milvus-helm/", "chart": "milvus",
                       "targetRevision": chart_version, "helm": helm},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
        },
        // No status subresource on Applications: status goes in with the object.
        "status": {
            "sourceType": "Helm",
            "sync": {"status": "Synced", "revision": chart_version},
            "health": {"status": "Healthy"},
            "resources": resources,
        },
    }))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &app_ns, &application_resource());
    let created = api
        .create(&PostParams::default(), &application)
        .await
        .with_context(|| format!("create Application {app_ns}/{app}"))?;
    seeded.object = serde_json::to_value(created)?;
    Ok(seeded)
}
