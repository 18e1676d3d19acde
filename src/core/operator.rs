//! Milvus clusters managed by the Milvus Operator: the `Milvus` resource
//! (`milvus.io/v1beta1`, plural `milvuses`) and the Deployments the operator
//! makes for it, as plain data. Which Deployment serves a component, what
//! the resource asks for, what `status` shows, what `plan`/`scale` would
//! write (JSON patches on the resource; never on the Deployments, which the
//! operator owns and would revert).

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::core::bounds::kubectl_patch;
use crate::core::components::{self, Component, Role};
use crate::core::manifest::ManifestObject;
use crate::core::plan::{
    self, Candidate, Command, Common, ComponentChange, Plan, Rejection, Request, ScaleInInput, Shape, Target,
    Unit, managing_hpa,
};
use crate::core::pods::LivePods;
use crate::core::scale_in;
use crate::core::status::{
    ComponentStatus, DependencyStatus, HpaStatus, LiveWorkload, ManagedBy, ReleasePod, ReleaseStatus,
    dependency_rows, hpa_status, owner_of, release_pods,
};
use crate::core::values::Replicas;

pub const API_GROUP: &str = "milvus.io";
pub const API_VERSION: &str = "v1beta1";
pub const KIND: &str = "Milvus";
pub const PLURAL: &str = "milvuses";
/// `<plural>.<group>`, as RBAC and error messages name it.
pub const RESOURCE: &str = "milvuses.milvus.io";

/// Labels the operator puts on every Deployment it makes (`NewComponentAppLabels`).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "milvus-operator";
/// A deployment group's Deployment carries its group name here.
pub const GROUP_LABEL: &str = "milvus.io/deployment-group";

/// The dependencies the operator installs as Helm releases `<cr>-<chart>`.
pub const DEPENDENCY_CHARTS: &[&str] = &["etcd", "minio", "pulsar", "kafka"];

/// `spec.components` keys and the catalogue label they map to. The
/// coordinators' keys differ from the Helm chart's (`mixCoord`, not
/// `mixCoordinator`); the labels are the same.
const SPEC_KEYS: &[(&str, &str)] = &[
    ("proxy", "proxy"),
    ("queryNode", "querynode"),
    ("dataNode", "datanode"),
    ("indexNode", "indexnode"),
    ("streamingNode", "streamingnode"),
    ("mixCoord", "mixcoord"),
    ("rootCoord", "rootcoord"),
    ("queryCoord", "querycoord"),
    ("dataCoord", "datacoord"),
    ("indexCoord", "indexcoord"),
    ("standalone", "standalone"),
    ("cdc", "cdc"),
];

/// The `spec.components` key of a catalogue component, if the operator has it.
pub fn spec_key(component: &Component) -> Option<&'static str> {
    SPEC_KEYS
        .iter()
        .find(|(_, label)| *label == component.label)
        .map(|(key, _)| *key)
}

/// A component as users type it for a `Milvus` resource: its spec key
/// (`mixCoord`), the Helm values key (`mixCoordinator`) or the label
/// (`mixcoord`), case-insensitively.
pub fn by_user_name(name: &str) -> Option<&'static Component> {
    SPEC_KEYS
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, label)| components::by_label(label))
        .or_else(|| components::by_user_name(name).filter(|c| spec_key(c).is_some()))
}

/// One `status.conditions[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    name: String,
    namespace: String,
    uid: String,
    generation: i64,
    resource_version: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A `Milvus` resource as read from the API server.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MilvusResource {
    metadata: Meta,
    pub spec: Value,
    pub status: Value,
}

impl MilvusResource {
    /// Reads a resource from its JSON (as served, or a sample's YAML).
    pub fn from_value(v: Value) -> Result<Self, String> {
        serde_json::from_value(v).map_err(|e| format!("unreadable {KIND} resource: {e}"))
    }
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
    /// The Milvus version, for messages: `spec.components.version`, else
    /// the image's tag (`milvusdb/milvus:v2.6.3` → `v2.6.3`; the operator's
    /// webhook fills the image in).
    pub fn milvus_version(&self) -> String {
        let version = self
            .spec
            .pointer("/components/version")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty());
        let tag = || {
            self.spec
                .pointer("/components/image")
                .and_then(Value::as_str)
                .and_then(|image| image.rsplit_once(':'))
                .map(|(_, tag)| tag)
                .filter(|tag| !tag.contains('/'))
        };
        version.or_else(tag).unwrap_or("(version unknown)").to_string()
    }
    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }
    /// Its identity and markers, as GitOps ownership reads them.
    pub fn meta(&self) -> crate::core::gitops::ResourceMeta<'_> {
        crate::core::gitops::ResourceMeta {
            group: API_GROUP,
            kind: KIND,
            namespace: &self.metadata.namespace,
            name: &self.metadata.name,
            labels: &self.metadata.labels,
            annotations: &self.metadata.annotations,
        }
    }
    pub fn uid(&self) -> &str {
        &self.metadata.uid
    }
    pub fn generation(&self) -> i64 {
        self.metadata.generation
    }
    pub fn resource_version(&self) -> &str {
        &self.metadata.resource_version
    }
    /// `spec.mode`; the webhook's default is standalone.
    pub fn mode(&self) -> &str {
        self.spec
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("standalone")
    }
    /// `spec.dependencies.msgStreamType`, when set.
    pub fn message_queue(&self) -> &str {
        self.spec
            .pointer("/dependencies/msgStreamType")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    /// `status.status`: Pending, Healthy, Unhealthy, Deleting, Stopped.
    pub fn state(&self) -> &str {
        self.status
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
    }
    pub fn observed_generation(&self) -> Option<i64> {
        self.status.get("observedGeneration").and_then(Value::as_i64)
    }
    /// Has the operator reconciled `generation` (or a later one)?
    pub fn observed(&self, generation: i64) -> bool {
        self.observed_generation().is_some_and(|g| g >= generation)
    }
    pub fn conditions(&self) -> Vec<Condition> {
        self.status
            .get("conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    }
    /// The raw `replicas` of a component, or of one of its deployment groups.
    pub fn replicas_value(&self, spec_key: &str, group: Option<&str>) -> Option<&Value> {
        let component = self.spec.get("components")?.get(spec_key)?;
        match group {
            Some(g) => self
                .groups(spec_key)
                .find(|x| x.get("name").and_then(Value::as_str) == Some(g))?
                .get("replicas"),
            None => component.get("replicas"),
        }
    }
    /// What the resource asks: absent is 1 (the operator's default), -1 is
    /// "left to an HPA".
    pub fn desired(&self, spec_key: &str, group: Option<&str>) -> Replicas {
        self.replicas_value(spec_key, group)
            .map_or(Replicas::Count(1), Replicas::parse)
    }
    fn groups(&self, spec_key: &str) -> impl Iterator<Item = &Value> {
        self.spec
            .pointer(&format!("/components/{}/groups", escape(spec_key)))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }
    fn group_names(&self, spec_key: &str) -> Vec<String> {
        self.groups(spec_key)
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    }
    /// The rollout slot (`-0`/`-1` Deployment) the operator serves from,
    /// under the workload's state key (hashed for a deployment group:
    /// `state_key`).
    fn current_slot(&self, state_key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .get(&current_group_id_key(state_key))
            .map(String::as_str)
    }
    /// The operator marks a workload whose two-Deployment rollout runs.
    fn rolling(&self, state_key: &str) -> bool {
        self.metadata
            .labels
            .get(&rolling_id_key(state_key))
            .is_some_and(|v| !v.is_empty())
    }
}

/// A Deployment in the namespace, as the operator's lookups need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorDeployment {
    pub live: LiveWorkload,
    pub labels: BTreeMap<String, String>,
    /// The controller ownerReference: kind and name.
    pub controller: Option<(String, String)>,
    /// `status.replicas`: pods of every revision it still has.
    pub status_replicas: i32,
}

impl OperatorDeployment {
    /// Made by the operator for `cr`: its labels say so, and no other
    /// controller owns it.
    fn belongs_to(&self, cr: &MilvusResource) -> bool {
        self.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(cr.name())
            && self.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGER)
            && self
                .controller
                .as_ref()
                .is_none_or(|(kind, name)| kind == KIND && name == cr.name())
    }
    fn runs_pods(&self) -> bool {
        self.live.replicas > 0 || self.status_replicas > 0
    }
}

