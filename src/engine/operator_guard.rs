//! The Milvus Operator's state against a planned change of a `Milvus`
//! resource: `plan` warns of every condition under which the operator would
//! leave the change unapplied, `scale` refuses before writing (the rules:
//! `core::operator_checks`).

use anyhow::Result;

use crate::cluster::Cluster;
use crate::cluster::live::Live;
use crate::cluster::milvus_upgrades::{self, Upgrades};
use crate::core::operator::MilvusResource;
use crate::core::operator_checks;
use crate::core::plan::Plan;
use crate::error::Refused;

/// What a command does with a condition the operator would leave the
/// plan unapplied under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `plan`: every condition as a warning.
    Warn,
    /// `scale`: refused on the first (exit 3, nothing written).
    Refuse,
}

/// Checks the plan against the operator's state: refuses (under `Refuse`),
/// or returns what to warn of (health, unreadable upgrades; under `Warn`
/// the conditions too).
pub async fn check(
    cluster: &Cluster,
    cr: &MilvusResource,
    live: &Live,
    plan: &Plan,
    accept_short_grace: bool,
    mode: Mode,
) -> Result<Vec<String>> {
    let (found, unknown) = match milvus_upgrades::list(cluster, cr.namespace()).await? {
        Upgrades::Listed(found) => (found, None),
        Upgrades::Unknown(warning) => (Vec::new(), Some(warning)),
    };
    let blocks = operator_checks::blocks(cr, &live.operator, &found, plan, accept_short_grace);
    if mode == Mode::Refuse
        && let Some(first) = blocks.first()
    {
        return Err(Refused(first.refusal(cr)).into());
    }
    let warnings = operator_checks::warnings(cr, &live.operator, &found, plan, accept_short_grace);
    Ok(warnings.into_iter().chain(unknown).collect())
}
