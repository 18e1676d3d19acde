//! GitOps owners of a Milvus instance, from the markers Flux and Argo CD put
//! on the objects they manage (sources: docs/gitops.md). Pure: the API layer
//! gathers the live objects and, where readable, the owner object.
//!
//! * Flux helm-controller drives Helm from a `HelmRelease` and labels every
//!   rendered object `helm.toolkit.fluxcd.io/{name,namespace}`; a Helm
//!   revision it did not make is drift it upgrades over.
//! * Argo CD renders the chart with `helm template` (no Helm record) and
//!   marks objects with the `argocd.argoproj.io/tracking-id` annotation
//!   (annotation tracking) or overwrites `app.kubernetes.io/instance`
//!   (label tracking). The Milvus chart sets that label itself, so it proves
//!   nothing without an Application of that name.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::core::chart::Chart;
use crate::core::components::{self, Role};
use crate::core::manifest::{Labels, ManifestObject};
use crate::core::values;

pub const FLUX_NAME_LABEL: &str = "helm.toolkit.fluxcd.io/name";
pub const FLUX_NAMESPACE_LABEL: &str = "helm.toolkit.fluxcd.io/namespace";
pub const KUSTOMIZE_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
pub const KUSTOMIZE_NAMESPACE_LABEL: &str = "kustomize.toolkit.fluxcd.io/namespace";
pub const ARGO_TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Helm sets it at install/upgrade only: `helm template` output lacks it.
pub const HELM_RELEASE_ANNOTATION: &str = "meta.helm.sh/release-name";

/// `helm.toolkit.fluxcd.io` versions, newest first (v2 since Flux 2.3).
pub const FLUX_GROUP: &str = "helm.toolkit.fluxcd.io";
pub const FLUX_VERSIONS: [&str; 3] = ["v2", "v2beta2", "v2beta1"];
pub const ARGO_GROUP: &str = "argoproj.io";
pub const ARGO_VERSION: &str = "v1alpha1";

/// A live Deployment or StatefulSet: what a manifest would say of it, plus
/// where it is and its annotations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveObject {
    pub namespace: String,
    pub object: ManifestObject,
    pub annotations: Labels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OwnerKind {
    FluxHelmRelease,
    /// A Flux Kustomization applying the object itself (a `Milvus` resource
    /// kept in Git).
    FluxKustomization,
    #[serde(rename = "ArgoCDApplication")]
    ArgoCdApplication,
}

/// Which marker named the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Marker {
    /// `helm.toolkit.fluxcd.io/name` + `/namespace` labels.
    FluxLabels,
    /// `kustomize.toolkit.fluxcd.io/name` + `/namespace` labels.
    KustomizeLabels,
    /// A self-referencing `argocd.argoproj.io/tracking-id` annotation.
    ArgoTrackingId,
    /// `app.kubernetes.io/instance` confirmed by an Application of that name.
    ArgoInstanceLabel,
}

/// What reading the owner object gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Lookup {
    NotRead,
    Found,
    NotFound,
    /// The API group is not served (the CRD is not installed here).
    NotServed,
    Forbidden,
    Failed,
}

/// A `spec.valuesFrom` entry of a HelmRelease (names only, never data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValuesRef {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
}

impl ValuesRef {
    fn describe(&self) -> String {
        match &self.target_path {
            Some(p) => format!("{}/{} (targetPath {p})", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// The GitOps object that owns an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub kind: OwnerKind,
    /// Unknown for an Argo CD app in the control-plane namespace until the
    /// Application is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub detected_by: Marker,
    pub lookup: Lookup,
    /// The API version the owner object was read with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// False when Argo CD renders the chart itself: no Helm record exists.
    pub helm_record: bool,
    /// The object owned, when it is a `Milvus` resource (`Milvus my-milvus`):
    /// its spec fields, not Helm values, are what to change.
    #[serde(skip)]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values_from: Vec<ValuesRef>,
    /// Argo CD `spec.syncPolicy.automated.selfHeal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_heal: Option<bool>,
    /// What applies the owner object itself (`Flux Kustomization ns/name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_by: Option<String>,
    /// Where the Application's chart source sets Helm values.
    #[serde(skip)]
    pub argo_helm: Option<ArgoHelm>,
}

/// The Helm settings of an Application's chart source: what decides which
/// of its fields sets a value (Argo's precedence: parameters > valuesObject
/// > values > valueFiles). Holds names and paths; values only to look keys up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoHelm {
    /// `spec.source.helm` or `spec.sources[i].helm`.
    prefix: String,
    parameters: Vec<String>,
    values_object: Value,
    values_text: Value,
    value_files: Vec<String>,
}

impl ArgoHelm {
    /// The Application field that sets the values key `key`.
    fn field(&self, key: &str) -> String {
        let prefix = &self.prefix;
        if let Some(i) = self.parameters.iter().position(|p| p == key) {
            format!("{prefix}.parameters[{i}] (name {key})")
        } else if values::get(&self.values_object, key).is_some() {
            format!("{prefix}.valuesObject.{key}")
        } else if values::get(&self.values_text, key).is_some() {
            format!("{key} in the {prefix}.values text")
        } else if !self.value_files.is_empty() {
            format!(
                "{key} in its values files ({}) or {prefix}.valuesObject.{key}",
                self.value_files.join(", ")
            )
        } else {
            format!("{prefix}.valuesObject.{key} (or a parameter {key})")
        }
    }
}

impl Owner {
    fn new(kind: OwnerKind, namespace: Option<String>, name: String, detected_by: Marker) -> Owner {
        Owner {
            kind,
            namespace,
            name,
            detected_by,
            lookup: Lookup::NotRead,
            api_version: None,
            helm_record: true,
            resource: None,
            values_from: Vec::new(),
            self_heal: None,
            applied_by: None,
            argo_helm: None,
        }
    }

    /// `Flux HelmRelease milvus/my-milvus`, `Argo CD Application my-milvus`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            OwnerKind::FluxHelmRelease => "Flux HelmRelease",
            OwnerKind::FluxKustomization => "Flux Kustomization",
            OwnerKind::ArgoCdApplication => "Argo CD Application",
        };
        match &self.namespace {
            Some(ns) => format!("{what} {ns}/{}", self.name),
            None => format!("{what} {}", self.name),
        }
    }

