//! What a Milvus worker needs when it is scaled in, as pure decisions:
//! how long Milvus's graceful stop may take against how long the kubelet
//! lets it run, which pod leaves at each step (the ReplicaSet controller's
//! own ranking, per server version, or our choice marked with
//! `controller.kubernetes.io/pod-deletion-cost`), and the annotations that
//! mark a chosen pod. Sources for every rule: docs/scale-in.md.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use serde_json::Value;

/// The annotation the ReplicaSet controller reads (v1.22+, beta, on by default).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Our mark on a pod whose deletion cost we set: the value it had before
/// (empty when it had none), so a clean-up can put it back exactly.
pub const COST_WAS: &str = "kubectl-milvus.io/deletion-cost-was";
/// The cost we give the chosen pod: the lowest an int32 holds, so it goes
/// before every other pod of its readiness class.
pub const CHOSEN_COST: i32 = i32::MIN;
/// Kubernetes' `terminationGracePeriodSeconds` when a pod template sets none.
pub const KUBERNETES_DEFAULT_GRACE: i64 = 30;

/// Which scale-down rules a server's ReplicaSet controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerRules {
    /// `controller.kubernetes.io/pod-deletion-cost` is honoured (v1.22+).
    pub deletion_cost: bool,
    /// Ready and creation times compared in log2 buckets (v1.22+).
    pub logarithmic: bool,
}

impl ControllerRules {
    /// Both gates went beta (on by default) in v1.22; in v1.21 they were
    /// alpha (off), and before that they did not exist.
    pub fn for_server(major: &str, minor: &str) -> Self {
        let num = |s: &str| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .unwrap_or(0)
        };
        let newer = num(major) > 1 || (num(major) == 1 && num(minor) >= 22);
        Self {
            deletion_cost: newer,
            logarithmic: newer,
        }
    }
}

/// How long a component's pods may take to stop, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraceCheck {
    pub component: String,
    /// The pod template's `terminationGracePeriodSeconds` (30 when unset).
    pub pod_grace_seconds: i64,
    pub pod_grace_set: bool,
    /// How long Milvus's graceful stop may run for this component.
    pub milvus_stop_seconds: i64,
    /// Where that number comes from (`queryNode.gracefulStopTimeout in user.yaml`).
    pub milvus_stop_source: String,
    /// Scale-in refused without `--accept-short-grace`.
    pub needs_flag: bool,
}

impl GraceCheck {
    pub fn short(&self) -> bool {
        self.pod_grace_seconds < self.milvus_stop_seconds
    }
}

/// The Milvus configuration keys that bound a component's graceful stop,
/// most specific first, and the built-in default when none is set. Keys and
/// defaults: docs/scale-in.md ("Graceful stop in Milvus").
fn stop_keys(component: &str) -> (&'static [&'static str], i64) {
    match component {
        "queryNode" => (
            &["queryNode.gracefulStopTimeout", "common.gracefulStopTimeout"],
            1800,
        ),
        "dataNode" => (&["dataNode.gracefulStopTimeout"], 1800),
        "indexNode" => (
            &["indexNode.gracefulStopTimeout", "common.gracefulStopTimeout"],
            1800,
        ),
        "proxy" => (&["proxy.gracefulStopTimeout"], 30),
        // Streaming nodes (2.6) have no key of their own.
        _ => (&["common.gracefulStopTimeout"], 1800),
    }
}

/// What a shortfall risks, per component, for messages.
pub fn shortfall_risk(component: &str) -> &'static str {
    match component {
        "queryNode" => {
            "the pod is killed before it hands its segments and channels over: other query nodes reload them from object storage and searches on them fail meanwhile"
        }
        "streamingNode" => {
            "the pod is killed before it hands its WAL channels over: writes and searches on those channels fail until they are recovered elsewhere"
        }
        "dataNode" => "the pod is killed mid-task: its compaction and index tasks are redone elsewhere",
        "indexNode" => "the pod is killed mid-build: its index builds are redone elsewhere",
        _ => "the pod is killed before it drains its requests: clients see errors",
    }
}

/// Components whose cut-short stop loses serving state (data or channels),
/// not just work that is retried.
fn serves_data(component: &str) -> bool {
    matches!(component, "queryNode" | "streamingNode")
}

