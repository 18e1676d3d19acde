//! Milvus's own view in `status`, and the drain in `plan`.

use std::fmt::Write;

use crate::core::milvus::api::Balance;
use crate::core::milvus::drain::{DrainPlan, Held};
use crate::core::milvus::view::{MilvusView, unreachable_line};
use crate::render::table::kubectl_table;
use crate::render::table::trim_lines;

/// The `status` section: health per component, the query-node table, NOTEs.
/// Unreachable: one line, and nothing else.
pub fn status_section(v: &MilvusView) -> String {
    let mut out = String::new();
    let health: Vec<String> = v
        .components
        .iter()
        .map(|c| format!("{} {}/{}", c.component, c.healthy, c.asked))
        .collect();
    let balance = match v.balance {
        Some(Balance::Active) => "; balance active",
        Some(Balance::Suspended) => "; balance SUSPENDED",
        None => "",
    };
    if !health.is_empty() {
        let _ = writeln!(out, "Milvus:      healthz {}{balance}", health.join(", "));
    }
    for c in &v.components {
        for p in &c.problems {
            let _ = writeln!(out, "             {}: {p}", c.component);
        }
    }
    if let Some(why) = &v.unreachable {
        let _ = writeln!(out, "NOTE: {}", unreachable_line(why));
        return out;
    }
    if !v.query_nodes.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = v
            .query_nodes
            .iter()
            .map(|q| {
                let (segments, channels) = q.held.map_or(("?".into(), "?".into()), |h| {
                    (h.segments.to_string(), h.channels.to_string())
                });
                let mut state = q.node.state.to_string();
                if let Some(run) = &q.drained_by {
                    state.push_str(&format!(" (drain by {run})"));
                }
                vec![
                    q.node.id.to_string(),
                    state,
                    segments,
                    channels,
                    q.node.component.clone().unwrap_or_else(|| "-".into()),
                    q.node
                        .pod
                        .clone()
                        .unwrap_or_else(|| format!("<none at {}>", q.node.address)),
                ]
            })
            .collect();
        out.push_str(&trim_lines(&kubectl_table(
            &["MILVUS NODE", "STATE", "SEGMENTS", "CHANNELS", "COMPONENT", "POD"],
            &rows,
        )));
    }
    for n in &v.notes {
        let _ = writeln!(out, "NOTE: {n}");
    }
    out
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn held(h: Held) -> String {
    let mut s = count(h.segments, "sealed segment");
    if h.channels > 0 {
        s.push_str(&format!(", {}", count(h.channels, "channel")));
    }
    s
}

/// The `plan` section for a query-node scale-in.
pub fn plan_section(p: &DrainPlan) -> String {
    let mut out = String::new();
    if !p.enabled {
        let _ = writeln!(
            out,
            "Drain:       off (--no-drain): {} pods leave holding what they hold; QueryCoord reloads it on the other nodes from object storage",
            p.component
        );
        return out;
    }
    let _ = writeln!(
        out,
        "Drain:       each leaving {} is emptied in Milvus before its pod is removed (suspend, move its segments and channels, wait until empty; --drain-timeout {}s per node)",
        p.component, p.timeout_secs
    );
    if let Some(why) = &p.unreachable {
        let _ = writeln!(
            out,
            "             Milvus cannot be asked now ({why}): if it still cannot when the run starts, the run warns once and scales in without a drain"
        );
    }
    for l in &p.leaving {
        let _ = write!(out, "             step {}: pod {}", l.step, l.pod);
        match (l.node, &l.state, l.held) {
            (Some(n), Some(state), Some(h)) => {
                let _ = write!(
                    out,
                    ", node {n} ({state}) holds {}: emptied before the pod is removed",
                    held(h)
                );
            }
            (Some(n), _, _) => {
                let _ = write!(out, ", node {n}: emptied before the pod is removed");
            }
            (None, _, _) if p.unreachable.is_some() => out.push_str(", node unknown"),
            (None, _, _) => {}
        }
        if let Some(note) = &l.note {
            let _ = write!(out, "; {note}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "             Which pod leaves: {}", p.removal.explain());
    let _ = writeln!(
        out,
        "             If a drain does not finish (timeout, Ctrl-C, a lost lock, an API failure): the node is resumed, its pod kept, and the run stops with how to continue"
    );
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::core::milvus::api::Unreachable;
    use crate::core::milvus::drain::{Removal, leaving_nodes};
    use crate::core::milvus::fixtures::gathered;
    use crate::core::milvus::nodes::map_nodes;
    use crate::core::milvus::view::view;

    #[test]
    fn status_section() {
        insta::assert_snapshot!(super::status_section(&view(&gathered())));
    }

    #[test]
    fn status_section_unreachable_is_one_line() {
        let mut g = gathered();
        g.nodes = Some(Err(Unreachable::Forbidden {
            message: "pods \"p\" is forbidden: User \"u\" cannot create resource \"pods/proxy\"".into(),
        }));
        g.health.clear();
        let text = super::status_section(&view(&g));
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("NOTE: Milvus's own view is not shown: you may not use pods/proxy"));
    }

    #[test]
    fn plan_section() {
        let g = gathered();
        let Some(Ok(nodes)) = &g.nodes else { panic!() };
        let mapped = map_nodes(nodes, &g.pods);
        let victims = vec!["qn-b".to_string(), "qn-a".to_string()];
        let plan = DrainPlan {
            component: "queryNode".into(),
            enabled: true,
            removal: Removal::DeleteThenLower,
            timeout_secs: Duration::from_secs(600).as_secs(),
            leaving: leaving_nodes(&victims, Some(&mapped), &g.held),
            unreachable: None,
        };
        insta::assert_snapshot!(super::plan_section(&plan));
        let blind = DrainPlan {
            leaving: leaving_nodes(&victims[..1], None, &BTreeMap::new()),
            unreachable: Some(Unreachable::timeout(Duration::from_secs(2))),
            removal: Removal::DeletionCost,
            ..plan
        };
        insta::assert_snapshot!("plan_section_unreachable", super::plan_section(&blind));
    }
}