    /// The field to change for the values key `key` (`queryNode.replicas`,
    /// `queryNode.hpa.minReplicas`), with where it is.
    pub fn field_for(&self, key: &str) -> String {
        if let Some(resource) = &self.resource {
            return match self.kind {
                OwnerKind::FluxHelmRelease => format!(
                    "the value of {}'s chart that renders {key} of {resource}",
                    self.describe()
                ),
                _ => format!("{key} of {resource} in the Git source {} syncs", self.describe()),
            };
        }
        match self.kind {
            OwnerKind::FluxKustomization => format!("{key} in the Git source {} applies", self.describe()),
            OwnerKind::FluxHelmRelease => {
                let mut out = format!("spec.values.{key} in {}", self.describe());
                if let Some(i) = self
                    .values_from
                    .iter()
                    .position(|v| v.target_path.as_deref() == Some(key))
                {
                    out = format!(
                        "spec.valuesFrom[{i}] ({}) in {}, whose targetPath overrides spec.values",
                        self.values_from[i].describe(),
                        self.describe()
                    );
                } else if !self.values_from.is_empty() {
                    let refs: Vec<String> = self.values_from.iter().map(ValuesRef::describe).collect();
                    out.push_str(&format!(
                        " (its spec.valuesFrom {} can also set it: check there too)",
                        refs.join(", ")
                    ));
                }
                out
            }
            OwnerKind::ArgoCdApplication => match &self.argo_helm {
                Some(helm) => format!("{} in {}", helm.field(key), self.describe()),
                None => format!(
                    "spec.source.helm.valuesObject.{key} (or the parameter {key}) in {}",
                    self.describe()
                ),
            },
        }
    }

