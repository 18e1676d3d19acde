//! What a scale change would do, for every shape: the safety rules (one
//! loop, [`plan_shape`], asking the [`Shape`] what differs), the step
//! sequence, the predicted pods and the equivalent command. Pure: `plan`
//! prints it, `scale` executes it.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::core::bounds::{self, Bounds, HpaChange, Setting};
use crate::core::chart::Chart;
use crate::core::components::{self, Component, Role};
use crate::core::manifest::ManifestObject;
use crate::core::pods::{PodRow, pod_row};
use crate::core::release::Release;
use crate::core::scale_in::{self, ConfigLayers, ControllerRules, GraceCheck};
use crate::core::status::{LiveWorkload, ManagedBy, component_workloads, desired_replicas, owner_workload};
use crate::core::values::{self, Replicas};

pub use crate::core::request::{MAX_REPLICAS, Rejection, Request, Target, parse_request, parse_target};

/// The inputs a plan is made from.
pub struct PlanInput<'a> {
    pub release: &'a Release,
    /// Where the release lives (the record's own `namespace` field may be stale).
    pub namespace: &'a str,
    pub objects: &'a [ManifestObject],
    pub workloads: &'a [LiveWorkload],
    pub hpas: &'a [HorizontalPodAutoscaler],
    pub pods: &'a [Pod],
    pub force: bool,
    pub now: jiff::Timestamp,
    pub scale_in: &'a ScaleInInput,
}

/// What scale-in planning needs beyond the release and its objects.
#[derive(Debug, Clone)]
pub struct ScaleInInput {
    /// The server's ReplicaSet scale-down rules.
    pub rules: ControllerRules,
    /// Each live Deployment's `terminationGracePeriodSeconds`, where set.
    pub grace: BTreeMap<String, i64>,
    /// Pods the user wants removed first (`--remove`).
    pub remove: Vec<String>,
    /// `--accept-short-grace`.
    pub accept_short_grace: bool,
}

/// One component's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentChange {
    /// Values key (`queryNode`), or the `Milvus` resource's spec key.
    pub component: String,
    pub label: String,
    /// The operator's deployment group (`spec.components.<c>.groups[].name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Every Deployment the value drives (one per resource group).
    pub deployments: Vec<String>,
    /// What runs now (the live `spec.replicas`).
    pub current: u32,
    /// What the values say now.
    pub values: Replicas,
    pub target: u32,
    /// Replica counts to pass through: `[3]` out, `[2, 1]` in.
    pub steps: Steps,
    /// A change of the bounds of the HPA managing the component, instead of
    /// its replicas (which then say where the HPA will hold them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaChange>,
}

impl ComponentChange {
    /// True when nothing needs writing, not even Helm's record.
    pub fn is_noop(&self) -> bool {
        match &self.hpa {
            Some(h) => {
                h.current == h.target && h.values.is_none_or(|v| v == h.target) && h.unsets_replicas.is_none()
            }
            None => self.current == self.target && self.values == Replicas::Count(self.target),
        }
    }
    /// What the change sets when it is done.
    pub fn target_setting(&self) -> Setting {
        match &self.hpa {
            Some(h) => Setting::Bounds(h.target),
            None => Setting::Replicas(self.target),
        }
    }
    /// The Helm values a setting of this change writes.
    pub fn values_at(&self, at: Setting) -> Vec<(String, u32)> {
        match at {
            Setting::Replicas(n) => vec![(format!("{}.replicas", self.component), n)],
            Setting::Bounds(b) => bounds::values_paths(&self.component, b).to_vec(),
        }
    }
}

