//! What the Milvus Operator will and will not do with a replica change of a
//! `Milvus` resource, read from its source (zilliztech/milvus-operator; the
//! file and lines are cited at each rule, at the commit named there):
//! which conditions make it leave a written count unapplied (so `scale`
//! refuses before writing and `plan` warns), how a deployment group's
//! rollout state is keyed, and what the resource's status says about a
//! step (health, terminating pods). Pure functions over the resource, its
//! Deployments and the namespace's `MilvusUpgrade`s.

use serde_json::Value;

use crate::core::operator::{CrWorkload, MilvusResource, OperatorDeployment, state_key, workloads};
use crate::core::plan::{ComponentChange, Plan};
use crate::core::scale_in::GraceCheck;

/// `PauseReconcileAnnotation`: with it "true" a pass returns before doing
/// anything, status and `observedGeneration` included
/// (pkg/controllers/milvus_controller.go:45, :165-167 @519e2c6).
pub const PAUSE_RECONCILE: &str = "milvus.io/pause-reconcile";

/// The dependency conditions `IsDependencyReady` requires True before
/// `ReconcileMilvus` touches any Deployment (pkg/controllers/milvus.go:46-49
/// @f7946e4; pkg/controllers/utils.go `IsDependencyReady`).
pub const DEPENDENCY_CONDITIONS: &[&str] = &["EtcdReady", "StorageReady", "MsgStreamReady"];

/// A `MilvusUpgrade` (`milvusupgrades.milvus.io`) as far as it matters
/// here: which `Milvus` it upgrades and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub name: String,
    pub namespace: String,
    /// `spec.milvus` (apis/milvus.io/v1beta1/milvusupgrade_types.go:43
    /// @48c86e9); an empty namespace is the upgrade's own.
    pub milvus_namespace: String,
    pub milvus_name: String,
    /// `status.state` (:108); empty is `Pending`.
    pub state: String,
}

impl Upgrade {
    pub fn from_value(v: &Value) -> Upgrade {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Upgrade {
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
            milvus_namespace: s("/spec/milvus/namespace"),
            milvus_name: s("/spec/milvus/name"),
            state: s("/status/state"),
        }
    }
    /// Still working: its state is not one `NeedRequeue` stops at
    /// (milvusupgrade_types.go:156-158, the no-requeue states :181-188).
    /// Meanwhile it sets every replica count to 0 and later writes back the
    /// counts it recorded before (pkg/controllers/milvusupgrade_fsm.go
    /// `stopMilvus`, `startMilvus` @20ee22c): a count written in between is lost.
    pub fn in_flight(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "Succeeded" | "BakupMetaFailed" | "UpdateMetaFailed" | "RollbackedSucceeded" | "RollbackFailed"
        )
    }
    fn targets(&self, cr: &MilvusResource) -> bool {
        let ns = if self.milvus_namespace.is_empty() {
            &self.namespace
        } else {
            &self.milvus_namespace
        };
        self.milvus_name == cr.name() && ns == cr.namespace()
    }
}

/// Why the operator would not apply a replica change of the resource now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    PauseReconcile,
    /// `spec.components.paused` or `spec.components.<key>.paused`, on a
    /// two-Deployment component.
    Paused {
        field: String,
        component: String,
    },
    ManualMode,
    Dependency {
        condition: String,
        state: String,
    },
    ModeChange {
        component: String,
    },
    Rollout {
        component: String,
        label: String,
        id: String,
    },
    Upgrade {
        name: String,
        state: String,
    },
    /// `imageUpdateMode: force` with a scale-in planned.
    ForceScaleIn {
        components: Vec<String>,
    },
}