    /// The `Managed by:` line of `status`.
    pub fn summary(&self) -> String {
        let mut out = self.describe();
        let hint = match self.kind {
            OwnerKind::FluxHelmRelease if self.values_from.is_empty() => {
                "change spec.values there".to_string()
            }
            OwnerKind::FluxHelmRelease => format!(
                "change spec.values there; spec.valuesFrom {} can override it",
                self.values_from
                    .iter()
                    .map(ValuesRef::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            OwnerKind::FluxKustomization => "change it in Git".to_string(),
            OwnerKind::ArgoCdApplication if self.resource.is_some() => match self.self_heal {
                Some(true) => "change it in Git; self-heal reverts live changes".to_string(),
                _ => "change it in Git".to_string(),
            },
            OwnerKind::ArgoCdApplication => match self.self_heal {
                Some(true) => "change its Helm values in Git; self-heal reverts live changes".to_string(),
                _ => "change its Helm values in Git".to_string(),
            },
        };
        out.push_str(&format!(" ({hint})"));
        if let Some(by) = &self.applied_by {
            out.push_str(&format!("; applied by {by}"));
        }
        if let Some(note) = self.lookup_note() {
            out.push_str(&format!("; {note}"));
        }
        out
    }

    /// Why the owner object could not confirm the markers, if it could not.
    pub fn lookup_note(&self) -> Option<String> {
        let what = match self.kind {
            OwnerKind::FluxHelmRelease => "HelmRelease",
            OwnerKind::FluxKustomization => "Kustomization",
            OwnerKind::ArgoCdApplication => "Application",
        };
        let why = match self.lookup {
            Lookup::Found | Lookup::NotRead => return None,
            Lookup::NotFound => "not found",
            Lookup::NotServed => "its API is not served",
            Lookup::Forbidden => "not readable: forbidden",
            Lookup::Failed => "not readable",
        };
        let from = match self.detected_by {
            Marker::FluxLabels | Marker::KustomizeLabels => "the objects' labels",
            Marker::ArgoTrackingId => "the objects' tracking annotation",
            Marker::ArgoInstanceLabel => "the objects' instance label",
        };
        Some(format!("{what} {why}; known from {from}"))
    }

    /// What the owner does to a change made behind its back.
    pub fn reverts(&self) -> &'static str {
        match self.kind {
            OwnerKind::FluxHelmRelease => {
                "helm-controller treats a Helm revision it did not make as drift and upgrades over it at its next reconcile"
            }
            OwnerKind::FluxKustomization => {
                "kustomize-controller applies the object from Git again at its next reconcile, undoing a live change"
            }
            OwnerKind::ArgoCdApplication => {
                "Argo CD reverts live changes at its next sync, at once with self-heal"
            }
        }
    }

    /// Why `scale` refuses `release` (and `plan` warns), naming the field
    /// to change for each values key it would change.
    pub fn refusal(&self, release: &str, keys: &[String]) -> String {
        let fields: Vec<String> = keys.iter().map(|k| self.field_for(k)).collect();
        let fields = if fields.is_empty() {
            self.field_for("<component>.replicas")
        } else {
            fields.join("; ")
        };
        let subject = if let Some(resource) = &self.resource {
            format!("{resource} is managed by {}", self.describe())
        } else if self.helm_record {
            format!("release {release} is managed by {}", self.describe())
        } else {
            format!(
                "{release} has no Helm record: it is rendered by {}",
                self.describe()
            )
        };
        format!("{subject}: change {fields} instead ({})", self.reverts())
    }
}

/// An Argo CD tracking id: `<app>:<group>/<kind>:<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingId {
    pub app: String,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

pub fn parse_tracking_id(value: &str) -> Option<TrackingId> {
    let mut parts = value.splitn(3, ':');
    let (app, group_kind, ns_name) = (parts.next()?, parts.next()?, parts.next()?);
    let (group, kind) = group_kind.split_once('/')?;
    let (namespace, name) = ns_name.split_once('/')?;
    (!app.is_empty() && !kind.is_empty() && !name.is_empty()).then(|| TrackingId {
        app: app.to_string(),
        group: group.to_string(),
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// The object's Argo CD app instance, when its tracking id names the object
/// itself (Argo ignores copies made by other tools, and so do we).
pub fn argo_app(o: &LiveObject) -> Option<String> {
    let id = parse_tracking_id(o.annotations.get(ARGO_TRACKING_ANNOTATION)?)?;
    let itself = id.group == "apps"
        && id.kind == o.object.kind
        && id.name == o.object.name
        && (id.namespace.is_empty() || id.namespace == o.namespace);
    itself.then_some(id.app)
}

/// The Flux HelmRelease `(namespace, name)` an object's labels name.
pub fn flux_release(o: &LiveObject) -> Option<(String, String)> {
    let labels = &o.object.labels;
    Some((
        labels.get(FLUX_NAMESPACE_LABEL)?.clone(),
        labels.get(FLUX_NAME_LABEL)?.clone(),
    ))
}

/// An Argo CD app instance name is `<name>`, or `<namespace>_<name>` for an
/// app outside the control-plane namespace (`_` is not valid in names).
pub fn split_app_instance(instance: &str) -> (Option<String>, String) {
    match instance.split_once('_') {
        Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
        None => (None, instance.to_string()),
    }
}

/// The owner the markers of a release's live workloads name. Flux first:
/// its labels are only ever put by helm-controller.
pub fn detect<'a>(objects: impl IntoIterator<Item = &'a LiveObject> + Clone) -> Option<Owner> {
    if let Some((ns, name)) = objects.clone().into_iter().find_map(flux_release) {
        return Some(Owner::new(
            OwnerKind::FluxHelmRelease,
            Some(ns),
            name,
            Marker::FluxLabels,
        ));
    }
    let app = objects.into_iter().find_map(argo_app)?;
    let (ns, name) = split_app_instance(&app);
    Some(Owner::new(
        OwnerKind::ArgoCdApplication,
        ns,
        name,
        Marker::ArgoTrackingId,
    ))
}

/// The owner the markers on a custom resource itself name (a `Milvus`
/// resource kept in Git): helm-controller's labels (a chart that renders
/// it), kustomize-controller's (a Kustomization that applies it), or an
/// Argo CD tracking id naming the object itself. The instance label is
/// not read here: alone it proves nothing without an Application of that
/// name ([`argo_instance_owner`]).
pub fn resource_owner(meta: &ResourceMeta<'_>) -> Option<Owner> {
    let label = |k: &str| meta.labels.get(k).cloned();
    let owner = if let (Some(ns), Some(name)) = (label(FLUX_NAMESPACE_LABEL), label(FLUX_NAME_LABEL)) {
        Owner::new(OwnerKind::FluxHelmRelease, Some(ns), name, Marker::FluxLabels)
    } else if let (Some(ns), Some(name)) = (label(KUSTOMIZE_NAMESPACE_LABEL), label(KUSTOMIZE_NAME_LABEL)) {
        Owner::new(
            OwnerKind::FluxKustomization,
            Some(ns),
            name,
            Marker::KustomizeLabels,
        )
    } else {
        let id = parse_tracking_id(meta.annotations.get(ARGO_TRACKING_ANNOTATION)?)?;
        let itself = id.group == meta.group
            && id.kind == meta.kind
            && id.name == meta.name
            && (id.namespace.is_empty() || id.namespace == meta.namespace);
        if !itself {
            return None;
        }
        let (ns, name) = split_app_instance(&id.app);
        Owner::new(OwnerKind::ArgoCdApplication, ns, name, Marker::ArgoTrackingId)
    };
    Some(owner.of_resource(meta))
}

/// The Argo CD Application a custom resource's instance label names, when
/// an Application of that name deploys to its namespace (label tracking).
pub fn argo_instance_owner(meta: &ResourceMeta<'_>, apps: &[Value]) -> Option<Owner> {
    let instance = meta.labels.get(INSTANCE_LABEL)?;
    find_application(apps, instance, meta.namespace)
        .filter(|a| str_at(a, "/spec/destination/namespace") == Some(meta.namespace))?;
    let (ns, name) = split_app_instance(instance);
    Some(Owner::new(OwnerKind::ArgoCdApplication, ns, name, Marker::ArgoInstanceLabel).of_resource(meta))
}

/// A custom resource's identity and markers.
pub struct ResourceMeta<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
}

impl Owner {
    fn of_resource(mut self, meta: &ResourceMeta<'_>) -> Owner {
        self.resource = Some(format!("{} {}", meta.kind, meta.name));
        self
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Fills what the HelmRelease object says: where it was read, its
/// `valuesFrom` entries, and what applies it. Reads no values.
pub fn enrich_flux(owner: &mut Owner, api_version: &str, hr: &Value) {
    owner.lookup = Lookup::Found;
    owner.api_version = Some(api_version.to_string());
    owner.values_from = hr
        .pointer("/spec/valuesFrom")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| ValuesRef {
                    kind: str_at(i, "/kind").unwrap_or("ConfigMap").to_string(),
                    name: str_at(i, "/name").unwrap_or_default().to_string(),
                    values_key: str_at(i, "/valuesKey").map(String::from),
                    target_path: str_at(i, "/targetPath").map(String::from),
                })
                .collect()
        })
        .unwrap_or_default();
    owner.applied_by = applied_by(hr);
}

/// What applies a HelmRelease or Application itself: a Flux Kustomization
/// or an Argo CD app (app of apps). Then the change belongs in Git.
fn applied_by(object: &Value) -> Option<String> {
    let meta = object.get("metadata")?;
    let label = |k: &str| {
        meta.pointer(&format!("/labels/{}", k.replace('/', "~1")))?
            .as_str()
    };
    if let (Some(ns), Some(name)) = (label(KUSTOMIZE_NAMESPACE_LABEL), label(KUSTOMIZE_NAME_LABEL)) {
        return Some(format!("Flux Kustomization {ns}/{name}"));
    }
    let id = meta
        .pointer(&format!(
            "/annotations/{}",
            ARGO_TRACKING_ANNOTATION.replace('/', "~1")
        ))?
        .as_str()?;
    let (ns, name) = split_app_instance(&parse_tracking_id(id)?.app);
    Some(match ns {
        Some(ns) => format!("Argo CD Application {ns}/{name}"),
        None => format!("Argo CD Application {name}"),
    })
}

/// The Application among `apps` whose instance name is `instance`,
/// preferring one that deploys to `namespace`.
pub fn find_application<'a>(apps: &'a [Value], instance: &str, namespace: &str) -> Option<&'a Value> {
    let (want_ns, want_name) = split_app_instance(instance);
    let matching: Vec<&Value> = apps
        .iter()
        .filter(|a| {
            str_at(a, "/metadata/name") == Some(want_name.as_str())
                && want_ns
                    .as_deref()
                    .is_none_or(|ns| str_at(a, "/metadata/namespace") == Some(ns))
        })
        .collect();
    matching
        .iter()
        .find(|a| str_at(a, "/spec/destination/namespace") == Some(namespace))
        .or(matching.first())
        .copied()
}

