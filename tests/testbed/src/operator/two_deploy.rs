//! Two-deployment mode (`pkg/controllers/deploy_ctrl.go`,
//! `deploy_ctrl_util.go`, `rollout_util.go`): the decision the operator
//! takes for one workload in one reconcile pass, as a pure function of the
//! CR, its two Deployments and their pods. The caller applies it; most
//! actions end the pass with `ErrRequeue` (the operator's `UpdateAndRequeue`),
//! so `observedGeneration` only moves in a pass that had nothing left to do.
//! Line numbers: docs/operator.md.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::deployment::{container_image, current_group_id_annotation, group_id_label, rolling_id_label};
use super::topology::{Replicas, Workload};

/// What the operator does next for a two-deployment workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to write; the pass may finish (and observe the generation).
    Nothing,
    /// `ErrRequeue` without a write (a Deployment is not stable yet).
    Wait(String),
    /// Annotate the CR `…-current-group-id: <id>` (`MarkMilvusComponentGroupId`), requeue.
    MarkCurrent(String),
    /// Create slot 0 (`HandleCreate`; the pass then fails on the missing
    /// last Deployment and is retried) or slot 1 (the pass goes on).
    Create(u8),
    /// Drop the CR's `…-rolling-id` label (`LastRolloutFinished`), requeue.
    FinishRollout,
    /// `PrepareNewRollout`: give `deployment` the rendered pod template, make
    /// its slot current, set the rolling label, requeue.
    Rollout { deployment: String, slot: String },
    /// `doScaleAction`: set `spec.replicas` of one Deployment, requeue.
    Scale { deployment: String, replicas: i32 },
    /// `HandleStop`: every slot to 0, no requeue.
    Stop(Vec<String>),
    /// An unexpected layout the operator refuses to touch (an error: retried).
    Refuse(String),
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn name(d: &Deployment) -> String {
    d.metadata.name.clone().unwrap_or_default()
}

fn labels(d: &Deployment) -> Option<&std::collections::BTreeMap<String, String>> {
    d.metadata.labels.as_ref()
}

/// Pods of a Deployment: its selector's labels, evicted ones left out (`ListDeployPods`).
pub fn deploy_pods<'a>(d: &Deployment, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let sel = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    pods.iter()
        .filter(|p| {
            let l = p.metadata.labels.clone().unwrap_or_default();
            sel.iter().all(|(k, v)| l.get(k) == Some(v))
                && p.status.as_ref().and_then(|s| s.reason.as_deref()) != Some("Evicted")
        })
        .collect()
}

fn pod_ready(p: &Pod) -> bool {
    let st = p.status.as_ref();
    st.and_then(|s| s.phase.as_deref()) == Some("Running")
        && st
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ == "Ready")
            .all(|c| c.status == "True")
}

/// `DeploymentIsStable`: `None` when stable, else the operator's reason.
pub fn unstable(d: &Deployment, pods: &[&Pod]) -> Option<&'static str> {
    let st = d.status.clone().unwrap_or_default();
    let want = replicas(d);
    let checks = [
        (
            pods.iter().all(|p| p.metadata.deletion_timestamp.is_none()),
            "has terminating pods",
        ),
        (pods.iter().all(|p| pod_ready(p)), "has not ready pods"),
        (
            pods.len() == usize::try_from(want).unwrap_or(0),
            "pods less than expected replicas",
        ),
        (
            st.observed_generation == d.metadata.generation,
            "observed generation is not equal to generation",
        ),
        (
            st.replicas.unwrap_or(0) == want,
            "replicas is not equal to status replicas",
        ),
        (
            st.replicas.unwrap_or(0) == st.updated_replicas.unwrap_or(0),
            "not all replicas updated",
        ),
        (
            st.replicas.unwrap_or(0) == st.available_replicas.unwrap_or(0),
            "not all replicas available",
        ),
        (
            st.replicas.unwrap_or(0) == st.ready_replicas.unwrap_or(0),
            "not all replicas ready",
        ),
        (
            st.unavailable_replicas.unwrap_or(0) < 1,
            "has unavailable replicas",
        ),
    ];
    checks.iter().find(|(ok, _)| !ok).map(|(_, why)| *why)
}

fn cr_str<'a>(cr: &'a Value, ptr: &str) -> Option<&'a str> {
    cr.pointer(ptr).and_then(Value::as_str)
}