/// Milvus's configuration layers as the pods load them, lowest first
/// (`milvus.yaml` in the image < `default.yaml` < `user.yaml`; the last two
/// come from the chart's ConfigMap). Each is `(file, parsed YAML)`.
pub type ConfigLayers = Vec<(String, Value)>;

/// Looks a dotted key up case-insensitively (Milvus lower-cases keys).
fn lookup<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(doc, |node, part| {
        node.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(part))
            .map(|(_, v)| v)
    })
}

/// The effective graceful-stop timeout of `component`, in seconds, and
/// where it comes from.
pub fn milvus_stop_timeout(component: &str, layers: &ConfigLayers, milvus_version: &str) -> (i64, String) {
    let (keys, default) = stop_keys(component);
    for key in keys {
        for (file, doc) in layers.iter().rev() {
            let n = lookup(doc, key).and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .or_else(|| v.as_str()?.trim().parse().ok())
            });
            if let Some(n) = n {
                return (n, format!("{key} in {file}"));
            }
        }
    }
    (default, format!("{}, Milvus {milvus_version} default", keys[0]))
}

/// The grace check of a component being scaled in. The flag rule: a
/// shortfall is always told; scale-in needs `--accept-short-grace` only when
/// the pods get less than Kubernetes' default 30 s (the least any Milvus
/// graceful stop is configured for, the proxy's) and the component holds
/// serving state — there even a small collection's handoff is cut short.
pub fn grace_check(
    component: &str,
    pod_grace: Option<i64>,
    layers: &ConfigLayers,
    milvus_version: &str,
) -> GraceCheck {
    let (milvus_stop_seconds, milvus_stop_source) = milvus_stop_timeout(component, layers, milvus_version);
    let pod_grace_seconds = pod_grace.unwrap_or(KUBERNETES_DEFAULT_GRACE);
    GraceCheck {
        component: component.to_string(),
        pod_grace_seconds,
        pod_grace_set: pod_grace.is_some(),
        milvus_stop_seconds,
        milvus_stop_source,
        needs_flag: serves_data(component)
            && pod_grace_seconds < KUBERNETES_DEFAULT_GRACE
            && pod_grace_seconds < milvus_stop_seconds,
    }
}

/// Why scale-in is refused without `--accept-short-grace` (see [`grace_check`]).
pub fn grace_refusal(check: &GraceCheck) -> String {
    format!(
        "{}: pods get only {}s to stop (terminationGracePeriodSeconds) while Milvus's graceful stop may take {}s: {}; give the pods at least 30s, or pass --accept-short-grace to scale in anyway",
        check.component,
        check.pod_grace_seconds,
        check.milvus_stop_seconds,
        shortfall_risk(&check.component)
    )
}

/// The one-line account of a shortfall, with what to do about it.
pub fn grace_warning(check: &GraceCheck, release: &str) -> String {
    // The API server fills an unset grace period in as 30 s: a live 30 is
    // the chart's (it sets none) as often as anyone's.
    let grace = if check.pod_grace_seconds == KUBERNETES_DEFAULT_GRACE {
        format!(
            "terminationGracePeriodSeconds {}s, Kubernetes' default: the Milvus chart sets none and has no value for it",
            check.pod_grace_seconds
        )
    } else {
        format!("terminationGracePeriodSeconds {}s", check.pod_grace_seconds)
    };
    format!(
        "{c}: pods get {grace}; Milvus's graceful stop may take {m}s ({src}): {risk}. Give the pods more time (a post-renderer or `kubectl patch deployment` setting spec.template.spec.terminationGracePeriodSeconds, the Milvus Operator uses 30 days) or lower the timeout in extraConfigFiles (helm upgrade {release} … --set-file extraConfigFiles.user\\.yaml=…)",
        c = check.component,
        m = check.milvus_stop_seconds,
        src = check.milvus_stop_source,
        risk = shortfall_risk(&check.component),
    )
}

/// What the ranking needs to know about a pod.
#[derive(Debug, Clone)]
struct Facts<'a> {
    pod: &'a Pod,
    node: String,
    phase: u8,
    ready: bool,
    ready_since: Option<Timestamp>,
    restarts: i32,
    created: Option<Timestamp>,
    cost: i32,
    uid: String,
}

