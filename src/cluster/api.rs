//! Thin, typed calls to the API server. Every call is bounded by the
//! request timeout and its failure is mapped to an [`ApiError`] that names
//! the verb, resource, server and context, so the CLI can print one line.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use thiserror::Error;

use super::Connection;
use crate::core::status::LiveWorkload;

/// A failed API call, typed where callers branch on it.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error(
        "forbidden: you cannot {verb} {resource} in {scope} ({message}); ask for the Role in the README's RBAC section"
    )]
    Forbidden {
        verb: String,
        resource: String,
        scope: String,
        message: String,
    },
    #[error("{resource} {name} not found in namespace {namespace}")]
    NotFound {
        resource: String,
        name: String,
        namespace: String,
    },
    #[error("conflict writing {what}: it changed since it was read")]
    Conflict { what: String },
    #[error(
        "the API server {server} (context {context:?}) did not answer within {timeout:?} while trying to {what}"
    )]
    Timeout {
        server: String,
        context: String,
        timeout: Duration,
        what: String,
    },
    #[error("cannot reach the API server {server} (context {context:?}) to {what}: {cause}")]
    Unreachable {
        server: String,
        context: String,
        what: String,
        cause: String,
    },
    #[error("the API server refused to {what}: {message} (HTTP {code})")]
    Server {
        what: String,
        code: u16,
        message: String,
    },
}

/// What a call does, for error messages: `list` `secrets` in `namespace x`.
#[derive(Debug, Clone)]
pub struct Op<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl Op<'_> {
    fn scope(&self) -> String {
        match self.namespace {
            Some(ns) => format!("namespace {ns:?}"),
            None => "all namespaces".to_string(),
        }
    }
    fn describe(&self) -> String {
        match self.name {
            Some(n) => format!("{} {} {n} in {}", self.verb, self.resource, self.scope()),
            None => format!("{} {} in {}", self.verb, self.resource, self.scope()),
        }
    }
}

/// The connected cluster, with bounded, error-mapped calls.
#[derive(Clone)]
pub struct Cluster {
    pub conn: Connection,
}

impl Cluster {
    pub fn new(conn: Connection) -> Self {
        Self { conn }
    }

    pub fn client(&self) -> kube::Client {
        self.conn.client.clone()
    }

    pub fn namespace(&self) -> &str {
        &self.conn.namespace
    }

    /// Runs one API call under the request timeout, mapping its error.
    pub async fn call<T>(
        &self,
        op: Op<'_>,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<T, ApiError> {
        let result = match self.conn.request_timeout {
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(ApiError::Timeout {
                        server: self.conn.server.clone(),
                        context: self.conn.context.clone(),
                        timeout: t,
                        what: op.describe(),
                    });
                }
            },
            None => fut.await,
        };
        result.map_err(|e| self.map_error(&op, e))
    }

    fn map_error(&self, op: &Op<'_>, err: kube::Error) -> ApiError {
        match err {
            kube::Error::Api(status) if status.is_forbidden() => ApiError::Forbidden {
                verb: op.verb.to_string(),
                resource: op.resource.to_string(),
                scope: op.scope(),
                message: status.message.clone(),
            },
            kube::Error::Api(status) if status.is_not_found() => ApiError::NotFound {
                resource: op.resource.to_string(),
                name: op.name.unwrap_or_default().to_string(),
                namespace: op.namespace.unwrap_or_default().to_string(),
            },
            kube::Error::Api(status) if status.is_conflict() || status.is_already_exists() => {
                ApiError::Conflict {
                    what: format!("{} {}", op.resource, op.name.unwrap_or_default()),
                }
            }
            kube::Error::Api(status) => ApiError::Server {
                what: op.describe(),
                code: status.code,
                message: if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                },
            },
            other => ApiError::Unreachable {
                server: self.conn.server.clone(),
                context: self.conn.context.clone(),
                what: op.describe(),
                cause: root_cause(&other),
            },
        }
    }

    /// Lists for reading only: served from the API server's watch cache
    /// (`resourceVersion=0`), which is cheap and at most milliseconds stale.
    pub fn cached_list() -> ListParams {
        ListParams::default().match_any()
    }

    /// Lists one kind in a namespace; the error names `<plural>.<group>`.
    pub async fn list<K>(&self, namespace: &str, params: &ListParams) -> Result<Vec<K>, ApiError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client(), namespace);
        let dt = K::DynamicType::default();
        let group = K::group(&dt);
        let resource = if group.is_empty() {
            K::plural(&dt).into_owned()
        } else {
            format!("{}.{group}", K::plural(&dt))
        };
        let op = Op {
            verb: "list",
            resource: &resource,
            namespace: Some(namespace),
            name: None,
        };
        Ok(self.call(op, api.list(params)).await?.items)
    }

    pub async fn list_pods(&self, namespace: &str) -> Result<Vec<Pod>, ApiError> {
        self.list(namespace, &Self::cached_list()).await
    }

    /// autoscaling/v1 is served by every version from v1.20 to today, and
    /// carries everything shown (target, bounds, current replicas).
    pub async fn list_hpas(&self, namespace: &str) -> Result<Vec<HorizontalPodAutoscaler>, ApiError> {
        self.list(namespace, &Self::cached_list()).await
    }

    pub async fn list_deployments(&self, namespace: &str) -> Result<Vec<LiveWorkload>, ApiError> {
        let items: Vec<Deployment> = self.list(namespace, &Self::cached_list()).await?;
        Ok(items.iter().map(live_deployment).collect())
    }

    pub async fn list_statefulsets(&self, namespace: &str) -> Result<Vec<LiveWorkload>, ApiError> {
        let items: Vec<StatefulSet> = self.list(namespace, &Self::cached_list()).await?;
        Ok(items.iter().map(live_statefulset).collect())
    }
}

pub fn live_deployment(d: &Deployment) -> LiveWorkload {
    let status = d.status.clone().unwrap_or_default();
    LiveWorkload {
        kind: "Deployment".to_string(),
        name: d.metadata.name.clone().unwrap_or_default(),
        replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        up_to_date: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    }
}

pub fn live_statefulset(s: &StatefulSet) -> LiveWorkload {
    let status = s.status.clone().unwrap_or_default();
    LiveWorkload {
        kind: "StatefulSet".to_string(),
        name: s.metadata.name.clone().unwrap_or_default(),
        replicas: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        up_to_date: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    }
}

/// The innermost cause of a transport error ("Connection refused (os error
/// 111)"), which is what a user can act on.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