fn meta_map<'a>(cr: &'a Value, which: &str, key: &str) -> Option<&'a str> {
    cr.pointer(&format!("/metadata/{which}"))
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// `IsPaused`: `spec.components.paused` or the component's own `paused`.
pub fn paused(cr: &Value, w: &Workload) -> bool {
    let flag = |ptr: &str| cr.pointer(ptr).and_then(Value::as_bool) == Some(true);
    flag("/spec/components/paused") || flag(&format!("/spec/components/{}/paused", w.component.spec_key()))
}

/// `spec.components.imageUpdateMode: force`.
pub fn force_mode(cr: &Value) -> bool {
    cr_str(cr, "/spec/components/imageUpdateMode") == Some("force")
}

/// The two slots of `w` among `deployments` (those with a group-id label).
pub fn slots<'a>(w: &Workload, cr_name: &str, deployments: &'a [Deployment]) -> Vec<&'a Deployment> {
    let sel = super::deployment::selector_labels(cr_name, w, None);
    let id_label = group_id_label(w.component);
    deployments
        .iter()
        .filter(|d| {
            let Some(l) = labels(d) else { return false };
            sel.iter()
                .all(|(k, v)| l.get(k).map(String::as_str) == v.as_str())
                && l.get(super::deployment::DEPLOYMENT_GROUP_LABEL).is_some() == w.group.is_some()
                && l.get(&id_label).is_some_and(|v| !v.is_empty())
        })
        .collect()
}

