//! Thin, typed calls to the API server. Every call is bounded by the
//! request timeout and its failure is mapped to an [`ApiError`] that names
//! the verb, resource, server and context, so the CLI can print one line.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Api;
use kube::api::ListParams;
use thiserror::Error;

use super::Connection;
use crate::core::pods::{PrintedPod, printed_row};
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

/// The server's message when a watch failed because it is forbidden (an
/// error retrying cannot mend); `None` for the errors a watcher retries.
pub fn forbidden_watch(e: &kube::runtime::watcher::Error) -> Option<String> {
    use kube::runtime::watcher::Error;
    let status = match e {
        Error::InitialListFailed(kube::Error::Api(s))
        | Error::WatchStartFailed(kube::Error::Api(s))
        | Error::WatchFailed(kube::Error::Api(s))
        | Error::WatchError(s) => s,
        _ => return None,
    };
    status.is_forbidden().then(|| status.message.clone())
}

/// A forbidden watch as the one-line error every other refused call gives
/// (`forbidden: you cannot watch … in namespace …`); `None` for errors the
/// watcher's backoff retries.
pub fn forbidden_watch_error(
    e: &kube::runtime::watcher::Error,
    resource: &str,
    namespace: &str,
) -> Option<ApiError> {
    forbidden_watch(e).map(|message| ApiError::Forbidden {
        verb: "watch".to_string(),
        resource: resource.to_string(),
        scope: format!("namespace {namespace:?}"),
        message,
    })
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
    pub fn describe(&self) -> String {
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
            // A resource the server does not serve (a CRD not installed)
            // answers a plain-text "404 page not found", not a Status with
            // reason NotFound: the code is what counts.
            kube::Error::Api(status) if status.is_not_found() || status.code == 404 => ApiError::NotFound {
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

    /// The scale-down rules of the server's ReplicaSet controller, from its
    /// version (`/version`).
    pub async fn controller_rules(&self) -> Result<crate::core::scale_in::ControllerRules, ApiError> {
        let op = Op {
            verb: "get",
            resource: "the server version",
            namespace: None,
            name: None,
        };
        let info = self.call(op, self.client().apiserver_version()).await?;
        Ok(crate::core::scale_in::ControllerRules::for_server(
            &info.major,
            &info.minor,
        ))
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

    /// The pods of a namespace that carry `selector`'s labels (slimmed as
    /// [`Cluster::list_pods`] does: drain marks and metrics ports kept).
    pub async fn list_pods_labelled(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, ApiError> {
        self.list_pods(namespace, &ListParams::default().labels(selector))
            .await
    }

    /// Whole pods (plan and scale rank them), decoded one by one and
    /// stripped of what no column needs (managedFields, annotations, most
    /// of the spec), so a namespace of a thousand pods is never held in
    /// memory as full objects.
    pub async fn list_pods(&self, namespace: &str, params: &ListParams) -> Result<Vec<Pod>, ApiError> {
        let (op, request) = self.list_pods_request(namespace, params, "")?;
        let list: SlimPodList = self.call(op, self.client().request(request)).await?;
        Ok(list.items.0)
    }

    /// The request listing a namespace's pods (`query` appended), and what
    /// it does, for errors.
    fn list_pods_request<'a>(
        &self,
        namespace: &'a str,
        params: &ListParams,
        query: &str,
    ) -> Result<(Op<'a>, http::Request<Vec<u8>>), ApiError> {
        let api: Api<Pod> = Api::namespaced(self.client(), namespace);
        let op = Op {
            verb: "list",
            resource: "pods",
            namespace: Some(namespace),
            name: None,
        };
        let invalid = |message: String| ApiError::Server {
            what: op.describe(),
            code: 0,
            message,
        };
        let mut request = kube::core::Request::new(api.resource_url())
            .list(params)
            .map_err(|e| invalid(e.to_string()))?;
        if !query.is_empty() {
            let uri = format!("{}&{query}", request.uri());
            *request.uri_mut() = uri
                .parse()
                .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        }
        Ok((op, request))
    }

    /// Pods as the server prints them for `kubectl get pods`: its Table
    /// view (`kubectl get` asks for exactly this and prints its cells), each
    /// row with the pod's metadata (owner, labels, deletion). The server
    /// computes the rows by its own version's rules, so they are kubectl's
    /// on every version; the body is the rows and metadata, not whole pods.
    pub async fn list_printed_pods(
        &self,
        namespace: &str,
        params: &ListParams,
    ) -> Result<Vec<PrintedPod>, ApiError> {
        // `includeObject=Metadata` is the default; asked for all the same.
        let (op, mut request) = self.list_pods_request(namespace, params, "includeObject=Metadata")?;
        request
            .headers_mut()
            .insert(http::header::ACCEPT, http::HeaderValue::from_static(POD_TABLE));
        let what = op.describe();
        let table: PodTable = self.call(op, self.client().request(request)).await?;
        table.printed().map_err(|message| ApiError::Server {
            what,
            code: 0,
            message,
        })
    }

    /// The names of every namespace (for completion).
    pub async fn namespace_names(&self) -> Result<Vec<String>, ApiError> {
        let api: Api<Namespace> = Api::all(self.client());
        let op = Op {
            verb: "list",
            resource: "namespaces",
            namespace: None,
            name: None,
        };
        let list = self.call(op, api.list(&ListParams::default())).await?;
        Ok(list.items.into_iter().filter_map(|ns| ns.metadata.name).collect())
    }

    /// autoscaling/v1 is served by every version from v1.20 to today, and
    /// carries everything shown (target, bounds, current replicas).
    pub async fn list_hpas(
        &self,
        namespace: &str,
        params: &ListParams,
    ) -> Result<Vec<HorizontalPodAutoscaler>, ApiError> {
        self.list(namespace, params).await
    }

    pub async fn list_statefulsets(&self, namespace: &str) -> Result<Vec<LiveWorkload>, ApiError> {
        let items: Vec<StatefulSet> = self.list(namespace, &ListParams::default()).await?;
        Ok(items.iter().map(live_statefulset).collect())
    }
}

/// What `kubectl get pods` asks for (meta.k8s.io/v1 Table: every server
/// from v1.15 on).
const POD_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The server's Table of pods, decoded only as far as `status` reads it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodTable {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    column_definitions: Vec<TableColumn>,
    #[serde(default)]
    rows: Vec<TableRow>,
}

impl PodTable {
    fn printed(self) -> Result<Vec<PrintedPod>, String> {
        if self.kind != "Table" {
            return Err(format!("asked for a Table of pods, got {:?}", self.kind));
        }
        let columns: Vec<String> = self.column_definitions.into_iter().map(|c| c.name).collect();
        Ok(self
            .rows
            .into_iter()
            .map(|r| PrintedPod {
                row: printed_row(&columns, &r.cells),
                metadata: r.object.map(|o| o.metadata.into()).unwrap_or_default(),
            })
            .collect())
    }
}

#[derive(serde::Deserialize)]
struct TableColumn {
    name: String,
}

#[derive(serde::Deserialize)]
struct TableRow {
    #[serde(default)]
    cells: Vec<serde_json::Value>,
    object: Option<RowObject>,
}

#[derive(serde::Deserialize)]
struct RowObject {
    #[serde(default)]
    metadata: RowMetadata,
}

/// The metadata `status` reads; the rest (managedFields: most of the
/// bytes) is skipped while decoding, never built.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RowMetadata {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<RowMetadata> for ObjectMeta {
    fn from(m: RowMetadata) -> ObjectMeta {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            labels: m.labels,
            annotations: m.annotations,
            owner_references: m.owner_references,
            ..Default::default()
        }
    }
}

