//! The one thing that differs between the shapes of a scale run: its
//! record. A Helm release records a run as revision N+1, opened
//! `pending-upgrade` and finished like `helm upgrade` ([`HelmRun`]); a
//! `Milvus` resource is its own record, written step by step
//! ([`MilvusRun`]). The run itself (`super::holding`) asks the record these
//! few things and is written once.

use anyhow::Result;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::core::gitops::Owner;
use crate::core::plan::{Plan, Request};
use crate::core::scale_in::ControllerRules;
use crate::engine::resolve::Instance;
use crate::render::progress::Progress;

use super::drain::Drainer;
use super::helm::HelmRun;
use super::operator::MilvusRun;
use super::outcome::{Done, Finished, Table, continue_command};
use super::stop::Stop;

/// A run's record: how it is opened, written, finished and told.
pub(super) enum Record {
    Helm(Box<HelmRun>),
    Milvus(Box<MilvusRun>),
}

impl Record {
    /// Reads the instance again under the Lease and makes the plan: a run
    /// that finished while this one waited has moved it on.
    pub async fn read(
        cluster: &Cluster,
        args: &ScaleArgs,
        instance: &Instance,
        requests: &[Request],
        progress: &Progress,
    ) -> Result<Record> {
        Ok(match instance {
            Instance::Milvus(cr) => Record::Milvus(Box::new(
                MilvusRun::read(cluster, args, cr, requests, progress).await?,
            )),
            _ => Record::Helm(Box::new(HelmRun::read(cluster, args, requests).await?)),
        })
    }

    pub fn plan(&self) -> &Plan {
        match self {
            Record::Helm(h) => &h.loaded.plan,
            Record::Milvus(m) => &m.plan,
        }
    }

    /// A GitOps tool that owns the instance, if any.
    pub fn owner(&self) -> Option<&Owner> {
        match self {
            Record::Helm(h) => h.loaded.owner.as_ref(),
            Record::Milvus(m) => m.owner.as_ref(),
        }
    }

    /// The server's ReplicaSet scale-down rules.
    pub fn rules(&self) -> ControllerRules {
        match self {
            Record::Helm(h) => h.loaded.rules,
            Record::Milvus(m) => m.rules,
        }
    }

    /// The message when nothing is to change (and no killed run to carry
    /// on); tidies what an earlier run left on the way.
    pub async fn nothing_to_do(&self, cluster: &Cluster) -> Result<Option<String>> {
        match self {
            Record::Helm(h) => h.nothing_to_do(cluster).await,
            Record::Milvus(m) => Ok(m.nothing_to_do()),
        }
    }

    /// What to know before the first step (grace periods, killed pods).
    pub fn tell(&self, progress: &Progress) {
        match self {
            Record::Helm(h) => h.tell(progress),
            Record::Milvus(m) => m.tell(progress),
        }
    }

    /// Opens the record for the run (`me`: the Lease holder).
    pub async fn open(&mut self, cluster: &Cluster, me: &str, progress: &Progress) -> Result<()> {
        match self {
            Record::Helm(h) => h.open(cluster, me, progress).await,
            Record::Milvus(m) => {
                m.open();
                Ok(())
            }
        }
    }

    /// The steps.
    pub async fn execute(
        &self,
        cluster: &Cluster,
        args: &ScaleArgs,
        drainer: Option<&Drainer<'_>>,
        progress: &Progress,
    ) -> Result<Done, Stop> {
        match self {
            Record::Helm(h) => h.execute(cluster, args, drainer, progress).await,
            Record::Milvus(m) => m.execute(cluster, args, drainer, progress).await,
        }
    }

    /// Resolves the moment someone else writes the record.
    pub async fn other_writers(&self, cluster: &Cluster) -> Stop {
        match self {
            Record::Helm(h) => h.other_writers(cluster).await,
            Record::Milvus(m) => m.other_writers(cluster).await,
        }
    }

    /// Where the run stands (`queryNode=2, …`), the fields it wrote handed
    /// back to their owner on the way.
    pub async fn settle(&mut self, cluster: &Cluster) -> Result<String> {
        match self {
            Record::Helm(h) => h.settle(cluster).await,
            Record::Milvus(m) => m.settle(cluster).await,
        }
    }

    /// Finishes the record at what was reached.
    pub async fn finish(
        &mut self,
        cluster: &Cluster,
        me: &str,
        outcome: &Result<Done, Stop>,
        args: &ScaleArgs,
    ) -> Finished {
        match self {
            Record::Helm(h) => h.finish(cluster, me, outcome, args).await,
            // The resource is the record: each step wrote it.
            Record::Milvus(_) => Finished::Recorded,
        }
    }

    /// The command that carries a stopped run on.
    pub fn continue_command(&self, args: &ScaleArgs) -> String {
        match self {
            Record::Helm(h) => continue_command(&args.release, &h.namespace, &h.loaded.plan),
            Record::Milvus(m) => m.continue_command(args),
        }
    }

    /// Where the run is recorded: `as revision 3`, `in Milvus my-release`.
    pub fn recorded_where(&self) -> String {
        match self {
            Record::Helm(h) => format!("as revision {}", h.version()),
            Record::Milvus(m) => m.recorded_where(),
        }
    }

    /// What a run that could not finish its record leaves behind.
    pub fn unfinished(&self) -> String {
        match self {
            Record::Helm(h) => format!(
                "revision {} is left pending for the next run to repair",
                h.version()
            ),
            Record::Milvus(m) => format!(
                "Milvus {} holds what each step wrote, nothing else to repair",
                m.cr.name()
            ),
        }
    }

    /// Where to look when someone else wrote the record.
    pub fn who_else(&self) -> String {
        match self {
            Record::Helm(h) => format!(
                "check `helm history {} -n {}`",
                h.loaded.plan.release, h.namespace
            ),
            Record::Milvus(m) => format!(
                "find out who else scales Milvus {} before scaling it again",
                m.cr.name()
            ),
        }
    }

    /// The line of a finished run.
    pub fn scaled(&self) -> String {
        match self {
            Record::Helm(h) => h.scaled(),
            Record::Milvus(m) => m.scaled(),
        }
    }

    /// The pods to show under it.
    pub fn table(&self) -> Table {
        match self {
            Record::Helm(h) => h.table(),
            Record::Milvus(m) => Table::Milvus {
                namespace: m.cr.namespace().to_string(),
                name: m.cr.name().to_string(),
            },
        }
    }
}