/// Fills what the Application says: its namespace, self-heal, and per
/// component the field that sets replicas (Argo's precedence: parameters >
/// valuesObject > values > valueFiles). Keeps no values.
pub fn enrich_argo(owner: &mut Owner, app: &Value) {
    owner.lookup = Lookup::Found;
    owner.api_version = Some(format!("{ARGO_GROUP}/{ARGO_VERSION}"));
    owner.namespace = str_at(app, "/metadata/namespace").map(String::from);
    let automated = app.pointer("/spec/syncPolicy/automated");
    owner.self_heal = Some(automated.is_some_and(|a| {
        a.get("enabled").and_then(Value::as_bool) != Some(false)
            && a.get("selfHeal").and_then(Value::as_bool) == Some(true)
    }));
    owner.applied_by = applied_by(app);

    // A non-empty `spec.sources` wins over `spec.source`; the chart's
    // source is the one with Helm settings or a chart.
    let (prefix, helm) = match app.pointer("/spec/sources").and_then(Value::as_array) {
        Some(sources) if !sources.is_empty() => {
            let i = sources
                .iter()
                .position(|s| s.get("helm").is_some())
                .or_else(|| sources.iter().position(|s| s.get("chart").is_some()))
                .unwrap_or(0);
            (format!("spec.sources[{i}].helm"), sources[i].get("helm"))
        }
        _ => ("spec.source.helm".to_string(), app.pointer("/spec/source/helm")),
    };
    let empty = json!({});
    let helm = helm.unwrap_or(&empty);
    let values_text: Value = helm
        .get("values")
        .and_then(Value::as_str)
        .and_then(|t| serde_saphyr::from_str(t).ok())
        .unwrap_or(Value::Null);
    let value_files = helm
        .get("valueFiles")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    let parameters = helm
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| str_at(p, "/name").unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    owner.argo_helm = Some(ArgoHelm {
        prefix,
        parameters,
        values_object: helm.get("valuesObject").cloned().unwrap_or(Value::Null),
        values_text,
        value_files,
    });
}

/// The values keys a change of `component` writes: its replica field, or
/// the HPA bounds (`<key>.hpa.minReplicas`/`maxReplicas`) a bounds change
/// sets.
pub fn changed_keys(component: &str, bounds: Option<(bool, bool)>) -> Vec<String> {
    let replicas_field = components::by_user_name(component).map_or("replicas", |c| c.replicas_field);
    match bounds {
        None => vec![format!("{component}.{replicas_field}")],
        // Neither side moving still names both: they are what is asked for.
        Some((min, max)) => [(min, "minReplicas"), (max, "maxReplicas")]
            .into_iter()
            .filter(|(set, _)| *set || (!min && !max))
            .map(|(_, field)| format!("{component}.hpa.{field}"))
            .collect(),
    }
}

