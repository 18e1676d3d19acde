//! Which Deployments the Milvus Operator keeps for a `Milvus` CR: a pure
//! function of the CR (no API calls), so the rules are unit-tested here.
//!
//! Rules (zilliztech/milvus-operator `pkg/controllers/components.go`
//! `GetComponentsBySpec` / `GetComponentWorkloadsBySpec`, `deployments.go`
//! `ReconcileDeployments`, `deploy_ctrl_util.go` `formatComponentDeployName`,
//! `apis/milvus.io/v1beta1/milvus_types.go`):
//!
//! * `spec.mode` other than `cluster` (the webhook defaults it to
//!   `standalone`): one component, `standalone`.
//! * cluster, image/version > 2.5 (`IsVersionGreaterThan2_6`): mixcoord,
//!   datanode, streamingnode, querynode, proxy, standalone.
//! * cluster, older: mixcoord when `components.mixCoord` is set, else
//!   rootcoord/datacoord/querycoord/indexcoord; then datanode, querynode,
//!   indexnode, proxy, standalone; plus streamingnode when `streamingMode`
//!   is true, or unset with `components.streamingNode` present.
//! * `standalone` is part of every cluster: the operator keeps its
//!   Deployment at 0 replicas (the webhook defaults its replicas to 0).
//! * `cdc` when `components.cdc` is set.
//! * `groups[]` (proxy, dataNode, queryNode, streamingNode): one workload per
//!   group, sorted by name, Deployment `<cr>-milvus-<comp>-<group>`; the
//!   component-level replicas is then ignored.
//! * Two-deployment mode (query node under rollingMode 2, the default; every
//!   component under rollingMode 3): the physical Deployments are `<name>-0`
//!   and `<name>-1`; which one serves is decided at run time by the CR's
//!   `milvus.io/<stateKey>-current-group-id` annotation (see `two_deploy`).
//! * State key (`components.go` `GetStateKey`): the component's name, or for a
//!   deployment group `<component>-<first 8 bytes of sha256(group), hex>`.
//! * Replicas: the group's, else the component's, else 1 when the component
//!   is absent (`GetReplicas`); negative = an HPA owns `spec.replicas`.

use serde_json::Value;

/// `app.kubernetes.io/managed-by` of operator-owned objects.
pub const MANAGER: &str = "milvus-operator";

/// One Milvus component as the operator names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    MixCoord,
    RootCoord,
    DataCoord,
    QueryCoord,
    IndexCoord,
    DataNode,
    QueryNode,
    IndexNode,
    StreamingNode,
    Proxy,
    Standalone,
    Cdc,
}

impl Component {
    /// Lowercase name: Deployment suffix, label value, container name and
    /// key of `status.componentsDeployStatus`.
    pub fn name(self) -> &'static str {
        use Component::*;
        match self {
            MixCoord => "mixcoord",
            RootCoord => "rootcoord",
            DataCoord => "datacoord",
            QueryCoord => "querycoord",
            IndexCoord => "indexcoord",
            DataNode => "datanode",
            QueryNode => "querynode",
            IndexNode => "indexnode",
            StreamingNode => "streamingnode",
            Proxy => "proxy",
            Standalone => "standalone",
            Cdc => "cdc",
        }
    }

    /// camelCase key under `spec.components`.
    pub fn spec_key(self) -> &'static str {
        use Component::*;
        match self {
            MixCoord => "mixCoord",
            RootCoord => "rootCoord",
            DataCoord => "dataCoord",
            QueryCoord => "queryCoord",
            IndexCoord => "indexCoord",
            DataNode => "dataNode",
            QueryNode => "queryNode",
            IndexNode => "indexNode",
            StreamingNode => "streamingNode",
            Proxy => "proxy",
            Standalone => "standalone",
            Cdc => "cdc",
        }
    }

    /// Components whose pods serve clients (`milvus.io/service=true`, the
    /// 30 s `sleep` preStop hook).
    pub fn is_service(self) -> bool {
        matches!(self, Component::Proxy | Component::Standalone)
    }

    fn supports_groups(self) -> bool {
        use Component::*;
        matches!(self, Proxy | DataNode | QueryNode | StreamingNode)
    }
}

/// Who decides a Deployment's `spec.replicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// The operator sets (and restores) this count.
    Fixed(i32),
    /// `replicas: -1`: an HPA owns it; the operator only lifts 0 to 1.
    Hpa,
}

/// One workload the operator reconciles on its own: a component, or one
/// deployment group of it (`GetComponentWorkloadsBySpec`).
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub component: Component,
    /// Deployment group (`spec.components.<c>.groups[].name`).
    pub group: Option<String>,
    /// Two-deployment mode: Deployments `<name>-0` and `<name>-1`.
    pub two_deploy: bool,
    /// `<cr>-milvus-<component>[-<group>]` (without the `-0`/`-1` slot).
    pub name: String,
    pub replicas: Replicas,
    /// Group's own labels (`groups[].labels`), put on Deployment and pods.
    pub group_labels: serde_json::Map<String, Value>,
}

