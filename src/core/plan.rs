//! What a scale change would do: parsing `COMPONENT=N` requests, the safety
//! rules, the step sequence, the predicted pods and the equivalent Helm
//! command. Pure: `plan` prints it, `scale` executes it.

use std::cmp::Reverse;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::core::components::{self, Component, Role};
use crate::core::manifest::ManifestObject;
use crate::core::pods::{PodRow, pod_row};
use crate::core::release::Release;
use crate::core::status::{LiveWorkload, ManagedBy, component_workloads, desired_replicas, owner_workload};
use crate::core::values::{self, Replicas};

/// A target as typed: absolute or relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Absolute(u32),
    Relative(i64),
}

/// One `COMPONENT=N` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub component: String,
    pub target: Target,
}

/// Why a request cannot be planned. `Invalid` is the user's input;
/// `Refused` is a safety rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Invalid(String),
    Refused(String),
}

/// Parses `queryNode=3`, `querynode=+2`, `dataNode=-1`.
pub fn parse_request(text: &str) -> Result<Request, Rejection> {
    let Some((component, n)) = text.split_once('=') else {
        return Err(Rejection::Invalid(format!(
            "invalid change {text:?}: write COMPONENT=N, e.g. queryNode=3, queryNode=+1 or queryNode=-1"
        )));
    };
    let component = component.trim();
    if component.is_empty() {
        return Err(Rejection::Invalid(format!(
            "invalid change {text:?}: the component name is missing"
        )));
    }
    Ok(Request {
        component: component.to_string(),
        target: parse_target(component, n.trim())?,
    })
}

/// Parses the replica part: `3`, `+2`, `-1`.
pub fn parse_target(component: &str, n: &str) -> Result<Target, Rejection> {
    let bad = || {
        Rejection::Invalid(format!(
            "invalid replica count {n:?} for {component}: use a whole number (3) or a relative one (+1, -1)"
        ))
    };
    if let Some(rel) = n.strip_prefix('+') {
        return rel
            .parse::<u32>()
            .map(|v| Target::Relative(i64::from(v)))
            .map_err(|_| bad());
    }
    if let Some(rel) = n.strip_prefix('-') {
        return rel
            .parse::<u32>()
            .map(|v| Target::Relative(-i64::from(v)))
            .map_err(|_| bad());
    }
    n.parse::<u32>().map(Target::Absolute).map_err(|_| bad())
}

/// The inputs a plan is made from.
pub struct PlanInput<'a> {
    pub release: &'a Release,
    /// Where the release lives (the record's own `namespace` field may be stale).
    pub namespace: &'a str,
    pub objects: &'a [ManifestObject],
    pub workloads: &'a [LiveWorkload],
    pub hpas: &'a [HorizontalPodAutoscaler],
    pub pods: &'a [Pod],
    pub force: bool,
    pub now: jiff::Timestamp,
}

/// One component's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentChange {
    /// Values key (`queryNode`), or the `Milvus` resource's spec key.
    pub component: String,
    pub label: String,
    /// The operator's deployment group (`spec.components.<c>.groups[].name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Every Deployment the value drives (one per resource group).
    pub deployments: Vec<String>,
    /// What runs now (the live `spec.replicas`).
    pub current: u32,
    /// What the values (or the resource's spec) say now.
    pub values: Replicas,
    pub target: u32,
    /// Replica counts to pass through: `[3]` out, `[2, 1]` in.
    pub steps: Vec<u32>,
}

impl ComponentChange {
    pub fn values_path(&self) -> String {
        format!("{}.replicas", self.component)
    }
    /// True when only Helm's record needs writing (live already matches).
    pub fn is_noop(&self) -> bool {
        self.current == self.target && self.values == Replicas::Count(self.target)
    }
}