/// One component (or deployment group) of a resource and the Deployment
/// serving it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrWorkload<'a> {
    pub component: &'static Component,
    pub spec_key: &'static str,
    pub group: Option<String>,
    pub desired: Replicas,
    /// The Deployment serving it; `None` until the operator makes one.
    pub active: Option<&'a OperatorDeployment>,
    /// The other rollout slot, in two-Deployment mode.
    pub standby: Option<&'a OperatorDeployment>,
    /// Both slots run pods, or the operator marks a rollout.
    pub rolling: bool,
    /// The operator's name for it (`<cr>-milvus-<label>[-<group>]`), the
    /// rollout slot's `-0`/`-1` aside.
    pub name: String,
}

impl CrWorkload<'_> {
    fn deployments(&self) -> impl Iterator<Item = &str> + Clone {
        self.active
            .iter()
            .chain(self.standby.iter())
            .map(|d| d.live.name.as_str())
    }
}

/// The components of `cr`: those its spec names for its mode, and those
/// the operator made Deployments for (found by labels and owner, never by
/// name). In display order.
pub fn workloads<'a>(cr: &MilvusResource, deployments: &'a [OperatorDeployment]) -> Vec<CrWorkload<'a>> {
    let mine: Vec<&OperatorDeployment> = deployments.iter().filter(|d| d.belongs_to(cr)).collect();
    let mut keys: Vec<(&'static Component, Option<String>)> = Vec::new();
    let standalone = cr.mode() != "cluster";
    for (key, label) in SPEC_KEYS {
        let Some(component) = components::by_label(label) else {
            continue;
        };
        if !cr
            .spec
            .pointer(&format!("/components/{key}"))
            .is_some_and(Value::is_object)
            || (component.role == Role::Standalone) != standalone
        {
            continue;
        }
        match cr.group_names(key).as_slice() {
            [] => keys.push((component, None)),
            groups => keys.extend(groups.iter().map(|g| (component, Some(g.clone())))),
        }
    }
    for d in &mine {
        let Some(component) = d
            .labels
            .get(COMPONENT_LABEL)
            .and_then(|l| components::by_label(l))
            .filter(|c| spec_key(c).is_some())
            // The operator keeps a standalone Deployment at 0 in every
            // cluster: not a component of this mode.
            .filter(|c| (c.role == Role::Standalone) == standalone)
        else {
            continue;
        };
        keys.push((component, d.labels.get(GROUP_LABEL).cloned()));
    }
    keys.sort_by(|a, b| {
        (components::display_rank(a.0.label), &a.1).cmp(&(components::display_rank(b.0.label), &b.1))
    });
    keys.dedup();

    keys.into_iter()
        .filter_map(|(component, group)| {
            let key = spec_key(component)?;
            let mut slots: Vec<&OperatorDeployment> = mine
                .iter()
                .copied()
                .filter(|d| {
                    d.labels.get(COMPONENT_LABEL).map(String::as_str) == Some(component.label)
                        && d.labels.get(GROUP_LABEL) == group.as_ref()
                })
                .collect();
            // The slot the resource names serves; else the one with more
            // replicas (a fresh `-1` is made at 0).
            let named = format!("milvus.io/{}-group-id", component.label);
            let state_key = state_key(component.label, group.as_deref());
            let current = cr.current_slot(&state_key);
            slots.sort_by_key(|d| {
                (
                    current.is_none_or(|c| d.labels.get(&named).map(String::as_str) != Some(c)),
                    std::cmp::Reverse((d.live.replicas, d.status_replicas)),
                    d.live.name.clone(),
                )
            });
            let active = slots.first().copied();
            let standby = slots.get(1).copied();
            let rolling = cr.rolling(&state_key)
                || (active.is_some_and(OperatorDeployment::runs_pods)
                    && standby.is_some_and(OperatorDeployment::runs_pods));
            let name = match &group {
                Some(g) => format!("{}-milvus-{}-{g}", cr.name(), component.label),
                None => format!("{}-milvus-{}", cr.name(), component.label),
            };
            Some(CrWorkload {
                component,
                spec_key: key,
                desired: cr.desired(key, group.as_deref()),
                group,
                active,
                standby,
                rolling,
                name,
            })
        })
        .collect()
}

/// A dependency the operator installed as a Helm release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyRelease {
    pub release: String,
    pub chart: String,
    pub chart_version: String,
    pub status: String,
}

/// Is Helm release `release` of chart `chart` a dependency the operator
/// installed for `cr` (`<cr>-etcd`, `<cr>-minio`, `<cr>-pulsar`, `<cr>-kafka`)?
pub fn is_dependency_of(cr: &str, release: &str, chart: &str) -> bool {
    chart != "milvus"
        && release
            .strip_prefix(cr)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|dep| DEPENDENCY_CHARTS.contains(&dep))
}

/// Everything `status` shows for one `Milvus` resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorStatus {
    /// The resource's name (the key Helm items use for the release).
    pub release: String,
    pub namespace: String,
    pub managed_by: ManagedBy,
    pub mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message_queue: String,
    /// `status.status`.
    pub milvus_status: String,
    pub generation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    pub components: Vec<ComponentStatus>,
    pub dependency_releases: Vec<DependencyRelease>,
    pub dependencies: Vec<DependencyStatus>,
    pub pods: Vec<ReleasePod>,
    /// The GitOps tool that keeps the resource in Git, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::core::gitops::Owner>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Milvus's own view (`status` only; `None` until asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milvus: Option<crate::core::milvus::view::MilvusView>,
}

