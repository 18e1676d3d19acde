//! The catalogue of Milvus components the Helm chart can render, across every
//! chart generation (≤ 4.2.3 separate coordinators, 4.2.4+ mixcoord, 5.x
//! streaming node), and what the plugin may do with each.

use serde::Serialize;

/// What a component is for; decides whether `scale` may touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Stateless or shard-serving workers: Milvus adds these to scale out.
    Worker,
    /// Coordinators: one active instance; Milvus does not scale them out.
    Coordinator,
    /// The single-pod standalone server.
    Standalone,
    /// Optional extras (cdc, attu, external woodpecker) the plugin only reports.
    Auxiliary,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Coordinator => "coordinator",
            Role::Standalone => "standalone",
            Role::Auxiliary => "auxiliary",
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// The values key, as in `--set queryNode.replicas=3`.
    pub key: &'static str,
    /// The `component` label on workloads and pods, and the name suffix.
    pub label: &'static str,
    pub role: Role,
    /// The values field holding the replica count, relative to `key`.
    pub replicas_field: &'static str,
    /// True when the chart renders `replicas:` from the value (false where the
    /// template hard-codes it, e.g. standalone and attu).
    pub replicas_rendered: bool,
}

const fn c(key: &'static str, label: &'static str, role: Role) -> Component {
    Component {
        key,
        label,
        role,
        replicas_field: "replicas",
        replicas_rendered: true,
    }
}

/// Every component of the Milvus chart, workers first (the display order).
pub const CATALOGUE: &[Component] = &[
    c("proxy", "proxy", Role::Worker),
    c("queryNode", "querynode", Role::Worker),
    c("dataNode", "datanode", Role::Worker),
    c("indexNode", "indexnode", Role::Worker),
    c("streamingNode", "streamingnode", Role::Worker),
    c("mixCoordinator", "mixcoord", Role::Coordinator),
    c("rootCoordinator", "rootcoord", Role::Coordinator),
    c("queryCoordinator", "querycoord", Role::Coordinator),
    c("dataCoordinator", "datacoord", Role::Coordinator),
    c("indexCoordinator", "indexcoord", Role::Coordinator),
    Component {
        replicas_rendered: false,
        ..c("standalone", "standalone", Role::Standalone)
    },
    c("cdc", "cdc", Role::Auxiliary),
    Component {
        replicas_rendered: false,
        ..c("attu", "attu", Role::Auxiliary)
    },
    Component {
        replicas_field: "replicaCount",
        ..c("woodpecker", "woodpecker", Role::Auxiliary)
    },
];

/// Looks a component up by its `component` label (`querynode`).
pub fn by_label(label: &str) -> Option<&'static Component> {
    CATALOGUE.iter().find(|c| c.label == label)
}

/// Looks a component up the way users type it: the values key or the label,
/// case-insensitively (`queryNode`, `querynode`, `QUERYNODE`).
pub fn by_user_name(name: &str) -> Option<&'static Component> {
    CATALOGUE
        .iter()
        .find(|c| c.key.eq_ignore_ascii_case(name) || c.label.eq_ignore_ascii_case(name))
}

/// Position in the catalogue, used to keep tables in a stable, meaningful order.
pub fn display_rank(label: &str) -> usize {
    CATALOGUE
        .iter()
        .position(|c| c.label == label)
        .unwrap_or(CATALOGUE.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_match_keys_and_labels_case_insensitively() {
        assert_eq!(by_user_name("queryNode").map(|c| c.label), Some("querynode"));
        assert_eq!(by_user_name("QUERYNODE").map(|c| c.key), Some("queryNode"));
        assert_eq!(by_user_name("mixcoord").map(|c| c.role), Some(Role::Coordinator));
        assert_eq!(by_user_name("mixCoordinator").map(|c| c.label), Some("mixcoord"));
        assert!(by_user_name("etcd").is_none());
    }

    #[test]
    fn labels_are_unique() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            for b in &CATALOGUE[i + 1..] {
                assert_ne!(a.label, b.label);
                assert_ne!(a.key, b.key);
            }
        }
    }
}