/// How a pod fares in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PodFate {
    Stays,
    New,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictedPod {
    #[serde(flatten)]
    pub row: PodRow,
    pub fate: PodFate,
    /// For removed pods: the step that removes it (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub managed_by: ManagedBy,
    /// The Helm release, or the `Milvus` resource's name.
    pub release: String,
    pub namespace: String,
    /// Helm only: the release's chart version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub chart_version: String,
    pub changes: Vec<ComponentChange>,
    pub warnings: Vec<String>,
    pub pods: Vec<PredictedPod>,
    /// Helm only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub helm_command: String,
    /// Operator only: the `kubectl patch milvus …` that writes the targets.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kubectl_command: String,
}

impl Plan {
    pub fn nothing_to_do(&self) -> bool {
        self.changes.iter().all(ComponentChange::is_noop)
    }
}

/// The requests of a run that repairs a killed one: the user's own, plus
/// every worker whose replicas the killed run's pending revision changed
/// (against the deployed one), at that run's target, so the repair carries
/// the whole job on instead of recording the deployed values for
/// components it was not told about.
pub fn carry_on(pending: &Release, deployed: &Release, explicit: &[Request]) -> Vec<Request> {
    let (wanted, was) = (pending.effective_values(), deployed.effective_values());
    let mut requests = explicit.to_vec();
    for component in components::CATALOGUE.iter().filter(|c| c.role == Role::Worker) {
        let named = explicit
            .iter()
            .any(|r| components::by_user_name(&r.component) == Some(component));
        let target = desired_replicas(&wanted, component).count();
        if let Some(n) = target
            && !named
            && target != desired_replicas(&was, component).count()
        {
            requests.push(Request {
                component: component.key.to_string(),
                target: Target::Absolute(n),
            });
        }
    }
    requests
}

/// The components of this release that `scale` accepts, for messages.
pub fn scalable_components(release: &Release, objects: &[ManifestObject]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = component_workloads(release, objects)
        .iter()
        .filter(|c| c.component.role == Role::Worker)
        .map(|c| c.component.key)
        .collect();
    keys.dedup();
    keys
}

/// Checks every request against the rules and computes the plan.
pub fn plan(input: &PlanInput<'_>, requests: &[Request]) -> Result<Plan, Rejection> {
    let values = input.release.effective_values();
    let workloads = component_workloads(input.release, input.objects);
    let scalable = scalable_components(input.release, input.objects);
    let scalable_list = if scalable.is_empty() {
        "none".to_string()
    } else {
        scalable.join(", ")
    };

    if values::mode(&values) == "standalone" {
        return Err(Rejection::Refused(format!(
            "release {} runs Milvus standalone (a single pod); only cluster mode has worker components to scale",
            input.release.name()
        )));
    }

    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        let Some(component) = components::by_user_name(&req.component) else {
            return Err(Rejection::Invalid(format!(
                "unknown component {:?}; scalable components of release {}: {scalable_list}",
                req.component,
                input.release.name()
            )));
        };
        if requests[..i]
            .iter()
            .any(|r| components::by_user_name(&r.component) == Some(component))
        {
            return Err(Rejection::Invalid(format!("{} is given twice", component.key)));
        }
        check_role(component, component.key)?;
        let deployments: Vec<&ManifestObject> = workloads
            .iter()
            .filter(|w| w.component == component && w.object.kind == "Deployment")
            .map(|w| w.object)
            .collect();
        if deployments.is_empty() {
            return Err(Rejection::Invalid(format!(
                "{} is not enabled in release {}; scalable components: {scalable_list}",
                component.key,
                input.release.name()
            )));
        }
        if let Some(h) = managing_hpa(input.hpas, deployments.iter().map(|d| d.name.as_str())) {
            let spec = h.spec.clone().unwrap_or_default();
            return Err(Rejection::Refused(format!(
                "{} is managed by HorizontalPodAutoscaler {} ({}-{} replicas); change its bounds instead: helm upgrade {} milvus/milvus --namespace {} --version {} --reset-then-reuse-values --set {k}.hpa.minReplicas=N --set {k}.hpa.maxReplicas=M",
                component.key,
                h.metadata.name.clone().unwrap_or_default(),
                spec.min_replicas.unwrap_or(1),
                spec.max_replicas,
                input.release.name(),
                input.namespace,
                input.release.chart_version(),
                k = component.key,
            )));
        }
        let live: Vec<&LiveWorkload> = deployments
            .iter()
            .filter_map(|d| {
                input
                    .workloads
                    .iter()
                    .find(|w| w.kind == "Deployment" && w.name == d.name)
            })
            .collect();
        if live.len() != deployments.len() {
            return Err(Rejection::Refused(format!(
                "{}'s Deployment is missing from the cluster; repair the release with helm first",
                component.key
            )));
        }
        let groups = values::get(&values, "replicaResourceGroups")
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len);
        changes.push(component_change(
            &Candidate {
                component,
                key: component.key,
                group: None,
                deployments: deployments.iter().map(|d| d.name.clone()).collect(),
                live: &live,
                desired: desired_replicas(&values, component),
                record: "values",
                outside: "Helm",
                streaming_groups: groups,
            },
            req.target,
            input.force,
            &mut warnings,
        )?);
    }

    let pods = predicted_pods(input.objects, input.pods, input.now, &changes);
    let helm_command = helm_command(input.release, input.namespace, &changes);
    Ok(Plan {
        managed_by: ManagedBy::Helm,
        release: input.release.name().to_string(),
        namespace: input.namespace.to_string(),
        chart_version: input.release.chart_version().to_string(),
        changes,
        warnings,
        pods,
        helm_command,
        kubectl_command: String::new(),
    })
}

