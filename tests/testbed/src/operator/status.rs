//! `status` of a `Milvus` CR computed from its Deployments, shaped like the
//! operator's `MilvusStatus` (`apis/milvus.io/v1beta1/milvus_types.go`,
//! `pkg/controllers/status_cluster.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Map, Value, json};

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

fn container_image(d: &Deployment, container: &str) -> String {
    let cs = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| &s.containers);
    cs.and_then(|cs| cs.iter().find(|c| c.name == container).or_else(|| cs.first()))
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// `{generation, image, status}` of one Deployment (`ComponentDeployStatus`).
fn component_deploy_status(d: &Deployment, container: &str) -> Value {
    json!({
        "generation": d.metadata.generation.unwrap_or(0),
        "image": container_image(d, container),
        "status": deploy_status(d),
    })
}

/// The count a workload must have available to be healthy (None = must be
/// scaled to zero).
fn want(w: &Workload, d: &Deployment) -> i32 {
    match w.replicas {
        Replicas::Fixed(n) => n,
        Replicas::Hpa => d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
    }
}

fn available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Available"))
        .is_some_and(|c| c.status == "True")
}

/// Is the Deployment at its count: controller caught up, every wanted
/// replica ready, available and updated (and none left over).
fn at_count(w: &Workload, d: &Deployment) -> bool {
    let n = want(w, d);
    let st = d.status.clone().unwrap_or_default();
    let caught_up = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let spec_ok = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) == n;
    if n == 0 {
        return caught_up && spec_ok && st.replicas.unwrap_or(0) == 0;
    }
    caught_up
        && spec_ok
        && st.ready_replicas.unwrap_or(0) >= n
        && st.available_replicas.unwrap_or(0) >= n
        && st.updated_replicas.unwrap_or(0) >= n
        && st.replicas.unwrap_or(0) == n
        && available(d)
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

/// Compute the CR's status. `deployments` are the live ones by name;
/// `reconciled` says whether this pass applied the spec (then
/// `observedGeneration` moves to `metadata.generation`).
pub fn compute(
    cr: &Value,
    cr_name: &str,
    namespace: &str,
    workloads: &[Workload],
    deployments: &BTreeMap<String, Deployment>,
    reconciled: bool,
) -> Value {
    let prev = cr.get("status").cloned().unwrap_or(Value::Null);
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut components = Map::new();
    let mut groups: Map<String, Value> = Map::new();
    let mut not_ready: Vec<String> = Vec::new();
    let mut not_updated = false;
    let mut all_zero = true;
    for w in workloads {
        let Some(d) = deployments.get(&w.name) else {
            not_ready.push(w.name.clone());
            not_updated = true;
            continue;
        };
        if want(w, d) > 0 || d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0 {
            all_zero = false;
        }
        if !at_count(w, d) {
            let label = match &w.group {
                Some(g) => format!("{}/{g}", w.component.name()),
                None => w.component.name().to_string(),
            };
            if !not_ready.contains(&label) {
                not_ready.push(label);
            }
            not_updated = true;
        }
        if !w.is_current() {
            continue;
        }
        let cds = component_deploy_status(d, w.component.name());
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
    let healthy = not_ready.is_empty() && !all_zero;
    let stopped = all_zero && not_ready.is_empty();
    let prev_status = prev.get("status").and_then(Value::as_str).unwrap_or("");
    let overall = if healthy {
        "Healthy"
    } else if stopped {
        "Stopped"
    } else if prev_status.is_empty() || prev_status == "Pending" {
        // Never healthy yet: still being created.
        "Pending"
    } else {
        "Unhealthy"
    };
    let (ready_reason, ready_msg) = if healthy {
        (
            "ReasonMilvusHealthy",
            "All Milvus components are healthy".to_string(),
        )
    } else if stopped {
        ("MilvusStopped", "All Milvus components are stopped".to_string())
    } else {
        (
            "MilvusComponentNotHealthy",
            format!("[{}] not ready", not_ready.join(" ")),
        )
    };
    let (upd_reason, upd_msg) = if not_updated {
        ("MilvusComponentsUpdating", "Milvus components are updating")
    } else {
        ("MilvusComponentsUpdated", "Milvus components are all updated")
    };
    let conditions = vec![
        condition(
            "EtcdReady",
            true,
            "EtcdReady",
            "All etcd endpoints are healthy",
            &prev,
            &now,
        ),
        condition(
            "StorageReady",
            true,
            "StorageReady",
            "Storage endpoint is healthy",
            &prev,
            &now,
        ),
        condition(
            "MsgStreamReady",
            true,
            "MsgStreamReady",
            "MsgStream is ready",
            &prev,
            &now,
        ),
        condition("MilvusReady", healthy, ready_reason, &ready_msg, &prev, &now),
        condition("MilvusUpdated", !not_updated, upd_reason, upd_msg, &prev, &now),
    ];
    let generation = cr
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = if reconciled {
        generation
    } else {
        prev.get("observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let mut status = json!({
        "status": overall,
        "conditions": conditions,
        "endpoint": format!("{cr_name}-milvus.{namespace}:19530"),
        "componentsDeployStatus": components,
        "rollingModeVersion": topology::rolling_mode(cr),
        "observedGeneration": observed,
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