/// A Milvus instance Argo CD rendered with `helm template`: no Helm
/// record, only live objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub namespace: String,
    /// The release name it was rendered with (`app.kubernetes.io/instance`
    /// of its Milvus Deployments).
    pub instance: String,
    /// The Argo CD app instance name that tracks it.
    pub app: String,
    pub owner: Owner,
    /// Its Deployments and StatefulSets (Milvus and dependencies).
    pub objects: Vec<ManifestObject>,
}

impl Rendered {
    /// Does RELEASE as typed name this instance (its release or app name)?
    pub fn named(&self, name: &str) -> bool {
        self.instance == name || self.owner.name == name || self.app == name
    }
}

/// Whether a live object could belong to an instance called `name` (by its
/// instance label or its Argo CD app), so that a lookup for one named
/// instance looks at its own objects only.
pub fn may_be_named(o: &LiveObject, name: &str) -> bool {
    o.object.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(name)
        || argo_app(o).is_some_and(|app| app == name || split_app_instance(&app).1 == name)
}

/// A Milvus component Deployment of the Milvus chart.
fn is_milvus_component(o: &LiveObject) -> bool {
    o.object.kind == "Deployment"
        && o.object.labels.get(NAME_LABEL).map(String::as_str) == Some("milvus")
        && o.object
            .labels
            .get("component")
            .is_some_and(|c| components::by_label(c).is_some())
}

/// Is the object part of a Helm release (shown from its record)? Helm
/// annotates what it installs; the chart labels the instance.
fn recorded_object(o: &LiveObject, recorded: &impl Fn(&str, &str) -> bool) -> bool {
    [
        o.annotations.get(HELM_RELEASE_ANNOTATION),
        o.object.labels.get(INSTANCE_LABEL),
    ]
    .into_iter()
    .flatten()
    .any(|r| recorded(&o.namespace, r))
}

/// Milvus Deployments without a Helm record nor a tracking annotation:
/// label-tracked by Argo CD, or from another pipeline.
pub fn untracked_milvus(objects: &[LiveObject], recorded: impl Fn(&str, &str) -> bool) -> bool {
    objects
        .iter()
        .any(|o| is_milvus_component(o) && !recorded_object(o, &recorded) && argo_app(o).is_none())
}

/// The Argo-rendered Milvus instances among live Deployments and
/// StatefulSets. `recorded(namespace, release)` tells Helm releases apart
/// (those are shown from their record). `label_apps` are the Argo CD
/// Applications, when readable: they confirm label-tracked instances.
pub fn rendered_instances(
    objects: &[LiveObject],
    recorded: impl Fn(&str, &str) -> bool,
    label_apps: Option<&[Value]>,
) -> Vec<Rendered> {
    let is_recorded = |o: &LiveObject| recorded_object(o, &recorded);
    // (namespace, app) → (marker, release name)
    let mut found: BTreeMap<(String, String), (Marker, String)> = BTreeMap::new();
    for o in objects
        .iter()
        .filter(|o| is_milvus_component(o) && !is_recorded(o))
    {
        let instance = o.object.labels.get(INSTANCE_LABEL).cloned();
        let key = if let Some(app) = argo_app(o) {
            Some((app, Marker::ArgoTrackingId))
        } else {
            instance.as_ref().and_then(|i| {
                // The chart sets this label itself: only an Application of
                // that name deploying to this very namespace confirms it.
                find_application(label_apps?, i, &o.namespace)
                    .filter(|a| str_at(a, "/spec/destination/namespace") == Some(o.namespace.as_str()))
                    .map(|_| (i.clone(), Marker::ArgoInstanceLabel))
            })
        };
        if let Some((app, marker)) = key {
            let release = instance.unwrap_or_else(|| app.clone());
            found
                .entry((o.namespace.clone(), app))
                .or_insert((marker, release));
        }
    }
    found
        .into_iter()
        .map(|((namespace, app), (marker, instance))| {
            let mine = |o: &&LiveObject| {
                o.namespace == namespace
                    && !is_recorded(o)
                    && match marker {
                        Marker::ArgoTrackingId => argo_app(o).as_deref() == Some(app.as_str()),
                        _ => o.object.labels.get(INSTANCE_LABEL) == Some(&app),
                    }
            };
            let (app_ns, app_name) = split_app_instance(&app);
            let mut owner = Owner::new(OwnerKind::ArgoCdApplication, app_ns, app_name, marker);
            owner.helm_record = false;
            Rendered {
                objects: objects.iter().filter(mine).map(|o| o.object.clone()).collect(),
                namespace,
                instance,
                app,
                owner,
            }
        })
        .collect()
}

