//! `status --watch`: when a new snapshot is worth showing.

use crate::core::operator::Instance;
use crate::core::status::ReleasePod;

/// Two snapshots show the same when they differ at most in the pods' AGE,
/// which moves with the clock, not with the cluster: a redraw that would
/// change nothing else is not shown.
pub fn same_view(a: &[Instance], b: &[Instance]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ageless(x) == ageless(y))
}

fn ageless(item: &Instance) -> Instance {
    let mut item = item.clone();
    let pods: &mut Vec<ReleasePod> = match &mut item {
        Instance::Helm(r) => &mut r.pods,
        Instance::Operator(o) => &mut o.pods,
    };
    for p in pods {
        p.row.age.clear();
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::pods::PodRow;
    use crate::core::status::{LiveState, build};
    use crate::core::test_support::fixture_release;

    fn with_pod(age: &str, status: &str) -> Vec<Instance> {
        let live = LiveState {
            workloads: &[],
            hpas: &[],
            pods: &[],
        };
        let now = "2026-01-11T13:00:00Z".parse().expect("time");
        let mut r = build(&fixture_release(), "ns", "Secret", None, &[], &live, now);
        let cell = |s: &str| s.to_string();
        r.pods.push(ReleasePod {
            row: PodRow {
                name: cell("p"),
                ready: cell("1/1"),
                status: cell(status),
                restarts: cell("0"),
                age: cell(age),
                ip: cell("<none>"),
                node: cell("<none>"),
                nominated_node: cell("<none>"),
                readiness_gates: cell("<none>"),
            },
            namespace: cell("ns"),
            workload: cell("Deployment/d"),
            component: None,
        });
        vec![Instance::Helm(Box::new(r))]
    }

    #[test]
    fn only_age_is_not_a_change() {
        assert!(same_view(&with_pod("5s", "Running"), &with_pod("7s", "Running")));
        assert!(!same_view(
            &with_pod("5s", "Running"),
            &with_pod("5s", "Terminating")
        ));
        assert!(!same_view(&with_pod("5s", "Running"), &[]));
    }
}
