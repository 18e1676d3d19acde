//! Helm bookkeeping of a scale: the pending revision's values and manifest,
//! finishing like `helm upgrade`, conflict retries and history pruning.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::core::lock::{self, Holder};
use crate::core::manifest;
use crate::core::plan::{ComponentChange, Plan};
use crate::core::release::{DEPLOYED, Release, SUPERSEDED};
use crate::core::values;
use crate::helm::{self, StoredRelease};

pub(super) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Sets values and manifest of `release` to the given replica counts,
/// starting from `base` (the deployed revision).
pub(super) fn rewrite(
    release: &mut Release,
    base: &Release,
    targets: &[(&ComponentChange, u32)],
    status: &str,
    description: &str,
) -> Result<()> {
    let mut config = base.config().clone();
    let mut manifest = base.manifest().to_string();
    for (change, n) in targets {
        values::set(&mut config, &change.values_path(), json!(n));
        for d in &change.deployments {
            manifest = manifest::set_replicas(&manifest, "Deployment", d, *n)?;
        }
    }
    release.set_config(config);
    release.set_manifest(manifest);
    release.set_status(status, Some(description));
    release.0["info"]["last_deployed"] = json!(now_rfc3339());
    Ok(())
}

/// Where finishing a run stopped short.
pub(super) enum Unfinished {
    /// Revision N+1 could not be written as `deployed` (it stays pending).
    Record(anyhow::Error),
    /// N+1 is deployed; superseding or pruning older revisions failed.
    Tidy(anyhow::Error),
}

/// Finishes like Helm: N+1 deployed (first, so a crash in between leaves a
/// deployed revision), the revisions deployed before it superseded, then
/// history pruned. `deployed_before` is every revision `deployed` when the
/// run began: the base, and any an earlier failure left deployed — Helm
/// keeps one deployed revision, so all of them become `superseded`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish(
    cluster: &Cluster,
    base: &StoredRelease,
    deployed_before: &[StoredRelease],
    pending: &mut StoredRelease,
    plan: &Plan,
    reached: &BTreeMap<String, u32>,
    description: &str,
    history_max: usize,
    me: &Holder,
) -> Result<(), Unfinished> {
    let targets: Vec<(&ComponentChange, u32)> = plan
        .changes
        .iter()
        .map(|c| (c, reached.get(&c.component).copied().unwrap_or(c.target)))
        .collect();
    update_with_retry(cluster, pending, |s| {
        still_ours(s, me)?;
        rewrite(&mut s.release, &base.release, &targets, DEPLOYED, description)
    })
    .await
    .map_err(Unfinished::Record)?;
    tidy(cluster, deployed_before, pending, history_max)
        .await
        .map_err(Unfinished::Tidy)
}

async fn tidy(
    cluster: &Cluster,
    deployed_before: &[StoredRelease],
    pending: &StoredRelease,
    history_max: usize,
) -> Result<()> {
    supersede(cluster, deployed_before).await?;
    prune(cluster, &pending.namespace, pending.release.name(), history_max)
        .await
        .context("pruning history beyond --history-max")
}

/// Refuses to write a pending revision another run has taken over (seen
/// when a write is retried from a fresh read).
pub(super) fn still_ours(stored: &StoredRelease, me: &Holder) -> Result<()> {
    match stored.annotations.get(lock::HOLDER) {
        Some(holder) if *holder != me.to_string() => anyhow::bail!(
            "revision {} was taken over by another kubectl milvus scale ({holder}); check `kubectl milvus status`",
            stored.release.version()
        ),
        _ => Ok(()),
    }
}

/// Marks each revision `superseded`.
pub(super) async fn supersede(cluster: &Cluster, revisions: &[StoredRelease]) -> Result<()> {
    for revision in revisions {
        let mut revision = revision.clone();
        let version = revision.release.version();
        update_with_retry(cluster, &mut revision, |s| {
            s.release.set_status(SUPERSEDED, None);
            Ok(())
        })
        .await
        .with_context(|| format!("marking revision {version} superseded"))?;
    }
    Ok(())
}

/// Applies `change` to a record and writes it; on a conflict re-reads the
/// record and applies the change again.
pub(super) async fn update_with_retry(
    cluster: &Cluster,
    stored: &mut StoredRelease,
    mut change: impl FnMut(&mut StoredRelease) -> Result<()>,
) -> Result<()> {
    change(stored)?;
    for _ in 0..5 {
        match helm::update(cluster, stored).await {
            Ok(()) => return Ok(()),
            Err(ApiError::Conflict { .. }) => {
                let fresh = helm::history(cluster, &stored.namespace, stored.release.name()).await?;
                let version = stored.release.version();
                let Some(mut again) = fresh.into_iter().find(|r| r.release.version() == version) else {
                    anyhow::bail!(
                        "revision {version} of {} was deleted while being written (helm uninstall, or history pruned by another run?); check `helm history {}`",
                        stored.release.name(),
                        stored.release.name()
                    );
                };
                change(&mut again)?;
                *stored = again;
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "revision {} kept changing under us; retry",
        stored.release.version()
    )
}

/// Keeps at most `max` revisions (0 = all), never the deployed one.
async fn prune(cluster: &Cluster, namespace: &str, name: &str, max: usize) -> Result<()> {
    if max == 0 {
        return Ok(());
    }
    let history = helm::history(cluster, namespace, name).await?;
    let excess = history.len().saturating_sub(max);
    for old in history
        .iter()
        .filter(|r| r.release.status() != DEPLOYED)
        .take(excess)
    {
        match helm::delete(cluster, old).await {
            Ok(()) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
