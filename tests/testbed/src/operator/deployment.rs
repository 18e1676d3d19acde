//! The Deployment the Milvus Operator writes for one workload: names,
//! labels, selector, owner reference and the pod-template fields a tool
//! looking at the cluster sees (`deploy_ctrl_util.go` `CreateDeploy`,
//! `deployment_updater.go` `updateDeployment`/`updatePodTemplate`).

use serde_json::{Map, Value, json};

use super::topology::{Component, MANAGER, Replicas, Workload};

/// `milvus.io/deployment-group`: the group of a grouped workload.
pub const DEPLOYMENT_GROUP_LABEL: &str = "milvus.io/deployment-group";
/// `milvus.io/service`: proxy/standalone pods (the Service selects these).
pub const SERVICE_LABEL: &str = "milvus.io/service";
/// 30 days: the operator's `terminationGracePeriodSeconds` and
/// `progressDeadlineSeconds` (`oneMonthSeconds`), so a stuck rollout never
/// gets its pods killed.
pub const ONE_MONTH_SECONDS: i64 = 24 * 30 * 3600;
/// Image of the `config` init container (the operator's own image).
pub const TOOL_IMAGE: &str = "milvusdb/milvus-operator:v1.3.8";

/// `milvus.io/<component>-group-id`: the two-deployment slot of a Deployment.
pub fn group_id_label(c: Component) -> String {
    format!("milvus.io/{}-group-id", c.name())
}

/// `milvus.io/<stateKey>-current-group-id`: CR annotation naming the
/// serving slot (`GetComponentCurrentGroupIDLabel`, keyed by `GetStateKey`).
pub fn current_group_id_annotation(state_key: &str) -> String {
    format!("milvus.io/{state_key}-current-group-id")
}

/// `milvus.io/<stateKey>-rolling-id`: CR label set while a two-deployment
/// rollout runs (`GetRollingIdLabelByComponent`), value the generation.
pub fn rolling_id_label(state_key: &str) -> String {
    format!("milvus.io/{state_key}-rolling-id")
}

/// The image of the component's container (else the first container's).
pub fn container_image(d: &k8s_openapi::api::apps::v1::Deployment, c: Component) -> Option<&str> {
    let cs = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
    cs.iter()
        .find(|x| x.name == c.name())
        .or_else(|| cs.first())?
        .image
        .as_deref()
}

/// `NewComponentAppLabels`.
pub fn app_labels(cr: &str, c: Component) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app.kubernetes.io/instance".into(), json!(cr));
    m.insert("app.kubernetes.io/component".into(), json!(c.name()));
    m.insert("app.kubernetes.io/name".into(), json!("milvus"));
    m.insert("app.kubernetes.io/managed-by".into(), json!(MANAGER));
    m
}

/// Selector labels: app labels, plus group and slot where they apply.
pub fn selector_labels(cr: &str, w: &Workload, slot: Option<u8>) -> Map<String, Value> {
    let mut m = app_labels(cr, w.component);
    if let Some(g) = &w.group {
        m.insert(DEPLOYMENT_GROUP_LABEL.into(), json!(g));
    }
    if let Some(slot) = slot {
        m.insert(group_id_label(w.component), json!(slot.to_string()));
    }
    m
}

/// Inputs besides the workload.
pub struct Owner<'a> {
    pub name: &'a str,
    pub uid: &'a str,
    /// `spec.components.image`.
    pub image: &'a str,
    /// `spec.components.dummyImage` (image of an idle slot-1 Deployment).
    pub dummy_image: Option<&'a str>,
    /// `minReadySeconds` (the operator: 30; `Timings::min_ready_seconds`).
    pub min_ready_seconds: i32,
}

fn run_args(c: Component) -> Vec<&'static str> {
    let mut args = vec!["/milvus/tools/run.sh", "milvus", "run"];
    if c == Component::MixCoord {
        args.extend([
            "mixture",
            "-rootcoord",
            "-querycoord",
            "-datacoord",
            "-indexcoord",
        ]);
    } else {
        args.push(c.name());
    }
    args
}

fn ports(c: Component) -> Value {
    let metrics = json!({"name": "metrics", "containerPort": 9091, "protocol": "TCP"});
    if c.is_service() {
        json!([{"name": "milvus", "containerPort": 19530, "protocol": "TCP"}, metrics])
    } else {
        json!([metrics])
    }
}

