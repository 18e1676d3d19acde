//! `plan` (and `scale --dry-run`) output.

use std::fmt::Write;

use indicatif::HumanCount;

use crate::cli::PlanOutput;
use crate::core::plan::{Command, Plan, PodFate};
use crate::core::status::ManagedBy;
use crate::render::table::kubectl_table;
use crate::render::table::trim_lines;

/// The plan in the format asked for, with a GitOps owner's warning at the
/// top.
pub fn output(format: PlanOutput, mut plan: Plan, owned: Option<String>) -> anyhow::Result<String> {
    if let Some(w) = &owned
        && format != PlanOutput::Table
    {
        plan.warnings.insert(0, w.clone());
    }
    let doc = crate::render::document::Document {
        api_version: crate::render::document::API_VERSION,
        kind: "MilvusScalePlan",
        items: std::slice::from_ref(&plan),
    };
    match format {
        PlanOutput::Table => Ok(match owned {
            Some(w) => format!("Warning: {w}\n\n{}", table(&plan)),
            None => table(&plan),
        }),
        PlanOutput::Json => crate::render::document::json(&doc),
        PlanOutput::Yaml => crate::render::document::yaml(&doc),
    }
}

pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = match plan.managed_by {
        ManagedBy::Helm | ManagedBy::ArgoCd => writeln!(
            out,
            "Plan for release {} (namespace {}, chart milvus-{}):",
            plan.release, plan.namespace, plan.chart_version
        ),
        ManagedBy::MilvusOperator => writeln!(
            out,
            "Plan for Milvus {} (namespace {}, managed by milvus-operator):",
            plan.release, plan.namespace
        ),
    };
    out.push('\n');
    let rows: Vec<Vec<String>> = plan
        .changes
        .iter()
        .filter(|c| c.hpa.is_none())
        .map(|c| {
            let steps = if c.steps.is_empty() {
                if c.is_noop() {
                    "nothing to do".to_string()
                } else {
                    "record values only".to_string()
                }
            } else if c.steps.len() <= 8 {
                std::iter::once(c.current)
                    .chain(c.steps.iter())
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" → ")
            } else {
                format!(
                    "{} → {} → … → {} ({} steps of one replica)",
                    c.current,
                    c.current - 1,
                    c.target,
                    HumanCount(u64::from(c.steps.len()))
                )
            };
            vec![
                match &c.group {
                    Some(g) => format!("{}/{g}", c.component),
                    None => c.component.clone(),
                },
                c.values.to_string(),
                c.current.to_string(),
                c.target.to_string(),
                steps,
                c.deployments.join(","),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&kubectl_table(
            &[
                "COMPONENT",
                match plan.managed_by {
                    ManagedBy::Helm | ManagedBy::ArgoCd => "VALUES",
                    ManagedBy::MilvusOperator => "SPEC",
                },
                "CURRENT",
                "TARGET",
                "STEPS",
                "DEPLOYMENTS",
            ],
            &rows,
        ));
    }
    out.push_str(&bounds_table(plan, !rows.is_empty()));
    if !plan.warnings.is_empty() {
        out.push('\n');
        for w in &plan.warnings {
            let _ = writeln!(out, "Warning: {w}");
        }
    }
    if !plan.grace.is_empty() {
        out.push_str("\nGraceful stop (pods leaving):\n");
        for g in &plan.grace {
            let _ = writeln!(
                out,
                "  {}: pods get {}s ({}), Milvus may take {}s ({}){}",
                g.component,
                g.pod_grace_seconds,
                if g.pod_grace_set {
                    "terminationGracePeriodSeconds"
                } else {
                    "Kubernetes default"
                },
                g.milvus_stop_seconds,
                g.milvus_stop_source,
                if g.short() { " — short, see warning" } else { "" }
            );
        }
    }
    if !plan.pods.is_empty() {
        let removes = plan.pods.iter().any(|p| p.fate == PodFate::Removed);
        let drained = plan.drain.as_ref().is_some_and(|d| d.enabled);
        out.push_str(match (removes, plan.victims_chosen) {
            (true, false) if drained => "\nPods (removed query-node pods are chosen and drained by the run, see Drain below; other removals are the ReplicaSet controller's choice by this server's rules, a prediction):\n",
            (true, true) => "\nPods (removed ones are chosen; `scale` marks each with controller.kubernetes.io/pod-deletion-cost so the ReplicaSet removes exactly it):\n",
            (true, false) => "\nPredicted pods (removed ones are the ReplicaSet controller's choice by this server's rules; a prediction, this server ignores pod-deletion-cost and removes pods it ranks equal in any order):\n",
            _ => "\nPredicted pods:\n",
        });
        let rows: Vec<Vec<String>> = plan
            .pods
            .iter()
            .map(|p| {
                let fate = match (p.fate, p.step) {
                    (PodFate::New, _) => "+ new".to_string(),
                    (PodFate::Removed, Some(s)) => format!("- removed (step {s})"),
                    (PodFate::Removed, None) => "- removed".to_string(),
                    (PodFate::Stays, _) => String::new(),
                };
                vec![
                    p.row.name.clone(),
                    p.row.ready.clone(),
                    p.row.status.clone(),
                    p.row.restarts.clone(),
                    p.row.age.clone(),
                    fate,
                ]
            })
            .collect();
        out.push_str(&trim_lines(&kubectl_table(
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE", "PLAN"],
            &rows,
        )));
        if plan.new_pods_not_shown > 0 {
            let _ = writeln!(out, "… and {} more new pods", HumanCount(plan.new_pods_not_shown));
        }
    }
    if let Some(d) = &plan.drain {
        out.push('\n');
        out.push_str(&crate::render::milvus::plan_section(d));
    }
    let _ = match &plan.command {
        Command::HelmCommand(helm) => write!(out, "\nEquivalent Helm command:\n  {helm}\n"),
        Command::KubectlCommand(kubectl) => write!(
            out,
            "\nEquivalent kubectl command (all at once, without the steps and waits):\n  {kubectl}\n"
        ),
    };
    out
}

