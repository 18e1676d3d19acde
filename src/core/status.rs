//! The status model: what one release looks like, built from its Helm record
//! and the live objects. Pure: the API layer gathers the inputs.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::core::chart::Chart;
use crate::core::components::{self, Role};
use crate::core::manifest::ManifestObject;
use crate::core::pods::{LivePods, PodRow, workload_of};
use crate::core::release::Release;
use crate::core::values::{self, Replicas};

/// Who owns a Milvus instance: a Helm release of the `milvus` chart, a
/// `Milvus` resource the Milvus Operator reconciles, or the chart rendered
/// by Argo CD (no Helm record; its Application is the `owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManagedBy {
    Helm,
    MilvusOperator,
    #[serde(rename = "argocd")]
    ArgoCd,
}

/// A Deployment's or StatefulSet's live replica counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveWorkload {
    pub kind: String,
    pub name: String,
    /// `spec.replicas` (the API server defaults it, so it is always set live).
    pub replicas: i32,
    pub ready: i32,
    pub up_to_date: i32,
    pub available: i32,
}

/// An HPA targeting one of the release's workloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaStatus {
    pub name: String,
    pub min: i32,
    pub max: i32,
    pub current: i32,
    pub desired: i32,
}

/// One row of the component table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// The values key (`queryNode`).
    pub component: String,
    /// The `component` label (`querynode`).
    pub label: String,
    pub role: Role,
    /// The resource group, for `replicaResourceGroups` workloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// The Milvus Operator's deployment group (`spec.components.<c>.groups[]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_group: Option<String>,
    pub kind: String,
    pub workload: String,
    /// What the release's values ask for.
    pub desired: Replicas,
    /// The live workload; `None` when it does not exist in the cluster.
    pub live: Option<LiveWorkload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaStatus>,
    /// Drift, HPA fights, missing workloads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A dependency workload (etcd, MinIO, Pulsar, Kafka …) summarised from its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyStatus {
    pub kind: String,
    pub name: String,
    pub pods_ready: usize,
    pub pods: usize,
}

/// A revision left `pending-*`: another Helm operation is running, or one
/// (possibly ours) was killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRevision {
    pub revision: u64,
    pub status: String,
    pub description: String,
    /// Written by `kubectl milvus scale` (which can repair it on re-run).
    pub by_plugin: bool,
    /// The `scale` run holding the release's lock (`host/pid`), if any: at
    /// work, or gone without giving it up (one read cannot tell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// The lock's last renewal time, as its holder wrote it by its own
    /// clock (RFC 3339); never compared with ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_renew_time: Option<String>,
    /// Why the lock could not be read, if it could not: whether a run is
    /// at work on the revision is then unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_unknown: Option<String>,
}

/// A pod of the release, as `kubectl get pods` shows it, plus its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePod {
    #[serde(flatten)]
    pub row: PodRow,
    pub namespace: String,
    /// `Deployment/x`, `StatefulSet/y`, `Job/z`.
    pub workload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

/// Everything `status` shows for one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    pub release: String,
    pub namespace: String,
    pub managed_by: ManagedBy,
    pub chart: String,
    pub chart_version: String,
    pub app_version: String,
    pub revision: u64,
    pub helm_status: String,
    pub updated: String,
    pub mode: String,
    pub message_queue: String,
    /// Where Helm keeps the record: `Secret` or `ConfigMap` (`none`: a
    /// GitOps-rendered instance without one).
    pub storage: String,
    /// The GitOps object that owns it (Flux HelmRelease, Argo CD Application).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::core::gitops::Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRevision>,
    pub components: Vec<ComponentStatus>,
    pub dependencies: Vec<DependencyStatus>,
    pub pods: Vec<ReleasePod>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Milvus's own view (`status` only; `None` until asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milvus: Option<crate::core::milvus::view::MilvusView>,
}