/// One component (or deployment group) a request names, as found by either
/// manager's lookup: what the rules below need.
pub struct Candidate<'a> {
    pub component: &'static Component,
    /// The name to print: the values key, or the resource's spec key.
    pub key: &'a str,
    pub group: Option<&'a str>,
    pub deployments: Vec<String>,
    /// The live Deployments, one per entry of `deployments`.
    pub live: &'a [&'a LiveWorkload],
    pub desired: Replicas,
    /// Where the desired count lives, for messages: `values` or `spec`.
    pub record: &'a str,
    /// Who a drift bypassed, for messages: `Helm` or `the Milvus resource`.
    pub outside: &'a str,
    /// Resource groups whose replicas streaming nodes carry (Helm's
    /// `replicaResourceGroups`).
    pub streaming_groups: usize,
}

/// The rules every manager shares: the target from what runs, below zero,
/// zero without --force, drift and scale-in warnings, and the steps.
pub fn component_change(
    c: &Candidate<'_>,
    target: Target,
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<ComponentChange, Rejection> {
    let name = match c.group {
        Some(g) => format!("{}/{g}", c.key),
        None => c.key.to_string(),
    };
    // With resource groups every group gets the value; plan from the largest.
    let current = c.live.iter().map(|w| w.replicas.max(0) as u32).max().unwrap_or(0);
    let target = match target {
        Target::Absolute(n) => i64::from(n),
        Target::Relative(d) => i64::from(current) + d,
    };
    if target < 0 {
        return Err(Rejection::Invalid(format!(
            "{name} would go below zero ({current} {:+})",
            target - i64::from(current)
        )));
    }
    // Both Deployments and the operator's CRD hold replicas as int32.
    let target = u32::try_from(target)
        .ok()
        .filter(|t| i32::try_from(*t).is_ok())
        .ok_or_else(|| Rejection::Invalid(format!("{target} is too many replicas for {name}")))?;
    if target == 0 && !force {
        return Err(Rejection::Refused(format!(
            "scaling {name} to 0 stops it serving; pass --force if that is what you want"
        )));
    }
    if let Replicas::Count(v) = c.desired
        && v != current
    {
        warnings.push(format!(
            "{name}: {} say {v} but {current} run (scaled outside {}); the plan starts from what runs",
            c.record, c.outside
        ));
    }
    if c.component.key == "streamingNode" && target < current {
        let groups = c.streaming_groups;
        warnings.push(if groups as u32 > target {
            format!(
                "{name}: {target} is fewer than the {groups} replicas the resource groups load; collections would lose replicas"
            )
        } else {
            format!(
                "{name}: keep at least as many streaming nodes as the largest collection replica number in use; {target} must cover it"
            )
        });
    }
    if target < current {
        warnings.push(format!(
            "{name}: scale-in removes one pod at a time and waits for readiness; Milvus rebalances segments after each step"
        ));
    }
    Ok(ComponentChange {
        component: c.key.to_string(),
        label: c.component.label.to_string(),
        group: c.group.map(str::to_string),
        deployments: c.deployments.clone(),
        current,
        values: c.desired.clone(),
        target,
        steps: steps(current, target),
    })
}

/// Workers only. `name` is the component as the instance's manager calls it.
pub fn check_role(component: &Component, name: &str) -> Result<(), Rejection> {
    match component.role {
        Role::Worker => Ok(()),
        Role::Coordinator => Err(Rejection::Refused(format!(
            "{name} is a coordinator: Milvus adds worker nodes only (proxy, queryNode, dataNode, indexNode, streamingNode); coordinators are not scaled out"
        ))),
        Role::Standalone => Err(Rejection::Refused(
            "standalone is a single-pod Milvus; it has no workers to scale".to_string(),
        )),
        Role::Auxiliary => Err(Rejection::Refused(format!(
            "{name} is not a Milvus worker; `scale` changes worker components only"
        ))),
    }
}

/// The HPA scaling one of `deployments`, if any.
pub fn managing_hpa<'a, 'n>(
    hpas: &'a [HorizontalPodAutoscaler],
    deployments: impl IntoIterator<Item = &'n str> + Clone,
) -> Option<&'a HorizontalPodAutoscaler> {
    hpas.iter().find(|h| {
        h.spec.as_ref().is_some_and(|s| {
            s.scale_target_ref.kind == "Deployment"
                && deployments
                    .clone()
                    .into_iter()
                    .any(|d| d == s.scale_target_ref.name)
        })
    })
}