/// One item of `status`'s document: a Helm release or a `Milvus` resource,
/// told apart by `managedBy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Instance {
    Helm(Box<ReleaseStatus>),
    Operator(Box<OperatorStatus>),
}

impl Instance {
    /// Namespace and name, the order `status` lists instances in.
    pub fn key(&self) -> (&str, &str) {
        match self {
            Instance::Helm(r) => (&r.namespace, &r.release),
            Instance::Operator(o) => (&o.namespace, &o.release),
        }
    }
}

/// The live inputs for one resource.
pub struct OperatorLive<'a> {
    pub deployments: &'a [OperatorDeployment],
    pub hpas: &'a [HorizontalPodAutoscaler],
    pub pods: &'a LivePods,
    /// Its dependency releases with the workloads of their manifests.
    pub dependencies: &'a [(DependencyRelease, Vec<ManifestObject>)],
}

/// The resource's Deployments as owners pods are attributed through.
fn owner_objects(cr: &MilvusResource, deployments: &[OperatorDeployment]) -> Vec<ManifestObject> {
    deployments
        .iter()
        .filter(|d| d.belongs_to(cr))
        .map(|d| ManifestObject {
            kind: "Deployment".to_string(),
            name: d.live.name.clone(),
            labels: d.labels.clone(),
            ..Default::default()
        })
        .collect()
}

/// Builds the status of one resource.
pub fn status(cr: &MilvusResource, live: &OperatorLive<'_>, now: jiff::Timestamp) -> OperatorStatus {
    let mut warnings = Vec::new();
    let found = workloads(cr, live.deployments);
    let components: Vec<ComponentStatus> = found
        .iter()
        .map(|w| {
            let hpa = live
                .hpas
                .iter()
                .find(|h| managing_hpa(std::slice::from_ref(*h), w.deployments()).is_some())
                .map(hpa_status);
            ComponentStatus {
                component: w.spec_key.to_string(),
                label: w.component.label.to_string(),
                role: w.component.role,
                resource_group: None,
                deployment_group: w.group.clone(),
                kind: "Deployment".to_string(),
                workload: w.active.map_or_else(|| w.name.clone(), |d| d.live.name.clone()),
                notes: notes(w, hpa.as_ref()),
                desired: w.desired.clone(),
                live: w.active.map(|d| d.live.clone()),
                hpa,
            }
        })
        .collect();
    if found.is_empty() {
        warnings.push(format!(
            "the operator has made no Deployments for {} yet (status {}); is the Milvus Operator running?",
            cr.name(),
            cr.state()
        ));
    }

    let mut objects = owner_objects(cr, live.deployments);
    let ours = objects.len();
    objects.extend(live.dependencies.iter().flat_map(|(_, o)| o.iter().cloned()));
    let mut pods = release_pods(&objects, live.pods, now);
    for p in &mut pods {
        p.component = objects[..ours]
            .iter()
            .find(|o| p.workload == format!("Deployment/{}", o.name))
            .and_then(|o| o.labels.get(COMPONENT_LABEL).cloned());
    }
    let dependencies = dependency_rows(objects[ours..].iter(), &pods);

    OperatorStatus {
        release: cr.name().to_string(),
        namespace: cr.namespace().to_string(),
        managed_by: ManagedBy::MilvusOperator,
        mode: cr.mode().to_string(),
        message_queue: cr.message_queue().to_string(),
        milvus_status: cr.state().to_string(),
        generation: cr.generation(),
        observed_generation: cr.observed_generation(),
        conditions: cr.conditions(),
        components,
        dependency_releases: live.dependencies.iter().map(|(d, _)| d.clone()).collect(),
        dependencies,
        pods,
        owner: None,
        warnings,
        milvus: None,
    }
}

fn notes(w: &CrWorkload<'_>, hpa: Option<&HpaStatus>) -> Vec<String> {
    let field = match &w.group {
        Some(g) => format!("spec.components.{}.groups[{g}].replicas", w.spec_key),
        None => format!("spec.components.{}.replicas", w.spec_key),
    };
    let Some(active) = w.active else {
        return vec!["missing: the operator has not made its Deployment (yet)".to_string()];
    };
    let mut notes = Vec::new();
    if w.rolling
        && let Some(standby) = w.standby
    {
        notes.push(format!(
            "rollout under way: {} ({} replicas) is replacing {} ({} left)",
            active.live.name,
            active.live.replicas,
            standby.live.name,
            standby.status_replicas.max(standby.live.replicas)
        ));
    }
    match (&w.desired, hpa) {
        (Replicas::Count(n), Some(h)) => notes.push(format!(
            "HPA {} ({}-{}) and {field}={n} both set replicas; set it to -1 to leave them to the HPA",
            h.name, h.min, h.max
        )),
        (Replicas::Count(n), None) if i64::from(active.live.replicas) != i64::from(*n) => {
            notes.push(format!(
                "{field} is {n}, the Deployment has {}: the operator has not applied it (yet)",
                active.live.replicas
            ))
        }
        (Replicas::Unset, None) => {
            notes.push(format!("{field} is -1 (left to an HPA) but no HPA targets it"))
        }
        (Replicas::Invalid(v), _) => notes.push(format!("{field} is not a replica count: {v}")),
        _ => {}
    }
    notes
}

/// The Deployments of `changes` not yet settled at their current count:
/// counts that differ, or pods still terminating (a killed run's step).
pub fn unsettled(
    deployments: &[OperatorDeployment],
    pods: &LivePods,
    changes: &[ComponentChange],
) -> Vec<(String, u32)> {
    let objects: Vec<ManifestObject> = deployments
        .iter()
        .map(|d| ManifestObject {
            kind: "Deployment".to_string(),
            name: d.live.name.clone(),
            ..Default::default()
        })
        .collect();
    let pods = pods.metadata();
    let terminating = |name: &str| {
        pods.iter()
            .any(|p| p.deletion_timestamp.is_some() && owner_of(&objects, p).is_some_and(|o| o.name == name))
    };
    changes
        .iter()
        .flat_map(|c| c.deployments.iter().map(move |d| (d, c.current)))
        .filter(|(name, n)| {
            let n = *n as i32;
            deployments
                .iter()
                .find(|d| &d.live.name == *name)
                .is_none_or(|d| {
                    let l = &d.live;
                    [l.replicas, l.ready, l.available, l.up_to_date, d.status_replicas] != [n; 5]
                        || terminating(name)
                })
        })
        .map(|(name, n)| (name.clone(), n))
        .collect()
}