/// The Deployment object (JSON) for `w`, or for its two-deployment `slot`
/// (`CreateDeploy`: created at 0 replicas, slot 1 with the dummy image).
pub fn build(owner: &Owner<'_>, w: &Workload, slot: Option<u8>) -> Value {
    let selector = selector_labels(owner.name, w, slot);
    let mut labels = selector.clone();
    for (k, v) in &w.group_labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut pod_labels = labels.clone();
    if w.component.is_service() {
        pod_labels.insert(SERVICE_LABEL.into(), json!("true"));
    }
    // A slot-1 Deployment is created idle with a placeholder image "to avoid
    // rolling back and forth" (CreateDeploy).
    let image = if slot == Some(1) {
        owner.dummy_image.unwrap_or("dummy")
    } else {
        owner.image
    };
    let mut container = json!({
        "name": w.component.name(),
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": run_args(w.component),
        "ports": ports(w.component),
        "env": [{"name": "MINIO_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": format!("{}-minio", owner.name), "key": "accesskey"}}},
                {"name": "MINIO_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": format!("{}-minio", owner.name), "key": "secretkey"}}}],
        "volumeMounts": [{"name": "milvus-config", "mountPath": "/milvus/configs/operator", "readOnly": true},
                         {"name": "tools", "mountPath": "/milvus/tools"},
                         {"name": "milvus-data", "mountPath": "/var/lib/milvus/data"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 9091, "scheme": "HTTP"},
                           "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 2},
    });
    if w.component.is_service() {
        // Hold SIGTERM while load balancers drop the pod (deployment_updater.go).
        container["lifecycle"] = json!({"preStop": {"exec": {"command": ["sleep", "30"]}}});
    }
    let mut spec = json!({
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "progressDeadlineSeconds": ONE_MONTH_SECONDS,
        "minReadySeconds": owner.min_ready_seconds,
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "initContainers": [{"name": "config", "image": TOOL_IMAGE, "command": ["/bin/sh"], "args": ["/init.sh"],
                    "volumeMounts": [{"name": "milvus-config", "mountPath": "/milvus/configs/operator", "readOnly": true},
                                     {"name": "tools", "mountPath": "/milvus/tools"}],
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000}}],
                "containers": [container],
                "volumes": [{"name": "milvus-config", "configMap": {"name": owner.name, "defaultMode": 511}},
                            {"name": "tools", "emptyDir": {}},
                            {"name": "milvus-data", "emptyDir": {}}],
                "terminationGracePeriodSeconds": ONE_MONTH_SECONDS,
            },
        },
    });
    // A rollout slot is created at 0 and scaled by the two-deployment
    // controller; an HPA-owned Deployment without replicas (the API server
    // defaults 1); every other one with the CR's count.
    match (slot, w.replicas) {
        (Some(_), _) => spec["replicas"] = json!(0),
        (None, Replicas::Fixed(n)) => spec["replicas"] = json!(n),
        (None, Replicas::Hpa) => {}
    }
    let name = match slot {
        Some(n) => format!("{}-{n}", w.name),
        None => w.name.clone(),
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "milvus.io/v1beta1", "kind": "Milvus", "name": owner.name, "uid": owner.uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

/// The `spec.replicas` the operator wants on a live Deployment now (None =
/// leave as is). An HPA-owned one is only lifted from 0 ("hpa cannot scale
/// from 0").
pub fn wanted_replicas(w: &Workload, live: Option<i32>) -> Option<i32> {
    match w.replicas {
        Replicas::Fixed(n) => (live != Some(n)).then_some(n),
        Replicas::Hpa => (live == Some(0)).then_some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::topology::workloads;

    #[test]
    fn querynode_slot_labels_and_owner() {
        let cr = json!({"spec": {"mode": "cluster", "components": {"image": "milvusdb/milvus:v2.6.15"}}});
        let ws = workloads(&cr, "mc");
        let qn = ws.iter().find(|w| w.name == "mc-milvus-querynode").unwrap();
        let owner = Owner {
            name: "mc",
            uid: "u",
            image: "milvusdb/milvus:v2.6.15",
            dummy_image: None,
            min_ready_seconds: 0,
        };
        let d = build(&owner, qn, Some(1));
        assert_eq!(d["metadata"]["name"], "mc-milvus-querynode-1");
        assert_eq!(d["metadata"]["labels"]["milvus.io/querynode-group-id"], "1");
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "dummy");
        assert_eq!(d["metadata"]["ownerReferences"][0]["controller"], true);
        let d0 = build(&owner, qn, Some(0));
        assert_eq!(d0["spec"]["replicas"], 0, "CreateDeploy makes a slot at 0");
        assert_eq!(
            d0["spec"]["template"]["spec"]["containers"][0]["image"],
            "milvusdb/milvus:v2.6.15"
        );
        let proxy = ws.iter().find(|w| w.name == "mc-milvus-proxy").unwrap();
        let d = build(&owner, proxy, None);
        assert_eq!(d["spec"]["template"]["metadata"]["labels"][SERVICE_LABEL], "true");
        assert_eq!(
            d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            2592000
        );
        assert!(d["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"].is_object());
    }

    #[test]
    fn hpa_replicas_rule() {
        let w = Workload {
            component: Component::Proxy,
            group: None,
            two_deploy: false,
            name: "p".into(),
            replicas: Replicas::Hpa,
            group_labels: Map::new(),
        };
        assert_eq!(wanted_replicas(&w, Some(5)), None);
        assert_eq!(wanted_replicas(&w, Some(0)), Some(1));
        let w = Workload {
            replicas: Replicas::Fixed(3),
            ..w
        };
        assert_eq!(wanted_replicas(&w, Some(5)), Some(3));
        assert_eq!(wanted_replicas(&w, Some(3)), None);
    }
}