impl Workload {
    /// Key of the CR's rollout annotations and labels (`GetStateKey`).
    pub fn state_key(&self) -> String {
        state_key(self.component, self.group.as_deref())
    }
    /// The Deployment names it owns: one, or the two slots.
    pub fn deployment_names(&self) -> Vec<String> {
        if self.two_deploy {
            vec![format!("{}-0", self.name), format!("{}-1", self.name)]
        } else {
            vec![self.name.clone()]
        }
    }
    /// `group/name` for messages (`GetDisplayName`).
    pub fn display_name(&self) -> String {
        match &self.group {
            Some(g) => format!("{}/{g}", self.component.name()),
            None => self.component.name().to_string(),
        }
    }
}

/// `GetStateKey`: the component name, or `<component>-<hex of the first 8
/// bytes of sha256(group name)>` for a deployment group.
pub fn state_key(component: Component, group: Option<&str>) -> String {
    match group {
        None => component.name().to_string(),
        Some(g) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, g.as_bytes());
            let hex: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}-{hex}", component.name())
        }
    }
}

/// `spec.components.image`, or `None` when the webhook has not filled it.
pub fn image(cr: &Value) -> Option<&str> {
    cr.pointer("/spec/components/image").and_then(Value::as_str)
}

fn components(cr: &Value) -> &Value {
    cr.pointer("/spec/components").unwrap_or(&Value::Null)
}

fn has(cr: &Value, c: Component) -> bool {
    components(cr).get(c.spec_key()).is_some_and(|v| !v.is_null())
}

/// `IsVersionGreaterThan2_6`: `components.version`, else the image tag
/// (`master-*` counts as new), compared with 2.5.999.
pub fn version_at_least_2_6(cr: &Value) -> bool {
    let version = components(cr)
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !version.is_empty() {
        return semver_gt_2_5(version);
    }
    let Some(tag) = image(cr).and_then(|i| i.rsplit_once(':')).map(|(_, t)| t) else {
        return false;
    };
    tag.starts_with("master-") || semver_gt_2_5(tag)
}

/// Tolerant `major.minor` parse (`v2.6.0-rc1`, `2.5.11`).
fn semver_gt_2_5(v: &str) -> bool {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major: u64 = match parts.next().and_then(|p| p.parse().ok()) {
        Some(m) => m,
        None => return false,
    };
    let minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) > (2, 5)
}

/// `UseStreamingNode`.
pub fn uses_streaming_node(cr: &Value) -> bool {
    if version_at_least_2_6(cr) {
        return true;
    }
    match components(cr).get("streamingMode").and_then(Value::as_bool) {
        Some(b) => b,
        None => has(cr, Component::StreamingNode),
    }
}

/// `spec.mode == cluster`.
pub fn is_cluster(cr: &Value) -> bool {
    cr.pointer("/spec/mode").and_then(Value::as_str) == Some("cluster")
}

/// `spec.components.rollingMode` (webhook default 2).
pub fn rolling_mode(cr: &Value) -> i64 {
    components(cr)
        .get("rollingMode")
        .and_then(Value::as_i64)
        .filter(|m| *m != 0)
        .unwrap_or(2)
}

/// The logical components of the CR, in the operator's order.
pub fn active_components(cr: &Value) -> Vec<Component> {
    use Component::*;
    let mut out = Vec::new();
    if has(cr, Cdc) {
        out.push(Cdc);
    }
    if !is_cluster(cr) {
        out.push(Standalone);
        return out;
    }
    if version_at_least_2_6(cr) {
        out.extend([MixCoord, DataNode, StreamingNode, QueryNode, Proxy, Standalone]);
        return out;
    }
    if has(cr, MixCoord) {
        out.extend([MixCoord, DataNode, QueryNode, IndexNode, Proxy, Standalone]);
    } else {
        out.extend([
            RootCoord, DataCoord, QueryCoord, IndexCoord, DataNode, QueryNode, IndexNode, Proxy, Standalone,
        ]);
    }
    if uses_streaming_node(cr) {
        out.push(StreamingNode);
    }
    out
}