/// The inputs an operator plan is made from.
pub struct OperatorPlanInput<'a> {
    pub cr: &'a MilvusResource,
    pub deployments: &'a [OperatorDeployment],
    pub hpas: &'a [HorizontalPodAutoscaler],
    pub pods: &'a [Pod],
    /// Each live Deployment's `terminationGracePeriodSeconds`, where set.
    pub grace: &'a BTreeMap<String, i64>,
    pub force: bool,
    /// `--accept-short-grace`.
    pub accept_short_grace: bool,
    pub now: jiff::Timestamp,
}

/// The spec keys of a resource's worker components, in display order.
pub fn scalable_components(found: &[CrWorkload<'_>]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = found
        .iter()
        .filter(|w| w.component.role == Role::Worker)
        .map(|w| w.spec_key)
        .collect();
    keys.dedup();
    keys
}

/// Checks every request against the rules and computes the plan: one
/// change per component, or per deployment group (each group gets the
/// value, stepped from its own count).
pub fn plan(input: &OperatorPlanInput<'_>, requests: &[Request]) -> Result<Plan, Rejection> {
    let shape = MilvusShape {
        cr: input.cr,
        found: workloads(input.cr, input.deployments),
        deployments: input.deployments,
        config: vec![(
            format!("spec.config of Milvus {}", input.cr.name()),
            input.cr.spec.get("config").cloned().unwrap_or(Value::Null),
        )],
    };
    // No `--remove` on Operator clusters; the predicted removals follow the
    // controller, except for drained query nodes.
    let scale_in = ScaleInInput {
        rules: scale_in::ControllerRules {
            deletion_cost: false,
            logarithmic: false,
        },
        grace: input.grace.clone(),
        remove: Vec::new(),
        accept_short_grace: input.accept_short_grace,
        // The run drains leaving query nodes unless `--no-drain`, choosing
        // each one itself (docs/milvus.md).
        drain: true,
    };
    let common = Common {
        hpas: input.hpas,
        pods: input.pods,
        force: input.force,
        now: input.now,
        scale_in: &scale_in,
    };
    plan::plan_shape(&shape, &common, requests)
}

/// A `Milvus` resource as planning sees it.
struct MilvusShape<'a> {
    cr: &'a MilvusResource,
    found: Vec<CrWorkload<'a>>,
    deployments: &'a [OperatorDeployment],
    config: scale_in::ConfigLayers,
}

impl Shape for MilvusShape<'_> {
    fn managed_by(&self) -> ManagedBy {
        ManagedBy::MilvusOperator
    }
    fn name(&self) -> &str {
        self.cr.name()
    }
    fn namespace(&self) -> &str {
        self.cr.namespace()
    }
    fn subject(&self) -> String {
        format!("Milvus {}", self.cr.name())
    }
    fn standalone(&self) -> Option<String> {
        (self.cr.mode() != "cluster").then(|| {
            format!(
                "Milvus {} runs standalone (a single pod); only cluster mode has worker components to scale",
                self.cr.name()
            )
        })
    }
    fn component(&self, typed: &str) -> Option<&'static Component> {
        by_user_name(typed)
    }
    fn key(&self, component: &'static Component) -> &'static str {
        spec_key(component).unwrap_or(component.key)
    }
    fn scalable(&self) -> Vec<&'static str> {
        scalable_components(&self.found)
    }
    fn not_enabled(&self, key: &str, scalable: &str) -> String {
        format!(
            "{key} is not deployed for Milvus {}; scalable components: {scalable}",
            self.cr.name()
        )
    }
    fn units<'s>(
        &'s self,
        component: &'static Component,
        target: Target,
        hpas: &'s [HorizontalPodAutoscaler],
    ) -> Result<Vec<Unit<'s>>, Rejection> {
        self.found
            .iter()
            .filter(|w| w.component == component)
            .map(|w| unit(self.cr, w, target, hpas))
            .collect()
    }
    fn milvus_config(&self) -> (&scale_in::ConfigLayers, String) {
        (&self.config, self.cr.milvus_version())
    }
    fn grace_warning(&self, check: &scale_in::GraceCheck) -> String {
        grace_shortfall(check)
    }
    fn owners(&self) -> Vec<ManifestObject> {
        owner_objects(self.cr, self.deployments)
    }
    fn rules(&self, _: scale_in::ControllerRules) -> scale_in::ControllerRules {
        // Operator runs do not mark pods (the operator owns the Deployments
        // and `scale` patches only the resource): the victims are a
        // prediction by the classic ranking, whatever the server.
        scale_in::ControllerRules {
            deletion_cost: false,
            logarithmic: false,
        }
    }
    fn command(&self, changes: &[ComponentChange]) -> Command {
        Command::KubectlCommand(kubectl_command(self.cr, changes))
    }
}

/// The account of a grace shortfall on an Operator cluster, with what to
/// do: the operator gives pods 30 days, so a shortfall can only come from
/// someone else's edit (the flag rule is the same as for Helm releases).
pub fn grace_shortfall(check: &scale_in::GraceCheck) -> String {
    format!(
        "{}: pods get only {}s to stop while Milvus's graceful stop may take {}s ({}): {}. The Milvus Operator gives pods 30 days: find out who shortened it, or lower the timeout in spec.config",
        check.component,
        check.pod_grace_seconds,
        check.milvus_stop_seconds,
        check.milvus_stop_source,
        scale_in::shortfall_risk(&check.component)
    )
}

/// One component (or deployment group) of a resource a request changes,
/// with the refusals only the operator's way of running it calls for.
fn unit<'a>(
    cr: &MilvusResource,
    w: &'a CrWorkload<'a>,
    target: Target,
    hpas: &'a [HorizontalPodAutoscaler],
) -> Result<Unit<'a>, Rejection> {
    let shown = match &w.group {
        Some(g) => format!("{}/{g}", w.spec_key),
        None => w.spec_key.to_string(),
    };
    let pointer = replicas_pointer(cr, w.spec_key, w.group.as_deref()).unwrap_or_default();
    let hpa = managing_hpa(hpas, w.deployments());
    let refused_by_hpa = hpa.is_some() && !matches!(target, Target::Bounds { .. });
    if w.desired == Replicas::Unset && hpa.is_none() {
        return Err(Rejection::Refused(format!(
            "{shown} has replicas -1 in Milvus {}: its replicas are left to an HPA; to fix a count, first patch {pointer} yourself",
            cr.name()
        )));
    }
    let Some(active) = w.active else {
        return Err(Rejection::Refused(format!(
            "{shown}'s Deployment {} does not exist yet; wait for the Milvus Operator to make it",
            w.name
        )));
    };
    // Under an HPA a count is refused by the loop first.
    if w.rolling && !refused_by_hpa {
        // The operator's mark, else what runs (rolling_id_key).
        let label = rolling_id_key(&state_key(w.component.label, w.group.as_deref()));
        let seen = match cr.meta().labels.get(&label) {
            Some(id) if !id.is_empty() => format!("label {label}: {id}"),
            _ => format!(
                "{} and {} both run pods",
                active.live.name,
                w.standby
                    .map(|s| s.live.name.as_str())
                    .unwrap_or("its other Deployment")
            ),
        };
        return Err(Rejection::Refused(format!(
            "a rollout of {shown} is under way ({seen}); wait for the Milvus Operator to finish it and retry"
        )));
    }
    Ok(Unit {
        candidate: Candidate {
            component: w.component,
            key: w.spec_key,
            group: w.group.as_deref(),
            deployments: vec![active.live.name.clone()],
            live: vec![&active.live],
            desired: w.desired.clone(),
            record: "spec",
            outside: "the Milvus resource",
            streaming_groups: 0,
        },
        hpa,
        // The user's own HPA is the record: the resource stays at -1.
        recorded_bounds: None,
    })
}