/// The chart an instance was rendered from, as its live objects tell it:
/// chart and versions from their labels, values from what they run (`-1`
/// where an HPA targets the workload), the message queue from its
/// dependencies. No Milvus configuration: that is read from the live
/// ConfigMap by whoever needs it.
pub fn rendered_chart(r: &Rendered, hpa_targets: &[(String, String)]) -> Chart {
    let milvus: Vec<&ManifestObject> = r
        .objects
        .iter()
        .filter(|o| o.labels.get(NAME_LABEL).map(String::as_str) == Some("milvus"))
        .collect();
    let label = |key: &str| {
        milvus
            .iter()
            .find_map(|o| o.labels.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let chart = label("helm.sh/chart");
    let chart_version = chart.strip_prefix("milvus-").unwrap_or(&chart).to_string();
    let mut config = json!({});
    let mut standalone = false;
    for o in &milvus {
        let Some(c) = o.labels.get("component").and_then(|l| components::by_label(l)) else {
            continue;
        };
        standalone |= c.role == Role::Standalone;
        let targeted = hpa_targets.iter().any(|(k, n)| k == &o.kind && n == &o.name);
        let replicas = if targeted { -1 } else { o.replicas.unwrap_or(1) };
        values::set(
            &mut config,
            &format!("{}.{}", c.key, c.replicas_field),
            json!(replicas),
        );
    }
    values::set(&mut config, "cluster.enabled", json!(!standalone));
    if let Some(mq) = message_queue_key(&r.objects) {
        values::set(&mut config, &format!("{mq}.enabled"), json!(true));
    }
    Chart {
        name: r.instance.clone(),
        chart_name: "milvus".to_string(),
        chart_version,
        app_version: label("app.kubernetes.io/version"),
        values: config,
        config: Vec::new(),
        server_side: false,
    }
}

/// The chart's message-queue values key, from the dependency workloads
/// the instance runs.
fn message_queue_key(objects: &[ManifestObject]) -> Option<&'static str> {
    let has = |f: &dyn Fn(&ManifestObject) -> bool| objects.iter().any(f);
    let app = |o: &ManifestObject, v: &str| {
        o.labels.get("app").map(String::as_str) == Some(v)
            || o.labels.get(NAME_LABEL).map(String::as_str) == Some(v)
    };
    if has(&|o| app(o, "pulsarv3")) {
        Some("pulsarv3")
    } else if has(&|o| app(o, "pulsar")) {
        Some("pulsar")
    } else if has(&|o| app(o, "kafka")) {
        Some("kafka")
    } else if has(&|o| o.labels.get("component").map(String::as_str) == Some("woodpecker")) {
        Some("woodpecker")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(kind: &str, name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> LiveObject {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LiveObject {
            namespace: "milvus".into(),
            object: ManifestObject {
                kind: kind.into(),
                name: name.into(),
                labels: map(labels),
                replicas: Some(2),
                ..Default::default()
            },
            annotations: map(annotations),
        }
    }

    /// A Milvus chart Deployment as Helm (or `helm template`) renders it.
    fn chart_labels(component: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("helm.sh/chart", "milvus-5.0.19"),
            ("app.kubernetes.io/name", "milvus"),
            ("app.kubernetes.io/instance", "my-milvus"),
            ("app.kubernetes.io/version", "2.6.15"),
            ("app.kubernetes.io/managed-by", "Helm"),
            ("component", component),
        ]
    }

    /// What helm-controller leaves on a rendered object (origin labels plus
    /// Helm's own install-time annotations).
    fn flux_querynode() -> LiveObject {
        let mut labels = chart_labels("querynode");
        labels.extend([
            ("helm.toolkit.fluxcd.io/name", "milvus-hr"),
            ("helm.toolkit.fluxcd.io/namespace", "flux-apps"),
        ]);
        live(
            "Deployment",
            "my-milvus-milvus-querynode",
            &labels,
            &[
                ("meta.helm.sh/release-name", "my-milvus"),
                ("meta.helm.sh/release-namespace", "milvus"),
            ],
        )
    }

    fn argo(kind: &str, name: &str, labels: &[(&str, &str)], app: &str) -> LiveObject {
        let id = format!("{app}:apps/{kind}:milvus/{name}");
        live(kind, name, labels, &[(ARGO_TRACKING_ANNOTATION, id.as_str())])
    }

    #[test]
    fn flux_labels_name_the_helmrelease_not_the_release() {
        let o = flux_querynode();
        let owner = detect([&o]).expect("owner");
        assert_eq!(owner.kind, OwnerKind::FluxHelmRelease);
        assert_eq!(owner.describe(), "Flux HelmRelease flux-apps/milvus-hr");
        assert_eq!(owner.detected_by, Marker::FluxLabels);
        assert!(owner.helm_record);
        assert_eq!(
            owner.field_for("queryNode.replicas"),
            "spec.values.queryNode.replicas in Flux HelmRelease flux-apps/milvus-hr"
        );
    }

    #[test]
    fn the_chart_instance_label_alone_is_no_owner() {
        let plain = live(
            "Deployment",
            "my-milvus-milvus-querynode",
            &chart_labels("querynode"),
            &[("meta.helm.sh/release-name", "my-milvus")],
        );
        assert_eq!(detect([&plain]), None);
        // Nor is one of the two Flux labels, or a tracking id copied from
        // another object (Argo ignores those too).
        let half = live("Deployment", "x", &[("helm.toolkit.fluxcd.io/name", "hr")], &[]);
        let copied = argo("Deployment", "other", &[], "my-milvus");
        let copied = LiveObject {
            object: ManifestObject {
                name: "not-other".into(),
                ..copied.object
            },
            ..copied
        };
        assert_eq!(detect([&half, &copied]), None);
    }

    #[test]
    fn tracking_ids_parse_like_argo() {
        assert_eq!(
            parse_tracking_id("my-milvus:/Service:milvus/my-milvus"),
            Some(TrackingId {
                app: "my-milvus".into(),
                group: String::new(),
                kind: "Service".into(),
                namespace: "milvus".into(),
                name: "my-milvus".into(),
            })
        );
        assert_eq!(
            parse_tracking_id("team-a_my-milvus:apps/Deployment:milvus/q").map(|t| t.app),
            Some("team-a_my-milvus".into())
        );
        assert_eq!(parse_tracking_id("garbage"), None);
        let o = argo("Deployment", "q", &[], "team-a_my-milvus");
        let owner = detect([&o]).expect("owner");
        assert_eq!(owner.describe(), "Argo CD Application team-a/my-milvus");
    }

    #[test]
    fn flux_valuesfrom_is_named_and_a_target_path_wins() {
        let mut owner = detect([&flux_querynode()]).expect("owner");
        let hr = json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "milvus-hr", "namespace": "flux-apps",
                "labels": {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}},
            "spec": {
                "values": {"queryNode": {"replicas": 2}, "minio": {"secretKey": "s3cr3t"}},
                "valuesFrom": [
                    {"kind": "ConfigMap", "name": "milvus-values", "valuesKey": "values.yaml", "optional": true},
                    {"kind": "Secret", "name": "dn", "targetPath": "dataNode.replicas"}
                ]
            }
        });
        enrich_flux(&mut owner, "helm.toolkit.fluxcd.io/v2", &hr);
        assert_eq!(owner.lookup, Lookup::Found);
        assert_eq!(
            owner.applied_by.as_deref(),
            Some("Flux Kustomization flux-system/apps")
        );
        assert_eq!(
            owner.field_for("queryNode.replicas"),
            "spec.values.queryNode.replicas in Flux HelmRelease flux-apps/milvus-hr (its spec.valuesFrom ConfigMap/milvus-values, Secret/dn (targetPath dataNode.replicas) can also set it: check there too)"
        );
        assert_eq!(
            owner.field_for("dataNode.replicas"),
            "spec.valuesFrom[1] (Secret/dn (targetPath dataNode.replicas)) in Flux HelmRelease flux-apps/milvus-hr, whose targetPath overrides spec.values"
        );
        let json = serde_json::to_string(&owner).expect("json");
        assert!(!json.contains("s3cr3t"), "no values in the output: {json}");
        insta::assert_snapshot!(owner.summary(), @"Flux HelmRelease flux-apps/milvus-hr (change spec.values there; spec.valuesFrom ConfigMap/milvus-values, Secret/dn (targetPath dataNode.replicas) can override it); applied by Flux Kustomization flux-system/apps");
    }

    #[test]
    fn an_unreadable_owner_is_known_from_the_markers() {
        let mut owner = detect([&flux_querynode()]).expect("owner");
        owner.lookup = Lookup::Forbidden;
        assert_eq!(
            owner.summary(),
            "Flux HelmRelease flux-apps/milvus-hr (change spec.values there); HelmRelease not readable: forbidden; known from the objects' labels"
        );
        assert_eq!(
            owner.refusal("my-milvus", &changed_keys("queryNode", None)),
            "release my-milvus is managed by Flux HelmRelease flux-apps/milvus-hr: change spec.values.queryNode.replicas in Flux HelmRelease flux-apps/milvus-hr instead (helm-controller treats a Helm revision it did not make as drift and upgrades over it at its next reconcile)"
        );
    }

    #[test]
    fn a_bounds_change_names_the_hpa_fields_it_would_write() {
        assert_eq!(
            changed_keys("queryNode", Some((true, false))),
            ["queryNode.hpa.minReplicas"]
        );
        assert_eq!(
            changed_keys("queryNode", Some((true, true))),
            ["queryNode.hpa.minReplicas", "queryNode.hpa.maxReplicas"]
        );
        assert_eq!(
            changed_keys("queryNode", Some((false, false))),
            ["queryNode.hpa.minReplicas", "queryNode.hpa.maxReplicas"],
            "nothing moving still names what was asked for"
        );
        assert_eq!(changed_keys("woodpecker", None), ["woodpecker.replicaCount"]);
        let owner = detect([&flux_querynode()]).expect("owner");
        assert_eq!(
            owner.refusal("my-milvus", &changed_keys("queryNode", Some((false, true)))),
            "release my-milvus is managed by Flux HelmRelease flux-apps/milvus-hr: change spec.values.queryNode.hpa.maxReplicas in Flux HelmRelease flux-apps/milvus-hr instead (helm-controller treats a Helm revision it did not make as drift and upgrades over it at its next reconcile)"
        );
    }

    #[test]
    fn argo_fields_follow_argo_precedence() {
        let o = argo("Deployment", "q", &[], "my-milvus");
        let mut owner = detect([&o]).expect("owner");
        let app = json!({
            "metadata": {"name": "my-milvus", "namespace": "argocd"},
            "spec": {
                "source": {"chart": "milvus", "helm": {
                    "parameters": [{"name": "proxy.replicas", "value": "2"}],
                    "valuesObject": {"queryNode": {"replicas": 2}},
                    "values": "dataNode:\n  replicas: 3\n"
                }},
                "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}
            }
        });
        enrich_argo(&mut owner, &app);
        assert_eq!(owner.describe(), "Argo CD Application argocd/my-milvus");
        assert_eq!(owner.self_heal, Some(true));
        let field = |key: &str| {
            let full = owner.field_for(key);
            full.strip_suffix(" in Argo CD Application argocd/my-milvus")
                .unwrap_or(&full)
                .to_string()
        };
        assert_eq!(
            field("proxy.replicas"),
            "spec.source.helm.parameters[0] (name proxy.replicas)"
        );
        assert_eq!(
            field("queryNode.replicas"),
            "spec.source.helm.valuesObject.queryNode.replicas"
        );
        assert_eq!(
            field("dataNode.replicas"),
            "dataNode.replicas in the spec.source.helm.values text"
        );
        assert_eq!(
            field("streamingNode.replicas"),
            "spec.source.helm.valuesObject.streamingNode.replicas (or a parameter streamingNode.replicas)"
        );
        // Bounds keys follow the same precedence as replicas.
        assert_eq!(
            field("queryNode.hpa.minReplicas"),
            "spec.source.helm.valuesObject.queryNode.hpa.minReplicas (or a parameter queryNode.hpa.minReplicas)"
        );

        // Multi-source: the chart source's index, and Git values files.
        let multi = json!({
            "metadata": {"name": "my-milvus", "namespace": "argocd"},
            "spec": {"sources": [
                {"repoURL": "https://git.example.com/cfg.git", "ref": "values"},
                {"chart": "milvus", "helm": {"valueFiles": ["$values/milvus/values.yaml"]}}
            ]}
        });
        enrich_argo(&mut owner, &multi);
        assert_eq!(owner.self_heal, Some(false));
        assert_eq!(
            owner.field_for("queryNode.replicas"),
            "queryNode.replicas in its values files ($values/milvus/values.yaml) or spec.sources[1].helm.valuesObject.queryNode.replicas in Argo CD Application argocd/my-milvus"
        );
    }

    #[test]
    fn argo_rendered_instances_group_by_app_with_their_dependencies() {
        let qn = argo(
            "Deployment",
            "my-milvus-milvus-querynode",
            &chart_labels("querynode"),
            "my-milvus",
        );
        let proxy = argo(
            "Deployment",
            "my-milvus-milvus-proxy",
            &chart_labels("proxy"),
            "my-milvus",
        );
        let etcd = argo(
            "StatefulSet",
            "my-milvus-etcd",
            &[
                ("app.kubernetes.io/name", "etcd"),
                ("app.kubernetes.io/instance", "my-milvus"),
            ],
            "my-milvus",
        );
        let pulsar = argo(
            "StatefulSet",
            "my-milvus-pulsarv3-broker",
            &[("app", "pulsarv3"), ("release", "my-milvus")],
            "my-milvus",
        );
        // A Helm release beside it, and a chart Deployment without markers.
        let helm = live(
            "Deployment",
            "other-milvus-proxy",
            &[
                ("app.kubernetes.io/name", "milvus"),
                ("app.kubernetes.io/instance", "other"),
                ("component", "proxy"),
            ],
            &[("meta.helm.sh/release-name", "other")],
        );
        let mut unmarked_labels = chart_labels("proxy");
        unmarked_labels[2] = ("app.kubernetes.io/instance", "templated");
        let unmarked = live("Deployment", "templated-milvus-proxy", &unmarked_labels, &[]);
        let all = [qn, proxy, etcd, pulsar, helm, unmarked];
        let found = rendered_instances(&all, |ns, r| ns == "milvus" && r == "other", None);
        assert_eq!(found.len(), 1, "{found:#?}");
        let r = &found[0];
        assert_eq!((r.instance.as_str(), r.app.as_str()), ("my-milvus", "my-milvus"));
        assert!(!r.owner.helm_record);
        assert_eq!(r.owner.detected_by, Marker::ArgoTrackingId);
        let names: Vec<&str> = r.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "my-milvus-milvus-querynode",
                "my-milvus-milvus-proxy",
                "my-milvus-etcd",
                "my-milvus-pulsarv3-broker"
            ]
        );

        let chart = rendered_chart(r, &[("Deployment".into(), "my-milvus-milvus-proxy".into())]);
        assert_eq!(chart.name, "my-milvus");
        assert_eq!(
            (chart.chart_version.as_str(), chart.app_version.as_str()),
            ("5.0.19", "2.6.15")
        );
        let v = chart.values;
        assert_eq!(values::get(&v, "queryNode.replicas"), Some(&json!(2)));
        assert_eq!(values::get(&v, "proxy.replicas"), Some(&json!(-1)), "HPA-managed");
        assert_eq!(values::mode(&v), "cluster");
        assert_eq!(values::message_queue(&v), "pulsar");

        // Label tracking: the instance label counts only with an
        // Application of that name deploying there.
        let apps = [
            json!({"metadata": {"name": "templated", "namespace": "argocd"}, "spec": {"destination": {"namespace": "milvus"}}}),
        ];
        let found = rendered_instances(&all, |ns, r| ns == "milvus" && r == "other", Some(&apps));
        let labelled: Vec<(&str, Marker)> = found
            .iter()
            .map(|r| (r.instance.as_str(), r.owner.detected_by))
            .collect();
        assert_eq!(
            labelled,
            [
                ("my-milvus", Marker::ArgoTrackingId),
                ("templated", Marker::ArgoInstanceLabel)
            ]
        );
        assert!(found[1].named("templated"));
    }

    #[test]
    fn a_recorded_release_adopted_by_argo_is_not_rendered() {
        let qn = argo(
            "Deployment",
            "my-milvus-milvus-querynode",
            &chart_labels("querynode"),
            "my-milvus",
        );
        assert!(rendered_instances(std::slice::from_ref(&qn), |_, r| r == "my-milvus", None).is_empty());
        // …but its owner is still found, for status and scale.
        assert_eq!(detect([&qn]).map(|o| o.kind), Some(OwnerKind::ArgoCdApplication));
    }
}
