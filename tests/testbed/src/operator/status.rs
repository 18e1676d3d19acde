//! `status` of a `Milvus` CR, shaped like the operator's `MilvusStatus`
//! (`apis/milvus.io/v1beta1/milvus_types.go`) and computed the way
//! `UpdateStatusForNewGeneration` does (`pkg/controllers/status_cluster.go`,
//! `component_condition.go`): `observedGeneration` = `metadata.generation`,
//! the serving Deployments' status copied in, `MilvusReady` from their
//! `Available` condition, `MilvusUpdated` false while Milvus pods terminate.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value, json};

use super::deployment::{container_image, current_group_id_annotation, group_id_label};
use super::topology::{self, Replicas, Workload};

/// DeploymentStatus fields the CRD's schema keeps (others would be pruned
/// by the API server and make every comparison "changed").
const DEPLOY_STATUS_FIELDS: &[&str] = &[
    "availableReplicas",
    "collisionCount",
    "conditions",
    "observedGeneration",
    "readyReplicas",
    "replicas",
    "terminatingReplicas",
    "unavailableReplicas",
    "updatedReplicas",
];

/// `MsgMilvusHasTerminatingPods` (`milvus_types.go`).
pub const MSG_HAS_TERMINATING_PODS: &str = "Milvus has terminating pods";

fn deploy_status(d: &Deployment) -> Value {
    let full = serde_json::to_value(d.status.clone().unwrap_or_default()).unwrap_or(Value::Null);
    let mut out = Map::new();
    if let Value::Object(m) = full {
        for (k, v) in m {
            if DEPLOY_STATUS_FIELDS.contains(&k.as_str()) && !v.is_null() {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// `{generation, image, status}` of one Deployment (`ComponentDeployStatus`).
fn component_deploy_status(d: &Deployment, w: &Workload) -> Value {
    json!({
        "generation": d.metadata.generation.unwrap_or(0),
        "image": container_image(d, w.component).unwrap_or_default(),
        "status": deploy_status(d),
    })
}

/// The Deployment serving `w`: its own, or in two-deployment mode the slot
/// the CR's `…-current-group-id` annotation names (`makeComponentDeploymentMap`).
pub fn serving<'a>(
    cr: &Value,
    w: &Workload,
    deployments: &'a BTreeMap<String, Deployment>,
) -> Option<&'a Deployment> {
    if !w.two_deploy {
        return deployments.get(&w.name);
    }
    let current = cr
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(current_group_id_annotation(&w.state_key())))
        .and_then(Value::as_str)?;
    let label = group_id_label(w.component);
    w.deployment_names().into_iter().find_map(|n| {
        deployments.get(&n).filter(|d| {
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(&label))
                .map(String::as_str)
                == Some(current)
        })
    })
}

/// `DeploymentReady`: the Deployment's `Available` condition is True.
fn available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Available"))
        .is_some_and(|c| c.status == "True")
}

fn spec_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Has the serving Deployment reached the CR's spec (count and image), and
/// the idle slot gone to 0?
fn updated(cr: &Value, w: &Workload, d: &Deployment, deployments: &BTreeMap<String, Deployment>) -> bool {
    let st = d.status.clone().unwrap_or_default();
    let n = match w.replicas {
        Replicas::Fixed(n) => n,
        Replicas::Hpa => spec_replicas(d),
    };
    let image_ok = topology::image(cr).is_none_or(|i| container_image(d, w.component) == Some(i));
    let idle_ok = deployments
        .iter()
        .filter(|(name, _)| w.two_deploy && w.deployment_names().contains(name))
        .filter(|(_, other)| other.metadata.name != d.metadata.name)
        .all(|(_, other)| {
            spec_replicas(other) == 0 && other.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
        });
    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && spec_replicas(d) == n
        && st.replicas.unwrap_or(0) == n
        && st.updated_replicas.unwrap_or(0) == n
        && st.available_replicas.unwrap_or(0) == n
        && image_ok
        && idle_ok
}