/// JSON Pointer escaping (RFC 6901).
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Where the replicas of a component (or group) live in the resource; for
/// a group, by its index in `groups[]`.
pub fn replicas_pointer(cr: &MilvusResource, spec_key: &str, group: Option<&str>) -> Option<String> {
    let base = format!("/spec/components/{}", escape(spec_key));
    match group {
        None => Some(format!("{base}/replicas")),
        Some(g) => cr
            .groups(spec_key)
            .position(|x| x.get("name").and_then(Value::as_str) == Some(g))
            .map(|i| format!("{base}/groups/{i}/replicas")),
    }
}

/// One replica count to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub spec_key: String,
    pub group: Option<String>,
    pub replicas: u32,
}

impl Write {
    pub fn of(change: &ComponentChange, replicas: u32) -> Write {
        Write {
            spec_key: change.component.clone(),
            group: change.group.clone(),
            replicas,
        }
    }
}

/// The JSON patch (RFC 6902) that writes `writes` into `cr` as read, and
/// fails (HTTP 422) unless each field still holds what was read: a `test`
/// of the value where there is one, of the group's name where it is
/// addressed by index, and of `metadata.resourceVersion` where a field is
/// added (absence cannot be tested).
pub fn json_patch(cr: &MilvusResource, writes: &[Write]) -> Result<Value, String> {
    let mut ops = Vec::new();
    let mut adds = Vec::new();
    for w in writes {
        let pointer = replicas_pointer(cr, &w.spec_key, w.group.as_deref()).ok_or_else(|| {
            format!(
                "deployment group {:?} of {} is no longer in Milvus {}",
                w.group.as_deref().unwrap_or_default(),
                w.spec_key,
                cr.name()
            )
        })?;
        if let Some(g) = &w.group
            && let Some(name_at) = pointer.strip_suffix("/replicas")
        {
            ops.push(json!({"op": "test", "path": format!("{name_at}/name"), "value": g}));
        }
        match cr.replicas_value(&w.spec_key, w.group.as_deref()) {
            Some(old) => {
                ops.push(json!({"op": "test", "path": pointer, "value": old}));
                ops.push(json!({"op": "replace", "path": pointer, "value": w.replicas}));
            }
            None => adds.push((w, pointer)),
        }
    }
    if !adds.is_empty() {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": cr.resource_version()}));
        let mut made = std::collections::BTreeSet::new();
        for (w, pointer) in adds {
            if cr.spec.get("components").is_none_or(Value::is_null)
                && made.insert("/spec/components".to_string())
            {
                ops.push(json!({"op": "add", "path": "/spec/components", "value": {}}));
            }
            let parent = format!("/spec/components/{}", escape(&w.spec_key));
            if cr
                .spec
                .pointer(&format!("/components/{}", escape(&w.spec_key)))
                .is_none()
                && made.insert(parent.clone())
            {
                ops.push(json!({"op": "add", "path": parent, "value": {}}));
            }
            ops.push(json!({"op": "add", "path": pointer, "value": w.replicas}));
        }
    }
    Ok(Value::Array(ops))
}

/// A replica field a run watches: what it found or last wrote there.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub spec_key: String,
    pub group: Option<String>,
    pub value: Option<Value>,
}

impl Expected {
    pub fn read(cr: &MilvusResource, change: &ComponentChange) -> Expected {
        Expected {
            spec_key: change.component.clone(),
            group: change.group.clone(),
            value: cr
                .replicas_value(&change.component, change.group.as_deref())
                .cloned(),
        }
    }
}

/// The first watched field someone else changed, as one sentence; `None`
/// when every field holds what the run expects.
pub fn foreign_change(cr: &MilvusResource, expected: &[Expected]) -> Option<String> {
    expected.iter().find_map(|e| {
        let now = cr.replicas_value(&e.spec_key, e.group.as_deref());
        if now == e.value.as_ref() {
            return None;
        }
        let field = match &e.group {
            Some(g) => format!("spec.components.{}.groups[{g}].replicas", e.spec_key),
            None => format!("spec.components.{}.replicas", e.spec_key),
        };
        let show = |v: Option<&Value>| v.map_or_else(|| "unset".to_string(), Value::to_string);
        Some(format!(
            "another writer changed {field} of Milvus {} to {} (this run expected {})",
            cr.name(),
            show(now),
            show(e.value.as_ref())
        ))
    })
}

/// `kubectl patch milvus …` writing every target at once: a merge patch,
/// or (groups live in a list a merge patch would replace whole) a JSON
/// patch by index.
pub fn kubectl_command(cr: &MilvusResource, changes: &[ComponentChange]) -> String {
    // A bounds change writes the user's HPA, not the resource.
    let hpas: Vec<String> = changes
        .iter()
        .filter_map(|c| c.hpa.as_ref().map(|h| kubectl_patch(cr.namespace(), h)))
        .collect();
    if !hpas.is_empty() {
        return hpas.join("\n  ");
    }
    let head = format!("kubectl patch milvus {} -n {}", cr.name(), cr.namespace());
    if changes.iter().any(|c| c.group.is_some()) {
        let ops: Vec<Value> = changes
            .iter()
            .filter_map(|c| {
                let path = replicas_pointer(cr, &c.component, c.group.as_deref())?;
                Some(json!({"op": "replace", "path": path, "value": c.target}))
            })
            .collect();
        return format!("{head} --type json -p '{}'", Value::Array(ops));
    }
    let mut components = serde_json::Map::new();
    for c in changes {
        components.insert(c.component.clone(), json!({"replicas": c.target}));
    }
    format!(
        "{head} --type merge -p '{}'",
        json!({"spec": {"components": components}})
    )
}

/// The key a workload's rollout state lives under on the resource
/// (`GetStateKey`, pkg/controllers/components.go:221-230 @0282aaf): the
/// component name, or for a deployment group `<component>-<hex of the
/// first 8 bytes of sha256(group name)>`.
pub fn state_key(label: &str, group: Option<&str>) -> String {
    match group {
        None => label.to_string(),
        Some(g) => {
            let hash = ring::digest::digest(&ring::digest::SHA256, g.as_bytes());
            let hex: String = hash.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{label}-{hex}")
        }
    }
}