/// How a pod fares in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PodFate {
    Stays,
    New,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictedPod {
    #[serde(flatten)]
    pub row: PodRow,
    pub fate: PodFate,
    /// For removed pods: the step that removes it (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub managed_by: ManagedBy,
    /// The Helm release, or the `Milvus` resource's name.
    pub release: String,
    pub namespace: String,
    /// Helm only: the release's chart version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub chart_version: String,
    pub changes: Vec<ComponentChange>,
    pub warnings: Vec<String>,
    /// Per component scaled in: the pods' grace period against Milvus's
    /// graceful-stop timeout.
    pub grace: Vec<GraceCheck>,
    /// True when the removed pods are chosen and marked (the server honours
    /// pod-deletion-cost); false when they are the controller's, predicted.
    pub victims_chosen: bool,
    pub pods: Vec<PredictedPod>,
    /// New pods past the first few of each Deployment, counted, not listed:
    /// the plan's size must not grow with the target.
    #[serde(skip_serializing_if = "is_zero")]
    pub new_pods_not_shown: u64,
    /// The command that writes the targets at once.
    #[serde(flatten)]
    pub command: Command,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// New pods listed per Deployment in a plan; the rest are counted.
pub const NEW_POD_ROWS: u32 = 10;

impl Plan {
    pub fn nothing_to_do(&self) -> bool {
        self.changes.iter().all(ComponentChange::is_noop)
    }
}

/// The requests of a run that repairs a killed one: the user's own, plus
/// every worker whose replicas the killed run's pending revision changed
/// (against the deployed one), at that run's target, so the repair carries
/// the whole job on instead of recording the deployed values for
/// components it was not told about.
pub fn carry_on(pending: &Release, deployed: &Release, explicit: &[Request]) -> Vec<Request> {
    let (wanted, was) = (pending.effective_values(), deployed.effective_values());
    let mut requests = explicit.to_vec();
    for component in components::CATALOGUE.iter().filter(|c| c.role == Role::Worker) {
        let named = explicit
            .iter()
            .any(|r| components::by_user_name(&r.component) == Some(component));
        let target = desired_replicas(&wanted, component).count();
        if let Some(n) = target
            && !named
            && target != desired_replicas(&was, component).count()
        {
            requests.push(Request {
                component: component.key.to_string(),
                target: Target::Absolute(n),
            });
        }
        // A killed bounds change: its HPA's bounds, where the chart renders one.
        let hpa_on = values::truthy(values::get(&wanted, &format!("{}.hpa.enabled", component.key)));
        let bounds = Bounds::from_values(&wanted, component.key);
        if let Some(b) = bounds
            && hpa_on
            && !named
            && bounds != Bounds::from_values(&was, component.key)
        {
            requests.push(Request {
                component: component.key.to_string(),
                target: Target::Bounds {
                    min: Some(b.min),
                    max: Some(b.max),
                },
            });
        }
    }
    requests
}

/// The components of this release that `scale` accepts, for messages.
pub fn scalable_components(chart: &Chart, objects: &[ManifestObject]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = component_workloads(chart, objects)
        .iter()
        .filter(|c| c.component.role == Role::Worker)
        .map(|c| c.component.key)
        .collect();
    keys.dedup();
    keys
}

/// What the one planning loop asks of an instance: where its components
/// are, where their desired counts live, how its messages name it, and
/// its equivalent command. A chart (a Helm release, or an Argo CD-rendered
/// instance) and a `Milvus` resource answer differently; the rules are the
/// loop's.
pub trait Shape {
    fn managed_by(&self) -> ManagedBy;
    fn name(&self) -> &str;
    fn namespace(&self) -> &str;
    /// The chart version, for charts.
    fn chart_version(&self) -> &str {
        ""
    }
    /// `release my-release`, `Milvus my-milvus`.
    fn subject(&self) -> String;
    /// Why a standalone instance has nothing to scale, if it is one.
    fn standalone(&self) -> Option<String>;
    /// The component a name as typed means.
    fn component(&self, typed: &str) -> Option<&'static Component>;
    /// How this shape calls a component (`mixCoordinator`, `mixCoord`).
    fn key(&self, component: &'static Component) -> &'static str;
    /// The components `scale` accepts, for messages.
    fn scalable(&self) -> Vec<&'static str>;
    /// Why a component it does not run cannot be scaled.
    fn not_enabled(&self, key: &str, scalable: &str) -> String;
    /// What a request of `component` changes: one unit, or one per
    /// deployment group; refusals only this shape knows (a Deployment
    /// missing, a rollout under way …) are made here.
    fn units<'s>(
        &'s self,
        component: &'static Component,
        target: Target,
        hpas: &'s [HorizontalPodAutoscaler],
    ) -> Result<Vec<Unit<'s>>, Rejection>;
    /// The user's Milvus configuration and the Milvus version, for the
    /// grace check.
    fn milvus_config(&self) -> (&ConfigLayers, String);
    /// How a grace shortfall is told for this shape.
    fn grace_warning(&self, check: &GraceCheck) -> String;
    /// The workloads pods are owned through.
    fn owners(&self) -> Vec<ManifestObject>;
    /// The ReplicaSet rules planning predicts by (a shape whose pods
    /// `scale` does not mark is predicted by the classic ranking).
    fn rules(&self, server: ControllerRules) -> ControllerRules {
        server
    }
    /// What writes the targets at once: `helm upgrade …`, `kubectl patch …`.
    fn command(&self, changes: &[ComponentChange]) -> Command;
}

/// One unit a request changes, as its shape found it.
pub struct Unit<'a> {
    pub candidate: Candidate<'a>,
    /// The HPA managing it, if any.
    pub hpa: Option<&'a HorizontalPodAutoscaler>,
    /// The bounds the instance's record gives that HPA (Helm values).
    pub recorded_bounds: Option<Bounds>,
}

/// The command that does what a plan does, at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// `helm upgrade …` (or, with no Helm record, why there is none).
    HelmCommand(String),
    /// `kubectl patch milvus …` (or `kubectl patch hpa …`).
    KubectlCommand(String),
}

impl Command {
    pub fn text(&self) -> &str {
        match self {
            Command::HelmCommand(t) | Command::KubectlCommand(t) => t,
        }
    }
}

/// What planning reads besides the shape: the live HPAs and pods, and the
/// flags.
pub struct Common<'a> {
    pub hpas: &'a [HorizontalPodAutoscaler],
    pub pods: &'a [Pod],
    pub force: bool,
    pub now: jiff::Timestamp,
    pub scale_in: &'a ScaleInInput,
}

/// Checks every request against the rules and computes the plan of a Helm
/// release's deployed record.
pub fn plan(input: &PlanInput<'_>, requests: &[Request]) -> Result<Plan, Rejection> {
    let shape = ChartShape {
        chart: Chart::of_release(input.release),
        namespace: input.namespace,
        objects: input.objects,
        workloads: input.workloads,
        managed_by: ManagedBy::Helm,
        rendered_by: None,
    };
    plan_shape(&shape, &input.common(), requests)
}

impl PlanInput<'_> {
    fn common(&self) -> Common<'_> {
        Common {
            hpas: self.hpas,
            pods: self.pods,
            force: self.force,
            now: self.now,
            scale_in: self.scale_in,
        }
    }
}