fn facts(pod: &Pod) -> Facts<'_> {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    Facts {
        pod,
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        // The controller's map gives every other phase 0, as Pending.
        phase: match status.and_then(|s| s.phase.as_deref()) {
            Some("Unknown") => 1,
            Some("Running") => 2,
            _ => 0,
        },
        ready: ready.is_some_and(|c| c.status == "True"),
        ready_since: ready.and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0),
        restarts: status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0),
        created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        cost: deletion_cost(pod),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Go's `IsPodActive`: not finished and not being deleted. Only active
/// pods count for the ReplicaSet controller's scale-down.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The pod's deletion cost as the controller parses it (0 when absent or invalid).
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Go's `afterOrZero`: a zero time first, then the later one.
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    }
}

/// `logarithmicRankDiff` with the UID tie-break: the younger log2 bucket first.
fn logarithmic(a: (Option<Timestamp>, &str), b: (Option<Timestamp>, &str), now: Timestamp) -> Ordering {
    let (Some(ta), Some(tb)) = (a.0, b.0) else {
        return after_or_zero(a.0, b.0);
    };
    let bucket = |t: Timestamp| {
        let d = now.duration_since(t).as_nanos();
        if d > 0 { (d as f64).log2() as i64 } else { -1 }
    };
    match bucket(ta).cmp(&bucket(tb)) {
        Ordering::Equal => a.1.cmp(b.1),
        other => other,
    }
}

/// `ActivePodsWithRanks.Less`: Less = deleted first.
fn controller_order(
    a: &Facts,
    ra: usize,
    b: &Facts,
    rb: usize,
    rules: ControllerRules,
    now: Timestamp,
) -> Ordering {
    // 1. Unassigned before assigned.
    if a.node != b.node && (a.node.is_empty() || b.node.is_empty()) {
        return if a.node.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running; 3. not ready before ready.
    let early = a.phase.cmp(&b.phase).then(a.ready.cmp(&b.ready));
    if early != Ordering::Equal {
        return early;
    }
    // 4. (v1.22+) the lower deletion cost first.
    if rules.deletion_cost && a.cost != b.cost {
        return a.cost.cmp(&b.cost);
    }
    // 5. More pods of the same workload on its node first.
    if ra != rb {
        return rb.cmp(&ra);
    }
    // 6. Both ready: the more recently ready first.
    if a.ready && b.ready && a.ready_since != b.ready_since {
        return if rules.logarithmic {
            logarithmic((a.ready_since, &a.uid), (b.ready_since, &b.uid), now)
        } else {
            after_or_zero(a.ready_since, b.ready_since)
        };
    }
    // 7. More restarts (of its most restarted container) first.
    if a.restarts != b.restarts {
        return b.restarts.cmp(&a.restarts);
    }
    // 8. The newer first.
    if a.created != b.created {
        return if rules.logarithmic {
            logarithmic((a.created, &a.uid), (b.created, &b.uid), now)
        } else {
            after_or_zero(a.created, b.created)
        };
    }
    Ordering::Equal
}

/// The pods a scale-in removes, in step order, as the ReplicaSet controller
/// of a server with `rules` would pick them: re-ranked at every step, since
/// removing a pod changes its node's co-location count. `pods` are one
/// Deployment's active pods. Ties the controller leaves to an unstable sort
/// are broken by name here, so the prediction is at least repeatable.
pub fn predicted_victims<'a>(
    pods: &[&'a Pod],
    removed: usize,
    rules: ControllerRules,
    now: Timestamp,
) -> Vec<&'a Pod> {
    let mut left: Vec<Facts<'a>> = pods.iter().map(|p| facts(p)).collect();
    let mut out = Vec::new();
    for _ in 0..removed.min(left.len()) {
        let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &left {
            *on_node.entry(f.node.as_str()).or_default() += 1;
        }
        let rank = |f: &Facts| on_node.get(f.node.as_str()).copied().unwrap_or(0);
        let best = (0..left.len()).min_by(|&i, &j| {
            controller_order(&left[i], rank(&left[i]), &left[j], rank(&left[j]), rules, now)
                .then_with(|| name(left[i].pod).cmp(name(left[j].pod)))
        });
        let Some(i) = best else { break };
        out.push(left.remove(i).pod);
    }
    out
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// Our choice of the pod to remove next from one Deployment (v1.22+): the
/// controller's own first classes (unscheduled, pending, not ready) stay
/// first — no cost can move a ready pod ahead of them — then a pod the user
/// named, then the newest.
pub fn choose_victim<'a>(pods: &[&'a Pod], named: &[String]) -> Option<&'a Pod> {
    pods.iter()
        .map(|p| facts(p))
        .min_by(|a, b| {
            let class = |f: &Facts| (!f.node.is_empty(), f.phase, f.ready);
            let is_named = |f: &Facts| !named.iter().any(|n| n == name(f.pod));
            class(a)
                .cmp(&class(b))
                .then(is_named(a).cmp(&is_named(b)))
                .then(after_or_zero(a.created, b.created))
                .then_with(|| name(a.pod).cmp(name(b.pod)))
        })
        .map(|f| f.pod)
}