fn replicas_value(v: Option<&Value>, default: i64) -> Replicas {
    let n = v.and_then(Value::as_i64).unwrap_or(default);
    if n < 0 {
        Replicas::Hpa
    } else {
        Replicas::Fixed(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// Every Deployment the operator keeps for `cr` (named `cr_name`).
pub fn workloads(cr: &Value, cr_name: &str) -> Vec<Workload> {
    let two_deploy_all = rolling_mode(cr) == 3;
    let mut out = Vec::new();
    for c in active_components(cr) {
        let spec = components(cr).get(c.spec_key()).unwrap_or(&Value::Null);
        let base = format!("{cr_name}-milvus-{}", c.name());
        let two_deploy = two_deploy_all || c == Component::QueryNode;
        let mut groups: Vec<&Value> = if c.supports_groups() {
            spec.get("groups")
                .and_then(Value::as_array)
                .map(|g| g.iter().collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        groups.sort_by_key(|g| g.get("name").and_then(Value::as_str).unwrap_or("").to_string());
        // One logical workload per group (or one for the component).
        let mut logical: Vec<Workload> = Vec::new();
        if groups.is_empty() {
            // Absent component: `GetReplicas` answers 1 (the webhook would
            // have written 1; standalone in cluster mode gets 0 from it).
            let default = if c == Component::Standalone && is_cluster(cr) {
                0
            } else {
                1
            };
            logical.push(Workload {
                component: c,
                group: None,
                two_deploy,
                name: base.clone(),
                replicas: replicas_value(spec.get("replicas"), default),
                group_labels: Default::default(),
            });
        } else {
            for g in groups {
                let gname = g.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                logical.push(Workload {
                    component: c,
                    name: format!("{base}-{gname}"),
                    group: Some(gname),
                    two_deploy,
                    replicas: replicas_value(g.get("replicas"), 1),
                    group_labels: g
                        .get("labels")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                });
            }
        }
        out.extend(logical);
    }
    out
}

/// Every Deployment name the operator keeps for `cr`.
pub fn deployment_names(cr: &Value, cr_name: &str) -> Vec<String> {
    workloads(cr, cr_name)
        .iter()
        .flat_map(Workload::deployment_names)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(cr: &Value) -> Vec<String> {
        deployment_names(cr, "mc")
    }

    #[test]
    fn cluster_2_6_default_topology() {
        let cr = json!({"spec": {"mode": "cluster", "components": {"image": "milvusdb/milvus:v2.6.15"}}});
        assert_eq!(
            names(&cr),
            [
                "mc-milvus-mixcoord",
                "mc-milvus-datanode",
                "mc-milvus-streamingnode",
                "mc-milvus-querynode-0",
                "mc-milvus-querynode-1",
                "mc-milvus-proxy",
                "mc-milvus-standalone"
            ]
        );
        let w = workloads(&cr, "mc");
        assert_eq!((w[3].two_deploy, w[3].replicas), (true, Replicas::Fixed(1)));
        assert_eq!(w[3].state_key(), "querynode");
        assert_eq!(
            w[5].replicas,
            Replicas::Fixed(0),
            "standalone idles at 0 in a cluster"
        );
    }

    #[test]
    fn pre_2_6_topologies() {
        let cr = json!({"spec": {"mode": "cluster", "components": {"image": "milvusdb/milvus:v2.5.11", "mixCoord": {}}}});
        assert!(names(&cr).contains(&"mc-milvus-indexnode".to_string()));
        assert!(!names(&cr).contains(&"mc-milvus-streamingnode".to_string()));
        let cr = json!({"spec": {"mode": "cluster", "components": {"image": "milvusdb/milvus:v2.5.11", "streamingMode": true}}});
        let n = names(&cr);
        assert!(
            n.contains(&"mc-milvus-rootcoord".to_string())
                && n.contains(&"mc-milvus-streamingnode".to_string())
        );
    }

    #[test]
    fn standalone_groups_rolling_mode_3_and_hpa() {
        assert_eq!(names(&json!({"spec": {}})), ["mc-milvus-standalone"]);
        let cr = json!({"spec": {"mode": "cluster", "components": {"image": "x:v2.6.1",
            "queryNode": {"groups": [{"name": "g2", "replicas": 2}, {"name": "g1", "replicas": -1}]},
            "proxy": {"replicas": -1}}}});
        let w = workloads(&cr, "mc");
        let qn: Vec<_> = w.iter().filter(|w| w.component == Component::QueryNode).collect();
        assert_eq!(
            qn.iter().flat_map(|w| w.deployment_names()).collect::<Vec<_>>(),
            [
                "mc-milvus-querynode-g1-0",
                "mc-milvus-querynode-g1-1",
                "mc-milvus-querynode-g2-0",
                "mc-milvus-querynode-g2-1"
            ]
        );
        assert_eq!(qn[0].replicas, Replicas::Hpa);
        assert_eq!(qn[1].replicas, Replicas::Fixed(2));
        assert_eq!(
            w.iter()
                .find(|w| w.component == Component::Proxy)
                .map(|w| w.replicas),
            Some(Replicas::Hpa)
        );
        let cr3 = json!({"spec": {"mode": "cluster", "components": {"image": "x:v2.6.1", "rollingMode": 3}}});
        assert!(names(&cr3).iter().all(|n| n.ends_with("-0") || n.ends_with("-1")));
    }

    #[test]
    fn grouped_state_keys_are_hashed() {
        // `printf g1 | sha256sum` = 711430f6164e9380..., its first 8 bytes.
        assert_eq!(
            state_key(Component::QueryNode, Some("g1")),
            "querynode-711430f6164e9380"
        );
        assert_eq!(state_key(Component::QueryNode, None), "querynode");
        assert_ne!(
            state_key(Component::QueryNode, Some("g1")),
            state_key(Component::QueryNode, Some("g2"))
        );
    }
}
