//! `status --watch`: when a new snapshot is worth showing.

use crate::core::operator::Instance;
use crate::core::status::ReleasePod;

/// A snapshot without the pods' AGE, which moves with the clock, not with
/// the cluster: two snapshots whose ageless forms print alike show the same,
/// and the second is not worth a redraw.
pub fn ageless(items: &[Instance]) -> Vec<Instance> {
    items
        .iter()
        .cloned()
        .map(|mut item| {
            let pods: &mut Vec<ReleasePod> = match &mut item {
                Instance::Helm(r) => &mut r.pods,
                Instance::Operator(o) => &mut o.pods,
            };
            for p in pods {
                p.row.age.clear();
            }
            item
        })
        .collect()
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
            pods: &crate::core::pods::LivePods::default(),
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
        let (young, old) = (with_pod("5s", "Running"), with_pod("7s", "Running"));
        assert_ne!(young, old);
        assert_eq!(ageless(&young), ageless(&old));
        assert_ne!(ageless(&young), ageless(&with_pod("5s", "Terminating")));
    }
}