/// Out in one step; in one replica at a time.
pub fn steps(current: u32, target: u32) -> Vec<u32> {
    if target >= current {
        if target == current {
            Vec::new()
        } else {
            vec![target]
        }
    } else {
        (target..current).rev().collect()
    }
}

/// The equivalent Helm command, pinned to the release's chart version and
/// keeping every other value.
pub fn helm_command(release: &Release, namespace: &str, changes: &[ComponentChange]) -> String {
    let mut cmd = format!(
        "helm upgrade {} milvus/milvus --namespace {} --version {} --reset-then-reuse-values",
        release.name(),
        namespace,
        release.chart_version()
    );
    for c in changes {
        cmd.push_str(&format!(" --set {}={}", c.values_path(), c.target));
    }
    cmd
}

/// The ReplicaSet controller's deletion preference (`getPodsToDelete` /
/// `ActivePodsWithRanks`): unscheduled, then pending, then not ready, then
/// the most recently ready, most restarted, newest.
fn victim_order(pod: &Pod) -> impl Ord {
    let status = pod.status.clone().unwrap_or_default();
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some_and(|n| !n.is_empty());
    let phase_rank = match status.phase.as_deref() {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    };
    let ready_condition = status
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .cloned();
    let ready = ready_condition.as_ref().is_some_and(|c| c.status == "True");
    let ready_since = ready_condition.and_then(|c| c.last_transition_time).map(|t| t.0);
    let restarts: i32 = status
        .container_statuses
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .sum();
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        scheduled,
        phase_rank,
        ready,
        Reverse(ready_since),
        Reverse(restarts),
        Reverse(created),
    )
}

