//! `status` output: a summary block, the component table, dependencies and
//! the pod table exactly as `kubectl get pods` prints it.

use std::fmt::Write;

use crate::core::milvus::view::MilvusView;
use crate::core::operator::{Instance, OperatorStatus};
use crate::core::status::{ComponentStatus, DependencyStatus, ReleasePod, ReleaseStatus};
use crate::core::values::Replicas;
use crate::render;
use crate::render::table::{kubectl_table, pod_table, trim_lines};

/// Renders Helm releases and `Milvus` resources alike, separated by a blank line.
pub fn instances(items: &[Instance], wide: bool, all_namespaces: bool) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&match item {
            Instance::Helm(r) => release(r, wide, all_namespaces),
            Instance::Operator(o) => operator(o, wide, all_namespaces),
        });
    }
    out
}

fn operator(o: &OperatorStatus, wide: bool, all_namespaces: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Milvus:      {} (namespace {}, managed by milvus-operator)",
        o.release, o.namespace
    );
    let observed = o
        .observed_generation
        .map_or_else(|| "not observed yet".to_string(), |g| format!("observed {g}"));
    let _ = writeln!(
        out,
        "Status:      {} (generation {}, {observed})",
        o.milvus_status, o.generation
    );
    match o.message_queue.as_str() {
        "" => writeln!(out, "Mode:        {}", o.mode),
        mq => writeln!(out, "Mode:        {}, message queue {mq}", o.mode),
    }
    .unwrap_or_default();
    if let Some(owner) = &o.owner {
        let _ = writeln!(out, "Managed by:  {}", owner.summary());
    }
    if !o.conditions.is_empty() {
        let all: Vec<String> = o
            .conditions
            .iter()
            .map(|c| format!("{}={}", c.type_, c.status))
            .collect();
        let _ = writeln!(out, "Conditions:  {}", all.join(", "));
        for c in o.conditions.iter().filter(|c| c.status != "True") {
            let why: Vec<&str> = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect();
            if !why.is_empty() {
                let _ = writeln!(out, "             {}: {}", c.type_, why.join(": "));
            }
        }
    }
    if !o.dependency_releases.is_empty() {
        let deps: Vec<String> = o
            .dependency_releases
            .iter()
            .map(|d| format!("{} ({}-{}, {})", d.release, d.chart, d.chart_version, d.status))
            .collect();
        let _ = writeln!(out, "Helm deps:   {}", deps.join(", "));
    }
    out.push_str(&body(
        &o.warnings,
        &o.components,
        o.milvus.as_ref(),
        &o.dependencies,
        &o.pods,
        (&o.release, &o.namespace),
        wide,
        all_namespaces,
    ));
    out
}

fn release(r: &ReleaseStatus, wide: bool, all_namespaces: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Release:     {} (namespace {})", r.release, r.namespace);
    let _ = writeln!(
        out,
        "Chart:       {}-{} (Milvus {})",
        r.chart, r.chart_version, r.app_version
    );
    match r.owner.as_ref().filter(|o| !o.helm_record) {
        Some(o) => {
            let _ = writeln!(
                out,
                "Revision:    none (no Helm record: rendered by {}; read-only)",
                o.describe()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Revision:    {} {} {} (Helm record in a {})",
                r.revision,
                r.helm_status,
                when(&r.updated),
                r.storage
            );
        }
    }
    let _ = writeln!(out, "Mode:        {}, message queue {}", r.mode, r.message_queue);
    if let Some(o) = &r.owner {
        let _ = writeln!(out, "Managed by:  {}", o.summary());
    }
    if let Some(p) = &r.pending {
        let hint = if let Some(holder) = &p.held_by {
            let renewed = p.held_renew_time.as_deref().and_then(|t| t.parse().ok());
            format!(
                "`kubectl milvus scale` on {holder} holds the release's lock ({}): at work, or gone without giving it up; `kubectl milvus scale {} …` is refused while the lock is renewed, and takes over and repairs it once the lock has gone {}s unrenewed",
                crate::core::lock::renewed_by_holder(renewed),
                r.release,
                crate::core::lock::LEASE_DURATION.as_secs()
            )
        } else if let Some(why) = &p.lock_unknown {
            format!(
                "written by `kubectl milvus scale`; whether a run is still at work on it is unknown: its lock could not be read ({why})"
            )
        } else if p.by_plugin {
            format!(
                "left by an interrupted `kubectl milvus scale`; run `kubectl milvus scale {} …` again to repair and finish it",
                r.release
            )
        } else {
            "another Helm operation is in progress (or died); scaling is refused until it ends".to_string()
        };
        let _ = writeln!(
            out,
            "Pending:     revision {} is {} ({hint})",
            p.revision, p.status
        );
    }
    out.push_str(&body(
        &r.warnings,
        &r.components,
        r.milvus.as_ref(),
        &r.dependencies,
        &r.pods,
        (&r.release, &r.namespace),
        wide,
        all_namespaces,
    ));
    out
}