/// The one planning loop: every rule, for every shape.
pub fn plan_shape(shape: &dyn Shape, input: &Common<'_>, requests: &[Request]) -> Result<Plan, Rejection> {
    let scalable = shape.scalable();
    let scalable = if scalable.is_empty() {
        "none".to_string()
    } else {
        scalable.join(", ")
    };
    if let Some(why) = shape.standalone() {
        return Err(Rejection::Refused(why));
    }
    let (layers, version) = shape.milvus_config();
    let mut changes: Vec<ComponentChange> = Vec::new();
    let mut warnings = Vec::new();
    let mut grace = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        let Some(component) = shape.component(&req.component) else {
            return Err(Rejection::Invalid(format!(
                "unknown component {:?}; scalable components of {}: {scalable}",
                req.component,
                shape.subject()
            )));
        };
        let key = shape.key(component);
        if requests[..i]
            .iter()
            .any(|r| shape.component(&r.component) == Some(component))
        {
            return Err(Rejection::Invalid(format!("{key} is given twice")));
        }
        check_role(component, key)?;
        let units = shape.units(component, req.target, input.hpas)?;
        if units.is_empty() {
            return Err(Rejection::Invalid(shape.not_enabled(key, &scalable)));
        }
        let first = changes.len();
        for unit in units {
            let c = &unit.candidate;
            let change = match (unit.hpa, req.target) {
                (Some(h), Target::Bounds { min, max }) => {
                    bounds_change(c, h, (min, max), unit.recorded_bounds, &mut warnings)?
                }
                (Some(h), _) => {
                    let shown = match c.group {
                        Some(g) => format!("{key}/{g}"),
                        None => key.to_string(),
                    };
                    return Err(Rejection::Refused(format!(
                        "{shown} is managed by HorizontalPodAutoscaler {} ({} replicas): change its bounds instead, e.g. kubectl milvus scale {} {key} --min N --max M -n {}",
                        h.metadata.name.clone().unwrap_or_default(),
                        Bounds::of(h),
                        shape.name(),
                        shape.namespace(),
                    )));
                }
                (None, target) => component_change(c, target, input.force, &mut warnings)?,
            };
            changes.push(change);
        }
        // The shortest grace of its Deployments is what a step risks.
        let mine = &changes[first..];
        if mine.iter().any(|c| c.hpa.is_none() && c.target < c.current) {
            let pod_grace = mine
                .iter()
                .flat_map(|c| c.deployments.iter())
                .filter_map(|d| input.scale_in.grace.get(d).copied())
                .min();
            let check = scale_in::grace_check(key, pod_grace, layers, &version);
            if check.short() {
                warnings.push(shape.grace_warning(&check));
            }
            if check.needs_flag && !input.scale_in.accept_short_grace {
                return Err(Rejection::Refused(scale_in::grace_refusal(&check)));
            }
            grace.push(check);
        }
    }

    let owners = shape.owners();
    check_removals(&owners, input, &changes, &mut warnings)?;
    let rules = shape.rules(input.scale_in.rules);
    let (pods, new_pods_not_shown) = predicted_pods(
        &owners,
        input.pods,
        input.now,
        &changes,
        rules,
        &input.scale_in.remove,
    );
    Ok(Plan {
        managed_by: shape.managed_by(),
        release: shape.name().to_string(),
        namespace: shape.namespace().to_string(),
        chart_version: shape.chart_version().to_string(),
        command: shape.command(&changes),
        changes,
        warnings,
        grace,
        victims_chosen: rules.deletion_cost,
        pods,
        new_pods_not_shown,
    })
}

/// A chart's instance as planning sees it: a Helm release's deployed
/// record, or an Argo CD-rendered instance's live objects.
pub struct ChartShape<'a> {
    pub chart: Chart,
    pub namespace: &'a str,
    /// Its objects: the record's manifest, or the live objects.
    pub objects: &'a [ManifestObject],
    pub workloads: &'a [LiveWorkload],
    pub managed_by: ManagedBy,
    /// Who renders it, when no Helm record exists (no `helm upgrade` then).
    pub rendered_by: Option<String>,
}

impl Shape for ChartShape<'_> {
    fn managed_by(&self) -> ManagedBy {
        self.managed_by
    }
    fn name(&self) -> &str {
        &self.chart.name
    }
    fn namespace(&self) -> &str {
        self.namespace
    }
    fn chart_version(&self) -> &str {
        &self.chart.chart_version
    }
    fn subject(&self) -> String {
        format!("release {}", self.chart.name)
    }
    fn standalone(&self) -> Option<String> {
        (values::mode(&self.chart.values) == "standalone").then(|| {
            format!(
                "release {} runs Milvus standalone (a single pod); only cluster mode has worker components to scale",
                self.chart.name
            )
        })
    }
    fn component(&self, typed: &str) -> Option<&'static Component> {
        components::by_user_name(typed)
    }
    fn key(&self, component: &'static Component) -> &'static str {
        component.key
    }
    fn scalable(&self) -> Vec<&'static str> {
        scalable_components(&self.chart, self.objects)
    }
    fn not_enabled(&self, key: &str, scalable: &str) -> String {
        format!(
            "{key} is not enabled in release {}; scalable components: {scalable}",
            self.chart.name
        )
    }
    fn units<'s>(
        &'s self,
        component: &'static Component,
        target: Target,
        hpas: &'s [HorizontalPodAutoscaler],
    ) -> Result<Vec<Unit<'s>>, Rejection> {
        let values = &self.chart.values;
        let deployments: Vec<&ManifestObject> = component_workloads(&self.chart, self.objects)
            .into_iter()
            .filter(|w| w.component == component && w.object.kind == "Deployment")
            .map(|w| w.object)
            .collect();
        if deployments.is_empty() {
            return Ok(Vec::new());
        }
        let live: Vec<&LiveWorkload> = deployments
            .iter()
            .filter_map(|d| {
                self.workloads
                    .iter()
                    .find(|w| w.kind == "Deployment" && w.name == d.name)
            })
            .collect();
        if live.len() != deployments.len() {
            return Err(Rejection::Refused(format!(
                "{}'s Deployment is missing from the cluster; repair the release with helm first",
                component.key
            )));
        }
        let hpa = managing_hpa(hpas, deployments.iter().map(|d| d.name.as_str()));
        if let (Some(h), Target::Bounds { .. }) = (hpa, target) {
            let name = h.metadata.name.clone().unwrap_or_default();
            // Only the chart's own HPA has values to keep in step.
            if !self
                .objects
                .iter()
                .any(|o| o.kind == "HorizontalPodAutoscaler" && o.name == name)
            {
                return Err(Rejection::Refused(format!(
                    "HorizontalPodAutoscaler {name} managing {} is not part of release {} (not in its manifest), so there are no values to keep in step; change it with kubectl patch hpa {name} -n {}",
                    component.key, self.chart.name, self.namespace
                )));
            }
        }
        let groups = values::get(values, "replicaResourceGroups")
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len);
        Ok(vec![Unit {
            candidate: Candidate {
                component,
                key: component.key,
                group: None,
                deployments: deployments.iter().map(|d| d.name.clone()).collect(),
                live,
                desired: desired_replicas(values, component),
                record: "values",
                outside: "Helm",
                streaming_groups: groups,
            },
            hpa,
            recorded_bounds: Bounds::from_values(values, component.key),
        }])
    }
    fn milvus_config(&self) -> (&ConfigLayers, String) {
        (&self.chart.config, self.chart.app_version.clone())
    }
    fn grace_warning(&self, check: &GraceCheck) -> String {
        scale_in::grace_warning(check, &self.chart.name)
    }
    fn owners(&self) -> Vec<ManifestObject> {
        self.objects.to_vec()
    }
    fn command(&self, changes: &[ComponentChange]) -> Command {
        Command::HelmCommand(match &self.rendered_by {
            Some(who) => format!("none: no Helm record ({who} renders it)"),
            None => helm_command(&self.chart, self.namespace, changes),
        })
    }
}