fn condition(ty: &str, ok: bool, reason: &str, message: &str, prev: &Value, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = prev
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty));
    // Like `UpdateCondition`: the transition time moves only when status,
    // reason or message change.
    let t = match old {
        Some(o) if o["status"] == status && o["reason"] == reason && o["message"] == message => {
            o.get("lastTransitionTime").cloned().unwrap_or_else(|| json!(now))
        }
        _ => json!(now),
    };
    json!({"type": ty, "status": status, "lastTransitionTime": t, "reason": reason, "message": message})
}

/// Dependency condition types, in the operator's order.
pub const DEPENDENCY_CONDITIONS: [&str; 3] = ["EtcdReady", "StorageReady", "MsgStreamReady"];

/// `checkDependencyConditions`, played on the in-cluster dependency
/// workloads: a dependency is not ready when a workload it runs on exists
/// and has no ready replica (absent workloads and external ones count as
/// ready; nothing probes endpoints in the bed).
pub fn dependency_health(
    cr: &Value,
    ns: &str,
    statefulsets: &[StatefulSet],
    deployments: &[Deployment],
) -> [bool; 3] {
    let mut ok = [true; 3];
    for dep in super::deps::planned(cr, ns) {
        let idx = if dep.release.ends_with("-etcd") {
            0
        } else if dep.release.ends_with("-minio") {
            1
        } else {
            2
        };
        for o in &dep.objects {
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            let ready = if o["kind"] == "Deployment" {
                deployments
                    .iter()
                    .find(|d| d.metadata.name.as_deref() == Some(name))
                    .map(|d| d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))
            } else {
                statefulsets
                    .iter()
                    .find(|s| s.metadata.name.as_deref() == Some(name))
                    .map(|s| s.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0))
            };
            if ready == Some(0) {
                ok[idx] = false;
            }
        }
    }
    ok
}

fn dependency_condition(ty: &str, ok: bool, prev: &Value, now: &str) -> Value {
    // status_cluster.go's messages and milvus_types.go's reasons.
    let (reason, message) = match (ty, ok) {
        ("EtcdReady", true) => ("EtcdReady", "Etcd endpoints is healthy"),
        ("EtcdReady", false) => ("EtcdNotReady", "All etcd endpoints are unhealthy"),
        ("StorageReady", true) => ("StorageReady", "Storage endpoints is healthy"),
        ("StorageReady", false) => ("StorageNotReady", "All Storage endpoints are unhealthy"),
        (_, true) => ("MsgStreamReady", "MsgStream is ready"),
        (_, false) => ("MsgStreamNotReady", "MsgStream is not ready"),
    };
    condition(ty, ok, reason, message, prev, now)
}

/// `IsDependencyReady`: all three dependency conditions are True.
pub fn dependencies_ready(cr: &Value) -> bool {
    let conds = cr.pointer("/status/conditions").and_then(Value::as_array);
    DEPENDENCY_CONDITIONS.iter().all(|ty| {
        conds
            .into_iter()
            .flatten()
            .any(|c| c["type"] == *ty && c["status"] == "True")
    })
}

/// What the status is computed from.
pub struct Inputs<'a> {
    pub cr: &'a Value,
    pub cr_name: &'a str,
    pub namespace: &'a str,
    pub workloads: &'a [Workload],
    pub deployments: &'a BTreeMap<String, Deployment>,
    /// Pods of the instance (`NewAppLabels`).
    pub pods: &'a [Pod],
    /// Fresh dependency health (status sync), or `None` to keep the
    /// conditions the CR has (a reconcile pass: "not check dependency").
    pub dependencies: Option<[bool; 3]>,
}

