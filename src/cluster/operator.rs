//! API access for Milvus Operator clusters: `Milvus` resources (read,
//! patched, watched) and the Deployments the operator makes. Deployments
//! are only ever read here: the operator owns them.

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::Cluster;
use super::api::{ApiError, Op, forbidden_watch, live_deployment};
use crate::core::operator::{self, MilvusResource, OperatorDeployment};

/// The field manager of our writes to `Milvus` resources.
const FIELD_MANAGER: &str = "kubectl-milvus";

/// The `Milvus` resources in scope, or why there are none to show.
#[derive(Debug)]
pub enum Found {
    Resources(Vec<MilvusResource>),
    /// The CRD is not installed: a Helm-only cluster.
    NoCrd,
    /// Listing was forbidden: the one-line warning to print.
    Forbidden(String),
}

pub(crate) fn resource() -> ApiResource {
    ApiResource {
        group: operator::API_GROUP.to_string(),
        version: operator::API_VERSION.to_string(),
        api_version: format!("{}/{}", operator::API_GROUP, operator::API_VERSION),
        kind: operator::KIND.to_string(),
        plural: operator::PLURAL.to_string(),
    }
}

fn api(client: Client, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource()),
        None => Api::all_with(client, &resource()),
    }
}

fn op<'a>(verb: &'a str, namespace: Option<&'a str>, name: Option<&'a str>) -> Op<'a> {
    Op {
        verb,
        resource: operator::RESOURCE,
        namespace,
        name,
    }
}

fn decode(object: DynamicObject) -> Result<MilvusResource, ApiError> {
    let text = serde_json::to_value(&object).map_err(|e| e.to_string());
    text.and_then(MilvusResource::from_value)
        .map_err(|message| ApiError::Server {
            what: format!(
                "read {} {}",
                operator::RESOURCE,
                object.metadata.name.unwrap_or_default()
            ),
            code: 0,
            message,
        })
}

/// Lists `Milvus` resources (`namespace = None`: everywhere). A 404 means the
/// CRD is not installed; a 403 is reported, not fatal, so Helm releases
/// still show.
pub async fn list(cluster: &Cluster, namespace: Option<&str>) -> Result<Found, ApiError> {
    let api = api(cluster.client(), namespace);
    match cluster
        .call(op("list", namespace, None), api.list(&ListParams::default()))
        .await
    {
        Ok(list) => Ok(Found::Resources(
            list.items.into_iter().map(decode).collect::<Result<_, _>>()?,
        )),
        Err(ApiError::NotFound { .. }) => Ok(Found::NoCrd),
        Err(e @ ApiError::Forbidden { .. }) => Ok(Found::Forbidden(format!(
            "{e}; Milvus Operator clusters are not shown"
        ))),
        Err(e) => Err(e),
    }
}

/// One resource, fresh; `None` when it (or the CRD) does not exist.
pub async fn get(cluster: &Cluster, namespace: &str, name: &str) -> Result<Option<MilvusResource>, ApiError> {
    let api = api(cluster.client(), Some(namespace));
    match cluster
        .call(op("get", Some(namespace), Some(name)), api.get(name))
        .await
    {
        Ok(object) => decode(object).map(Some),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Applies a JSON patch (with its `test` preconditions) to a resource; a
/// failed precondition is HTTP 422.
pub async fn patch(
    cluster: &Cluster,
    cr: &MilvusResource,
    ops: serde_json::Value,
) -> Result<MilvusResource, ApiError> {
    let api = api(cluster.client(), Some(cr.namespace()));
    let what = op("patch", Some(cr.namespace()), Some(cr.name()));
    let patch = Patch::<()>::Json(serde_json::from_value(ops).map_err(|e| ApiError::Server {
        what: what.describe(),
        code: 0,
        message: e.to_string(),
    })?);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    decode(cluster.call(what, api.patch(cr.name(), &params, &patch)).await?)
}

/// What a watch saw go wrong.
#[derive(Debug)]
pub enum WatchError {
    /// Forbidden: retrying cannot mend it (the server's message).
    Forbidden(String),
    /// Anything the watcher retries by itself.
    Retrying,
}

/// Watches one resource: every version it takes, from now on.
pub fn watch(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> impl Stream<Item = Result<MilvusResource, WatchError>> + Send + 'static {
    let api = api(cluster.client(), Some(namespace));
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .map(|event| match event {
            Ok(object) => decode(object).map_err(|_| WatchError::Retrying),
            Err(e) => Err(forbidden_watch(&e).map_or(WatchError::Retrying, WatchError::Forbidden)),
        })
}

/// The operator's Deployments of a namespace (`None`: everywhere), by its
/// `managed-by` label.
pub async fn deployments(
    cluster: &Cluster,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<OperatorDeployment>, ApiError> {
    let params = params
        .clone()
        .labels(&format!("{}={}", operator::MANAGED_BY_LABEL, operator::MANAGER));
    let api: Api<Deployment> = match namespace {
        Some(ns) => Api::namespaced(cluster.client(), ns),
        None => Api::all(cluster.client()),
    };
    let what = Op {
        verb: "list",
        resource: "deployments.apps",
        namespace,
        name: None,
    };
    let items = cluster.call(what, api.list(&params)).await?.items;
    Ok(items.iter().map(operator_deployment).collect())
}

/// A Deployment as the operator's lookups need it.
pub fn operator_deployment(d: &Deployment) -> OperatorDeployment {
    OperatorDeployment {
        live: live_deployment(d),
        labels: d.metadata.labels.clone().unwrap_or_default(),
        controller: d
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind.clone(), o.name.clone())),
        status_replicas: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    }
}