/// The summary's warnings, then the tables: components, dependencies, pods.
#[allow(clippy::too_many_arguments)]
fn body(
    warnings: &[String],
    components_: &[ComponentStatus],
    milvus: Option<&MilvusView>,
    dependencies: &[DependencyStatus],
    pods: &[ReleasePod],
    (name, namespace): (&str, &str),
    wide: bool,
    all_namespaces: bool,
) -> String {
    let mut out = String::new();
    for w in warnings {
        let _ = writeln!(out, "Warning:     {w}");
    }
    out.push('\n');
    out.push_str(&components(components_, wide));
    // Milvus's own view, beside what Kubernetes says.
    let section = milvus.map(render::milvus::status_section).unwrap_or_default();
    if !section.is_empty() {
        out.push('\n');
        out.push_str(&section);
    }
    if !dependencies.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = dependencies
            .iter()
            .map(|d| {
                vec![
                    format!("{}/{}", d.kind, d.name),
                    format!("{}/{}", d.pods_ready, d.pods),
                ]
            })
            .collect();
        out.push_str(&kubectl_table(&["DEPENDENCY", "PODS READY"], &rows));
    }
    out.push('\n');
    if pods.is_empty() {
        let _ = writeln!(out, "No pods found for release {name} in namespace {namespace}.");
    } else {
        let rows: Vec<_> = pods.iter().map(|p| p.row.clone()).collect();
        let namespaces: Vec<String> = pods.iter().map(|p| p.namespace.clone()).collect();
        out.push_str(&pod_table(
            &rows,
            wide,
            all_namespaces.then_some(namespaces.as_slice()),
        ));
    }
    out
}

/// `deployed at 2026-01-11 12:30:00 UTC` from Helm's RFC 3339 time.
fn when(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => format!("at {}", t.strftime("%Y-%m-%d %H:%M:%S UTC")),
        Err(_) if rfc3339.is_empty() => String::new(),
        Err(_) => format!("at {rfc3339}"),
    }
}

/// The component table: values against the live workload.
pub fn components(rows: &[ComponentStatus], wide: bool) -> String {
    let mut headers = vec![
        "COMPONENT",
        "ROLE",
        "DESIRED",
        "REPLICAS",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "HPA",
    ];
    if wide {
        headers.push("WORKLOAD");
    }
    headers.push("NOTES");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            let mut row = vec![
                component_name(c),
                c.role.as_str().to_string(),
                desired(&c.desired),
            ];
            match &c.live {
                Some(l) => row.extend([
                    l.replicas.to_string(),
                    format!("{}/{}", l.ready, l.replicas),
                    l.up_to_date.to_string(),
                    l.available.to_string(),
                ]),
                None => row.extend(["<missing>", "-", "-", "-"].map(String::from)),
            }
            row.push(match &c.hpa {
                Some(h) => format!("{}-{} (now {})", h.min, h.max, h.current),
                None => "-".to_string(),
            });
            if wide {
                row.push(format!("{}/{}", c.kind, c.workload));
            }
            row.push(c.notes.join("; "));
            row
        })
        .collect();
    trim_lines(&kubectl_table(&headers, &rows))
}

/// `queryNode`, `queryNode[rg1]` for a resource group's Deployment, or
/// `queryNode/g1` for an operator deployment group's.
pub fn component_name(c: &ComponentStatus) -> String {
    match (&c.resource_group, &c.deployment_group) {
        (Some(rg), _) => format!("{}[{rg}]", c.component),
        (None, Some(g)) => format!("{}/{g}", c.component),
        (None, None) => c.component.clone(),
    }
}

fn desired(r: &Replicas) -> String {
    match r {
        Replicas::Count(n) => n.to_string(),
        Replicas::Unset => "-1 (HPA)".to_string(),
        Replicas::Invalid(v) => format!("invalid {v}"),
    }
}