impl Block {
    /// What the operator does, as one clause.
    pub fn why(&self, cr: &MilvusResource) -> String {
        let name = cr.name();
        match self {
            Block::PauseReconcile => format!(
                "Milvus {name} has the annotation {PAUSE_RECONCILE}: \"true\": the Milvus Operator does not reconcile it, so a new count would sit in the spec unapplied and be applied the moment the pause is lifted"
            ),
            Block::Paused { field, component } => format!(
                "{field} is true in Milvus {name}: the Milvus Operator leaves {component}'s Deployments untouched while it is paused"
            ),
            Block::ManualMode => format!(
                "spec.components.enableManualMode is true in Milvus {name}: the Milvus Operator no longer sets its Deployments' replicas"
            ),
            Block::Dependency { condition, state } => format!(
                "condition {condition} of Milvus {name} is {state}: the Milvus Operator touches no Deployment until its dependencies are ready"
            ),
            Block::ModeChange { component } => format!(
                "Milvus {name} is changing {component} to two-Deployment mode (annotation milvus.io/changing-{component}-mode)"
            ),
            Block::Rollout { component, label, id } => format!(
                "a rollout of {component} is in flight in Milvus {name} (label {label}: {id}); the Milvus Operator marks no generation observed until it ends"
            ),
            Block::Upgrade { name: upgrade, state } => format!(
                "MilvusUpgrade {upgrade} is upgrading Milvus {name} (state {}): it stops every component and then writes back the counts it recorded, over any other",
                if state.is_empty() { "Pending" } else { state }
            ),
            Block::ForceScaleIn { components } => format!(
                "spec.components.imageUpdateMode is force in Milvus {name}: the Milvus Operator kills (kill -9) every terminating Milvus pod at each status sync (every 30-60 s), so a leaving {} pod does not get its 30-day grace period to hand its work over",
                components.join("/")
            ),
        }
    }