/// The live inputs for one release, gathered by the API layer.
pub struct LiveState<'a> {
    pub workloads: &'a [LiveWorkload],
    pub hpas: &'a [HorizontalPodAutoscaler],
    pub pods: &'a LivePods,
}

/// Description prefix of revisions the plugin writes, so it can recognise
/// its own pending revision after a crash.
pub const PLUGIN_DESCRIPTION_PREFIX: &str = "kubectl-milvus:";

/// A Milvus component workload found in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentWorkload<'a> {
    pub component: &'static components::Component,
    pub object: &'a ManifestObject,
    pub resource_group: Option<String>,
}

/// The Milvus component workloads of a manifest. A workload belongs to Milvus
/// when its `helm.sh/chart` label is the release's chart (dependencies carry
/// their own chart label, and Pulsar's `component=proxy` has none).
pub fn component_workloads<'a>(chart: &Chart, objects: &'a [ManifestObject]) -> Vec<ComponentWorkload<'a>> {
    let chart_label = chart.label();
    let mut out: Vec<_> = objects
        .iter()
        .filter(|o| o.kind == "Deployment" || o.kind == "StatefulSet")
        .filter(|o| o.labels.get("helm.sh/chart") == Some(&chart_label))
        .filter_map(|o| {
            let component = components::by_label(o.labels.get("component")?)?;
            Some(ComponentWorkload {
                component,
                object: o,
                resource_group: o.labels.get("milvus.io/resource-group").cloned(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (components::display_rank(a.component.label), &a.object.name)
            .cmp(&(components::display_rank(b.component.label), &b.object.name))
    });
    out
}

/// What the values ask of a component.
pub fn desired_replicas(values: &serde_json::Value, component: &components::Component) -> Replicas {
    if !component.replicas_rendered {
        return Replicas::Count(1);
    }
    match values::get(values, &format!("{}.{}", component.key, component.replicas_field)) {
        Some(v) => Replicas::parse(v),
        // The chart defaults every replicas value to 1.
        None => Replicas::Count(1),
    }
}

/// Builds the status of one release from its Helm record.
pub fn build(
    release: &Release,
    namespace: &str,
    storage: &str,
    pending: Option<&Release>,
    objects: &[ManifestObject],
    live: &LiveState<'_>,
    now: jiff::Timestamp,
) -> ReleaseStatus {
    let mut status = build_chart(&Chart::of_record(release), namespace, objects, live, now);
    status.revision = release.version();
    status.helm_status = release.status().to_string();
    status.updated = release.last_deployed().to_string();
    status.storage = storage.to_string();
    status.pending = pending.map(|p| PendingRevision {
        revision: p.version(),
        status: p.status().to_string(),
        description: p.description().to_string(),
        by_plugin: p.description().starts_with(PLUGIN_DESCRIPTION_PREFIX),
        held_by: None,
        held_renew_time: None,
        lock_unknown: None,
    });
    status
}

/// Builds the status of an instance of the chart, whatever made it: with
/// no Helm record (revision 0, status and storage `none`) until [`build`]
/// says what the record holds.
pub fn build_chart(
    chart: &Chart,
    namespace: &str,
    objects: &[ManifestObject],
    live: &LiveState<'_>,
    now: jiff::Timestamp,
) -> ReleaseStatus {
    let values = &chart.values;
    let namespace = namespace.to_string();
    let mut warnings = Vec::new();

    let live_by_name: BTreeMap<(&str, &str), &LiveWorkload> = live
        .workloads
        .iter()
        .map(|w| ((w.kind.as_str(), w.name.as_str()), w))
        .collect();

    let mut components_out = Vec::new();
    for cw in component_workloads(chart, objects) {
        let desired = desired_replicas(values, cw.component);
        let live_w = live_by_name
            .get(&(cw.object.kind.as_str(), cw.object.name.as_str()))
            .map(|w| (*w).clone());
        let hpa = live
            .hpas
            .iter()
            .find(|h| {
                h.spec.as_ref().is_some_and(|s| {
                    s.scale_target_ref.kind == cw.object.kind && s.scale_target_ref.name == cw.object.name
                })
            })
            .map(hpa_status);
        let notes = component_notes(
            cw.component,
            &desired,
            live_w.as_ref(),
            hpa.as_ref(),
            chart.server_side.then_some(chart.name.as_str()),
        );
        components_out.push(ComponentStatus {
            component: cw.component.key.to_string(),
            label: cw.component.label.to_string(),
            role: cw.component.role,
            resource_group: cw.resource_group,
            deployment_group: None,
            kind: cw.object.kind.clone(),
            workload: cw.object.name.clone(),
            desired,
            live: live_w,
            hpa,
            notes,
        });
    }

    // HPAs the release renders whose target the release does not have
    // (resource groups rename querynode; standalone has no workers).
    for o in objects.iter().filter(|o| o.kind == "HorizontalPodAutoscaler") {
        if let Some((kind, target)) = &o.scale_target
            && !objects.iter().any(|w| &w.kind == kind && &w.name == target)
        {
            warnings.push(format!(
                "HPA {} targets {kind} {target}, which this release does not have; it scales nothing",
                o.name
            ));
        }
    }

    let pods = release_pods(objects, live.pods, now);
    let dependencies = dependency_status(chart, objects, &pods);

    ReleaseStatus {
        release: chart.name.clone(),
        namespace,
        managed_by: ManagedBy::Helm,
        chart: chart.chart_name.clone(),
        chart_version: chart.chart_version.clone(),
        app_version: chart.app_version.clone(),
        revision: 0,
        helm_status: "none".to_string(),
        updated: String::new(),
        mode: values::mode(values).to_string(),
        message_queue: values::message_queue(values),
        storage: "none".to_string(),
        owner: None,
        pending: None,
        components: components_out,
        dependencies,
        pods,
        warnings: std::mem::take(&mut warnings),
        milvus: None,
    }
}

pub fn hpa_status(h: &HorizontalPodAutoscaler) -> HpaStatus {
    let spec = h.spec.as_ref();
    let status = h.status.as_ref();
    HpaStatus {
        name: h.metadata.name.clone().unwrap_or_default(),
        min: spec.and_then(|s| s.min_replicas).unwrap_or(1),
        max: spec.map_or(0, |s| s.max_replicas),
        current: status.map_or(0, |s| s.current_replicas),
        desired: status.map_or(0, |s| s.desired_replicas),
    }
}

fn component_notes(
    component: &components::Component,
    desired: &Replicas,
    live: Option<&LiveWorkload>,
    hpa: Option<&HpaStatus>,
    // The release's name when Helm applies it server-side.
    server_side: Option<&str>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(live) = live else {
        notes.push("missing: the release's manifest has it, the cluster does not".to_string());
        return notes;
    };
    match (desired, hpa) {
        // What the next `helm upgrade --reuse-values` really does depends on
        // how the release is applied.
        (Replicas::Count(n), Some(h)) if server_side.is_some() => notes.push(format!(
            "HPA {} ({}-{}) and values ({key}.replicas={n}) both set replicas: once the HPA has changed the count, the next helm upgrade (server-side apply, Helm 4) fails with a conflict over .spec.replicas with kube-controller-manager (Kubernetes v1.22+; older servers reset the HPA's choice); set {key}.replicas=-1 (`kubectl milvus scale {release} {key} --min N --max M` does it in the same revision)",
            h.name,
            h.min,
            h.max,
            key = component.key,
            release = server_side.unwrap_or_default()
        )),
        (Replicas::Count(n), Some(h)) => notes.push(format!(
            "HPA {} ({}-{}) and values ({}.replicas={n}) both set replicas: every helm upgrade resets the HPA's choice; set {}.replicas=-1",
            h.name, h.min, h.max, component.key, component.key
        )),
        (Replicas::Count(n), None) if i64::from(live.replicas) != i64::from(*n) => notes.push(format!(
            "drift: values say {n}, the {} has {} (changed outside Helm; the next helm upgrade resets it)",
            live.kind, live.replicas
        )),
        (Replicas::Unset, None) => notes.push(format!(
            "replicas unset ({}.replicas<0) but no HPA targets it",
            component.key
        )),
        (Replicas::Invalid(v), _) => notes.push(format!("values hold an invalid replica count: {v}")),
        _ => {}
    }
    notes
}

/// The pods a release owns, through ownerReferences of the workloads in its
/// manifest (label selectors alone also match other releases' pods, e.g.
/// Pulsar's `component=proxy`).
pub fn release_pods(objects: &[ManifestObject], pods: &LivePods, now: jiff::Timestamp) -> Vec<ReleasePod> {
    let mut out: Vec<ReleasePod> = pods
        .rows(now, |meta| owner_of(objects, meta))
        .into_iter()
        .map(|(workload, meta, row)| ReleasePod {
            row,
            namespace: meta.namespace.clone().unwrap_or_default(),
            workload: format!("{}/{}", workload.kind, workload.name),
            component: workload
                .labels
                .get("component")
                .filter(|_| workload.labels.contains_key("helm.sh/chart"))
                .cloned(),
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.row.name).cmp(&(&b.namespace, &b.row.name)));
    out
}

/// The manifest workload that owns a pod, if any.
pub fn owner_workload<'a>(objects: &'a [ManifestObject], pod: &Pod) -> Option<&'a ManifestObject> {
    owner_of(objects, &pod.metadata)
}

