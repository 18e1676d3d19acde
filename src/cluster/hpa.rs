//! A HorizontalPodAutoscaler's bounds: written guarded by what this run
//! last read or wrote, watched for another writer, handed back to the
//! manifest's applier when a run ends.

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::Patch;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::Cluster;
use super::api::{ApiError, Op};
use super::fields::{self, write_params};
use crate::core::bounds::Bounds;
use crate::core::ownership;

/// Why a bounds write did not land: the caller tells the user to carry on
/// after a failure, but not after another writer's change (carrying on
/// would undo it).
#[derive(Debug)]
pub enum BoundsStop {
    Failed(String),
    OtherWriter(String),
}

impl std::fmt::Display for BoundsStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundsStop::Failed(why) | BoundsStop::OtherWriter(why) => f.write_str(why),
        }
    }
}

fn hpa_op<'a>(verb: &'a str, namespace: &'a str, name: &'a str) -> Op<'a> {
    Op {
        verb,
        resource: "horizontalpodautoscalers.autoscaling",
        namespace: Some(namespace),
        name: Some(name),
    }
}

fn other_writer(name: &str, now: Bounds, expected: Bounds) -> String {
    format!(
        "another writer changed the bounds of HorizontalPodAutoscaler {name} to {now} (this run expected {expected}); this run wrote nothing over it"
    )
}

/// Resolves, with a one-line account, when the HPA's bounds are seen to be
/// other than `expected` (what this run wrote last). Never resolves while
/// they stay so; a watch that cannot be made leaves the check to the next
/// step's guarded write.
pub async fn bounds_changed(cluster: &Cluster, namespace: &str, name: &str, expected: Bounds) -> String {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut seen = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    while let Some(event) = seen.next().await {
        if let Ok(hpa) = event {
            let now = Bounds::of(&hpa);
            if now != expected {
                return other_writer(name, now, expected);
            }
        }
    }
    futures::future::pending().await
}

/// Patches the HPA's bounds from a fresh read, guarded by its
/// resourceVersion. Bounds other than `expected` (what this run last read
/// or wrote) are another writer's, and nothing is written over them; a
/// conflict (the HPA controller writes its status) is retried.
pub async fn write(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    expected: &mut Bounds,
    to: Bounds,
) -> Result<(), BoundsStop> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client(), namespace);
    for _ in 0..5 {
        let live = cluster
            .call(hpa_op("get", namespace, name), api.get(name))
            .await
            .map_err(|e| BoundsStop::Failed(e.to_string()))?;
        let now = Bounds::of(&live);
        // Our own write whose answer was lost has landed.
        if now == to {
            *expected = to;
            return Ok(());
        }
        if now != *expected {
            return Err(BoundsStop::OtherWriter(other_writer(name, now, *expected)));
        }
        let patch = Patch::Merge(json!({
            "metadata": {"resourceVersion": live.metadata.resource_version},
            "spec": {"minReplicas": to.min, "maxReplicas": to.max},
        }));
        match cluster
            .call(
                hpa_op("patch", namespace, name),
                api.patch(name, &write_params(), &patch),
            )
            .await
        {
            Ok(_) => {
                *expected = to;
                return Ok(());
            }
            Err(ApiError::Conflict { .. }) => {}
            Err(e) => return Err(BoundsStop::Failed(e.to_string())),
        }
    }
    Err(BoundsStop::Failed(format!(
        "HorizontalPodAutoscaler {name} kept changing under this run's patches"
    )))
}

/// The HPA's bounds now, its bounds' field ownership handed back to the
/// manifest's server-side applier on the way (Helm's, when Helm applied it
/// server-side), so the next apply of other bounds meets no conflict.
pub async fn settle(cluster: &Cluster, namespace: &str, name: &str) -> Result<Bounds, ApiError> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client(), namespace);
    let hpa = cluster
        .call(hpa_op("get", namespace, name), api.get(name))
        .await?;
    let bounds = Bounds::of(&hpa);
    fields::hand_back(cluster, namespace, hpa, &ownership::HPA_BOUNDS).await?;
    Ok(bounds)
}
