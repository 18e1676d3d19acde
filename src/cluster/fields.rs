//! Field ownership after a run: the fields a run wrote (a Deployment's
//! `spec.replicas`, an HPA's bounds) handed back to the server-side applier
//! of the manifest (see [`crate::core::ownership`]).

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Cluster;
use super::api::{ApiError, Op};
use crate::core::ownership::{self, Written};

/// The field manager of every write of ours to a live object.
pub const FIELD_MANAGER: &str = "kubectl-milvus";

/// Our writes' patch parameters: field manager `kubectl-milvus`.
pub fn write_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// `<plural>.<group>` of a kind, as RBAC and error messages name it.
pub fn resource_name<K: Resource>() -> String
where
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    let group = K::group(&dt);
    if group.is_empty() {
        K::plural(&dt).into_owned()
    } else {
        format!("{}.{group}", K::plural(&dt))
    }
}

/// Gives the `written` fields of `object` back to its server-side applier;
/// a no-op unless we hold them. Retried from a fresh read when the object
/// changed in between (controllers write its status).
pub async fn hand_back<K>(
    cluster: &Cluster,
    namespace: &str,
    mut object: K,
    written: &Written,
) -> Result<(), ApiError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = object.name_any();
    let resource = resource_name::<K>();
    let op = |verb| Op {
        verb,
        resource: &resource,
        namespace: Some(namespace),
        name: Some(&name),
    };
    let api: Api<K> = Api::namespaced(cluster.client(), namespace);
    for _ in 0..5 {
        let Some(handed) = ownership::hand_back(object.managed_fields(), FIELD_MANAGER, written) else {
            return Ok(());
        };
        let patch = Patch::Merge(json!({"metadata": {
            "resourceVersion": object.resource_version(),
            "managedFields": handed,
        }}));
        match cluster
            .call(op("patch"), api.patch(&name, &write_params(), &patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(ApiError::Conflict { .. }) => object = cluster.call(op("get"), api.get(&name)).await?,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Conflict {
        what: format!("the field ownership of {resource} {name} (it kept changing)"),
    })
}