/// One component (or deployment group) a request names, as found by either
/// manager's lookup: what the rules below need.
pub struct Candidate<'a> {
    pub component: &'static Component,
    /// The name to print: the values key, or the resource's spec key.
    pub key: &'a str,
    pub group: Option<&'a str>,
    pub deployments: Vec<String>,
    /// The live Deployments, one per entry of `deployments`.
    pub live: Vec<&'a LiveWorkload>,
    pub desired: Replicas,
    /// Where the desired count lives, for messages: `values` or `spec`.
    pub record: &'a str,
    /// Who a drift bypassed, for messages: `Helm` or `the Milvus resource`.
    pub outside: &'a str,
    /// Resource groups whose replicas streaming nodes carry (Helm's
    /// `replicaResourceGroups`).
    pub streaming_groups: usize,
}

/// The rules every manager shares: the target from what runs, below zero,
/// the largest count a Deployment holds, zero without --force, drift and
/// scale-in warnings, and the steps.
pub fn component_change(
    c: &Candidate<'_>,
    target: Target,
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<ComponentChange, Rejection> {
    let name = match c.group {
        Some(g) => format!("{}/{g}", c.key),
        None => c.key.to_string(),
    };
    // With resource groups every group gets the value; plan from the largest.
    let current = c.live.iter().map(|w| w.replicas.max(0) as u32).max().unwrap_or(0);
    let target = match target {
        Target::Absolute(n) => i64::from(n),
        Target::Relative(d) => i64::from(current) + d,
        Target::Bounds { .. } => {
            return Err(Rejection::Refused(format!(
                "{name} is not managed by a HorizontalPodAutoscaler: it has no bounds to change; set its replicas with {name}=N"
            )));
        }
    };
    if target < 0 {
        return Err(Rejection::Invalid(format!(
            "{name} would go below zero ({current} {:+})",
            target - i64::from(current)
        )));
    }
    let target = u32::try_from(target)
        .ok()
        .filter(|t| *t <= MAX_REPLICAS)
        .ok_or_else(|| {
            Rejection::Invalid(format!(
                "{name} would reach {target} replicas; a Deployment holds at most {MAX_REPLICAS}"
            ))
        })?;
    if target == 0 && !force {
        return Err(Rejection::Refused(format!(
            "scaling {name} to 0 stops it serving; pass --force if that is what you want"
        )));
    }
    if let Replicas::Count(v) = c.desired
        && v != current
    {
        warnings.push(format!(
            "{name}: {} say {v} but {current} run (scaled outside {}); the plan starts from what runs",
            c.record, c.outside
        ));
    }
    if c.component.key == "streamingNode" && target < current {
        let groups = c.streaming_groups;
        warnings.push(if groups as u32 > target {
            format!(
                "{name}: {target} is fewer than the {groups} replicas the resource groups load; collections would lose replicas"
            )
        } else {
            format!(
                "{name}: keep at least as many streaming nodes as the largest collection replica number in use; {target} must cover it"
            )
        });
    }
    if target < current {
        warnings.push(format!(
            "{name}: scale-in removes one pod at a time and waits for readiness; Milvus rebalances segments after each step"
        ));
    }
    Ok(ComponentChange {
        component: c.key.to_string(),
        label: c.component.label.to_string(),
        group: c.group.map(str::to_string),
        deployments: c.deployments.clone(),
        current,
        values: c.desired.clone(),
        target,
        steps: steps(current, target),
        hpa: None,
    })
}

/// The change of `hpa`'s bounds for a component (or deployment group) it
/// manages; `values` are the bounds Helm's values give, where they exist.
pub fn bounds_change(
    c: &Candidate<'_>,
    hpa: &HorizontalPodAutoscaler,
    (min, max): (Option<u32>, Option<u32>),
    values: Option<Bounds>,
    warnings: &mut Vec<String>,
) -> Result<ComponentChange, Rejection> {
    let name = match c.group {
        Some(g) => format!("{}/{g}", c.key),
        None => c.key.to_string(),
    };
    let hpa_name = hpa.metadata.name.clone().unwrap_or_default();
    let current = Bounds::of(hpa);
    let target = Bounds {
        min: min.unwrap_or(current.min),
        max: max.unwrap_or(current.max),
    };
    if target.min > target.max {
        return Err(Rejection::Invalid(format!(
            "{name}: minReplicas {} would be above maxReplicas {} of HorizontalPodAutoscaler {hpa_name}; give both --min and --max",
            target.min, target.max
        )));
    }
    if let Some(v) = values
        && v != current
    {
        warnings.push(format!(
            "{name}: {} say HPA {v} but HorizontalPodAutoscaler {hpa_name} has {current} (changed outside {}); the plan starts from the live HPA",
            c.record, c.outside
        ));
    }
    // Values that keep their bounds in step (Helm's) and also fix a count:
    // the chart renders both, and the revision this change writes sets the
    // count to -1.
    let unsets_replicas = match (&values, &c.desired) {
        (Some(_), Replicas::Count(n)) => {
            warnings.push(format!(
                "{name}: values also fix {key}.replicas={n} under HorizontalPodAutoscaler {hpa_name}; this revision sets {key}.replicas=-1, so the next helm upgrade leaves the count to the HPA (Helm 4's server-side upgrade would otherwise fail on the count the HPA set, Helm 3 would reset it)",
                key = c.key
            ));
            Some(*n)
        }
        _ => None,
    };
    let running = c.live.iter().map(|w| w.replicas.max(0) as u32).max().unwrap_or(0);
    let lands = target.clamp(running);
    if lands < running {
        warnings.push(format!(
            "{name}: maxReplicas {} is below the {running} replicas running; it is lowered one replica at a time, each step waited for (the HPA alone would remove them all at once)",
            target.max
        ));
    }
    Ok(ComponentChange {
        component: c.key.to_string(),
        label: c.component.label.to_string(),
        group: c.group.map(str::to_string),
        deployments: c.deployments.clone(),
        current: running,
        values: c.desired.clone(),
        target: lands,
        steps: steps(running, lands),
        hpa: Some(HpaChange {
            name: hpa_name,
            current,
            values,
            target,
            unsets_replicas,
        }),
    })
}

/// Workers only. `name` is the component as the instance's manager calls it.
pub fn check_role(component: &Component, name: &str) -> Result<(), Rejection> {
    match component.role {
        Role::Worker => Ok(()),
        Role::Coordinator => Err(Rejection::Refused(format!(
            "{name} is a coordinator: Milvus adds worker nodes only (proxy, queryNode, dataNode, indexNode, streamingNode); coordinators are not scaled out"
        ))),
        Role::Standalone => Err(Rejection::Refused(
            "standalone is a single-pod Milvus; it has no workers to scale".to_string(),
        )),
        Role::Auxiliary => Err(Rejection::Refused(format!(
            "{name} is not a Milvus worker; `scale` changes worker components only"
        ))),
    }
}

/// The HPA scaling one of `deployments`, if any.
pub fn managing_hpa<'a, 'n>(
    hpas: &'a [HorizontalPodAutoscaler],
    deployments: impl IntoIterator<Item = &'n str> + Clone,
) -> Option<&'a HorizontalPodAutoscaler> {
    hpas.iter().find(|h| {
        h.spec.as_ref().is_some_and(|s| {
            s.scale_target_ref.kind == "Deployment"
                && deployments
                    .clone()
                    .into_iter()
                    .any(|d| d == s.scale_target_ref.name)
        })
    })
}