/// The manifest workload that owns the pod of this metadata, if any.
pub fn owner_of<'a>(objects: &'a [ManifestObject], pod: &ObjectMeta) -> Option<&'a ManifestObject> {
    let (kind, name) = workload_of(pod)?;
    objects.iter().find(|o| o.kind == kind && o.name == name)
}

fn dependency_status(
    chart: &Chart,
    objects: &[ManifestObject],
    pods: &[ReleasePod],
) -> Vec<DependencyStatus> {
    let milvus: Vec<&str> = component_workloads(chart, objects)
        .iter()
        .map(|c| c.object.name.as_str())
        .collect();
    dependency_rows(
        objects.iter().filter(|o| !milvus.contains(&o.name.as_str())),
        pods,
    )
}

/// One row per Deployment or StatefulSet among `objects`, with its pods ready.
pub fn dependency_rows<'a>(
    objects: impl Iterator<Item = &'a ManifestObject>,
    pods: &[ReleasePod],
) -> Vec<DependencyStatus> {
    objects
        .filter(|o| matches!(o.kind.as_str(), "Deployment" | "StatefulSet"))
        .map(|o| {
            let key = format!("{}/{}", o.kind, o.name);
            let mine: Vec<&ReleasePod> = pods.iter().filter(|p| p.workload == key).collect();
            DependencyStatus {
                kind: o.kind.clone(),
                name: o.name.clone(),
                pods_ready: mine.iter().filter(|p| is_ready(&p.row.ready)).count(),
                pods: mine.len(),
            }
        })
        .collect()
}