    /// What to do about it, as one clause.
    pub fn what_to_do(&self, cr: &MilvusResource) -> String {
        let patch = |p: &str| {
            format!(
                "kubectl patch milvus {} -n {} --type merge -p '{p}'",
                cr.name(),
                cr.namespace()
            )
        };
        match self {
            Block::PauseReconcile => format!(
                "lift the pause first (kubectl annotate milvus {} -n {} {PAUSE_RECONCILE}-)",
                cr.name(),
                cr.namespace()
            ),
            Block::Paused { field, .. } => format!("set {field} to false first"),
            Block::ManualMode => format!(
                "switch manual mode off first ({})",
                patch(r#"{"spec":{"components":{"enableManualMode":false}}}"#)
            ),
            Block::Dependency { .. } => {
                "make the dependency healthy first (kubectl milvus status shows it)".to_string()
            }
            Block::ModeChange { .. } | Block::Rollout { .. } => {
                "wait for the Milvus Operator to finish it and retry".to_string()
            }
            Block::Upgrade { name, .. } => format!(
                "wait for MilvusUpgrade {name} to finish (kubectl get milvusupgrade {name} -n {}) and retry",
                cr.namespace()
            ),
            Block::ForceScaleIn { .. } => format!(
                "set it back to rollingUpgrade before scaling in ({}), or pass --accept-short-grace to scale in with the leaving pods killed",
                patch(r#"{"spec":{"components":{"imageUpdateMode":"rollingUpgrade"}}}"#)
            ),
        }
    }

    /// The refusal of `scale`.
    pub fn refusal(&self, cr: &MilvusResource) -> String {
        format!("{}; {}; nothing was changed", self.why(cr), self.what_to_do(cr))
    }

    /// The warning of `plan`.
    pub fn warning(&self, cr: &MilvusResource) -> String {
        format!("{}; `scale` refuses: {}", self.why(cr), self.what_to_do(cr))
    }
}

/// A spec field, `true` when set so.
fn flag(cr: &MilvusResource, pointer: &str) -> bool {
    cr.spec.pointer(pointer).and_then(Value::as_bool).unwrap_or(false)
}

/// Runs in two-Deployment mode: its Deployments carry the slot label
/// `milvus.io/<component>-group-id` (label_annotations.go:48-50 @1c918a5).
fn two_deployments(w: &CrWorkload<'_>) -> bool {
    let slot = format!("milvus.io/{}-group-id", w.component.label);
    w.active
        .iter()
        .chain(w.standby.iter())
        .any(|d| d.labels.contains_key(&slot))
}

/// The changes that write the resource (bounds changes write the user's HPA).
fn writes_resource(c: &ComponentChange) -> bool {
    c.hpa.is_none() && !c.is_noop()
}

/// Every reason the operator would not apply the plan's replica changes,
/// in the order they are worth fixing. Empty when nothing in the plan
/// writes the resource.
pub fn blocks(
    cr: &MilvusResource,
    deployments: &[OperatorDeployment],
    upgrades: &[Upgrade],
    plan: &Plan,
    accept_short_grace: bool,
) -> Vec<Block> {
    let changes: Vec<&ComponentChange> = plan.changes.iter().filter(|c| writes_resource(c)).collect();
    if changes.is_empty() {
        return Vec::new();
    }
    let mut out = resource_blocks(cr, deployments, |key| changes.iter().any(|c| c.component == key));
    out.extend(
        upgrades
            .iter()
            .filter(|u| u.targets(cr) && u.in_flight())
            .map(|u| Block::Upgrade {
                name: u.name.clone(),
                state: u.state.clone(),
            }),
    );
    // Force skips the graceful stop (status_cluster.go:305-334, the kill at
    // :326-332 @01440d5; `ImageUpdateModeForce`, components_types.go:160-162,
    // the field :173-178 @04c17c5).
    let scaled_in: Vec<String> = changes
        .iter()
        .filter(|c| c.target < c.current)
        .map(|c| c.component.clone())
        .collect();
    if force_mode(cr) && !scaled_in.is_empty() && !accept_short_grace {
        let mut components = scaled_in;
        components.dedup();
        out.push(Block::ForceScaleIn { components });
    }
    out
}

/// `spec.components.imageUpdateMode` is `force`.
pub fn force_mode(cr: &MilvusResource) -> bool {
    cr.spec
        .pointer("/components/imageUpdateMode")
        .and_then(Value::as_str)
        == Some("force")
}

/// The blocks the resource itself shows, for the components `changed`
/// says are being changed (by spec key).
fn resource_blocks(
    cr: &MilvusResource,
    deployments: &[OperatorDeployment],
    changed: impl Fn(&str) -> bool,
) -> Vec<Block> {
    let meta = cr.meta();
    let mut out = Vec::new();
    if meta.annotations.get(PAUSE_RECONCILE).map(String::as_str) == Some("true") {
        out.push(Block::PauseReconcile);
    }
    // `IsPaused` returns before scaling in the two-Deployment controller
    // (deploy_ctrl.go:95-97, :220-225 @149985a). A one-Deployment component
    // only gets `spec.paused` on its Deployment, which Kubernetes still
    // scales (deployment_updater.go `updateDeploymentWithoutPodTemplate`).
    let found = workloads(cr, deployments);
    let mut paused_seen = Vec::new();
    for w in found.iter().filter(|w| changed(w.spec_key) && two_deployments(w)) {
        let field = if flag(cr, "/components/paused") {
            "spec.components.paused".to_string()
        } else if flag(cr, &format!("/components/{}/paused", w.spec_key)) {
            format!("spec.components.{}.paused", w.spec_key)
        } else {
            continue;
        };
        if !paused_seen.contains(&w.spec_key) {
            paused_seen.push(w.spec_key);
            out.push(Block::Paused {
                field,
                component: w.spec_key.to_string(),
            });
        }
    }
    // Manual mode: the two-Deployment controller hands over to
    // `HandleManualMode`, which leaves a serving Deployment's replicas alone
    // (deploy_ctrl.go:99-101, :319-329 @149985a); one-Deployment components
    // skip `updateDeploymentReplicas` (deployment_updater.go:45-47).
    if flag(cr, "/components/enableManualMode") {
        out.push(Block::ManualMode);
    }
    let conditions = cr.conditions();
    for name in DEPENDENCY_CONDITIONS {
        let found = conditions.iter().find(|c| c.type_ == *name);
        if found.is_some_and(|c| c.status == "True") {
            continue;
        }
        let state = found.map_or_else(
            || "not reported".to_string(),
            |c| {
                let detail: Vec<&str> = [c.reason.as_deref(), c.message.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect();
                if detail.is_empty() {
                    c.status.clone()
                } else {
                    format!("{} ({})", c.status, detail.join(": "))
                }
            },
        );
        out.push(Block::Dependency {
            condition: name.to_string(),
            state,
        });
    }
    // A mode change (`IsChangingMode`, label_annotations.go:44-46, :52-54
    // @1c918a5) runs the component through the one-Deployment controller
    // until it ends (deploy_ctrl.go:57-87 @149985a).
    for (key, value) in meta.annotations {
        if let Some(component) = key
            .strip_prefix("milvus.io/changing-")
            .and_then(|k| k.strip_suffix("-mode"))
            && value == "true"
        {
            out.push(Block::ModeChange {
                component: component.to_string(),
            });
        }
    }
    // Any rollout: one component's requeue holds the whole pass, and with it
    // `observedGeneration` (deployments.go:285-289 @a8e51f9;
    // milvus_controller.go:188-200 @519e2c6).
    for (key, value) in meta.labels {
        if let Some(state_key) = key
            .strip_prefix("milvus.io/")
            .and_then(|k| k.strip_suffix("-rolling-id"))
            && !value.is_empty()
        {
            let component = found
                .iter()
                .find(|w| state_key_of(w) == state_key)
                .map_or_else(|| state_key.to_string(), shown);
            out.push(Block::Rollout {
                component,
                label: key.clone(),
                id: value.clone(),
            });
        }
    }
    out
}

fn state_key_of(w: &CrWorkload<'_>) -> String {
    state_key(w.component.label, w.group.as_deref())
}

fn shown(w: &CrWorkload<'_>) -> String {
    match &w.group {
        Some(g) => format!("{}/{g}", w.spec_key),
        None => w.spec_key.to_string(),
    }
}

/// Where the resource's health stands, as `status.status` says it: Healthy
/// only while `MilvusReady` is True, i.e. every component's serving
/// Deployment is Available (status_cluster.go:291-296 @01440d5,
/// component_condition.go:77-92 @7e92c2f). Copied from the Deployments at
/// each status sync (every 30-60 s), so it lags them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Every count is 0: nothing to wait for.
    Stopped,
    /// Why not, as one clause.
    Not(String),
}

pub fn health(cr: &MilvusResource) -> Health {
    match cr.state() {
        "Healthy" => Health::Healthy,
        "Stopped" => Health::Stopped,
        state => {
            let ready = cr.conditions().into_iter().find(|c| c.type_ == "MilvusReady");
            let detail = ready.map_or_else(
                || "MilvusReady not reported".to_string(),
                |c| {
                    let why = [c.reason, c.message]
                        .into_iter()
                        .flatten()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(": ");
                    format!(
                        "MilvusReady {}{}",
                        c.status,
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(", {why}")
                        }
                    )
                },
            );
            Health::Not(format!("Milvus {} is {state} ({detail})", cr.name()))
        }
    }
}

/// What `MilvusUpdated` says of terminating pods, if it says so: any
/// terminating pod of the instance sets it False with "Milvus has
/// terminating pods" at each status sync (`handleTerminatingPods`,
/// status_cluster.go:305-334, the message :321-325 @01440d5). A second
/// sign, next to the pods themselves, that a scale-in step is not over.
pub fn terminating_pods(cr: &MilvusResource) -> Option<String> {
    cr.conditions()
        .into_iter()
        .find(|c| c.type_ == "MilvusUpdated" && c.status != "True")
        .and_then(|c| c.message)
        .filter(|m| m.to_ascii_lowercase().contains("terminating pods"))
}

/// After the operator observed the generation a step wrote, whether the
/// serving Deployment of each written field has the count: a pass ends
/// (and `observedGeneration` moves, status_cluster.go:256 @01440d5)
/// without touching Deployments when the operator is paused, in manual
/// mode or waiting for a dependency. `None` when applied; else why not.
pub fn unapplied(
    cr: &MilvusResource,
    deployments: &[OperatorDeployment],
    writes: &[crate::core::operator::Write],
) -> Option<String> {
    let found = workloads(cr, deployments);
    writes.iter().find_map(|w| {
        let workload = found
            .iter()
            .find(|x| x.spec_key == w.spec_key && x.group == w.group)?;
        let at = workload.active.map(|d| (d.live.name.as_str(), d.live.replicas));
        if at.is_some_and(|(_, n)| i64::from(n) == i64::from(w.replicas)) {
            return None;
        }
        let cause = resource_blocks(cr, deployments, |k| k == w.spec_key)
            .first()
            .map_or_else(
                || "the operator has not applied it; see the Milvus Operator's log".to_string(),
                |b| b.why(cr),
            );
        let now = match at {
            Some((name, n)) => format!("Deployment {name} has {n} replicas, not {}", w.replicas),
            None => format!("{} has no Deployment", shown(workload)),
        };
        Some(format!(
            "the Milvus Operator observed generation {} of Milvus {} but {now}: {cause}",
            cr.observed_generation().unwrap_or_default(),
            cr.name()
        ))
    })
}

/// Under `imageUpdateMode: force`, the grace account of a component being
/// scaled in, as a run prints it: the leaving pod is killed.
pub fn killed_account(cr: &MilvusResource, g: &GraceCheck) -> Option<String> {
    force_mode(cr).then(|| {
        format!(
            "{}: imageUpdateMode is force: a leaving pod is killed at the Milvus Operator's next status sync (within 30-60 s), not given its {}s grace period; Milvus's graceful stop may take {}s ({})",
            g.component, g.pod_grace_seconds, g.milvus_stop_seconds, g.milvus_stop_source
        )
    })
}

/// What `plan` says of the operator's state: each block, and for a
/// scale-in what `scale` will wait for.
pub fn warnings(
    cr: &MilvusResource,
    deployments: &[OperatorDeployment],
    upgrades: &[Upgrade],
    plan: &Plan,
    accept_short_grace: bool,
) -> Vec<String> {
    let mut out: Vec<String> = blocks(cr, deployments, upgrades, plan, accept_short_grace)
        .iter()
        .map(|b| b.warning(cr))
        .collect();
    let scale_in = plan
        .changes
        .iter()
        .any(|c| writes_resource(c) && c.target < c.current);
    if scale_in {
        if let Health::Not(why) = health(cr) {
            out.push(format!(
                "{why}: `scale` waits for it to be Healthy before each scale-in step"
            ));
        }
        if force_mode(cr) && accept_short_grace {
            out.push(format!(
                "spec.components.imageUpdateMode is force in Milvus {}: leaving pods are killed at the operator's next status sync, not given their grace period (--accept-short-grace)",
                cr.name()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::core::operator::current_group_id_key;
    use crate::core::operator::{
        COMPONENT_LABEL, GROUP_LABEL, INSTANCE_LABEL, KIND, MANAGED_BY_LABEL, MANAGER, OperatorPlanInput,
        Write, plan,
    };
    use crate::core::plan::parse_request;
    use crate::core::test_support::ready_deployment;

    /// A real sample as the API server serves it once the operator has
    /// reconciled it: every condition True, generation 1 observed.
    fn reconciled(file: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/milvus-operator/samples/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(path).expect("sample")).expect("yaml");
        v["metadata"]["namespace"] = json!("milvus");
        v["metadata"]["generation"] = json!(1);
        v["metadata"]["labels"] = json!({});
        v["metadata"]["annotations"] = json!({});
        let conditions: Vec<Value> = [
            "EtcdReady",
            "StorageReady",
            "MsgStreamReady",
            "MilvusReady",
            "MilvusUpdated",
        ]
        .iter()
        .map(|t| json!({"type": t, "status": "True", "reason": "Ready"}))
        .collect();
        v["status"] = json!({"status": "Healthy", "observedGeneration": 1, "conditions": conditions});
        v
    }

    fn resource(v: &Value) -> MilvusResource {
        MilvusResource::from_value(v.clone()).expect("resource")
    }

    /// A Deployment the operator made for `my-release`; `slot` is the
    /// two-Deployment slot (`-0`/`-1`), if any.
    fn made(component: &str, group: Option<&str>, slot: Option<&str>, replicas: i32) -> OperatorDeployment {
        let mut labels: BTreeMap<String, String> = [
            (INSTANCE_LABEL, "my-release"),
            (COMPONENT_LABEL, component),
            (MANAGED_BY_LABEL, MANAGER),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut name = format!("my-release-milvus-{component}");
        if let Some(g) = group {
            labels.insert(GROUP_LABEL.to_string(), g.to_string());
            name = format!("{name}-{g}");
        }
        if let Some(s) = slot {
            labels.insert(format!("milvus.io/{component}-group-id"), s.to_string());
            name = format!("{name}-{s}");
        }
        OperatorDeployment {
            live: ready_deployment(&name, replicas),
            labels,
            controller: Some((KIND.to_string(), "my-release".to_string())),
            status_replicas: replicas,
        }
    }

    /// The default cluster: query nodes in two-Deployment mode at `qn`.
    fn cluster(qn: i32) -> Vec<OperatorDeployment> {
        vec![
            made("mixcoord", None, None, 1),
            made("proxy", None, None, 1),
            made("datanode", None, None, 2),
            made("streamingnode", None, None, 1),
            made("querynode", None, Some("0"), qn),
            made("querynode", None, Some("1"), 0),
        ]
    }

    fn plan_of(cr: &MilvusResource, deployments: &[OperatorDeployment], texts: &[&str]) -> Plan {
        let requests: Vec<_> = texts.iter().map(|t| parse_request(t).expect("request")).collect();
        plan(
            &OperatorPlanInput {
                cr,
                deployments,
                hpas: &[],
                pods: &[],
                grace: &BTreeMap::new(),
                force: false,
                accept_short_grace: true,
                now: "2026-01-11T13:00:00Z".parse().expect("time"),
            },
            &requests,
        )
        .expect("plan")
    }

    fn blocks_of(v: &Value, texts: &[&str], upgrades: &[Upgrade], accept: bool) -> Vec<Block> {
        let cr = resource(v);
        let d = cluster(2);
        blocks(&cr, &d, upgrades, &plan_of(&cr, &d, texts), accept)
    }

    #[test]
    fn a_groups_state_key_is_its_component_and_a_hash_of_its_name() {
        // `printf g1 | sha256sum` = 711430f6164e93803d93…, its first 8 bytes.
        assert_eq!(state_key("querynode", Some("g1")), "querynode-711430f6164e9380");
        assert_eq!(state_key("querynode", Some("g2")), "querynode-4d2f4b668cfc48e6");
        assert_eq!(state_key("querynode", None), "querynode");
        assert_eq!(
            current_group_id_key(&state_key("querynode", Some("g1"))),
            "milvus.io/querynode-711430f6164e9380-current-group-id"
        );
    }

    #[test]
    fn a_group_serves_from_the_slot_its_hashed_key_names_not_the_ungrouped_one() {
        let mut v = reconciled("milvus_deployment_groups.yaml");
        // A leftover of the ungrouped query node names slot 1; the group's
        // own key names slot 0.
        v["metadata"]["annotations"] = json!({
            "milvus.io/querynode-current-group-id": "1",
            "milvus.io/querynode-711430f6164e9380-current-group-id": "0",
            "milvus.io/querynode-4d2f4b668cfc48e6-current-group-id": "1",
        });
        let cr = resource(&v);
        let d = vec![
            made("querynode", Some("g1"), Some("0"), 2),
            made("querynode", Some("g1"), Some("1"), 0),
            made("querynode", Some("g2"), Some("0"), 0),
            made("querynode", Some("g2"), Some("1"), 2),
        ];
        let found = workloads(&cr, &d);
        let serving = |g: &str| {
            found
                .iter()
                .find(|w| w.spec_key == "queryNode" && w.group.as_deref() == Some(g))
                .and_then(|w| w.active)
                .map(|a| a.live.name.clone())
        };
        assert_eq!(serving("g1").as_deref(), Some("my-release-milvus-querynode-g1-0"));
        assert_eq!(serving("g2").as_deref(), Some("my-release-milvus-querynode-g2-1"));
        // `plan` shows what runs, not the idle slot.
        let p = plan_of(&cr, &d, &["queryNode=3"]);
        let g1 = p
            .changes
            .iter()
            .find(|c| c.group.as_deref() == Some("g1"))
            .expect("g1");
        assert_eq!(
            (g1.current, g1.deployments.clone()),
            (2, vec!["my-release-milvus-querynode-g1-0".to_string()])
        );
    }

    #[test]
    fn a_groups_rollout_is_seen_under_its_hashed_key_and_named() {
        let mut v = reconciled("milvus_deployment_groups.yaml");
        v["metadata"]["labels"] = json!({"milvus.io/querynode-711430f6164e9380-rolling-id": "4"});
        let cr = resource(&v);
        let d = vec![
            made("querynode", Some("g1"), Some("0"), 2),
            made("querynode", Some("g1"), Some("1"), 0),
            made("datanode", Some("g1"), None, 2),
            made("datanode", Some("g2"), None, 2),
        ];
        let found = workloads(&cr, &d);
        assert!(
            found
                .iter()
                .any(|w| w.group.as_deref() == Some("g1") && w.rolling)
        );
        // A rollout of one group's query nodes holds a data-node change too.
        let p = plan_of(
            &resource(&reconciled("milvus_deployment_groups.yaml")),
            &d,
            &["dataNode=3"],
        );
        let b = blocks(&cr, &d, &[], &p, false);
        assert_eq!(
            b,
            vec![Block::Rollout {
                component: "queryNode/g1".to_string(),
                label: "milvus.io/querynode-711430f6164e9380-rolling-id".to_string(),
                id: "4".to_string()
            }]
        );
        assert!(
            b[0].refusal(&cr)
                .contains("wait for the Milvus Operator to finish it")
        );
    }

    #[test]
    fn a_reconciled_resource_blocks_nothing() {
        let v = reconciled("milvus_cluster_default.yaml");
        assert_eq!(blocks_of(&v, &["queryNode=1"], &[], false), vec![]);
        assert_eq!(blocks_of(&v, &["queryNode=3"], &[], false), vec![]);
    }

    #[test]
    fn pause_reconcile_manual_mode_and_a_mode_change_block_any_component() {
        let mut v = reconciled("milvus_cluster_default.yaml");
        v["metadata"]["annotations"] =
            json!({PAUSE_RECONCILE: "true", "milvus.io/changing-querynode-mode": "true"});
        v["spec"]["components"]["enableManualMode"] = json!(true);
        let b = blocks_of(&v, &["dataNode=3"], &[], false);
        assert_eq!(
            b,
            vec![
                Block::PauseReconcile,
                Block::ManualMode,
                Block::ModeChange {
                    component: "querynode".to_string()
                }
            ]
        );
        let cr = resource(&v);
        assert!(
            b[0].refusal(&cr)
                .contains("kubectl annotate milvus my-release -n milvus milvus.io/pause-reconcile-")
        );
        assert!(b[0].why(&cr).contains("applied the moment the pause is lifted"));
        assert!(b[1].refusal(&cr).contains(r#""enableManualMode":false"#));
        // "false" is no pause.
        v["metadata"]["annotations"] = json!({PAUSE_RECONCILE: "false"});
        v["spec"]["components"]["enableManualMode"] = json!(false);
        assert_eq!(blocks_of(&v, &["dataNode=3"], &[], false), vec![]);
    }

    #[test]
    fn a_paused_component_blocks_only_where_the_operator_stops_for_it() {
        let mut v = reconciled("milvus_cluster_default.yaml");
        v["spec"]["components"]["queryNode"] = json!({"paused": true, "replicas": 2});
        v["spec"]["components"]["dataNode"] = json!({"paused": true, "replicas": 2});
        let qn = Block::Paused {
            field: "spec.components.queryNode.paused".to_string(),
            component: "queryNode".to_string(),
        };
        assert_eq!(blocks_of(&v, &["queryNode=3"], &[], false), vec![qn]);
        // A one-Deployment data node only gets `spec.paused`: it still scales.
        assert_eq!(blocks_of(&v, &["dataNode=3"], &[], false), vec![]);
        // The global switch pauses every two-Deployment component.
        let mut v = reconciled("milvus_cluster_default.yaml");
        v["spec"]["components"]["paused"] = json!(true);
        let b = blocks_of(&v, &["queryNode=1"], &[], false);
        assert_eq!(
            b,
            vec![Block::Paused {
                field: "spec.components.paused".to_string(),
                component: "queryNode".to_string()
            }]
        );
        assert!(
            b[0].refusal(&resource(&v))
                .contains("set spec.components.paused to false first")
        );
    }

    #[test]
    fn a_dependency_not_true_blocks_with_its_reason() {
        let mut v = reconciled("milvus_cluster_default.yaml");
        v["status"]["conditions"][0] = json!({"type": "EtcdReady", "status": "False", "reason": "EtcdNotReady", "message": "All etcd endpoints are unhealthy"});
        v["status"]["conditions"]
            .as_array_mut()
            .expect("conditions")
            .retain(|c| c["type"] != "StorageReady");
        let b = blocks_of(&v, &["queryNode=3"], &[], false);
        assert_eq!(
            b,
            vec![
                Block::Dependency {
                    condition: "EtcdReady".to_string(),
                    state: "False (EtcdNotReady: All etcd endpoints are unhealthy)".to_string()
                },
                Block::Dependency {
                    condition: "StorageReady".to_string(),
                    state: "not reported".to_string()
                }
            ]
        );
    }

    #[test]
    fn a_milvus_upgrade_in_flight_for_this_resource_blocks() {
        let v = reconciled("milvus_cluster_default.yaml");
        let upgrade = |name: &str, target: &str, state: Option<&str>| {
            let mut u = json!({
                "apiVersion": "milvus.io/v1beta1", "kind": "MilvusUpgrade",
                "metadata": {"name": name, "namespace": "milvus"},
                "spec": {"milvus": {"name": target}, "sourceVersion": "v2.5.4", "targetVersion": "v2.6.3"}
            });
            if let Some(s) = state {
                u["status"] = json!({"state": s});
            }
            Upgrade::from_value(&u)
        };
        let ups = [
            upgrade("done", "my-release", Some("Succeeded")),
            upgrade("other", "another", Some("BackupMeta")),
            upgrade("failed", "my-release", Some("RollbackFailed")),
        ];
        assert_eq!(blocks_of(&v, &["queryNode=3"], &ups, false), vec![]);
        for state in [
            None,
            Some("OldVersionStopping"),
            Some("RollbackNewVersionStopping"),
        ] {
            let b = blocks_of(&v, &["queryNode=3"], &[upgrade("up", "my-release", state)], false);
            assert_eq!(
                b,
                vec![Block::Upgrade {
                    name: "up".to_string(),
                    state: state.unwrap_or_default().to_string()
                }]
            );
            assert!(
                b[0].refusal(&resource(&v))
                    .contains("kubectl get milvusupgrade up -n milvus")
            );
        }
    }

    #[test]
    fn force_mode_blocks_a_scale_in_unless_accepted_and_its_grace_account_says_killed() {
        let mut v = reconciled("milvus_cluster_default.yaml");
        v["spec"]["components"]["imageUpdateMode"] = json!("force");
        let force = vec![Block::ForceScaleIn {
            components: vec!["queryNode".to_string()],
        }];
        assert_eq!(blocks_of(&v, &["queryNode=1"], &[], false), force);
        assert_eq!(blocks_of(&v, &["queryNode=1"], &[], true), vec![]);
        assert_eq!(blocks_of(&v, &["queryNode=3"], &[], false), vec![]);
        let cr = resource(&v);
        let refusal = force[0].refusal(&cr);
        assert!(refusal.contains("kill -9"), "{refusal}");
        assert!(refusal.contains("--accept-short-grace"), "{refusal}");
        let g = crate::core::scale_in::grace_check("queryNode", Some(2_592_000), &Vec::new(), "v2.6.3");
        let account = killed_account(&cr, &g).expect("force");
        assert!(
            account.contains("is killed at the Milvus Operator's next status sync"),
            "{account}"
        );
        assert_eq!(
            killed_account(&resource(&reconciled("milvus_cluster_default.yaml")), &g),
            None
        );
        // With the flag, `plan` still says so.
        let d = cluster(2);
        let w = warnings(&cr, &d, &[], &plan_of(&cr, &d, &["queryNode=1"]), true);
        assert!(w.iter().any(|w| w.contains("leaving pods are killed")), "{w:?}");
    }

    #[test]
    fn bounds_changes_and_no_ops_are_not_blocked() {
        let mut v = reconciled("milvus_cluster_default.yaml");
        v["metadata"]["annotations"] = json!({PAUSE_RECONCILE: "true"});
        v["spec"]["components"]["queryNode"] = json!({"replicas": 2});
        assert_eq!(blocks_of(&v, &["queryNode=2"], &[], false), vec![]);
        assert_eq!(
            blocks_of(&v, &["queryNode=3"], &[], false),
            vec![Block::PauseReconcile]
        );
    }

    #[test]
    fn health_and_terminating_pods_are_read_from_the_status() {
        let mut v = reconciled("milvus_cluster_default.yaml");
        assert_eq!(health(&resource(&v)), Health::Healthy);
        assert_eq!(terminating_pods(&resource(&v)), None);
        v["status"]["status"] = json!("Unhealthy");
        v["status"]["conditions"][3] = json!({"type": "MilvusReady", "status": "False", "reason": "MilvusComponentNotHealthy", "message": "[querynode] not ready"});
        v["status"]["conditions"][4] = json!({"type": "MilvusUpdated", "status": "False", "reason": "MilvusComponentsUpdating", "message": "Milvus has terminating pods"});
        let cr = resource(&v);
        assert_eq!(
            health(&cr),
            Health::Not(
                "Milvus my-release is Unhealthy (MilvusReady False, MilvusComponentNotHealthy: [querynode] not ready)"
                    .to_string()
            )
        );
        assert_eq!(
            terminating_pods(&cr).as_deref(),
            Some("Milvus has terminating pods")
        );
        let d = cluster(2);
        let w = warnings(&cr, &d, &[], &plan_of(&cr, &d, &["queryNode=1"]), false);
        assert!(
            w.iter().any(|w| w.contains("waits for it to be Healthy")),
            "{w:?}"
        );
        // Another reason of MilvusUpdated is not a terminating pod.
        v["status"]["conditions"][4]["message"] = json!("Milvus components[querynode] are updating");
        assert_eq!(terminating_pods(&resource(&v)), None);
        v["status"]["status"] = json!("Stopped");
        assert_eq!(health(&resource(&v)), Health::Stopped);
    }

    #[test]
    fn an_observed_generation_left_unapplied_is_told_with_its_cause() {
        let mut v = reconciled("milvus_cluster_default.yaml");
        let write = |n| Write {
            spec_key: "queryNode".to_string(),
            group: None,
            replicas: n,
        };
        let d = cluster(2);
        assert_eq!(unapplied(&resource(&v), &d, &[write(2)]), None);
        let unknown = unapplied(&resource(&v), &d, &[write(3)]).expect("unapplied");
        assert!(
            unknown.contains("Deployment my-release-milvus-querynode-0 has 2 replicas, not 3"),
            "{unknown}"
        );
        v["spec"]["components"]["queryNode"] = json!({"paused": true});
        let paused = unapplied(&resource(&v), &d, &[write(3)]).expect("unapplied");
        assert!(
            paused
                .ends_with("the Milvus Operator leaves queryNode's Deployments untouched while it is paused"),
            "{paused}"
        );
    }
}