/// The pods each change keeps, removes (in the ReplicaSet controller's
/// order) and adds; `objects` names the Deployments pods are owned through.
pub fn predicted_pods(
    objects: &[ManifestObject],
    all_pods: &[Pod],
    now: jiff::Timestamp,
    changes: &[ComponentChange],
) -> Vec<PredictedPod> {
    let mut out = Vec::new();
    for change in changes {
        for deployment in &change.deployments {
            let mut pods: Vec<&Pod> = all_pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    owner_workload(objects, p)
                        .is_some_and(|w| w.kind == "Deployment" && &w.name == deployment)
                })
                .collect();
            pods.sort_by_key(|p| victim_order(p));
            let live = pods.len() as u32;
            let removed = live.saturating_sub(change.target) as usize;
            let mut rows: Vec<PredictedPod> = pods
                .iter()
                .enumerate()
                .map(|(i, p)| PredictedPod {
                    row: pod_row(p, now),
                    fate: if i < removed {
                        PodFate::Removed
                    } else {
                        PodFate::Stays
                    },
                    step: (i < removed).then_some(i + 1),
                })
                .collect();
            let hash = pods
                .iter()
                .find_map(|p| p.metadata.labels.as_ref()?.get("pod-template-hash").cloned())
                .unwrap_or_else(|| "<hash>".to_string());
            for _ in live..change.target {
                rows.push(PredictedPod {
                    row: PodRow {
                        name: format!("{deployment}-{hash}-<new>"),
                        ready: "0/1".to_string(),
                        status: "Pending".to_string(),
                        restarts: "0".to_string(),
                        age: "-".to_string(),
                        ip: "<none>".to_string(),
                        node: "<none>".to_string(),
                        nominated_node: "<none>".to_string(),
                        readiness_gates: "<none>".to_string(),
                    },
                    fate: PodFate::New,
                    step: None,
                });
            }
            rows.sort_by(|a, b| a.row.name.cmp(&b.row.name));
            out.extend(rows);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{fixture_release as release, ready_deployment as live};

    #[test]
    fn a_repair_carries_on_what_the_killed_run_was_doing() {
        let deployed = release(); // queryNode=3, dataNode=2
        let mut pending = release();
        pending.0["config"]["queryNode"]["replicas"] = serde_json::json!(5);
        pending.0["config"]["dataNode"]["replicas"] = serde_json::json!(1);
        let explicit = [Request {
            component: "datanode".into(),
            target: Target::Absolute(2),
        }];
        assert_eq!(
            carry_on(&pending, &deployed, &explicit),
            [
                explicit[0].clone(),
                Request {
                    component: "queryNode".into(),
                    target: Target::Absolute(5)
                }
            ]
        );
        // Nothing changed by the killed run: the user's requests alone.
        assert_eq!(carry_on(&deployed, &deployed, &explicit), explicit);
    }

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_request("queryNode=3"),
            Ok(Request {
                component: "queryNode".into(),
                target: Target::Absolute(3)
            })
        );
        assert_eq!(
            parse_request("querynode=+2").map(|r| r.target),
            Ok(Target::Relative(2))
        );
        assert_eq!(
            parse_request("dataNode=-1").map(|r| r.target),
            Ok(Target::Relative(-1))
        );
        assert!(matches!(parse_request("queryNode"), Err(Rejection::Invalid(_))));
        assert!(matches!(
            parse_request("queryNode=three"),
            Err(Rejection::Invalid(_))
        ));
        assert!(matches!(
            parse_request("queryNode=1.5"),
            Err(Rejection::Invalid(_))
        ));
        assert!(matches!(parse_request("=3"), Err(Rejection::Invalid(_))));
    }

    #[test]
    fn steps_out_at_once_in_one_by_one() {
        assert_eq!(steps(1, 3), vec![3]);
        assert_eq!(steps(3, 1), vec![2, 1]);
        assert_eq!(steps(5, 2), vec![4, 3, 2]);
        assert!(steps(2, 2).is_empty());
    }

    /// A querynode pod: `ready` and created `minute` minutes past noon.
    fn pod(name: &str, phase: &str, ready: bool, minute: u32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": {"pod-template-hash": "h1"},
                "creationTimestamp": format!("2026-01-11T12:{minute:02}:00Z"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "my-release-milvus-querynode-h1", "uid": "u", "controller": true}]
            },
            "spec": {"containers": [{"name": "c"}], "nodeName": if phase == "Pending" { serde_json::Value::Null } else { "n1".into() }},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .expect("pod")
    }

    fn plan_for(requests: &[&str], pods: &[Pod], force: bool) -> Result<Plan, Rejection> {
        let r = release();
        let objects = crate::core::manifest::parse(r.manifest()).expect("manifest");
        let workloads = [
            live("my-release-milvus-proxy", 1),
            live("my-release-milvus-querynode", 3),
            live("my-release-milvus-datanode", 2),
            live("my-release-milvus-streamingnode", 2),
            live("my-release-milvus-mixcoord", 1),
        ];
        let input = PlanInput {
            release: &r,
            namespace: "milvus",
            objects: &objects,
            workloads: &workloads,
            hpas: &[],
            pods,
            force,
            now: "2026-01-11T13:00:00Z".parse().expect("time"),
        };
        let requests: Vec<Request> = requests
            .iter()
            .map(|t| parse_request(t).expect("request"))
            .collect();
        plan(&input, &requests)
    }

    #[test]
    fn scale_in_removes_pods_in_the_replicaset_controllers_order() {
        let pods = [
            pod("qn-old-ready", "Running", true, 1),
            pod("qn-new-ready", "Running", true, 30),
            pod("qn-not-ready", "Running", false, 2),
        ];
        let p = plan_for(&["queryNode=1"], &pods, false).expect("plan");
        assert_eq!(p.changes[0].steps, [2, 1]);
        let fates: Vec<(&str, PodFate, Option<usize>)> = p
            .pods
            .iter()
            .map(|x| (x.row.name.as_str(), x.fate, x.step))
            .collect();
        assert_eq!(
            fates,
            [
                ("qn-new-ready", PodFate::Removed, Some(2)),
                ("qn-not-ready", PodFate::Removed, Some(1)),
                ("qn-old-ready", PodFate::Stays, None),
            ]
        );
        assert_eq!(
            p.helm_command,
            "helm upgrade my-release milvus/milvus --namespace milvus --version 5.0.19 --reset-then-reuse-values --set queryNode.replicas=1"
        );
    }

    #[test]
    fn rules_refuse_or_reject_with_the_right_kind() {
        let refused = |r: Result<Plan, Rejection>| matches!(r, Err(Rejection::Refused(_)));
        let invalid = |r: Result<Plan, Rejection>| matches!(r, Err(Rejection::Invalid(_)));
        assert!(refused(plan_for(&["mixCoordinator=2"], &[], false)));
        assert!(refused(plan_for(&["rootcoord=2"], &[], false)));
        assert!(refused(plan_for(&["dataNode=0"], &[], false)));
        assert!(plan_for(&["dataNode=0"], &[], true).is_ok());
        assert!(invalid(plan_for(&["indexNode=2"], &[], false)));
        assert!(invalid(plan_for(&["etcd=2"], &[], false)));
        assert!(invalid(plan_for(&["dataNode=-3"], &[], false)));
        assert!(invalid(plan_for(&["proxy=2", "PROXY=3"], &[], false)));
        let p = plan_for(&["querynode=+2", "dataNode=2"], &[], false).expect("plan");
        assert_eq!((p.changes[0].target, p.changes[0].steps.clone()), (5, vec![5]));
        assert!(p.changes[1].is_noop() && !p.nothing_to_do());
    }

    #[test]
    fn streaming_node_scale_in_warns() {
        // Two streaming nodes run while the values say 1: both facts are told.
        let p = plan_for(&["streamingNode=1"], &[], false).expect("plan");
        assert!(
            p.warnings.iter().any(|w| w.contains("values say 1 but 2 run")),
            "{:?}",
            p.warnings
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("largest collection replica number")),
            "{:?}",
            p.warnings
        );
        assert!(
            plan_for(&["streamingNode=3"], &[], false)
                .expect("plan")
                .warnings
                .len()
                == 1
        );
    }
}