/// The decision for `w` (whose slots are `slots`, pods `pods`) in this pass.
/// `wait_for_stable`: a normal scale first waits for a stable serving
/// Deployment, as the operator does (`Timings::scale_waits_for_stable`).
pub fn plan(cr: &Value, w: &Workload, slots: &[&Deployment], pods: &[Pod], wait_for_stable: bool) -> Action {
    let key = w.state_key();
    let id_label = group_id_label(w.component);
    let current_id = meta_map(cr, "annotations", &current_group_id_annotation(&key)).unwrap_or("");
    let slot_of = |d: &Deployment| {
        labels(d)
            .and_then(|l| l.get(&id_label))
            .cloned()
            .unwrap_or_default()
    };

    // GetDeploys / HandleCreate.
    if slots.len() > 2 {
        return Action::Refuse(format!(
            "unexpected: more than 2 {} deployments found {}",
            w.display_name(),
            slots.len()
        ));
    }
    if slots.is_empty() {
        return if current_id == "0" {
            Action::Create(0)
        } else {
            Action::MarkCurrent("0".into())
        };
    }
    let currents: Vec<&&Deployment> = slots.iter().filter(|d| slot_of(d) == current_id).collect();
    let [current] = currents.as_slice() else {
        return Action::Refuse(if currents.is_empty() {
            "unexpected: no deployment is for current group id".into()
        } else {
            "unexpected: more than 1 deployment is for current group id".into()
        });
    };
    let Some(last) = slots.iter().find(|d| slot_of(d) != current_id) else {
        return if current_id == "0" {
            Action::Create(1)
        } else {
            Action::Refuse("unexpected: first deployment is not for group 0".into())
        };
    };
    let (current, last): (&Deployment, &Deployment) = (current, last);

    if paused(cr, w) {
        return Action::Nothing;
    }
    if cr
        .pointer("/spec/components/enableManualMode")
        .and_then(Value::as_bool)
        == Some(true)
    {
        // HandleManualMode: replicas are never written in manual mode (a
        // stopped slot's template update is not played).
        return Action::Nothing;
    }
    if w.replicas == Replicas::Fixed(0) {
        let running: Vec<String> = slots
            .iter()
            .filter(|d| replicas(d) != 0)
            .map(|d| name(d))
            .collect();
        return if running.is_empty() {
            Action::Nothing
        } else {
            Action::Stop(running)
        };
    }

    // HandleRolling: a pod-template change (the image, in the bed) is rolled
    // out to the idle slot, which becomes current.
    let rendered = cr_str(cr, "/spec/components/image").unwrap_or("");
    let image = |d: &Deployment| container_image(d, w.component).unwrap_or("").to_string();
    if image(current) != rendered && image(last) == rendered {
        return Action::Rollout {
            deployment: name(last),
            slot: slot_of(last),
        };
    }
    let rolling = meta_map(cr, "labels", &rolling_id_label(&key)).is_some_and(|v| !v.is_empty());
    if rolling {
        let (cs, ls) = (
            current.status.clone().unwrap_or_default(),
            last.status.clone().unwrap_or_default(),
        );
        let least = match w.replicas {
            Replicas::Fixed(n) => n,
            Replicas::Hpa => 1,
        };
        let finished = least <= replicas(current)
            && cs.observed_generation == current.metadata.generation
            && ls.observed_generation == last.metadata.generation
            && replicas(current) == cs.updated_replicas.unwrap_or(0)
            && cs.updated_replicas == cs.replicas
            && cs.updated_replicas == cs.available_replicas
            && replicas(last) == 0
            && ls.replicas.unwrap_or(0) == 0
            && deploy_pods(last, pods).is_empty();
        if finished {
            return Action::FinishRollout;
        }
    } else if image(current) != rendered {
        let target = if replicas(current) > 0 { last } else { current };
        return Action::Rollout {
            deployment: name(target),
            slot: slot_of(target),
        };
    }

    // ScaleDeployments: checkCanScaleNow, then planNextScaleAction.
    let (cur_n, last_n) = (replicas(current), replicas(last));
    let cur_pods = deploy_pods(current, pods);
    let last_pods = deploy_pods(last, pods);
    let scale = |d: &Deployment, to: i32| Action::Scale {
        deployment: name(d),
        replicas: to,
    };
    if force_mode(cr) {
        let Replicas::Fixed(want) = w.replicas else {
            return Action::Nothing;
        };
        return if cur_n != want {
            scale(current, want)
        } else if last_n != 0 {
            scale(last, 0)
        } else {
            Action::Nothing
        };
    }
    let both_stable = || {
        unstable(last, &last_pods)
            .map(|r| format!("last deploy is not stable[{r}]"))
            .or_else(|| unstable(current, &cur_pods).map(|r| format!("current deploy is not stable[{r}]")))
    };
    match w.replicas {
        Replicas::Hpa => {
            if let Some(why) = both_stable() {
                return Action::Wait(why);
            }
            let ready = current
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            if cur_n == 0 && last_n == 0 {
                scale(current, 1)
            } else if cur_n < last_n {
                scale(current, last_n)
            } else if rolling && last_n > 0 && ready >= last_n {
                scale(last, 0)
            } else {
                Action::Nothing
            }
        }
        Replicas::Fixed(want) if last_n > 0 => {
            // planScaleForRollout (resource limits equal: the bed sets none).
            if let Some(why) = both_stable() {
                return Action::Wait(why);
            }
            let sum = cur_n + last_n;
            if sum > want {
                scale(last, last_n - 1)
            } else if sum == want {
                scale(current, cur_n + 1)
            } else {
                scale(current, cur_n + (want - sum))
            }
        }
        Replicas::Fixed(want) => {
            if let Some(r) = unstable(current, &cur_pods).filter(|_| wait_for_stable) {
                return Action::Wait(format!("current deploy is not stable[{r}]"));
            }
            // planScaleForNormalState: scale in one by one, out at once.
            match cur_n.cmp(&want) {
                std::cmp::Ordering::Greater => scale(current, cur_n - 1),
                std::cmp::Ordering::Equal => Action::Nothing,
                std::cmp::Ordering::Less => scale(current, want),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::topology::workloads;
    use serde_json::json;

    fn deploy(name: &str, slot: &str, image: &str, replicas: i32, ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "generation": 2, "labels": {
                "app.kubernetes.io/instance": "mc", "app.kubernetes.io/component": "querynode",
                "app.kubernetes.io/name": "milvus", "app.kubernetes.io/managed-by": "milvus-operator",
                "milvus.io/querynode-group-id": slot}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/instance": "mc",
                "milvus.io/querynode-group-id": slot}},
                "template": {"spec": {"containers": [{"name": "querynode", "image": image}]}}},
            "status": {"observedGeneration": 2, "replicas": ready, "updatedReplicas": ready,
                "availableReplicas": ready, "readyReplicas": ready},
        }))
        .unwrap()
    }

    fn pods(slot: &str, n: usize) -> Vec<Pod> {
        (0..n)
            .map(|i| {
                serde_json::from_value(json!({
                    "metadata": {"name": format!("p{slot}{i}"), "labels": {"app.kubernetes.io/instance": "mc",
                        "milvus.io/querynode-group-id": slot}},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
                }))
                .unwrap()
            })
            .collect()
    }

    fn cr(replicas: i64, image: &str, current: &str) -> Value {
        json!({"metadata": {"generation": 3, "annotations": {"milvus.io/querynode-current-group-id": current}},
               "spec": {"mode": "cluster", "components": {"image": image, "queryNode": {"replicas": replicas}}}})
    }

    fn qn(cr: &Value) -> Workload {
        workloads(cr, "mc")
            .into_iter()
            .find(|w| w.name == "mc-milvus-querynode")
            .unwrap()
    }

    const IMG: &str = "milvusdb/milvus:v2.6.15";

    #[test]
    fn scale_in_is_one_replica_per_pass_and_out_at_once() {
        let (d0, d1) = (deploy("q-0", "0", IMG, 3, 3), deploy("q-1", "1", "dummy", 0, 0));
        let c = cr(1, IMG, "0");
        let p = pods("0", 3);
        assert_eq!(
            plan(&c, &qn(&c), &[&d0, &d1], &p, true),
            Action::Scale {
                deployment: "q-0".into(),
                replicas: 2
            }
        );
        let c = cr(5, IMG, "0");
        assert_eq!(
            plan(&c, &qn(&c), &[&d0, &d1], &p, true),
            Action::Scale {
                deployment: "q-0".into(),
                replicas: 5
            }
        );
        let c = cr(3, IMG, "0");
        assert_eq!(plan(&c, &qn(&c), &[&d0, &d1], &p, true), Action::Nothing);
    }

    #[test]
    fn an_unstable_current_deployment_holds_the_pass() {
        let (d0, d1) = (deploy("q-0", "0", IMG, 3, 2), deploy("q-1", "1", "dummy", 0, 0));
        let c = cr(3, IMG, "0");
        let a = plan(&c, &qn(&c), &[&d0, &d1], &pods("0", 2), true);
        assert_eq!(
            a,
            Action::Wait("current deploy is not stable[pods less than expected replicas]".into())
        );
        // Without the wait (the suite's fast default) the pass finishes.
        assert_eq!(
            plan(&c, &qn(&c), &[&d0, &d1], &pods("0", 2), false),
            Action::Nothing
        );
    }

    #[test]
    fn the_annotated_slot_serves_and_an_image_change_rolls_to_the_idle_one() {
        let (d0, d1) = (deploy("q-0", "0", IMG, 2, 2), deploy("q-1", "1", "dummy", 0, 0));
        let c = cr(2, "milvusdb/milvus:v2.6.16", "0");
        assert_eq!(
            plan(&c, &qn(&c), &[&d0, &d1], &pods("0", 2), true),
            Action::Rollout {
                deployment: "q-1".into(),
                slot: "1".into()
            }
        );
        // Slot 1 current (new image, 0 replicas), 0 still serving 2: one up.
        let d1 = deploy("q-1", "1", "milvusdb/milvus:v2.6.16", 0, 0);
        let mut c = cr(2, "milvusdb/milvus:v2.6.16", "1");
        c["metadata"]["labels"] = json!({"milvus.io/querynode-rolling-id": "3"});
        assert_eq!(
            plan(&c, &qn(&c), &[&d0, &d1], &pods("0", 2), true),
            Action::Scale {
                deployment: "q-1".into(),
                replicas: 1
            }
        );
        // Paused: nothing at all.
        c["spec"]["components"]["queryNode"]["paused"] = json!(true);
        assert_eq!(
            plan(&c, &qn(&c), &[&d0, &d1], &pods("0", 2), true),
            Action::Nothing
        );
    }

    #[test]
    fn creation_marks_then_creates_both_slots() {
        let mut c = cr(1, IMG, "");
        c["metadata"]["annotations"] = json!({});
        assert_eq!(plan(&c, &qn(&c), &[], &[], true), Action::MarkCurrent("0".into()));
        let c = cr(1, IMG, "0");
        assert_eq!(plan(&c, &qn(&c), &[], &[], true), Action::Create(0));
        let d0 = deploy("q-0", "0", IMG, 0, 0);
        assert_eq!(plan(&c, &qn(&c), &[&d0], &[], true), Action::Create(1));
    }
}
