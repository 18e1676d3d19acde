//! One `kubectl get pods` row per pod.
//!
//! `kubectl get` asks the API server for a Table, so what users see is
//! computed by the *server's* `printPod`, by its own version's rules.
//! `status` reads that Table ([`LivePods::Printed`], [`printed_row`]); for
//! pods read whole (plan, scale) or predicted, [`pod_row`] is a line-by-line
//! port of `printPod` in kubernetes/kubernetes
//! `pkg/printers/internalversion/printers.go` (v1.32), quirks kept on purpose.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use super::duration::{age_since, human_duration};

/// The cells of one pod row; the last four are only shown with `-o wide`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRow {
    pub name: String,
    pub ready: String,
    pub status: String,
    pub restarts: String,
    pub age: String,
    pub ip: String,
    pub node: String,
    pub nominated_node: String,
    pub readiness_gates: String,
}

const NONE: &str = "<none>";

/// A namespace's pods as read: whole objects (plan and scale rank them for
/// scale-in), or as the API server prints them for `kubectl get pods`
/// (status shows exactly kubectl's rows, whatever the server's version).
#[derive(Debug, Clone)]
pub enum LivePods {
    Objects(Vec<Pod>),
    Printed(Vec<PrintedPod>),
}

impl Default for LivePods {
    fn default() -> Self {
        LivePods::Objects(Vec::new())
    }
}

impl LivePods {
    /// The whole objects; none when the pods were read as printed rows.
    pub fn objects(&self) -> &[Pod] {
        match self {
            LivePods::Objects(pods) => pods,
            LivePods::Printed(_) => &[],
        }
    }

    /// Each pod's metadata, in either form.
    pub fn metadata(&self) -> Vec<&ObjectMeta> {
        match self {
            LivePods::Objects(pods) => pods.iter().map(|p| &p.metadata).collect(),
            LivePods::Printed(pods) => pods.iter().map(|p| &p.metadata).collect(),
        }
    }

    /// Each pod's metadata with its row: the server's where it printed
    /// one, else [`pod_row`]'s. `keep` picks the pods whose row is wanted.
    pub fn rows<'a, T>(
        &'a self,
        now: Timestamp,
        mut keep: impl FnMut(&'a ObjectMeta) -> Option<T>,
    ) -> Vec<(T, &'a ObjectMeta, PodRow)> {
        match self {
            LivePods::Objects(pods) => pods
                .iter()
                .filter_map(|p| Some((keep(&p.metadata)?, &p.metadata, pod_row(p, now))))
                .collect(),
            LivePods::Printed(pods) => pods
                .iter()
                .filter_map(|p| Some((keep(&p.metadata)?, &p.metadata, p.row.clone())))
                .collect(),
        }
    }
}

/// One row of the server's Table view of pods (what `kubectl get pods`
/// asks for and prints), with the pod's metadata beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrintedPod {
    pub metadata: ObjectMeta,
    pub row: PodRow,
}

/// The row from a Table row's `cells`, found by the Table's column names
/// (`Name`, `Ready`, …, `Readiness Gates`, as every server since v1.20
/// names them); a column the server does not send is left empty.
pub fn printed_row(columns: &[String], cells: &[Value]) -> PodRow {
    let cell = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| cells.get(i))
            .map(table_cell)
            .unwrap_or_default()
    };
    PodRow {
        name: cell("Name"),
        ready: cell("Ready"),
        status: cell("Status"),
        restarts: cell("Restarts"),
        age: cell("Age"),
        ip: cell("IP"),
        node: cell("Node"),
        nominated_node: cell("Nominated Node"),
        readiness_gates: cell("Readiness Gates"),
    }
}