/// A pod list whose items are slimmed as they are decoded.
#[derive(serde::Deserialize)]
struct SlimPodList {
    #[serde(default)]
    items: SlimPods,
}

#[derive(Default)]
struct SlimPods(Vec<Pod>);

impl<'de> serde::Deserialize<'de> for SlimPods {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> serde::de::Visitor<'de> for Items {
            type Value = SlimPods;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of pods")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<SlimPods, A::Error> {
                let mut pods = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pod) = seq.next_element::<Pod>()? {
                    pods.push(slim(pod));
                }
                Ok(SlimPods(pods))
            }
            fn visit_unit<E>(self) -> Result<SlimPods, E> {
                Ok(SlimPods::default())
            }
        }
        deserializer.deserialize_any(Items)
    }
}

/// Keeps what `kubectl get pods` columns, owner attribution, the
/// ReplicaSet victim order and Milvus's view read: of the annotations, the
/// deletion cost and the drain mark; of the ports, the one named `metrics`.
fn slim(mut pod: Pod) -> Pod {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = pod
        .metadata
        .annotations
        .take()
        .map(|mut a| {
            a.retain(|k, _| {
                k == crate::core::scale_in::DELETION_COST || k == crate::core::milvus::drain::DRAIN_MARK
            });
            a
        })
        .filter(|a| !a.is_empty());
    if let Some(spec) = pod.spec.take() {
        let keep = |c: &Container| Container {
            name: c.name.clone(),
            restart_policy: c.restart_policy.clone(),
            ports: c.ports.as_ref().map(|ps| {
                ps.iter()
                    .filter(|p| p.name.as_deref() == Some(crate::core::milvus::api::METRICS_PORT_NAME))
                    .cloned()
                    .collect()
            }),
            ..Default::default()
        };
        pod.spec = Some(PodSpec {
            containers: spec.containers.iter().map(keep).collect(),
            init_containers: spec
                .init_containers
                .as_ref()
                .map(|cs| cs.iter().map(keep).collect()),
            node_name: spec.node_name,
            readiness_gates: spec.readiness_gates,
            ..Default::default()
        });
    }
    pod
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pods::pod_row;

    #[test]
    fn slim_pods_print_the_same_row() {
        let full: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "p", "namespace": "ns", "creationTimestamp": "2026-01-11T12:00:00Z",
                "annotations": {"checksum/config": "abc"},
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]
            },
            "spec": {
                "nodeName": "n1",
                "initContainers": [{"name": "sidecar", "image": "s", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "i", "env": [{"name": "A", "value": "1"}]}],
                "readinessGates": [{"conditionType": "x/ready"}]
            },
            "status": {
                "phase": "Running", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "x/ready", "status": "True"}],
                "initContainerStatuses": [{"name": "sidecar", "ready": true, "started": true, "restartCount": 1, "image": "s", "imageID": "", "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2, "image": "i", "imageID": "", "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-11T12:03:00Z"}}}]
            }
        }))
        .expect("pod");
        let now = "2026-01-11T12:05:00Z".parse().expect("time");
        let slimmed = slim(full.clone());
        assert!(slimmed.metadata.managed_fields.is_none());
        assert!(
            slimmed
                .spec
                .as_ref()
                .is_some_and(|s| s.containers[0].env.is_none())
        );
        assert_eq!(pod_row(&slimmed, now), pod_row(&full, now));
        assert!(
            slimmed.metadata.annotations.is_none(),
            "checksum/config is dropped"
        );
        // What Milvus's view reads stays: the drain mark, the metrics port.
        let mut marked = full.clone();
        marked.metadata.annotations = Some(
            [
                ("kubectl-milvus.io/drain".to_string(), "{}".to_string()),
                ("checksum/config".to_string(), "abc".to_string()),
            ]
            .into(),
        );
        marked.spec.as_mut().expect("spec").containers[0].ports = serde_json::from_value(
            serde_json::json!([{"name": "milvus", "containerPort": 19530}, {"name": "metrics", "containerPort": 9191}]),
        )
        .expect("ports");
        let kept = slim(marked);
        assert_eq!(
            kept.metadata
                .annotations
                .as_ref()
                .map(|a| a.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["kubectl-milvus.io/drain".to_string()])
        );
        assert_eq!(crate::core::milvus::nodes::metrics_port(&kept), 9191);
        let list: SlimPodList =
            serde_json::from_value(serde_json::json!({"items": [full.clone(), full]})).expect("list");
        assert_eq!(list.items.0.len(), 2);
        let empty: SlimPodList =
            serde_json::from_value(serde_json::json!({"items": null})).expect("null items");
        assert!(empty.items.0.is_empty());
    }

    /// A Table row as a v1.20 server sends it (RESTARTS an integer), and
    /// one as newer servers do (a string), columns by name.
    fn table(restarts: serde_json::Value, restarts_type: &str) -> serde_json::Value {
        let column = |name: &str, type_: &str, priority: u8| serde_json::json!({"name": name, "type": type_, "format": "", "description": "", "priority": priority});
        serde_json::json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "10618"},
            "columnDefinitions": [
                column("Name", "string", 0), column("Ready", "string", 0), column("Status", "string", 0),
                column("Restarts", restarts_type, 0), column("Age", "string", 0), column("IP", "string", 1),
                column("Node", "string", 1), column("Nominated Node", "string", 1),
                column("Readiness Gates", "string", 1)
            ],
            "rows": [{
                "cells": ["my-release-milvus-proxy-744679bd55-r5khm", "1/1", "Running", restarts, "45s",
                          "10.244.2.15", "sim-node", "<none>", "<none>"],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {
                        "name": "my-release-milvus-proxy-744679bd55-r5khm",
                        "generateName": "my-release-milvus-proxy-744679bd55-",
                        "namespace": "ns",
                        "uid": "7e2b5f62",
                        "resourceVersion": "9421",
                        "creationTimestamp": "2026-12-05T12:16:36Z",
                        "labels": {"component": "proxy", "pod-template-hash": "744679bd55"},
                        "annotations": {"controller.kubernetes.io/pod-deletion-cost": "-5"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": "my-release-milvus-proxy-744679bd55", "uid": "7e711feb",
                            "controller": true, "blockOwnerDeletion": true}],
                        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                            "apiVersion": "v1", "time": "2026-12-05T12:16:36Z", "fieldsType": "FieldsV1",
                            "fieldsV1": {"f:metadata": {"f:generateName": {}}}}]
                    }
                }
            }]
        })
    }

    #[test]
    fn a_pod_table_gives_kubectls_rows_and_the_metadata() {
        for (restarts, type_, shown) in [
            (serde_json::json!(2), "integer", "2"),
            (serde_json::json!("2 (5m ago)"), "string", "2 (5m ago)"),
        ] {
            let table: PodTable = serde_json::from_value(table(restarts, type_)).expect("table");
            let pods = table.printed().expect("printed");
            assert_eq!(pods.len(), 1);
            let p = &pods[0];
            assert_eq!(
                [
                    &p.row.name,
                    &p.row.ready,
                    &p.row.status,
                    &p.row.restarts,
                    &p.row.age
                ],
                [
                    "my-release-milvus-proxy-744679bd55-r5khm",
                    "1/1",
                    "Running",
                    shown,
                    "45s"
                ]
            );
            assert_eq!(
                [
                    &p.row.ip,
                    &p.row.node,
                    &p.row.nominated_node,
                    &p.row.readiness_gates
                ],
                ["10.244.2.15", "sim-node", "<none>", "<none>"]
            );
            let m = &p.metadata;
            assert_eq!(m.namespace.as_deref(), Some("ns"));
            assert_eq!(
                m.labels
                    .as_ref()
                    .and_then(|l| l.get("pod-template-hash"))
                    .map(String::as_str),
                Some("744679bd55")
            );
            let owner = &m.owner_references.as_ref().expect("owners")[0];
            assert_eq!(
                (owner.kind.as_str(), owner.controller),
                ("ReplicaSet", Some(true))
            );
            assert!(m.creation_timestamp.is_some() && m.deletion_timestamp.is_none());
            assert_eq!(
                crate::core::scale_in::deletion_cost(&Pod {
                    metadata: m.clone(),
                    ..Default::default()
                }),
                -5
            );
            assert!(m.managed_fields.is_none());
        }
    }

    #[test]
    fn a_pod_list_instead_of_a_table_is_refused() {
        let list: PodTable = serde_json::from_value(serde_json::json!({
            "kind": "PodList", "apiVersion": "v1", "items": []
        }))
        .expect("decodes");
        assert!(list.printed().expect_err("not a table").contains("PodList"));
        let empty: PodTable =
            serde_json::from_value(serde_json::json!({"kind": "Table", "rows": []})).expect("empty");
        assert!(empty.printed().expect("no pods").is_empty());
    }
}
