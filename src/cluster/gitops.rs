//! API access for GitOps owners: which of their APIs are served, reading a
//! HelmRelease or Application as plain JSON (CRDs we do not link types
//! for), and the live workloads' metadata the markers sit on.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::api::{ApiError, Cluster, Op};
use crate::core::gitops::{ARGO_GROUP, ARGO_VERSION, FLUX_GROUP, FLUX_VERSIONS, LiveObject};
use crate::core::manifest::{Labels, ManifestObject};

/// The GitOps APIs this server serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitopsApis {
    /// The newest served `helm.toolkit.fluxcd.io` version we know.
    pub helm_release_version: Option<String>,
    /// `argoproj.io/v1alpha1` is served.
    pub applications: bool,
}

pub fn helm_release_resource(version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(FLUX_GROUP, version, "HelmRelease"),
        "helmreleases",
    )
}

pub fn application_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(ARGO_GROUP, ARGO_VERSION, "Application"),
        "applications",
    )
}

impl Cluster {
    /// One discovery request (`/apis`, readable by every authenticated
    /// user) tells which owner APIs exist, so a missing CRD costs no 404s.
    pub async fn gitops_apis(&self) -> Result<GitopsApis, ApiError> {
        let op = Op {
            verb: "list",
            resource: "API groups",
            namespace: None,
            name: None,
        };
        let groups = self.call(op, self.client().list_api_groups()).await?;
        let served = |group: &str| -> Vec<String> {
            groups
                .groups
                .iter()
                .filter(|g| g.name == group)
                .flat_map(|g| g.versions.iter().map(|v| v.version.clone()))
                .collect()
        };
        let flux = served(FLUX_GROUP);
        Ok(GitopsApis {
            helm_release_version: FLUX_VERSIONS
                .iter()
                .find(|v| flux.iter().any(|f| f == *v))
                .map(|v| v.to_string()),
            applications: served(ARGO_GROUP).iter().any(|v| v == ARGO_VERSION),
        })
    }

    /// One custom object, as JSON.
    pub async fn get_custom(&self, ar: &ApiResource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client(), namespace, ar);
        let resource = format!("{}.{}", ar.plural, ar.group);
        let op = Op {
            verb: "get",
            resource: &resource,
            namespace: Some(namespace),
            name: Some(name),
        };
        let obj = self.call(op, api.get(name)).await?;
        Ok(serde_json::to_value(obj).unwrap_or(Value::Null))
    }

    /// Custom objects of a namespace, or of all namespaces, as JSON.
    pub async fn list_custom(
        &self,
        ar: &ApiResource,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client(), ns, ar),
            None => Api::all_with(self.client(), ar),
        };
        let resource = format!("{}.{}", ar.plural, ar.group);
        let op = Op {
            verb: "list",
            resource: &resource,
            namespace,
            name: None,
        };
        let list = self.call(op, api.list(&ListParams::default())).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect())
    }

    /// Milvus chart Deployments of every namespace (`-A`), for instances
    /// that have no Helm record.
    pub async fn list_milvus_deployments_everywhere(&self) -> Result<Vec<LiveObject>, ApiError> {
        let api: Api<Deployment> = Api::all(self.client());
        let op = Op {
            verb: "list",
            resource: "deployments.apps",
            namespace: None,
            name: None,
        };
        let params = ListParams::default().labels("app.kubernetes.io/name=milvus");
        let list = self.call(op, api.list(&params)).await?;
        Ok(list.items.iter().map(deployment_object).collect())
    }

    /// The StatefulSets of a namespace, with their metadata.
    pub async fn list_statefulset_objects(&self, namespace: &str) -> Result<Vec<StatefulSet>, ApiError> {
        self.list(namespace, &ListParams::default()).await
    }
}

fn live_object(
    kind: &str,
    meta: &ObjectMeta,
    replicas: Option<i32>,
    selector: Option<&LabelSelector>,
    pod_labels: Option<&Labels>,
) -> LiveObject {
    LiveObject {
        namespace: meta.namespace.clone().unwrap_or_default(),
        object: ManifestObject {
            kind: kind.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            replicas: replicas.map(i64::from),
            selector: selector.and_then(|s| s.match_labels.clone()).unwrap_or_default(),
            pod_labels: pod_labels.cloned().unwrap_or_default(),
            scale_target: None,
        },
        annotations: meta.annotations.clone().unwrap_or_default(),
    }
}

pub fn deployment_object(d: &Deployment) -> LiveObject {
    let spec = d.spec.as_ref();
    live_object(
        "Deployment",
        &d.metadata,
        spec.and_then(|s| s.replicas),
        spec.map(|s| &s.selector),
        spec.and_then(|s| s.template.metadata.as_ref()?.labels.as_ref()),
    )
}

pub fn statefulset_object(s: &StatefulSet) -> LiveObject {
    let spec = s.spec.as_ref();
    live_object(
        "StatefulSet",
        &s.metadata,
        spec.and_then(|s| s.replicas),
        spec.map(|s| &s.selector),
        spec.and_then(|s| s.template.metadata.as_ref()?.labels.as_ref()),
    )
}
