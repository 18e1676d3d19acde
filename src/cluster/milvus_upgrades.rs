//! `MilvusUpgrade`s (`milvusupgrades.milvus.io`, the Milvus Operator's
//! upgrade runs), read only: a run in flight rewrites every replica count
//! of the `Milvus` it upgrades.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams};

use super::Cluster;
use super::api::{ApiError, Op};
use crate::core::operator::{API_GROUP, API_VERSION};
use crate::core::operator_checks::Upgrade;

const RESOURCE: &str = "milvusupgrades.milvus.io";

/// What could be learnt of a namespace's upgrades.
#[derive(Debug)]
pub enum Upgrades {
    /// Listed (none without the CRD).
    Listed(Vec<Upgrade>),
    /// Listing was forbidden: the warning to print.
    Unknown(String),
}

/// The `MilvusUpgrade`s of a namespace.
pub async fn list(cluster: &Cluster, namespace: &str) -> Result<Upgrades, ApiError> {
    let resource = ApiResource {
        group: API_GROUP.to_string(),
        version: API_VERSION.to_string(),
        api_version: format!("{API_GROUP}/{API_VERSION}"),
        kind: "MilvusUpgrade".to_string(),
        plural: "milvusupgrades".to_string(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), namespace, &resource);
    let op = Op {
        verb: "list",
        resource: RESOURCE,
        namespace: Some(namespace),
        name: None,
    };
    match cluster.call(op, api.list(&ListParams::default())).await {
        Ok(list) => Ok(Upgrades::Listed(
            list.items
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .map(|v| Upgrade::from_value(&v))
                .collect(),
        )),
        Err(ApiError::NotFound { .. }) => Ok(Upgrades::Listed(Vec::new())),
        Err(e @ ApiError::Forbidden { .. }) => Ok(Upgrades::Unknown(format!(
            "{e}; whether a MilvusUpgrade is rewriting the replica counts was not checked"
        ))),
        Err(e) => Err(e),
    }
}