/// `1/1` style READY strings: all containers ready.
fn is_ready(ready: &str) -> bool {
    ready.split_once('/').is_some_and(|(a, b)| a == b && a != "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::manifest;
    use crate::core::pods::PrintedPod;
    use crate::core::test_support::{fixture_release as release, ready_deployment as deployment};
    use serde_json::json;

    fn pod(name: &str, owner_kind: &str, owner: &str, hash: Option<&str>) -> Pod {
        let mut labels = serde_json::Map::new();
        if let Some(h) = hash {
            labels.insert("pod-template-hash".into(), json!(h));
        }
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": "milvus",
                "labels": labels,
                "creationTimestamp": "2026-01-11T12:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "uid": "u", "controller": true}]
            },
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}}]
            }
        }))
        .expect("pod")
    }

    fn status(workloads: &[LiveWorkload], hpas: &[HorizontalPodAutoscaler], pods: &[Pod]) -> ReleaseStatus {
        let r = release();
        let objects = manifest::parse(r.manifest()).expect("manifest");
        let now = "2026-01-11T12:05:00Z".parse().expect("time");
        build(
            &r,
            "milvus",
            "Secret",
            None,
            &objects,
            &LiveState {
                workloads,
                hpas,
                pods: &LivePods::Objects(pods.to_vec()),
            },
            now,
        )
    }

    fn all_in_step() -> Vec<LiveWorkload> {
        vec![
            deployment("my-release-milvus-proxy", 1),
            deployment("my-release-milvus-querynode", 3),
            deployment("my-release-milvus-datanode", 2),
            deployment("my-release-milvus-streamingnode", 1),
            deployment("my-release-milvus-mixcoord", 1),
        ]
    }

    #[test]
    fn values_against_live_and_the_rendered_table() {
        let mut live = all_in_step();
        live[2] = deployment("my-release-milvus-datanode", 4); // scaled behind Helm's back
        live.remove(3); // streamingnode missing
        let s = status(&live, &[], &[]);
        let desired: Vec<(&str, Replicas)> = s
            .components
            .iter()
            .map(|c| (c.component.as_str(), c.desired.clone()))
            .collect();
        assert_eq!(
            desired,
            [
                ("proxy", Replicas::Count(1)),
                ("queryNode", Replicas::Count(3)),
                ("dataNode", Replicas::Count(2)),
                ("streamingNode", Replicas::Count(1)),
                ("mixCoordinator", Replicas::Count(1)),
            ]
        );
        assert_eq!((s.mode.as_str(), s.message_queue.as_str()), ("cluster", "pulsar"));
        insta::assert_snapshot!(crate::render::status::components(&s.components, false));
    }

    #[test]
    fn hpa_fight_is_noted() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "qn-hpa"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "my-release-milvus-querynode"}, "minReplicas": 2, "maxReplicas": 6},
            "status": {"currentReplicas": 3, "desiredReplicas": 3}
        }))
        .expect("hpa");
        let s = status(&all_in_step(), &[hpa], &[]);
        let qn = &s.components[1];
        assert_eq!(
            qn.hpa.as_ref().map(|h| (h.min, h.max, h.current)),
            Some((2, 6, 3))
        );
        assert!(qn.notes[0].contains("both set replicas"), "{:?}", qn.notes);
        // The fixture is a Helm 4 record applied server-side: the next
        // upgrade fails on the HPA's count rather than resetting it.
        assert!(
            qn.notes[0].contains(
                "the next helm upgrade (server-side apply, Helm 4) fails with a conflict over .spec.replicas"
            ) && qn.notes[0].contains("kubectl milvus scale my-release queryNode --min N --max M"),
            "{:?}",
            qn.notes
        );

        // Applied client-side (Helm 3, or Helm 4 upgrading a Helm 3 release).
        let mut r = release();
        r.0["apply_method"] = json!("csa");
        let objects = manifest::parse(r.manifest()).expect("manifest");
        let hpas = [serde_json::from_value::<HorizontalPodAutoscaler>(json!({
            "metadata": {"name": "qn-hpa"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "my-release-milvus-querynode"}, "minReplicas": 2, "maxReplicas": 6}
        }))
        .expect("hpa")];
        let workloads = all_in_step();
        let live = LiveState {
            workloads: &workloads,
            hpas: &hpas,
            pods: &LivePods::default(),
        };
        let s = build(
            &r,
            "milvus",
            "Secret",
            None,
            &objects,
            &live,
            jiff::Timestamp::now(),
        );
        assert!(
            s.components[1].notes[0].contains("every helm upgrade resets the HPA's choice"),
            "{:?}",
            s.components[1].notes
        );
    }

    /// Ours (a Deployment's, a StatefulSet's, a Job's pod) and others'.
    fn mixed_pods() -> [Pod; 6] {
        [
            pod(
                "my-release-milvus-querynode-abc12-x1",
                "ReplicaSet",
                "my-release-milvus-querynode-abc12",
                Some("abc12"),
            ),
            pod(
                "my-release-pulsarv3-proxy-0",
                "StatefulSet",
                "my-release-pulsarv3-proxy",
                None,
            ),
            pod(
                "my-release-pulsarv3-pulsar-init-q2",
                "Job",
                "my-release-pulsarv3-pulsar-init",
                None,
            ),
            // Another release's pods in the same namespace.
            pod(
                "other-milvus-proxy-def34-y2",
                "ReplicaSet",
                "other-milvus-proxy-def34",
                Some("def34"),
            ),
            pod(
                "other-pulsarv3-proxy-0",
                "StatefulSet",
                "other-pulsarv3-proxy",
                None,
            ),
            // A ReplicaSet whose name only starts like ours.
            pod(
                "my-release-milvus-querynode-x-abc-z",
                "ReplicaSet",
                "my-release-milvus-querynode-x-abc",
                Some("abc"),
            ),
        ]
    }

    #[test]
    fn pods_are_attributed_by_owner_not_by_label() {
        let pods = mixed_pods();
        let s = status(&all_in_step(), &[], &pods);
        let names: Vec<(&str, &str)> = s
            .pods
            .iter()
            .map(|p| (p.row.name.as_str(), p.workload.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "my-release-milvus-querynode-abc12-x1",
                    "Deployment/my-release-milvus-querynode"
                ),
                (
                    "my-release-pulsarv3-proxy-0",
                    "StatefulSet/my-release-pulsarv3-proxy"
                ),
                (
                    "my-release-pulsarv3-pulsar-init-q2",
                    "Job/my-release-pulsarv3-pulsar-init"
                ),
            ]
        );
        assert_eq!(s.pods[0].component.as_deref(), Some("querynode"));
        assert_eq!(
            s.pods[1].component, None,
            "Pulsar's component=proxy is not Milvus' proxy"
        );
        let proxy_dep = s
            .dependencies
            .iter()
            .find(|d| d.name == "my-release-pulsarv3-proxy")
            .expect("dep");
        assert_eq!((proxy_dep.pods_ready, proxy_dep.pods), (1, 1));
        insta::assert_snapshot!(crate::render::table::pod_table(
            &s.pods.iter().map(|p| p.row.clone()).collect::<Vec<_>>(),
            false,
            None
        ));
    }

    #[test]
    fn printed_pods_are_attributed_alike_and_keep_the_servers_row() {
        let objects = mixed_pods();
        let now = "2026-01-11T12:05:00Z".parse().expect("time");
        // What a v1.20 server prints: RESTARTS without "(… ago)".
        let printed: Vec<PrintedPod> = objects
            .iter()
            .map(|p| {
                let mut row = crate::core::pods::pod_row(p, now);
                row.restarts = "3".to_string();
                PrintedPod {
                    metadata: p.metadata.clone(),
                    row,
                }
            })
            .collect();
        let from_objects = status(&all_in_step(), &[], &objects);
        let r = release();
        let from_printed = build(
            &r,
            "milvus",
            "Secret",
            None,
            &manifest::parse(r.manifest()).expect("manifest"),
            &LiveState {
                workloads: &all_in_step(),
                hpas: &[],
                pods: &LivePods::Printed(printed),
            },
            now,
        );
        let owners = |s: &ReleaseStatus| {
            s.pods
                .iter()
                .map(|p| (p.row.name.clone(), p.workload.clone(), p.component.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(owners(&from_printed), owners(&from_objects));
        assert_eq!(from_printed.pods.len(), 3);
        assert!(from_printed.pods.iter().all(|p| p.row.restarts == "3"));
        assert!(from_objects.pods.iter().all(|p| p.row.restarts == "0"));
        assert_eq!(from_printed.dependencies, from_objects.dependencies);
    }
}