/// The chosen pods of a whole scale-in, in step order (the plan's guarantee).
pub fn chosen_victims<'a>(pods: &[&'a Pod], removed: usize, named: &[String]) -> Vec<&'a Pod> {
    let mut left = pods.to_vec();
    let mut out = Vec::new();
    while out.len() < removed {
        let Some(v) = choose_victim(&left, named) else {
            break;
        };
        left.retain(|p| !std::ptr::eq(*p, v));
        out.push(v);
    }
    out
}

/// The merge-patch annotations that mark `pod` as the one to remove.
pub fn mark_patch(pod: &Pod) -> Value {
    let was = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .cloned()
        .unwrap_or_default();
    serde_json::json!({"metadata": {"annotations": {
        DELETION_COST: CHOSEN_COST.to_string(),
        COST_WAS: was,
    }}})
}

/// The merge patch that takes our mark off `pod` and puts back the cost it
/// had; `None` when the pod carries no mark of ours.
pub fn unmark_patch(pod: &Pod) -> Option<Value> {
    let was = pod.metadata.annotations.as_ref()?.get(COST_WAS)?;
    let cost = if was.is_empty() {
        Value::Null
    } else {
        Value::String(was.clone())
    };
    Some(serde_json::json!({"metadata": {"annotations": {DELETION_COST: cost, COST_WAS: Value::Null}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    /// A pod: node ("" = unscheduled), phase, ready since, created, restarts, cost.
    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_since: Option<&str>,
        created: &str,
        restarts: i32,
    ) -> Pod {
        let mut annotations = serde_json::Map::new();
        if let Some(cost) = name.strip_prefix("cost") {
            let cost = cost.split('-').next().unwrap_or("0");
            annotations.insert(DELETION_COST.into(), cost.replace('m', "-").into());
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": created, "annotations": annotations},
            "spec": {"containers": [{"name": "c"}], "nodeName": if node.is_empty() { Value::Null } else { node.into() }},
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready_since.is_some() { "True" } else { "False" }, "lastTransitionTime": ready_since}],
                "containerStatuses": [{"name": "c", "ready": ready_since.is_some(), "restartCount": restarts, "image": "i", "imageID": ""}]
            }
        }))
        .expect("pod")
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter().map(|p| name(p).to_string()).collect()
    }

    const V1_20: ControllerRules = ControllerRules {
        deletion_cost: false,
        logarithmic: false,
    };
    const V1_22: ControllerRules = ControllerRules {
        deletion_cost: true,
        logarithmic: true,
    };

    #[test]
    fn server_versions_select_the_rules() {
        assert_eq!(ControllerRules::for_server("1", "20"), V1_20);
        assert_eq!(ControllerRules::for_server("1", "21+"), V1_20);
        assert_eq!(ControllerRules::for_server("1", "22"), V1_22);
        assert_eq!(ControllerRules::for_server("1", "33+"), V1_22);
        assert_eq!(ControllerRules::for_server("2", "0"), V1_22);
    }

    #[test]
    fn the_controllers_classes_come_first_on_every_version() {
        let now = at("2026-01-11T13:00:00Z");
        let old_ready = pod(
            "ready",
            "n1",
            "Running",
            Some("2026-01-11T12:00:00Z"),
            "2026-01-11T12:00:00Z",
            0,
        );
        let not_ready = pod("not-ready", "n1", "Running", None, "2026-01-11T11:00:00Z", 0);
        let pending = pod("pending", "n1", "Pending", None, "2026-01-11T11:00:00Z", 0);
        let unscheduled = pod("unscheduled", "", "Pending", None, "2026-01-11T10:00:00Z", 0);
        let pods = [&old_ready, &not_ready, &pending, &unscheduled];
        for rules in [V1_20, V1_22] {
            assert_eq!(
                names(&predicted_victims(&pods, 4, rules, now)),
                ["unscheduled", "pending", "not-ready", "ready"]
            );
        }
        // Our choice keeps those classes first, then the named pod.
        let fresh = pod(
            "fresh",
            "n1",
            "Running",
            Some("2026-01-11T12:59:00Z"),
            "2026-01-11T12:58:00Z",
            0,
        );
        let pods = [&old_ready, &not_ready, &fresh, &unscheduled];
        assert_eq!(
            names(&chosen_victims(&pods, 4, &["ready".to_string()])),
            ["unscheduled", "not-ready", "ready", "fresh"]
        );
        // Unnamed: the newest.
        assert_eq!(names(&chosen_victims(&[&old_ready, &fresh], 1, &[])), ["fresh"]);
    }

    #[test]
    fn deletion_cost_counts_only_from_v1_22() {
        let now = at("2026-01-11T13:00:00Z");
        // Older and costlier vs newer and cheaper (cost -5).
        let newer = pod(
            "cost5-newer",
            "n1",
            "Running",
            Some("2026-01-11T12:50:00Z"),
            "2026-01-11T12:50:00Z",
            0,
        );
        let older = pod(
            "costm5-older",
            "n1",
            "Running",
            Some("2026-01-11T12:00:00Z"),
            "2026-01-11T12:00:00Z",
            0,
        );
        let pods = [&newer, &older];
        assert_eq!(names(&predicted_victims(&pods, 1, V1_20, now)), ["cost5-newer"]);
        assert_eq!(names(&predicted_victims(&pods, 1, V1_22, now)), ["costm5-older"]);
    }

    #[test]
    fn co_located_pods_go_first_and_are_reranked_per_step() {
        let now = at("2026-01-11T13:00:00Z");
        let ready = Some("2026-01-11T12:00:00Z");
        // a1, a2 share node a; b alone on b and the newest.
        let a1 = pod("a1", "a", "Running", ready, "2026-01-11T12:00:00Z", 0);
        let a2 = pod("a2", "a", "Running", ready, "2026-01-11T12:01:00Z", 0);
        let b = pod("b", "b", "Running", ready, "2026-01-11T12:30:00Z", 0);
        // Step 1 takes a node-a pod (doubled up): v1.20 the newer, a2;
        // v1.22 sees 59 and 60 minutes in one log2 bucket and breaks the
        // tie by UID, a1. Then every node holds one: the newest (b) goes.
        assert_eq!(
            names(&predicted_victims(&[&a1, &a2, &b], 2, V1_20, now)),
            ["a2", "b"]
        );
        assert_eq!(
            names(&predicted_victims(&[&a1, &a2, &b], 2, V1_22, now)),
            ["a1", "b"]
        );
    }

    #[test]
    fn logarithmic_buckets_make_close_ages_equal_from_v1_22() {
        let now = at("2026-01-11T13:00:00Z");
        // Ready 40 and 50 minutes ago: one log2 bucket of nanoseconds, so
        // v1.22 breaks the tie by UID (restarts are never reached);
        // v1.20 takes the later ready one.
        let later = pod(
            "x-later",
            "n1",
            "Running",
            Some("2026-01-11T12:20:00Z"),
            "2026-01-11T12:00:00Z",
            0,
        );
        let earlier = pod(
            "a-earlier",
            "n2",
            "Running",
            Some("2026-01-11T12:10:00Z"),
            "2026-01-11T12:00:00Z",
            3,
        );
        let pods = [&later, &earlier];
        assert_eq!(names(&predicted_victims(&pods, 1, V1_20, now)), ["x-later"]);
        assert_eq!(names(&predicted_victims(&pods, 1, V1_22, now)), ["a-earlier"]);
        // Not both ready: restarts decide, the most restarted container's.
        let flaky = pod("flaky", "n1", "Running", None, "2026-01-11T12:00:00Z", 2);
        let steady = pod("steady", "n2", "Running", None, "2026-01-11T12:30:00Z", 1);
        for rules in [V1_20, V1_22] {
            assert_eq!(
                names(&predicted_victims(&[&steady, &flaky], 1, rules, now)),
                ["flaky"]
            );
        }
        // A pod without a ready time goes before one with it.
        assert_eq!(after_or_zero(None, Some(now)), Ordering::Less);
    }

    #[test]
    fn marks_are_reversible() {
        let mut p = pod("cost7-x", "n1", "Running", None, "2026-01-11T12:00:00Z", 0);
        let mark = mark_patch(&p);
        assert_eq!(mark["metadata"]["annotations"][DELETION_COST], "-2147483648");
        assert_eq!(mark["metadata"]["annotations"][COST_WAS], "7");
        assert!(unmark_patch(&p).is_none(), "no mark, nothing to undo");
        p.metadata
            .annotations
            .get_or_insert_default()
            .insert(COST_WAS.into(), "7".into());
        assert_eq!(
            unmark_patch(&p).expect("unmark")["metadata"]["annotations"],
            serde_json::json!({DELETION_COST: "7", COST_WAS: null})
        );
        let fresh = pod("y", "n1", "Running", None, "2026-01-11T12:00:00Z", 0);
        assert_eq!(mark_patch(&fresh)["metadata"]["annotations"][COST_WAS], "");
        let mut marked = fresh.clone();
        marked
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(COST_WAS.into(), String::new());
        assert_eq!(
            unmark_patch(&marked).expect("unmark")["metadata"]["annotations"],
            serde_json::json!({DELETION_COST: null, COST_WAS: null})
        );
    }

    fn yaml(text: &str) -> Value {
        serde_saphyr::from_str(text).expect("yaml")
    }

    #[test]
    fn graceful_stop_timeouts_follow_milvus_layers_and_fallbacks() {
        let none: ConfigLayers = vec![];
        assert_eq!(
            milvus_stop_timeout("queryNode", &none, "2.6.15"),
            (
                1800,
                "queryNode.gracefulStopTimeout, Milvus 2.6.15 default".into()
            )
        );
        assert_eq!(milvus_stop_timeout("proxy", &none, "2.6.15").0, 30);
        let layers = vec![
            (
                "default.yaml".to_string(),
                yaml("common:\n  gracefulStopTimeout: 600\n"),
            ),
            (
                "user.yaml".to_string(),
                yaml("querynode:\n  gracefulStopTimeout: \"120\"\ndataNode:\n  gracefulStopTimeout: 90\n"),
            ),
        ];
        assert_eq!(
            milvus_stop_timeout("queryNode", &layers, "2.6.15"),
            (120, "queryNode.gracefulStopTimeout in user.yaml".into())
        );
        assert_eq!(
            milvus_stop_timeout("streamingNode", &layers, "2.6.15"),
            (600, "common.gracefulStopTimeout in default.yaml".into())
        );
        // dataNode has its own default and does not fall back to common.
        assert_eq!(milvus_stop_timeout("dataNode", &layers, "2.6.15").0, 90);
        assert_eq!(milvus_stop_timeout("dataNode", &none, "2.6.15").0, 1800);
    }

    #[test]
    fn the_flag_is_needed_only_below_thirty_seconds_for_serving_state() {
        let none: ConfigLayers = vec![];
        let chart_default = grace_check("queryNode", None, &none, "2.6.15");
        assert!(chart_default.short() && !chart_default.needs_flag);
        assert!(grace_warning(&chart_default, "r").contains("30s, Kubernetes' default"));
        assert!(grace_check("queryNode", Some(5), &none, "2.6.15").needs_flag);
        assert!(grace_check("streamingNode", Some(5), &none, "2.6.15").needs_flag);
        assert!(!grace_check("dataNode", Some(5), &none, "2.6.15").needs_flag);
        let operator = grace_check("queryNode", Some(2_592_000), &none, "2.6.15");
        assert!(!operator.short() && !operator.needs_flag);
        let quick = vec![(
            "user.yaml".to_string(),
            yaml("queryNode:\n  gracefulStopTimeout: 3\n"),
        )];
        assert!(!grace_check("queryNode", Some(5), &quick, "2.6.15").needs_flag);
    }
}
