//! Which pod a Milvus node is: QueryCoord lists nodes by session address
//! (`IP:port`); the pod with that IP is the node. Never assumed to be a
//! `queryNode` pod: in 2.6 a streaming node embeds a query node and is
//! listed too, and a node whose pod is gone stays listed until its session
//! expires.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::api::{DEFAULT_METRICS_PORT, METRICS_PORT_NAME, NodeInfo, NodeState};
use crate::core::components;
use crate::core::pods::workload_of;
use crate::core::pods::{LivePods, PrintedPod};

/// A Milvus pod of the instance that can be asked and matched: the fields
/// the Milvus view needs, taken from the live pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MilvusPod {
    pub name: String,
    /// Its component's key in `components::CATALOGUE` (`queryNode`,
    /// `streamingNode`, `proxy`, `mixCoordinator`…), from the pod's
    /// component label, so Helm and Operator pods read the same.
    pub component: String,
    /// `status.podIP`; empty until the pod has one.
    pub ip: String,
    /// The container port named `metrics` (9091 when none is named).
    pub metrics_port: u16,
    /// Running, not being deleted: worth a request.
    pub running: bool,
    pub ready: bool,
}

impl MilvusPod {
    pub fn from_pod(pod: &Pod, component: &str) -> MilvusPod {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        MilvusPod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            component: component.to_string(),
            ip: status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
            metrics_port: metrics_port(pod),
            running: pod.metadata.deletion_timestamp.is_none()
                && status.and_then(|s| s.phase.as_deref()) == Some("Running"),
            ready,
        }
    }

    /// Can a request reach it (through the API server's proxy)?
    pub fn askable(&self) -> bool {
        self.running && !self.ip.is_empty()
    }
}

/// The Milvus pods among an instance's pods, with their component: the
/// chart's `component` label or the Milvus Operator's
/// `app.kubernetes.io/component`, on pods labelled
/// `app.kubernetes.io/name=milvus` (Pulsar's `component: proxy` is not
/// Milvus). Pods of unknown components are left out.
pub fn milvus_pods(pods: &[&Pod]) -> Vec<MilvusPod> {
    pods.iter()
        .filter_map(|p| Some(MilvusPod::from_pod(p, milvus_component(&p.metadata)?)))
        .collect()
}

/// [`milvus_pods`] of pods read as the server prints them: the IP is the
/// row's, the metrics port is `port`'s for the pod (its workload's
/// template), else Milvus's default.
pub fn printed_milvus_pods(
    pods: &[&PrintedPod],
    port: impl Fn(&ObjectMeta) -> Option<u16>,
) -> Vec<MilvusPod> {
    pods.iter()
        .filter_map(|p| {
            let component = milvus_component(&p.metadata)?;
            let row = &p.row;
            let (ready, total) = row.ready.split_once('/').unwrap_or_default();
            Some(MilvusPod {
                name: p.metadata.name.clone().unwrap_or_default(),
                component: component.to_string(),
                ip: Some(row.ip.as_str())
                    .filter(|ip| *ip != "<none>")
                    .unwrap_or_default()
                    .to_string(),
                metrics_port: port(&p.metadata).unwrap_or(DEFAULT_METRICS_PORT),
                // Printed "Running": phase Running and no container waiting
                // or terminated (a crash-looping one could not answer).
                running: p.metadata.deletion_timestamp.is_none() && row.status == "Running",
                ready: ready == total && !matches!(total, "" | "0"),
            })
        })
        .collect()
}

/// The Milvus pods among a namespace's pods (either form read) that `keep`
/// keeps; a printed pod's metrics port is its Deployment's template's
/// (`ports`, by Deployment name).
pub fn live_milvus_pods(
    pods: &LivePods,
    keep: impl Fn(&ObjectMeta) -> bool,
    ports: &BTreeMap<String, u16>,
) -> Vec<MilvusPod> {
    match pods {
        LivePods::Objects(pods) => {
            milvus_pods(&pods.iter().filter(|p| keep(&p.metadata)).collect::<Vec<_>>())
        }
        LivePods::Printed(pods) => printed_milvus_pods(
            &pods.iter().filter(|p| keep(&p.metadata)).collect::<Vec<_>>(),
            |meta| match workload_of(meta)? {
                ("Deployment", name) => ports.get(name).copied(),
                _ => None,
            },
        ),
    }
}

/// The catalogue key of a Milvus pod's component (see [`milvus_pods`]).
fn milvus_component(meta: &ObjectMeta) -> Option<&'static str> {
    let labels = meta.labels.as_ref()?;
    if labels.get("app.kubernetes.io/name").map(String::as_str) != Some("milvus") {
        return None;
    }
    let label = labels
        .get("component")
        .or_else(|| labels.get("app.kubernetes.io/component"))?;
    Some(components::by_label(label)?.key)
}