/// The resource annotation naming the serving slot (`-0`/`-1`) of a
/// two-Deployment workload (`GetComponentCurrentGroupIDLabel`,
/// apis/milvus.io/v1beta1/label_annotations.go:80-82 @1c918a5).
pub fn current_group_id_key(state_key: &str) -> String {
    format!("milvus.io/{state_key}-current-group-id")
}

/// The resource label set while a workload's two-Deployment rollout runs
/// (`GetRollingIdLabelByComponent`/`IsComponentRolling`,
/// label_annotations.go:100-107 @1c918a5).
pub fn rolling_id_key(state_key: &str) -> String {
    format!("milvus.io/{state_key}-rolling-id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::parse_request;
    use crate::core::test_support::ready_deployment;

    /// The `Milvus` documents of a real sample, named and namespaced as the
    /// API server would serve them.
    fn sample(file: &str) -> Vec<MilvusResource> {
        let path = format!(
            "{}/tests/fixtures/milvus-operator/samples/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("sample");
        text.split("\n---")
            .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
            .filter(|v| v["kind"] == KIND)
            .map(|mut v| {
                v["metadata"]["namespace"] = json!("milvus");
                v["metadata"]["generation"] = json!(1);
                v["metadata"]["resourceVersion"] = json!("100");
                MilvusResource::from_value(v).expect("resource")
            })
            .collect()
    }

    /// A Deployment the operator made for `cr`.
    fn made(
        cr: &str,
        component: &str,
        suffix: &str,
        replicas: i32,
        extra: &[(&str, &str)],
    ) -> OperatorDeployment {
        let mut labels: BTreeMap<String, String> = [
            (INSTANCE_LABEL, cr),
            (COMPONENT_LABEL, component),
            (MANAGED_BY_LABEL, MANAGER),
            ("app.kubernetes.io/name", "milvus"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        labels.retain(|_, v| !v.is_empty());
        OperatorDeployment {
            live: ready_deployment(&format!("{cr}-milvus-{component}{suffix}"), replicas),
            labels,
            controller: Some((KIND.to_string(), cr.to_string())),
            status_replicas: replicas,
        }
    }

    fn cluster_of(cr: &str, qn: i32) -> Vec<OperatorDeployment> {
        vec![
            made(cr, "mixcoord", "", 1, &[]),
            made(cr, "proxy", "", 1, &[]),
            made(cr, "datanode", "", 1, &[]),
            made(cr, "streamingnode", "", 1, &[]),
            // Two-Deployment mode: -0 serves, -1 waits at 0.
            made(
                cr,
                "querynode",
                "-0",
                qn,
                &[("milvus.io/querynode-group-id", "0")],
            ),
            made(cr, "querynode", "-1", 0, &[("milvus.io/querynode-group-id", "1")]),
            // Kept at 0 in every cluster; not a component of cluster mode.
            made(cr, "standalone", "", 0, &[]),
        ]
    }

    #[test]
    fn a_step_is_settled_when_counts_agree_and_no_pod_is_terminating() {
        let cr = &sample("milvus_cluster_default.yaml")[0];
        let mut d = cluster_of("my-release", 2);
        let p = plan_for(cr, &d, &[], &["queryNode=1"]).expect("plan");
        let none = LivePods::default();
        assert!(unsettled(&d, &none, &p.changes).is_empty());
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "my-release-milvus-querynode-0-h1-x", "deletionTimestamp": "2026-01-11T13:00:00Z",
                "labels": {"pod-template-hash": "h1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "my-release-milvus-querynode-0-h1", "uid": "u", "controller": true}]}
        }))
        .expect("pod");
        let waiting = vec![("my-release-milvus-querynode-0".to_string(), 2)];
        assert_eq!(
            unsettled(&d, &LivePods::Objects(vec![pod.clone()]), &p.changes),
            waiting
        );
        // Read as printed rows, the same pod's metadata says the same.
        let printed = LivePods::Printed(vec![crate::core::pods::PrintedPod {
            row: crate::core::pods::pod_row(&pod, "2026-01-11T13:00:01Z".parse().expect("time")),
            metadata: pod.metadata,
        }]);
        assert_eq!(unsettled(&d, &printed, &p.changes), waiting);
        d[4].live.ready = 1;
        assert_eq!(unsettled(&d, &none, &p.changes), waiting);
    }

    fn requests(texts: &[&str]) -> Vec<Request> {
        texts.iter().map(|t| parse_request(t).expect("request")).collect()
    }

    fn plan_for(
        cr: &MilvusResource,
        deployments: &[OperatorDeployment],
        hpas: &[HorizontalPodAutoscaler],
        texts: &[&str],
    ) -> Result<Plan, Rejection> {
        plan_with_grace(cr, deployments, hpas, &BTreeMap::new(), false, texts)
    }

    fn plan_with_grace(
        cr: &MilvusResource,
        deployments: &[OperatorDeployment],
        hpas: &[HorizontalPodAutoscaler],
        grace: &BTreeMap<String, i64>,
        accept_short_grace: bool,
        texts: &[&str],
    ) -> Result<Plan, Rejection> {
        plan(
            &OperatorPlanInput {
                cr,
                deployments,
                hpas,
                pods: &[],
                grace,
                force: false,
                accept_short_grace,
                now: "2026-01-11T13:00:00Z".parse().expect("time"),
            },
            &requests(texts),
        )
    }

    #[test]
    fn scale_in_states_the_grace_against_the_graceful_stop_of_spec_config() {
        let mut cr = sample("milvus_cluster_default.yaml")[0].clone();
        cr.spec["components"]["image"] = json!("milvusdb/milvus:v2.6.3");
        cr.spec["config"] = json!({"queryNode": {"gracefulStopTimeout": 600}});
        let d = cluster_of("my-release", 2);
        let month = BTreeMap::from([("my-release-milvus-querynode-0".to_string(), 2_592_000)]);
        let p = plan_with_grace(&cr, &d, &[], &month, false, &["queryNode=1", "proxy=2"]).expect("plan");
        let g: Vec<_> = p
            .grace
            .iter()
            .map(|g| {
                (
                    g.component.as_str(),
                    g.pod_grace_seconds,
                    g.milvus_stop_seconds,
                    g.milvus_stop_source.as_str(),
                )
            })
            .collect();
        assert_eq!(
            g,
            [(
                "queryNode",
                2_592_000,
                600,
                "queryNode.gracefulStopTimeout in spec.config of Milvus my-release"
            )],
            "scale-out has no grace account"
        );
        assert!(
            p.warnings.iter().all(|w| !w.contains("graceful stop")),
            "{:?}",
            p.warnings
        );

        // Unset in spec.config: Milvus's default for the image's version.
        cr.spec["config"] = json!({});
        let p = plan_with_grace(&cr, &d, &[], &month, false, &["queryNode=1"]).expect("plan");
        assert_eq!(
            p.grace[0].milvus_stop_source,
            "queryNode.gracefulStopTimeout, Milvus v2.6.3 default"
        );

        // Someone shortened the grace: told, and below 30 s refused unless accepted.
        let short = BTreeMap::from([("my-release-milvus-querynode-0".to_string(), 10)]);
        assert!(matches!(
            plan_with_grace(&cr, &d, &[], &short, false, &["queryNode=1"]),
            Err(Rejection::Refused(m)) if m.contains("--accept-short-grace")
        ));
        let p = plan_with_grace(&cr, &d, &[], &short, true, &["queryNode=1"]).expect("accepted");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("The Milvus Operator gives pods 30 days")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn every_sample_reads_with_its_mode() {
        let modes: Vec<(String, String)> = [
            "milvus_default.yaml",
            "milvus_cluster_default.yaml",
            "milvus_cluster_minimum.yaml",
            "milvus_cluster_mixcoord.yaml",
            "milvus_deployment_groups.yaml",
            "milvus_streaming_node.yaml",
            "hpa.yaml",
        ]
        .iter()
        .flat_map(|f| sample(f))
        .map(|cr| (cr.name().to_string(), cr.mode().to_string()))
        .collect();
        assert_eq!(modes[0], ("my-release".to_string(), "standalone".to_string()));
        assert!(modes[1..].iter().all(|(_, m)| m == "cluster"), "{modes:?}");
        assert_eq!(modes.last().map(|m| m.0.as_str()), Some("grouped"));
        let streaming = &sample("milvus_streaming_node.yaml")[0];
        assert_eq!(streaming.message_queue(), "pulsar");
        assert_eq!(streaming.state(), "Pending");
    }

    #[test]
    fn components_come_from_the_operators_deployments_and_the_active_slot_serves() {
        let cr = &sample("milvus_cluster_default.yaml")[0];
        let mut deployments = cluster_of("my-release", 2);
        // Another instance's, and one that is not the operator's: ignored.
        deployments.push(made("other", "proxy", "", 3, &[]));
        let mut foreign = made("my-release", "proxy", "-x", 5, &[]);
        foreign.controller = Some(("ReplicaSet".into(), "x".into()));
        deployments.push(foreign);
        let found = workloads(cr, &deployments);
        let rows: Vec<(&str, Option<&str>, Replicas)> = found
            .iter()
            .map(|w| {
                (
                    w.spec_key,
                    w.active.map(|d| d.live.name.as_str()),
                    w.desired.clone(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("proxy", Some("my-release-milvus-proxy"), Replicas::Count(1)),
                (
                    "queryNode",
                    Some("my-release-milvus-querynode-0"),
                    Replicas::Count(1)
                ),
                ("dataNode", Some("my-release-milvus-datanode"), Replicas::Count(1)),
                (
                    "streamingNode",
                    Some("my-release-milvus-streamingnode"),
                    Replicas::Count(1)
                ),
                ("mixCoord", Some("my-release-milvus-mixcoord"), Replicas::Count(1)),
            ]
        );
        assert!(!found[1].rolling);

        // The resource names slot 1 as current, and slot 0 still runs: a rollout.
        let mut v = serde_json::to_value(&cr.spec).expect("spec");
        v = json!({"metadata": {"name": "my-release", "namespace": "milvus",
            "annotations": {"milvus.io/querynode-current-group-id": "1"}}, "spec": v});
        let rolling_cr = MilvusResource::from_value(v).expect("cr");
        let mut deployments = cluster_of("my-release", 2);
        deployments[5].live.replicas = 1;
        deployments[5].status_replicas = 1;
        let qn = workloads(&rolling_cr, &deployments)
            .into_iter()
            .find(|w| w.spec_key == "queryNode")
            .expect("querynode");
        assert_eq!(
            qn.active.map(|d| d.live.name.as_str()),
            Some("my-release-milvus-querynode-1")
        );
        assert!(qn.rolling);
        let s = status(
            &rolling_cr,
            &OperatorLive {
                deployments: &deployments,
                hpas: &[],
                pods: &LivePods::default(),
                dependencies: &[],
            },
            "2026-01-11T13:00:00Z".parse().expect("time"),
        );
        let notes = &s.components[1].notes;
        assert!(
            notes[0].starts_with("rollout under way: my-release-milvus-querynode-1"),
            "{notes:?}"
        );
        assert!(matches!(
            plan_for(&rolling_cr, &deployments, &[], &["queryNode=3"]),
            Err(Rejection::Refused(m)) if m.contains("rollout")
        ));
    }

    #[test]
    fn deployment_groups_each_get_the_value_from_their_own_count() {
        let cr = &sample("milvus_deployment_groups.yaml")[0];
        let g = |c: &str, g: &str, n: i32| made("my-release", c, &format!("-{g}"), n, &[(GROUP_LABEL, g)]);
        let deployments = vec![
            made("my-release", "mixcoord", "", 1, &[]),
            g("querynode", "g1", 3),
            g("querynode", "g2", 2),
            g("proxy", "g1", 1),
            g("proxy", "g2", 1),
        ];
        let found = workloads(cr, &deployments);
        let names: Vec<String> = found
            .iter()
            .map(|w| {
                format!(
                    "{}/{}={}",
                    w.spec_key,
                    w.group.as_deref().unwrap_or("-"),
                    w.desired
                )
            })
            .collect();
        // dataNode and streamingNode groups are in the spec but not made yet.
        assert_eq!(
            names,
            [
                "proxy/g1=1",
                "proxy/g2=1",
                "queryNode/g1=2",
                "queryNode/g2=2",
                "dataNode/g1=2",
                "dataNode/g2=2",
                "streamingNode/g1=1",
                "streamingNode/g2=1",
                "mixCoord/-=1",
            ]
        );
        let p = plan_for(cr, &deployments, &[], &["queryNode=1"]).expect("plan");
        let steps: Vec<(Option<&str>, u32, Vec<u32>)> = p
            .changes
            .iter()
            .map(|c| (c.group.as_deref(), c.current, c.steps.iter().collect()))
            .collect();
        assert_eq!(steps, [(Some("g1"), 3, vec![2, 1]), (Some("g2"), 2, vec![1])]);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("queryNode/g1: spec say 2 but 3 run")),
            "{:?}",
            p.warnings
        );
        assert_eq!(
            p.command.text(),
            r#"kubectl patch milvus my-release -n milvus --type json -p '[{"op":"replace","path":"/spec/components/queryNode/groups/0/replicas","value":1},{"op":"replace","path":"/spec/components/queryNode/groups/1/replicas","value":1}]'"#
        );
        let patch = json_patch(cr, &[Write::of(&p.changes[0], 2)]).expect("patch");
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/spec/components/queryNode/groups/0/name", "value": "g1"},
                {"op": "test", "path": "/spec/components/queryNode/groups/0/replicas", "value": 2},
                {"op": "replace", "path": "/spec/components/queryNode/groups/0/replicas", "value": 2},
            ])
        );
        // A group not yet made cannot be planned.
        assert!(matches!(
            plan_for(cr, &deployments, &[], &["dataNode=3"]),
            Err(Rejection::Refused(m)) if m.contains("does not exist yet")
        ));
    }

    #[test]
    fn refusals_match_the_helm_rules() {
        let cr = &sample("milvus_cluster_mixcoord.yaml")[0];
        let d = cluster_of("my-release", 1);
        let refused = |t: &[&str]| matches!(plan_for(cr, &d, &[], t), Err(Rejection::Refused(_)));
        let invalid = |t: &[&str]| matches!(plan_for(cr, &d, &[], t), Err(Rejection::Invalid(_)));
        assert!(refused(&["mixCoord=2"]));
        assert!(refused(&["mixCoordinator=2"]));
        assert!(refused(&["queryNode=0"]));
        assert!(invalid(&["queryNode=-3"]));
        assert!(invalid(&["indexNode=2"]));
        assert!(invalid(&["etcd=2"]));
        assert!(invalid(&["proxy=1", "PROXY=2"]));
        assert!(invalid(&["queryNode=+2147483647"]));
        let standalone = &sample("milvus_default.yaml")[0];
        assert!(matches!(
            plan_for(standalone, &[], &[], &["queryNode=2"]),
            Err(Rejection::Refused(m)) if m.contains("standalone")
        ));

        let p = plan_for(cr, &d, &[], &["querynode=+2", "dataNode=1"]).expect("plan");
        assert_eq!(
            (p.changes[0].target, p.changes[0].steps.iter().collect::<Vec<_>>()),
            (3, vec![3])
        );
        assert_eq!(p.changes[0].deployments, ["my-release-milvus-querynode-0"]);
        assert!(p.changes[1].is_noop());
        assert_eq!(
            p.command.text(),
            r#"kubectl patch milvus my-release -n milvus --type merge -p '{"spec":{"components":{"queryNode":{"replicas":3},"dataNode":{"replicas":1}}}}'"#
        );
    }

    #[test]
    fn hpa_sample_refuses_minus_one_and_hpa_targets() {
        let crs = sample("hpa.yaml");
        let (proxy_cr, grouped) = (&crs[0], &crs[1]);
        let d = cluster_of("my-release", 1);
        assert_eq!(proxy_cr.desired("proxy", None), Replicas::Unset);
        assert!(matches!(
            plan_for(proxy_cr, &d, &[], &["proxy=3"]),
            Err(Rejection::Refused(m)) if m.contains("-1")
        ));
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "grouped-milvus-datanode-zone-a"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "grouped-milvus-datanode-zone-a"}, "minReplicas": 1, "maxReplicas": 10}
        }))
        .expect("hpa");
        let dn = made("grouped", "datanode", "-zone-a", 2, &[(GROUP_LABEL, "zone-a")]);
        assert!(matches!(
            plan_for(grouped, std::slice::from_ref(&dn), std::slice::from_ref(&hpa), &["dataNode=3"]),
            Err(Rejection::Refused(m)) if m.contains("HorizontalPodAutoscaler grouped-milvus-datanode-zone-a")
        ));
        let s = status(
            grouped,
            &OperatorLive {
                deployments: &[dn],
                hpas: &[hpa],
                pods: &LivePods::default(),
                dependencies: &[],
            },
            "2026-01-11T13:00:00Z".parse().expect("time"),
        );
        assert_eq!(s.components[0].hpa.as_ref().map(|h| h.max), Some(10));
        assert_eq!(s.components[0].deployment_group.as_deref(), Some("zone-a"));
        assert!(s.components[0].notes.is_empty(), "{:?}", s.components[0].notes);
    }

    #[test]
    fn patches_test_what_was_read_and_another_writer_is_named() {
        let cr = &sample("milvus_cluster_mixcoord.yaml")[0];
        let d = cluster_of("my-release", 1);
        let p = plan_for(cr, &d, &[], &["mixcoord=1", "queryNode=2"]);
        assert!(p.is_err(), "a coordinator is refused even at its count");
        let p = plan_for(cr, &d, &[], &["queryNode=2"]).expect("plan");
        // queryNode is absent from the spec: added, guarded by resourceVersion.
        assert_eq!(
            json_patch(cr, &[Write::of(&p.changes[0], 2)]).expect("patch"),
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "100"},
                {"op": "add", "path": "/spec/components/queryNode", "value": {}},
                {"op": "add", "path": "/spec/components/queryNode/replicas", "value": 2},
            ])
        );
        // mixCoord is present: tested and replaced.
        let w = Write {
            spec_key: "mixCoord".into(),
            group: None,
            replicas: 1,
        };
        assert_eq!(
            json_patch(cr, &[w]).expect("patch"),
            json!([
                {"op": "test", "path": "/spec/components/mixCoord/replicas", "value": 1},
                {"op": "replace", "path": "/spec/components/mixCoord/replicas", "value": 1},
            ])
        );

        let mut expected = vec![Expected::read(cr, &p_change("queryNode"))];
        assert_eq!(foreign_change(cr, &expected), None);
        expected[0].value = Some(json!(2));
        assert_eq!(
            foreign_change(cr, &expected).as_deref(),
            Some(
                "another writer changed spec.components.queryNode.replicas of Milvus my-release to unset (this run expected 2)"
            )
        );
    }

    fn p_change(component: &str) -> ComponentChange {
        ComponentChange {
            component: component.into(),
            label: String::new(),
            group: None,
            deployments: vec![],
            current: 1,
            values: Replicas::Count(1),
            target: 1,
            steps: plan::steps(1, 1),
            hpa: None,
        }
    }

    #[test]
    fn dependencies_are_the_operators_helm_releases() {
        assert!(is_dependency_of("my-release", "my-release-etcd", "etcd"));
        assert!(is_dependency_of("my-release", "my-release-pulsar", "pulsar"));
        assert!(!is_dependency_of("my-release", "my-release-etcd", "milvus"));
        assert!(!is_dependency_of("my-release", "my-release-foo", "foo"));
        assert!(!is_dependency_of("my", "my-release-etcd", "etcd"));
    }

    #[test]
    fn user_names_take_spec_keys_values_keys_and_labels() {
        let key = |n: &str| by_user_name(n).and_then(spec_key);
        assert_eq!(key("mixCoord"), Some("mixCoord"));
        assert_eq!(key("mixCoordinator"), Some("mixCoord"));
        assert_eq!(key("QUERYNODE"), Some("queryNode"));
        assert_eq!(key("attu"), None);
    }
}