/// The HPA bounds changes: each HPA's min and max before and after, the
/// replicas it will hold, and the steps a lowered max is taken in.
fn bounds_table(plan: &Plan, after_replicas: bool) -> String {
    let rows: Vec<Vec<String>> = plan
        .changes
        .iter()
        .filter_map(|c| {
            let h = c.hpa.as_ref()?;
            let arrow = |a: u32, b: u32| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a} → {b}")
                }
            };
            let steps = if c.steps.is_empty() {
                if c.is_noop() {
                    "nothing to do"
                } else {
                    "bounds only"
                }
                .to_string()
            } else {
                std::iter::once(c.current)
                    .chain(c.steps.iter().take(8))
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" → ")
                    + if c.steps.len() > 8 { " → …" } else { "" }
            };
            let mut row = vec![
                match &c.group {
                    Some(g) => format!("{}/{g}", c.component),
                    None => c.component.clone(),
                },
                h.name.clone(),
            ];
            if plan.managed_by != ManagedBy::MilvusOperator {
                row.push(h.values.map_or_else(|| "-".to_string(), |v| v.to_string()));
            }
            row.extend([
                arrow(h.current.min, h.target.min),
                arrow(h.current.max, h.target.max),
                arrow(c.current, c.target),
                steps,
                c.deployments.join(","),
            ]);
            Some(row)
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut headers = vec!["COMPONENT", "HPA"];
    if plan.managed_by != ManagedBy::MilvusOperator {
        headers.push("VALUES");
    }
    headers.extend(["MIN", "MAX", "REPLICAS", "STEPS", "DEPLOYMENTS"]);
    let table = kubectl_table(&headers, &rows);
    if after_replicas {
        format!("\n{table}")
    } else {
        table
    }
}