/// The pod's container port named `metrics`, else Milvus's default 9091.
pub fn metrics_port(pod: &Pod) -> u16 {
    pod.spec
        .as_ref()
        .and_then(named_metrics_port)
        .unwrap_or(DEFAULT_METRICS_PORT)
}

/// The container port named `metrics` of a pod spec (a pod's, or a
/// workload's template), if one is.
pub fn named_metrics_port(spec: &PodSpec) -> Option<u16> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// The IP of a session address: `10.1.2.3:21123`, `[fd00::7]:21123`, or a bare IP.
pub fn address_ip(address: &str) -> Option<IpAddr> {
    let a = address.trim();
    a.parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| a.parse::<IpAddr>())
        .ok()
}

/// A node of `node/list`, with its pod when exactly one pod of the instance
/// has its IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappedNode {
    pub id: i64,
    pub address: String,
    pub state: NodeState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's component: `queryNode`, or `streamingNode` for a query node
    /// a streaming node embeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

/// Matches nodes to pods by IP. A pod being deleted keeps its IP until it is
/// gone, and a new pod may reuse a freed one: when more than one pod has
/// the IP, a running one wins; when several run with it (host network), the
/// node stays unmatched rather than guessed.
pub fn map_nodes(nodes: &[NodeInfo], pods: &[MilvusPod]) -> Vec<MappedNode> {
    // Each pod's IP parsed once: hundreds of nodes meet hundreds of pods.
    let mut by_ip: HashMap<IpAddr, Vec<&MilvusPod>> = HashMap::new();
    for p in pods {
        if let Ok(ip) = p.ip.parse::<IpAddr>() {
            by_ip.entry(ip).or_default().push(p);
        }
    }
    nodes
        .iter()
        .map(|n| {
            let same: &[&MilvusPod] = address_ip(&n.address)
                .and_then(|ip| by_ip.get(&ip))
                .map_or(&[], Vec::as_slice);
            let running: Vec<&&MilvusPod> = same.iter().filter(|p| p.running).collect();
            let pod = match (same, running.as_slice()) {
                ([only], _) => Some(*only),
                (_, [one]) => Some(**one),
                _ => None,
            };
            MappedNode {
                id: n.id,
                address: n.address.clone(),
                state: n.state.clone(),
                pod: pod.map(|p| p.name.clone()),
                component: pod.map(|p| p.component.clone()),
            }
        })
        .collect()
}