/// The CR's new status.
pub fn compute(i: &Inputs<'_>) -> Value {
    let cr = i.cr;
    let prev = cr.get("status").cloned().unwrap_or(Value::Null);
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut components = Map::new();
    let mut groups: Map<String, Value> = Map::new();
    let mut not_ready: Vec<String> = Vec::new();
    let mut not_updated = false;
    let mut has_ready_replica = false;
    let mut all_zero = true;
    for w in i.workloads {
        let wanted = !matches!(w.replicas, Replicas::Fixed(0));
        let running = w
            .deployment_names()
            .iter()
            .filter_map(|n| i.deployments.get(n))
            .any(|d| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0);
        if wanted || running {
            all_zero = false;
        }
        let Some(d) = serving(cr, w, i.deployments) else {
            not_ready.push(w.display_name());
            not_updated = true;
            continue;
        };
        if d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) > 0 {
            has_ready_replica = true;
        }
        if !available(d) {
            not_ready.push(w.display_name());
        }
        if !updated(cr, w, d, i.deployments) {
            not_updated = true;
        }
        let cds = component_deploy_status(d, w);
        match &w.group {
            None => {
                components.insert(w.component.name().into(), cds);
            }
            Some(g) => {
                let entry = groups
                    .entry(w.component.name().to_string())
                    .or_insert_with(|| json!({}));
                entry[g] = cds;
            }
        }
    }
    let healthy = not_ready.is_empty() && has_ready_replica;
    let stopped = all_zero;
    let prev_status = prev.get("status").and_then(Value::as_str).unwrap_or("");
    let overall = if stopped {
        "Stopped"
    } else if healthy {
        "Healthy"
    } else if prev_status.is_empty() || prev_status == "Pending" {
        // Never healthy yet: still being created.
        "Pending"
    } else {
        "Unhealthy"
    };
    let (ready_reason, ready_msg) = if stopped {
        ("MilvusStopped", "All Milvus components are stopped".to_string())
    } else if healthy {
        (
            "ReasonMilvusHealthy",
            "All Milvus components are healthy".to_string(),
        )
    } else {
        (
            "MilvusComponentNotHealthy",
            format!("[{}] not ready", not_ready.join(" ")),
        )
    };
    let terminating = i.pods.iter().any(|p| p.metadata.deletion_timestamp.is_some());
    let (upd_ok, upd_reason, upd_msg) = if terminating {
        (false, "MilvusComponentsUpdating", MSG_HAS_TERMINATING_PODS)
    } else if not_updated {
        (
            false,
            "MilvusComponentsUpdating",
            "Milvus components are updating",
        )
    } else {
        (
            true,
            "MilvusComponentsUpdated",
            "Milvus components are all updated",
        )
    };
    let mut conditions: Vec<Value> = Vec::new();
    for (k, ty) in DEPENDENCY_CONDITIONS.iter().enumerate() {
        match i.dependencies {
            Some(ok) => conditions.push(dependency_condition(ty, ok[k], &prev, &now)),
            None => conditions.extend(
                prev.get("conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c["type"] == *ty))
                    .cloned(),
            ),
        }
    }
    conditions.push(condition(
        "MilvusReady",
        healthy && !stopped,
        ready_reason,
        &ready_msg,
        &prev,
        &now,
    ));
    conditions.push(condition(
        "MilvusUpdated",
        upd_ok,
        upd_reason,
        upd_msg,
        &prev,
        &now,
    ));
    let generation = cr
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut status = json!({
        "status": overall,
        "conditions": conditions,
        "endpoint": format!("{}-milvus.{}:19530", i.cr_name, i.namespace),
        "componentsDeployStatus": components,
        "rollingModeVersion": topology::rolling_mode(cr),
        "observedGeneration": generation,
        "currentImage": topology::image(cr).unwrap_or(""),
    });
    if !groups.is_empty() {
        status["deploymentGroupsDeployStatus"] = Value::Object(groups);
    }
    if let Some(v) = cr.pointer("/spec/components/version").and_then(Value::as_str) {
        status["currentVersion"] = json!(v);
    }
    status
}

/// Is the CR Healthy with `MilvusUpdated` True (the 60 s sync loop's set)?
pub fn healthy_and_updated(cr: &Value) -> bool {
    cr.pointer("/status/status").and_then(Value::as_str) == Some("Healthy")
        && cr
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "MilvusUpdated" && c["status"] == "True")
}