/// One Table cell as kubectl prints it (`printTable` and `WriteEscaped` in
/// k8s.io/cli-runtime/pkg/printers): a string up to its first line break,
/// then `...`, with ESC shown as `^[`; a number or a bool as Go's
/// `fmt.Sprint` prints it (a v1.20 server sends RESTARTS as an integer,
/// newer ones as a string); null as nothing.
pub fn table_cell(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => match s.find(['\n', '\r', '\x0c']) {
            Some(end) => format!("{}...", s[..end].replace('\x1b', "^[")),
            None => s.replace('\x1b', "^["),
        },
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Builds the row kubectl would print for `pod` at time `now`.
pub fn pod_row(pod: &Pod, now: Timestamp) -> PodRow {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let containers: &[Container] = spec.map_or(&[], |s| &s.containers);
    let init_containers: &[Container] = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let conditions: &[PodCondition] = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let init_statuses: &[ContainerStatus] = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    let statuses: &[ContainerStatus] = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();

    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
    let pod_reason = status.and_then(|s| s.reason.as_deref()).unwrap_or_default();
    let mut reason = non_empty(Some(pod_reason)).unwrap_or(phase).to_owned();

    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".to_owned();
    }

    // Go looks statuses up in a name -> spec map; a status without a spec
    // entry is simply "not restartable".
    let is_sidecar = |name: &str| {
        init_containers
            .iter()
            .any(|c| c.name == name && is_restartable(c))
    };

    // Sidecars count towards the total whether or not they have a status yet.
    let total = containers.len() + init_containers.iter().filter(|c| is_restartable(c)).count();
    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    // `None` plays Go's zero time; `Option::max` keeps the latest `Some`.
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        // Restarts are summed only up to the init container that stops the
        // walk (the `break` below), exactly like upstream.
        restarts += i64::from(c.restart_count);
        last_restart = last_restart.max(last_finished_at(c));
        let sidecar = is_sidecar(&c.name);
        if sidecar {
            sidecar_restarts += i64::from(c.restart_count);
            last_sidecar_restart = last_sidecar_restart.max(last_finished_at(c));
        }

        let state = c.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting_reason = non_empty(state.and_then(|s| s.waiting.as_ref()?.reason.as_deref()));

        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && c.started == Some(true) {
            // A started sidecar is "done" initializing; it is ready on its own flag.
            if c.ready {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match non_empty(t.reason.as_deref()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal {
                    Some(sig) if sig != 0 => format!("Init:Signal:{sig}"),
                    _ => format!("Init:ExitCode:{}", t.exit_code),
                },
            }
        } else if let Some(r) = waiting_reason.filter(|r| *r != "PodInitializing") {
            format!("Init:{r}")
        } else {
            // `i` is the index in the *status* list, the total the spec list.
            format!("Init:{i}/{}", init_containers.len())
        };
        initializing = true;
        break;
    }

    if !initializing || is_initialized(conditions) {
        // App-container phase: forget regular init restarts, keep sidecars'.
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Walk backwards so the *first* container's reason is the one left.
        for c in statuses.iter().rev() {
            restarts += i64::from(c.restart_count);
            last_restart = last_restart.max(last_finished_at(c));

            let state = c.state.as_ref();
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(r) = non_empty(state.and_then(|s| s.waiting.as_ref()?.reason.as_deref())) {
                reason = r.to_owned();
            } else if let Some(t) = terminated {
                reason = match non_empty(t.reason.as_deref()) {
                    Some(r) => r.to_owned(),
                    None => match t.signal {
                        Some(sig) if sig != 0 => format!("Signal:{sig}"),
                        _ => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }

        // A finished container next to a still-running one is not "Completed".
        if reason == "Completed" && has_running {
            reason = if has_ready_condition(conditions) {
                "Running"
            } else {
                "NotReady"
            }
            .to_owned();
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if pod_reason == "NodeLost" {
            reason = "Unknown".to_owned();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_owned();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(now.duration_since(t)))
        }
        _ => restarts.to_string(),
    };

    PodRow {
        name: pod.metadata.name.clone().unwrap_or_default(),
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
        age: age_since(pod.metadata.creation_timestamp.as_ref(), now),
        ip: status.and_then(primary_ip).unwrap_or(NONE).to_owned(),
        node: or_none(spec.and_then(|s| s.node_name.as_deref())),
        nominated_node: or_none(status.and_then(|s| s.nominated_node_name.as_deref())),
        readiness_gates: readiness_gates(pod, conditions),
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn or_none(s: Option<&str>) -> String {
    non_empty(s).unwrap_or(NONE).to_owned()
}

/// `podutil.IsRestartableInitContainer`: a sidecar (restartPolicy Always).
fn is_restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn last_finished_at(c: &ContainerStatus) -> Option<Timestamp> {
    let finished = c.last_state.as_ref()?.terminated.as_ref()?.finished_at.as_ref()?;
    Some(finished.0)
}

/// `isPodInitializedConditionTrue`: only the first Initialized condition counts.
fn is_initialized(conditions: &[PodCondition]) -> bool {
    conditions
        .iter()
        .find(|c| c.type_ == "Initialized")
        .is_some_and(|c| c.status == "True")
}

/// `hasPodReadyCondition`: any Ready=True condition.
fn has_ready_condition(conditions: &[PodCondition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The server prints the internal `PodIPs[0]`; converting from v1 makes
/// `podIP` authoritative when set, falling back to `podIPs[0]`.
fn primary_ip(status: &PodStatus) -> Option<&str> {
    non_empty(status.pod_ip.as_deref()).or_else(|| {
        let first = status.pod_ips.as_deref()?.first()?;
        non_empty(Some(first.ip.as_str()))
    })
}

/// `true/total` readiness gates, matching each gate against the first
/// condition of that type.
fn readiness_gates(pod: &Pod, conditions: &[PodCondition]) -> String {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    if gates.is_empty() {
        return NONE.to_owned();
    }
    let true_count = gates
        .iter()
        .filter(|g| {
            conditions
                .iter()
                .find(|c| c.type_ == g.condition_type)
                .is_some_and(|c| c.status == "True")
        })
        .count();
    format!("{true_count}/{}", gates.len())
}

/// The kind and name of the workload whose controller made the pod of this
/// metadata: a Deployment (through its ReplicaSet), a StatefulSet or a Job.
pub fn workload_of(pod: &ObjectMeta) -> Option<(&'static str, &str)> {
    let owner = pod
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    match owner.kind.as_str() {
        // A Deployment's ReplicaSet is named `<deployment>-<pod-template-hash>`.
        "ReplicaSet" => {
            let hash = pod.labels.as_ref()?.get("pod-template-hash")?;
            let deployment = owner.name.strip_suffix(hash.as_str())?.strip_suffix('-')?;
            Some(("Deployment", deployment))
        }
        "StatefulSet" => Some(("StatefulSet", &owner.name)),
        "Job" => Some(("Job", &owner.name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: &str = "2024-05-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// Timestamp `secs` seconds before NOW, RFC 3339.
    fn ago(secs: i64) -> String {
        (now() - jiff::SignedDuration::from_secs(secs)).to_string()
    }

    fn row(value: Value) -> PodRow {
        pod_row(&serde_json::from_value::<Pod>(value).unwrap(), now())
    }

    /// A pod named `name`, created 10 minutes ago, with one container `app`.
    fn pod(name: &str, extra_spec: Value, status: Value) -> Value {
        let mut spec = json!({"containers": [{"name": "app"}]});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
            spec.extend(extra.clone());
        }
        json!({
            "metadata": {"name": name, "namespace": "milvus", "creationTimestamp": ago(600)},
            "spec": spec,
            "status": status,
        })
    }

    fn running(ready: bool) -> Value {
        json!({"name": "app", "ready": ready, "restartCount": 0, "started": true,
               "state": {"running": {"startedAt": ago(500)}}})
    }

    fn cond(type_: &str, status: &str) -> Value {
        json!({"type": type_, "status": status})
    }

    fn cells(r: &PodRow) -> [&str; 5] {
        [&r.name, &r.ready, &r.status, &r.restarts, &r.age]
    }

    #[test]
    fn pending_unscheduled() {
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}),
        ));
        assert_eq!(cells(&r), ["p", "0/1", "Pending", "0", "10m"]);
        assert_eq!(
            [&r.ip, &r.node, &r.nominated_node, &r.readiness_gates],
            ["<none>"; 4]
        );
    }

    #[test]
    fn scheduling_gated() {
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        ));
        assert_eq!(r.status, "SchedulingGated");
    }

    #[test]
    fn container_creating() {
        let r = row(pod(
            "p",
            json!({"nodeName": "node-1"}),
            json!({"phase": "Pending", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]}),
        ));
        assert_eq!(cells(&r), ["p", "0/1", "ContainerCreating", "0", "10m"]);
        assert_eq!(r.node, "node-1");
    }

    #[test]
    fn running_ready_wide() {
        let r = row(pod(
            "milvus-proxy-7d9f",
            json!({"nodeName": "node-1"}),
            json!({"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
                   "conditions": [cond("Ready", "True")], "containerStatuses": [running(true)]}),
        ));
        assert_eq!(cells(&r), ["milvus-proxy-7d9f", "1/1", "Running", "0", "10m"]);
        assert_eq!(
            [&r.ip, &r.node, &r.nominated_node, &r.readiness_gates],
            ["10.0.0.7", "node-1", "<none>", "<none>"]
        );
    }

    #[test]
    fn pod_ip_falls_back_to_pod_ips() {
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Running", "podIPs": [{"ip": "fd00::7"}]}),
        ));
        assert_eq!(r.ip, "fd00::7");
    }

    #[test]
    fn running_not_ready() {
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Running", "conditions": [cond("Ready", "False")], "containerStatuses": [running(false)]}),
        ));
        assert_eq!(cells(&r), ["p", "0/1", "Running", "0", "10m"]);
    }

    #[test]
    fn completed_job_pod() {
        let r = row(pod(
            "job-x",
            json!({"restartPolicy": "Never"}),
            json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(300)}}}
            ]}),
        ));
        assert_eq!(cells(&r), ["job-x", "0/1", "Completed", "0", "10m"]);
    }

    #[test]
    fn completed_next_to_running_container() {
        let status = |ready: &str| {
            json!({"phase": "Running", "conditions": [cond("Ready", ready)], "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]})
        };
        let spec = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(row(pod("p", spec.clone(), status("True"))).status, "Running");
        let r = row(pod("p", spec, status("False")));
        assert_eq!((r.ready.as_str(), r.status.as_str()), ("1/2", "NotReady"));
    }

    #[test]
    fn first_container_reason_wins() {
        let spec = json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]});
        let r = row(pod(
            "p",
            spec,
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2}}},
                {"name": "c", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ]}),
        ));
        assert_eq!(r.status, "Signal:9");
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
            ]}),
        ));
        assert_eq!(r.status, "ExitCode:2");
    }

    #[test]
    fn crash_loop_back_off_with_last_restart() {
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 5,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(150)}}}
            ]}),
        ));
        assert_eq!(
            cells(&r),
            ["p", "0/1", "CrashLoopBackOff", "5 (2m30s ago)", "10m"]
        );
    }

    #[test]
    fn restarts_without_finished_at_are_bare() {
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}}}
            ]}),
        ));
        assert_eq!((r.ready.as_str(), r.restarts.as_str()), ("1/1", "2"));
    }

    #[test]
    fn terminating() {
        let mut p = pod(
            "p",
            json!({}),
            json!({"phase": "Running", "conditions": [cond("Ready", "True")], "containerStatuses": [running(true)]}),
        );
        p["metadata"]["deletionTimestamp"] = json!(ago(5));
        assert_eq!(cells(&row(p.clone())), ["p", "1/1", "Terminating", "0", "10m"]);
        // Terminal phases keep their status while being deleted.
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(row(p).status, "Succeeded");
    }

    #[test]
    fn node_lost_is_unknown() {
        let mut p = pod(
            "p",
            json!({}),
            json!({"phase": "Running", "reason": "NodeLost", "containerStatuses": [running(true)]}),
        );
        p["metadata"]["deletionTimestamp"] = json!(ago(5));
        assert_eq!(row(p).status, "Unknown");
    }

    #[test]
    fn evicted() {
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
        ));
        assert_eq!(cells(&r), ["p", "0/1", "Evicted", "0", "10m"]);
        // Upstream quirk: a terminated container's reason overrides the pod's.
        let r = row(pod(
            "p",
            json!({}),
            json!({"phase": "Failed", "reason": "Evicted", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}}
            ]}),
        ));
        assert_eq!(r.status, "ContainerStatusUnknown");
    }

    fn init_pod(init_state: Value, restart_count: i32, last_state: Value) -> Value {
        pod(
            "p",
            json!({"initContainers": [{"name": "init"}]}),
            json!({"phase": "Pending",
                   "conditions": [cond("Initialized", "False")],
                   "initContainerStatuses": [{"name": "init", "ready": false, "restartCount": restart_count,
                                              "state": init_state, "lastState": last_state}],
                   "containerStatuses": [{"name": "app", "ready": false, "restartCount": 7,
                                          "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        )
    }

    #[test]
    fn init_progress() {
        let r = row(init_pod(json!({"running": {}}), 0, json!({})));
        // The app container's restarts are ignored while initializing.
        assert_eq!(cells(&r), ["p", "0/1", "Init:0/1", "0", "10m"]);
        let r = row(init_pod(
            json!({"waiting": {"reason": "PodInitializing"}}),
            0,
            json!({}),
        ));
        assert_eq!(r.status, "Init:0/1");
    }

    #[test]
    fn init_crash_loop_back_off() {
        let r = row(init_pod(
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            3,
            json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(40)}}),
        ));
        assert_eq!(
            cells(&r),
            ["p", "0/1", "Init:CrashLoopBackOff", "3 (40s ago)", "10m"]
        );
    }

    #[test]
    fn init_terminated_failures() {
        let status = |t: Value| row(init_pod(json!({"terminated": t}), 0, json!({}))).status;
        assert_eq!(status(json!({"exitCode": 1, "reason": "Error"})), "Init:Error");
        assert_eq!(status(json!({"exitCode": 137, "signal": 9})), "Init:Signal:9");
        assert_eq!(status(json!({"exitCode": 3})), "Init:ExitCode:3");
    }

    #[test]
    fn second_of_two_init_containers() {
        let r = row(pod(
            "p",
            json!({"initContainers": [{"name": "a"}, {"name": "b"}]}),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": false, "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"running": {}}}
            ]}),
        ));
        assert_eq!((r.status.as_str(), r.restarts.as_str()), ("Init:1/2", "3"));
    }

    #[test]
    fn sidecar_counts_in_ready_and_restarts() {
        let r = row(pod(
            "p",
            json!({"initContainers": [{"name": "init"}, {"name": "proxy", "restartPolicy": "Always"}]}),
            json!({"phase": "Running",
                   "conditions": [cond("Initialized", "True"), cond("Ready", "True")],
                   "initContainerStatuses": [
                       {"name": "init", "ready": false, "restartCount": 4,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},
                       {"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                        "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(200)}}}],
                   "containerStatuses": [running(true)]}),
        ));
        // The regular init container's restarts and last exit are dropped.
        assert_eq!(cells(&r), ["p", "2/2", "Running", "1 (3m20s ago)", "10m"]);
    }

    #[test]
    fn unstarted_sidecar_blocks_init() {
        let r = row(pod(
            "p",
            json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}]}),
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "proxy", "ready": false, "started": false, "restartCount": 0, "state": {"running": {}}}
            ]}),
        ));
        assert_eq!((r.ready.as_str(), r.status.as_str()), ("0/2", "Init:0/1"));
    }

    #[test]
    fn readiness_gates_and_nominated_node() {
        let r = row(pod(
            "p",
            json!({"readinessGates": [{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]}),
            json!({"phase": "Pending", "nominatedNodeName": "node-2",
                   "conditions": [cond("example.com/a", "True"), cond("example.com/b", "False")]}),
        ));
        assert_eq!(
            (r.readiness_gates.as_str(), r.nominated_node.as_str()),
            ("1/2", "node-2")
        );
    }

    #[test]
    fn table_cells_print_like_kubectl() {
        assert_eq!(table_cell(&json!("Running")), "Running");
        // v1.20 sends RESTARTS as an integer, newer servers as a string.
        assert_eq!(table_cell(&json!(4)), "4");
        assert_eq!(table_cell(&json!("4 (2m30s ago)")), "4 (2m30s ago)");
        assert_eq!(table_cell(&Value::Null), "");
        assert_eq!(table_cell(&json!(true)), "true");
        assert_eq!(table_cell(&json!("two\nlines")), "two...");
        assert_eq!(table_cell(&json!("a\rb")), "a...");
        assert_eq!(table_cell(&json!("\x1b[31mred")), "^[[31mred");
    }

    #[test]
    fn printed_rows_follow_the_column_names() {
        let columns: Vec<String> = [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates",
        ]
        .map(String::from)
        .to_vec();
        let values = [
            json!("p"),
            json!("1/1"),
            json!("Running"),
            json!(0),
            json!("5m"),
            json!("10.0.0.7"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>"),
        ];
        let r = printed_row(&columns, &values);
        assert_eq!(cells(&r), ["p", "1/1", "Running", "0", "5m"]);
        assert_eq!(
            [&r.ip, &r.node, &r.nominated_node, &r.readiness_gates],
            ["10.0.0.7", "node-1", "<none>", "<none>"]
        );
        // Found by name, not by position; a column not sent is empty.
        let mut reordered = columns[..5].to_vec();
        reordered.swap(1, 2);
        let r = printed_row(&reordered, &[json!("p"), json!("Pending"), json!("0/1")]);
        assert_eq!(
            (r.ready.as_str(), r.status.as_str(), r.age.as_str()),
            ("0/1", "Pending", "")
        );
    }

    #[test]
    fn live_pods_give_the_servers_row_or_the_ported_one() {
        let pod: Pod = serde_json::from_value(pod(
            "p",
            json!({}),
            json!({"phase": "Running", "conditions": [cond("Ready", "True")], "containerStatuses": [running(true)]}),
        ))
        .unwrap();
        let objects = LivePods::Objects(vec![pod.clone()]);
        let rows = objects.rows(now(), |m| m.name.clone());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].2, pod_row(&pod, now()));
        assert_eq!(objects.objects().len(), 1);

        let mut printed_row = pod_row(&pod, now());
        printed_row.restarts = "4".to_string();
        let printed = LivePods::Printed(vec![PrintedPod {
            metadata: pod.metadata.clone(),
            row: printed_row.clone(),
        }]);
        assert_eq!(printed.rows(now(), |_| Some(())).remove(0).2, printed_row);
        assert!(printed.rows(now(), |_| None::<()>).is_empty());
        assert!(printed.objects().is_empty());
    }

    #[test]
    fn missing_metadata_and_status() {
        let r = row(json!({"metadata": {}}));
        assert_eq!(cells(&r), ["", "0/0", "", "0", "<unknown>"]);
    }
}
