//! What a scale run ends with and tells, the same for every shape: how
//! its steps and its record ended, the closing pod table, the grace account
//! before the first step and the command that carries a stopped run on.

use anyhow::Result;

use crate::cluster::Cluster;
use crate::cluster::live::{LiveReads, printed_pods};
use crate::core::manifest::ManifestObject;
use crate::core::plan::Plan;
use crate::core::pods::PodRow;
use crate::core::scale_in::GraceCheck;
use crate::core::status::release_pods;
use crate::engine::operator::statuses;
use crate::render::progress::Progress;

/// How the steps ended when nothing stopped them.
pub(super) enum Done {
    Scaled,
    /// What ran was already at the targets (found once a killed run's
    /// last step had settled).
    Nothing(String),
}

/// How the record was finished.
pub(super) enum Finished {
    /// The record holds what was reached.
    Recorded,
    /// The lock was lost: nothing more is written, the next run repairs.
    LeftPending,
    /// Someone else wrote the record: nothing of theirs was written over;
    /// `ours` says what became of the run's own.
    Theirs { what: String, ours: Option<String> },
    /// The record could not be written (it stays unfinished).
    Unrecorded(anyhow::Error),
    /// Recorded; tidying older records failed.
    Untidy(anyhow::Error),
}

/// The closing pod table: which pods, read once the steps are over (beside
/// the clean-up, before the record is finished).
pub(super) enum Table {
    /// The pods the release's workloads own, from one pod list.
    Helm {
        namespace: String,
        objects: Vec<ManifestObject>,
    },
    /// The resource's pods and its dependency releases', as `status` shows
    /// them.
    Milvus { namespace: String, name: String },
}

impl Table {
    /// The rows, exactly as `kubectl get pods` prints them now.
    pub async fn rows(self, cluster: &Cluster) -> Result<Vec<PodRow>> {
        let now = jiff::Timestamp::now();
        Ok(match self {
            Table::Helm { namespace, objects } => {
                let pods = printed_pods(cluster, &namespace).await?;
                release_pods(&objects, &pods, now)
                    .into_iter()
                    .map(|p| p.row)
                    .collect()
            }
            Table::Milvus { namespace, name } => {
                let found =
                    statuses(cluster, &LiveReads::new(cluster), Some(&namespace), Some(&name)).await?;
                found
                    .items
                    .into_iter()
                    .next()
                    .map(|s| s.pods.into_iter().map(|p| p.row).collect())
                    .unwrap_or_default()
            }
        })
    }
}

/// Says, before the first step, how long each component scaled in has to
/// stop against Milvus's graceful stop, with the shape's warning where it
/// falls short.
pub(super) fn tell_grace(progress: &Progress, plan: &Plan, warning: impl Fn(&GraceCheck) -> String) {
    for g in &plan.grace {
        progress.line(&format!(
            "{}: pods get {}s to stop, Milvus's graceful stop may take {}s ({})",
            g.component, g.pod_grace_seconds, g.milvus_stop_seconds, g.milvus_stop_source
        ));
        if g.short() {
            progress.line(&format!("Warning: {}", warning(g)));
        }
    }
}

/// The command that carries a stopped run on: `COMPONENT=N …` for replica
/// changes, `COMPONENT --min N --max M` for each bounds change.
pub(super) fn continue_command(release: &str, namespace: &str, plan: &Plan) -> String {
    let mut counts: Vec<String> = Vec::new();
    // Deployment groups of one component share its `COMPONENT=N`.
    for c in plan.changes.iter().filter(|c| c.hpa.is_none()) {
        let count = format!("{}={}", c.component, c.target);
        if !counts.contains(&count) {
            counts.push(count);
        }
    }
    let mut commands: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| {
            let h = c.hpa.as_ref()?;
            Some(format!(
                "kubectl milvus scale {release} {} --min {} --max {} -n {namespace}",
                c.component, h.target.min, h.target.max
            ))
        })
        .collect();
    if !counts.is_empty() {
        commands.insert(
            0,
            format!(
                "kubectl milvus scale {release} {} -n {namespace}",
                counts.join(" ")
            ),
        );
    }
    commands.join(" && ")
}