/// Out in one step; in one replica at a time.
pub fn steps(current: u32, target: u32) -> Steps {
    Steps {
        from: current,
        to: target,
    }
}

/// The replica counts a change passes through. Lazy, so neither memory nor
/// time depends on how far apart the counts are until it is stepped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    from: u32,
    to: u32,
}

impl Steps {
    pub fn iter(&self) -> impl Iterator<Item = u32> + use<> {
        let (from, to) = (self.from, self.to);
        let out = (to > from).then_some(to).into_iter();
        let in_ = (to < from).then(|| (to..from).rev()).into_iter().flatten();
        out.chain(in_)
    }
    pub fn len(&self) -> u32 {
        match self.to.cmp(&self.from) {
            std::cmp::Ordering::Greater => 1,
            _ => self.from - self.to,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.from == self.to
    }
}

impl Serialize for Steps {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The equivalent Helm command, pinned to the release's chart version and
/// keeping every other value.
pub fn helm_command(chart: &Chart, namespace: &str, changes: &[ComponentChange]) -> String {
    let mut cmd = format!(
        "helm upgrade {} milvus/milvus --namespace {} --version {} --reset-then-reuse-values",
        chart.name, namespace, chart.chart_version
    );
    for c in changes {
        for (path, n) in c.values_at(c.target_setting()) {
            cmd.push_str(&format!(" --set {path}={n}"));
        }
        if c.hpa.as_ref().is_some_and(|h| h.unsets_replicas.is_some()) {
            cmd.push_str(&format!(" --set {}.replicas=-1", c.component));
        }
    }
    cmd
}

/// `--remove` names pods of Deployments this plan scales in, no more of
/// them than are removed; on a server that ignores pod-deletion-cost it
/// cannot be honoured, which is said.
fn check_removals(
    objects: &[ManifestObject],
    input: &Common<'_>,
    changes: &[ComponentChange],
    warnings: &mut Vec<String>,
) -> Result<(), Rejection> {
    for name in &input.scale_in.remove {
        let pod = input
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
        let change = pod.and_then(|p| {
            let owner = owner_workload(objects, p)?;
            changes
                .iter()
                .find(|c| c.target < c.current && c.deployments.contains(&owner.name))
        });
        let Some(change) = change else {
            return Err(Rejection::Invalid(format!(
                "--remove {name}: not a pod of a component this change scales in"
            )));
        };
        let named = input
            .scale_in
            .remove
            .iter()
            .filter(|n| {
                input
                    .pods
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(n.as_str()))
                    .and_then(|p| owner_workload(objects, p))
                    .is_some_and(|o| change.deployments.contains(&o.name))
            })
            .count() as u32;
        if named > change.current - change.target {
            return Err(Rejection::Invalid(format!(
                "--remove names {named} pods of {} but scaling {}→{} removes only {}",
                change.component,
                change.current,
                change.target,
                change.current - change.target
            )));
        }
    }
    if !input.scale_in.remove.is_empty() && !input.scale_in.rules.deletion_cost {
        warnings.push(
            "--remove needs a server that honours controller.kubernetes.io/pod-deletion-cost (Kubernetes v1.22+); this one does not, so the ReplicaSet controller chooses: the pods marked removed below are its predicted choice, and `scale` refuses --remove here".to_string(),
        );
    }
    Ok(())
}

/// The pods after the change: who stays, who is removed at which step, and
/// the first [`NEW_POD_ROWS`] new ones of each Deployment (plus how many
/// more there are).
/// `objects` names the Deployments pods are owned through.
/// `rules` are the server's ReplicaSet rules; with deletion cost, the pods
/// `scale` will mark (`remove` first) are chosen rather than predicted.
pub fn predicted_pods(
    objects: &[ManifestObject],
    all_pods: &[Pod],
    now: jiff::Timestamp,
    changes: &[ComponentChange],
    rules: ControllerRules,
    remove: &[String],
) -> (Vec<PredictedPod>, u64) {
    let mut out = Vec::new();
    let mut not_shown = 0u64;
    for change in changes {
        for deployment in &change.deployments {
            // The controller ranks active pods only (`FilterActivePods`).
            let pods: Vec<&Pod> = all_pods
                .iter()
                .filter(|p| scale_in::is_active(p))
                .filter(|p| {
                    owner_workload(objects, p)
                        .is_some_and(|w| w.kind == "Deployment" && &w.name == deployment)
                })
                .collect();
            let live = pods.len() as u32;
            let removed = live.saturating_sub(change.target) as usize;
            let victims = if rules.deletion_cost {
                scale_in::chosen_victims(&pods, removed, remove)
            } else {
                scale_in::predicted_victims(&pods, removed, rules, now)
            };
            let step = |p: &Pod| victims.iter().position(|v| std::ptr::eq(*v, p)).map(|i| i + 1);
            let mut rows: Vec<PredictedPod> = pods
                .iter()
                .map(|p| PredictedPod {
                    row: pod_row(p, now),
                    fate: if step(p).is_some() {
                        PodFate::Removed
                    } else {
                        PodFate::Stays
                    },
                    step: step(p),
                })
                .collect();
            let hash = pods
                .iter()
                .find_map(|p| p.metadata.labels.as_ref()?.get("pod-template-hash").cloned())
                .unwrap_or_else(|| "<hash>".to_string());
            let new = change.target.saturating_sub(live);
            not_shown += u64::from(new.saturating_sub(NEW_POD_ROWS));
            for _ in 0..new.min(NEW_POD_ROWS) {
                rows.push(PredictedPod {
                    row: PodRow {
                        name: format!("{deployment}-{hash}-<new>"),
                        ready: "0/1".to_string(),
                        status: "Pending".to_string(),
                        restarts: "0".to_string(),
                        age: "-".to_string(),
                        ip: "<none>".to_string(),
                        node: "<none>".to_string(),
                        nominated_node: "<none>".to_string(),
                        readiness_gates: "<none>".to_string(),
                    },
                    fate: PodFate::New,
                    step: None,
                });
            }
            rows.sort_by(|a, b| a.row.name.cmp(&b.row.name));
            out.extend(rows);
        }
    }
    (out, not_shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{fixture_release as release, ready_deployment as live};

    /// Values under an HPA that also fix a count: a bounds change sets the
    /// count to -1 in the same revision (and says so), so the next `helm
    /// upgrade` leaves it to the HPA.
    #[test]
    fn a_bounds_change_unsets_a_fixed_count_in_the_values() {
        let mut r = release();
        let rendered = format!(
            "{}/tests/fixtures/rendered/d-querynode-hpa.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        r.set_manifest(std::fs::read_to_string(rendered).expect("fixture"));
        let mut config = r.config().clone();
        values::set(&mut config, "queryNode.hpa.enabled", serde_json::json!(true));
        values::set(&mut config, "queryNode.replicas", serde_json::json!(1));
        r.set_config(config);
        let objects = crate::core::manifest::parse(r.manifest()).expect("manifest");
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "my-release-milvus-querynode-hpa"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "my-release-milvus-querynode"}, "minReplicas": 1, "maxReplicas": 5}
        }))
        .expect("hpa");
        let workloads = [live("my-release-milvus-querynode", 3)];
        let input = PlanInput {
            release: &r,
            namespace: "milvus",
            objects: &objects,
            workloads: &workloads,
            hpas: std::slice::from_ref(&hpa),
            pods: &[],
            force: false,
            now: "2026-01-11T13:00:00Z".parse().expect("time"),
            scale_in: &v1_20(),
        };
        let request = Request {
            component: "queryNode".into(),
            target: Target::Bounds {
                min: Some(2),
                max: Some(5),
            },
        };
        let p = plan(&input, &[request]).expect("plan");
        let change = &p.changes[0];
        assert_eq!(change.hpa.as_ref().and_then(|h| h.unsets_replicas), Some(1));
        assert!(!change.is_noop());
        assert!(
            p.command.text().ends_with(
                "--set queryNode.hpa.minReplicas=2 --set queryNode.hpa.maxReplicas=5 --set queryNode.replicas=-1"
            ),
            "{}",
            p.command.text()
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("this revision sets queryNode.replicas=-1")),
            "{:?}",
            p.warnings
        );

        // What that revision's manifest holds: the chart's rendering of
        // `replicas: -1`, no `replicas:` on the Deployment, nothing else changed.
        let before = r.manifest();
        let after = crate::core::manifest::remove_spec_field(
            before,
            "Deployment",
            "my-release-milvus-querynode",
            "replicas",
        )
        .expect("removed");
        assert_eq!(before.len() - after.len(), "  replicas: 1\n".len());
        let objects = crate::core::manifest::parse(&after).expect("manifest");
        let qn = objects
            .iter()
            .find(|o| o.kind == "Deployment" && o.name == "my-release-milvus-querynode")
            .expect("querynode");
        assert_eq!(qn.replicas, None);
    }

    #[test]
    fn a_repair_carries_on_what_the_killed_run_was_doing() {
        let deployed = release(); // queryNode=3, dataNode=2
        let mut pending = release();
        pending.0["config"]["queryNode"]["replicas"] = serde_json::json!(5);
        pending.0["config"]["dataNode"]["replicas"] = serde_json::json!(1);
        let explicit = [Request {
            component: "datanode".into(),
            target: Target::Absolute(2),
        }];
        assert_eq!(
            carry_on(&pending, &deployed, &explicit),
            [
                explicit[0].clone(),
                Request {
                    component: "queryNode".into(),
                    target: Target::Absolute(5)
                }
            ]
        );
        // Nothing changed by the killed run: the user's requests alone.
        assert_eq!(carry_on(&deployed, &deployed, &explicit), explicit);
    }

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_request("queryNode=3"),
            Ok(Request {
                component: "queryNode".into(),
                target: Target::Absolute(3)
            })
        );
        assert_eq!(
            parse_request("querynode=+2").map(|r| r.target),
            Ok(Target::Relative(2))
        );
        assert_eq!(
            parse_request("dataNode=-1").map(|r| r.target),
            Ok(Target::Relative(-1))
        );
        assert!(matches!(parse_request("queryNode"), Err(Rejection::Invalid(_))));
        assert!(matches!(
            parse_request("queryNode=three"),
            Err(Rejection::Invalid(_))
        ));
        assert!(matches!(
            parse_request("queryNode=1.5"),
            Err(Rejection::Invalid(_))
        ));
        assert!(matches!(parse_request("=3"), Err(Rejection::Invalid(_))));
        // What a Deployment's int32 holds, and not one more.
        assert_eq!(
            parse_request("queryNode=2147483647").map(|r| r.target),
            Ok(Target::Absolute(MAX_REPLICAS))
        );
        for absurd in [
            "queryNode=2147483648",
            "queryNode=4294967295",
            "queryNode=+99999999999999999999",
            "queryNode=-4294967296",
        ] {
            match parse_request(absurd) {
                Err(Rejection::Invalid(m)) => assert!(m.contains("at most 2147483647"), "{m}"),
                other => panic!("{absurd}: {other:?}"),
            }
        }
        assert!(matches!(parse_request("queryNode=+"), Err(Rejection::Invalid(_))));
        assert!(matches!(
            parse_request("queryNode=+-1"),
            Err(Rejection::Invalid(_))
        ));
    }

    #[test]
    fn huge_targets_are_bounded_and_summarised() {
        // Relative targets past the int32 bound are refused in the plan.
        match plan_for(&["queryNode=+2147483646"], &[], false) {
            Err(Rejection::Invalid(m)) => assert!(m.contains("would reach 2147483649"), "{m}"),
            other => panic!("{other:?}"),
        }
        let p = plan_for(&["queryNode=2147483647"], &[], false).expect("plan");
        let new = p.pods.iter().filter(|x| x.fate == PodFate::New).count() as u64;
        assert_eq!(new, u64::from(NEW_POD_ROWS));
        assert_eq!(new + p.new_pods_not_shown, u64::from(MAX_REPLICAS));
        let text = crate::render::plan::table(&p);
        assert!(text.contains("… and 2,147,483,637 more new pods"), "{text}");
        assert!(text.lines().count() < 60, "{text}");
    }

    #[test]
    fn steps_out_at_once_in_one_by_one() {
        let list = |s: Steps| s.iter().collect::<Vec<_>>();
        assert_eq!(list(steps(1, 3)), vec![3]);
        assert_eq!(list(steps(3, 1)), vec![2, 1]);
        assert_eq!(list(steps(5, 2)), vec![4, 3, 2]);
        assert!(steps(2, 2).is_empty() && list(steps(2, 2)).is_empty());
        assert_eq!((steps(1, 3).len(), steps(5, 2).len()), (1, 3));
        // Lazy: the most a Deployment holds costs nothing to describe.
        let huge = steps(MAX_REPLICAS, 1);
        assert_eq!(huge.len(), MAX_REPLICAS - 1);
        assert_eq!(
            huge.iter().take(2).collect::<Vec<_>>(),
            [MAX_REPLICAS - 1, MAX_REPLICAS - 2]
        );
    }

    /// A querynode pod: `ready` and created `minute` minutes past noon.
    fn pod(name: &str, phase: &str, ready: bool, minute: u32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": {"pod-template-hash": "h1"},
                "creationTimestamp": format!("2026-01-11T12:{minute:02}:00Z"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "my-release-milvus-querynode-h1", "uid": "u", "controller": true}]
            },
            "spec": {"containers": [{"name": "c"}], "nodeName": if phase == "Pending" { serde_json::Value::Null } else { "n1".into() }},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .expect("pod")
    }

    fn plan_for(requests: &[&str], pods: &[Pod], force: bool) -> Result<Plan, Rejection> {
        plan_with(requests, pods, force, &v1_20())
    }

    fn v1_20() -> ScaleInInput {
        ScaleInInput {
            rules: ControllerRules::for_server("1", "20"),
            grace: BTreeMap::new(),
            remove: vec![],
            accept_short_grace: false,
        }
    }

    fn plan_with(
        requests: &[&str],
        pods: &[Pod],
        force: bool,
        scale_in: &ScaleInInput,
    ) -> Result<Plan, Rejection> {
        let r = release();
        let objects = crate::core::manifest::parse(r.manifest()).expect("manifest");
        let workloads = [
            live("my-release-milvus-proxy", 1),
            live("my-release-milvus-querynode", 3),
            live("my-release-milvus-datanode", 2),
            live("my-release-milvus-streamingnode", 2),
            live("my-release-milvus-mixcoord", 1),
        ];
        let input = PlanInput {
            release: &r,
            namespace: "milvus",
            objects: &objects,
            workloads: &workloads,
            hpas: &[],
            pods,
            force,
            now: "2026-01-11T13:00:00Z".parse().expect("time"),
            scale_in,
        };
        let requests: Vec<Request> = requests
            .iter()
            .map(|t| parse_request(t).expect("request"))
            .collect();
        plan(&input, &requests)
    }

    #[test]
    fn scale_in_removes_pods_in_the_replicaset_controllers_order() {
        let pods = [
            pod("qn-old-ready", "Running", true, 1),
            pod("qn-new-ready", "Running", true, 30),
            pod("qn-not-ready", "Running", false, 2),
        ];
        let p = plan_for(&["queryNode=1"], &pods, false).expect("plan");
        assert_eq!(p.changes[0].steps.iter().collect::<Vec<_>>(), [2, 1]);
        let fates: Vec<(&str, PodFate, Option<usize>)> = p
            .pods
            .iter()
            .map(|x| (x.row.name.as_str(), x.fate, x.step))
            .collect();
        assert_eq!(
            fates,
            [
                ("qn-new-ready", PodFate::Removed, Some(2)),
                ("qn-not-ready", PodFate::Removed, Some(1)),
                ("qn-old-ready", PodFate::Stays, None),
            ]
        );
        assert_eq!(
            p.command.text(),
            "helm upgrade my-release milvus/milvus --namespace milvus --version 5.0.19 --reset-then-reuse-values --set queryNode.replicas=1"
        );
    }

    #[test]
    fn from_v1_22_the_plan_chooses_and_honours_remove() {
        let pods = [
            pod("qn-old-ready", "Running", true, 1),
            pod("qn-new-ready", "Running", true, 30),
            pod("qn-not-ready", "Running", false, 2),
        ];
        let v1_22 = ScaleInInput {
            rules: ControllerRules::for_server("1", "22"),
            remove: vec!["qn-old-ready".into()],
            ..v1_20()
        };
        let p = plan_with(&["queryNode=1"], &pods, false, &v1_22).expect("plan");
        assert!(p.victims_chosen && p.warnings.iter().all(|w| !w.contains("--remove")));
        let removed: Vec<(&str, Option<usize>)> = p
            .pods
            .iter()
            .filter(|x| x.fate == PodFate::Removed)
            .map(|x| (x.row.name.as_str(), x.step))
            .collect();
        // Not ready first (no cost moves a ready pod ahead of it), then the named one.
        assert_eq!(removed, [("qn-not-ready", Some(1)), ("qn-old-ready", Some(2))]);
        // On v1.20 the same request is a prediction, said so.
        let v1_20_remove = ScaleInInput {
            remove: vec!["qn-old-ready".into()],
            ..v1_20()
        };
        let p = plan_with(&["queryNode=1"], &pods, false, &v1_20_remove).expect("plan");
        assert!(!p.victims_chosen);
        assert!(
            p.warnings.iter().any(|w| w.contains("predicted choice")),
            "{:?}",
            p.warnings
        );
        // Names that are not removable pods, or too many, are invalid.
        let bad = |remove: &[&str], req: &str| {
            let input = ScaleInInput {
                remove: remove.iter().map(|s| s.to_string()).collect(),
                ..v1_22.clone()
            };
            matches!(
                plan_with(&[req], &pods, false, &input),
                Err(Rejection::Invalid(_))
            )
        };
        assert!(bad(&["nope"], "queryNode=1"));
        assert!(bad(&["qn-old-ready", "qn-new-ready"], "queryNode=2"));
        assert!(bad(&["qn-old-ready"], "queryNode=4"));
    }

    #[test]
    fn grace_shortfalls_warn_and_below_thirty_seconds_need_the_flag() {
        let p = plan_for(&["queryNode=2"], &[], false).expect("plan");
        assert_eq!(
            (p.grace[0].pod_grace_seconds, p.grace[0].milvus_stop_seconds),
            (30, 1800)
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("Milvus's graceful stop may take 1800s")),
            "{:?}",
            p.warnings
        );
        let short = ScaleInInput {
            grace: BTreeMap::from([("my-release-milvus-querynode".to_string(), 5)]),
            ..v1_20()
        };
        match plan_with(&["queryNode=2"], &[], false, &short) {
            Err(Rejection::Refused(m)) => assert!(m.contains("--accept-short-grace"), "{m}"),
            other => panic!("{other:?}"),
        }
        let accepted = ScaleInInput {
            accept_short_grace: true,
            ..short.clone()
        };
        assert!(plan_with(&["queryNode=2"], &[], false, &accepted).is_ok());
        // Scale-out has nothing to stop.
        assert!(plan_with(&["queryNode=4"], &[], false, &short).is_ok_and(|p| p.grace.is_empty()));
    }

    #[test]
    fn rules_refuse_or_reject_with_the_right_kind() {
        let refused = |r: Result<Plan, Rejection>| matches!(r, Err(Rejection::Refused(_)));
        let invalid = |r: Result<Plan, Rejection>| matches!(r, Err(Rejection::Invalid(_)));
        assert!(refused(plan_for(&["mixCoordinator=2"], &[], false)));
        assert!(refused(plan_for(&["rootcoord=2"], &[], false)));
        assert!(refused(plan_for(&["dataNode=0"], &[], false)));
        assert!(plan_for(&["dataNode=0"], &[], true).is_ok());
        assert!(invalid(plan_for(&["indexNode=2"], &[], false)));
        assert!(invalid(plan_for(&["etcd=2"], &[], false)));
        assert!(invalid(plan_for(&["dataNode=-3"], &[], false)));
        assert!(invalid(plan_for(&["proxy=2", "PROXY=3"], &[], false)));
        let p = plan_for(&["querynode=+2", "dataNode=2"], &[], false).expect("plan");
        assert_eq!(
            (p.changes[0].target, p.changes[0].steps.iter().collect()),
            (5, vec![5])
        );
        assert!(p.changes[1].is_noop() && !p.nothing_to_do());
    }

    #[test]
    fn streaming_node_scale_in_warns() {
        // Two streaming nodes run while the values say 1: both facts are told.
        let p = plan_for(&["streamingNode=1"], &[], false).expect("plan");
        assert!(
            p.warnings.iter().any(|w| w.contains("values say 1 but 2 run")),
            "{:?}",
            p.warnings
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("largest collection replica number")),
            "{:?}",
            p.warnings
        );
        assert!(
            plan_for(&["streamingNode=3"], &[], false)
                .expect("plan")
                .warnings
                .len()
                == 1
        );
    }
}