/// The node a pod is, if QueryCoord lists one at its IP.
pub fn node_of<'a>(mapped: &'a [MappedNode], pod: &str) -> Option<&'a MappedNode> {
    mapped.iter().find(|m| m.pod.as_deref() == Some(pod))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::milvus::fixtures;

    fn pod(name: &str, component: &str, ip: &str, running: bool) -> MilvusPod {
        MilvusPod {
            running,
            ..fixtures::pod(name, component, ip)
        }
    }

    fn node(id: i64, address: &str) -> NodeInfo {
        NodeInfo {
            id,
            address: address.into(),
            state: NodeState::Active,
        }
    }

    #[test]
    fn nodes_map_to_pods_by_ip_whatever_their_component() {
        let pods = [
            pod("qn-a", "queryNode", "10.244.0.5", true),
            pod("sn-0", "streamingNode", "10.244.0.9", true),
            pod("proxy-x", "proxy", "10.244.0.2", true),
        ];
        let mapped = map_nodes(
            &[
                node(7, "10.244.0.5:21123"),
                node(9, "10.244.0.9:21123"),
                node(4, "10.244.0.77:21123"),
            ],
            &pods,
        );
        assert_eq!(mapped[0].pod.as_deref(), Some("qn-a"));
        assert_eq!(mapped[0].component.as_deref(), Some("queryNode"));
        // A streaming node's embedded query node is its streaming-node pod.
        assert_eq!(mapped[1].component.as_deref(), Some("streamingNode"));
        // Left behind: no pod has that IP.
        assert_eq!(mapped[2].pod, None);
        assert_eq!(node_of(&mapped, "qn-a").map(|m| m.id), Some(7));
    }

    #[test]
    fn a_reused_ip_goes_to_the_running_pod_and_ambiguity_to_none() {
        let pods = [
            pod("old", "queryNode", "10.244.0.5", false),
            pod("new", "queryNode", "10.244.0.5", true),
        ];
        assert_eq!(
            map_nodes(&[node(7, "10.244.0.5:21123")], &pods)[0].pod.as_deref(),
            Some("new")
        );
        let host_net = [
            pod("a", "queryNode", "192.168.1.4", true),
            pod("b", "queryNode", "192.168.1.4", true),
        ];
        assert_eq!(map_nodes(&[node(7, "192.168.1.4:21123")], &host_net)[0].pod, None);
    }

    #[test]
    fn addresses_and_ports_parse() {
        assert_eq!(address_ip("[fd00::7]:21123"), "fd00::7".parse().ok());
        assert_eq!(address_ip("10.1.2.3"), "10.1.2.3".parse().ok());
        assert_eq!(address_ip("querynode:21123"), None);
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "milvus", "containerPort": 19530}, {"name": "metrics", "containerPort": 9191}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.3"}
        }))
        .expect("pod");
        assert_eq!(metrics_port(&p), 9191);
        let m = MilvusPod::from_pod(&p, "proxy");
        assert!(m.askable() && !m.ready);
        let labelled = |labels: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "x", "labels": labels}}))
                .expect("pod")
        };
        let chart =
            labelled(serde_json::json!({"app.kubernetes.io/name": "milvus", "component": "querynode"}));
        let operator = labelled(
            serde_json::json!({"app.kubernetes.io/name": "milvus", "app.kubernetes.io/component": "mixcoord"}),
        );
        let pulsar = labelled(serde_json::json!({"app.kubernetes.io/name": "pulsar", "component": "proxy"}));
        let found = milvus_pods(&[&chart, &operator, &pulsar, &p]);
        assert_eq!(
            found.iter().map(|m| m.component.as_str()).collect::<Vec<_>>(),
            ["queryNode", "mixCoordinator"]
        );
        let bare: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "q"}})).expect("pod");
        assert_eq!(metrics_port(&bare), 9091);
        assert!(!MilvusPod::from_pod(&bare, "proxy").askable());
    }

    #[test]
    fn a_printed_pod_is_the_same_milvus_pod_as_the_whole_one() {
        let whole = |status: serde_json::Value, deleting: bool| -> Pod {
            let mut metadata = serde_json::json!({
                "name": "r-milvus-proxy-744679bd55-r5khm",
                "labels": {"app.kubernetes.io/name": "milvus", "component": "proxy", "pod-template-hash": "744679bd55"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r-milvus-proxy-744679bd55",
                    "uid": "u", "controller": true}],
                "creationTimestamp": "2026-01-11T12:00:00Z"
            });
            if deleting {
                metadata["deletionTimestamp"] = serde_json::json!("2026-01-11T12:04:00Z");
            }
            serde_json::from_value(serde_json::json!({
                "metadata": metadata,
                "spec": {"containers": [{"name": "proxy", "ports": [{"name": "metrics", "containerPort": 9191}]}]},
                "status": status
            }))
            .expect("pod")
        };
        let running = serde_json::json!({"phase": "Running", "podIP": "10.0.0.3", "podIPs": [{"ip": "10.0.0.3"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "proxy", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                "state": {"running": {}}}]});
        let crashing = serde_json::json!({"phase": "Running", "podIP": "10.0.0.4", "podIPs": [{"ip": "10.0.0.4"}],
            "containerStatuses": [{"name": "proxy", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]});
        let pending = serde_json::json!({"phase": "Pending"});
        let now = "2026-01-11T12:05:00Z".parse().expect("time");
        let ports: BTreeMap<String, u16> = [("r-milvus-proxy".to_string(), 9191)].into();
        // The one difference: a crash-looping pod is phase Running, but
        // printed as CrashLoopBackOff it is not asked (it could not answer).
        for (pod, askable, whole_askable) in [
            (whole(running.clone(), false), true, true),
            (whole(running, true), false, false),
            (whole(crashing, false), false, true),
            (whole(pending, false), false, false),
        ] {
            let printed = LivePods::Printed(vec![PrintedPod {
                metadata: pod.metadata.clone(),
                row: crate::core::pods::pod_row(&pod, now),
            }]);
            let from_row = live_milvus_pods(&printed, |_| true, &ports);
            let mut from_pod = live_milvus_pods(&LivePods::Objects(vec![pod.clone()]), |_| true, &ports);
            assert_eq!(from_pod[0].askable(), whole_askable);
            from_pod[0].running = from_row[0].running;
            assert_eq!(from_row, from_pod, "{:?}", pod.status);
            assert_eq!(from_row[0].askable(), askable);
            assert_eq!(from_row[0].metrics_port, 9191);
        }
        // A Deployment without a port named `metrics`: Milvus's default.
        let printed = LivePods::Printed(vec![PrintedPod {
            metadata: whole(serde_json::json!({}), false).metadata,
            row: crate::core::pods::pod_row(&whole(serde_json::json!({}), false), now),
        }]);
        let found = live_milvus_pods(&printed, |_| true, &BTreeMap::new());
        assert_eq!((found[0].metrics_port, found[0].ip.as_str()), (9091, ""));
        assert!(live_milvus_pods(&printed, |_| false, &ports).is_empty());
    }
}
