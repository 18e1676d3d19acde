//! Helm bookkeeping of a scale: opening the pending revision, finishing it
//! like `helm upgrade`, and never writing over another writer's record.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::json;

use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::cluster::helm_records::{self as helm, StoredRelease};
use crate::core::bounds::Setting;
use crate::core::manifest;
use crate::core::plan::ComponentChange;
use crate::core::release::{DEPLOYED, PENDING_UPGRADE, Release, SUPERSEDED};
use crate::core::values;
use crate::error::Refused;

/// The run that last wrote a record (so a re-read after a lost answer can
/// tell our own write from someone else's; Helm's own writes drop it).
pub(super) const WRITTEN_BY: &str = "kubectl-milvus.io/written-by";

/// Helm's status for a revision whose operation failed.
const FAILED: &str = "failed";

/// Someone else (Helm, a person, another tool) wrote a record this run was
/// about to write. Nothing of theirs is written over.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct OtherWriter(pub String);

/// Sets values and manifest of `release` to the given replica counts,
/// starting from `base` (the deployed revision).
fn rewrite(
    release: &mut Release,
    base: &Release,
    targets: &[(&ComponentChange, Setting)],
    status: &str,
    description: &str,
) -> Result<()> {
    let mut config = base.config().clone();
    let mut manifest = base.manifest().to_string();
    for (change, at) in targets {
        for (path, n) in change.values_at(*at) {
            values::set(&mut config, &path, json!(n));
        }
        match (at, &change.hpa) {
            (Setting::Bounds(b), Some(h)) => {
                for (field, n) in [("minReplicas", b.min), ("maxReplicas", b.max)] {
                    manifest =
                        manifest::set_spec_count(&manifest, "HorizontalPodAutoscaler", &h.name, field, n)?;
                }
                // The count the values also fixed is left to the HPA, as the
                // chart renders `replicas: -1`: no `replicas:` at all.
                if h.unsets_replicas.is_some() {
                    values::set(&mut config, &format!("{}.replicas", change.component), json!(-1));
                    for d in &change.deployments {
                        manifest = manifest::remove_spec_field(&manifest, "Deployment", d, "replicas")?;
                    }
                }
            }
            (Setting::Replicas(n), _) => {
                for d in &change.deployments {
                    manifest = manifest::set_replicas(&manifest, "Deployment", d, *n)?;
                }
            }
            (Setting::Bounds(_), None) => anyhow::bail!("{}: bounds without an HPA", change.component),
        }
    }
    release.set_config(config);
    release.set_manifest(manifest);
    release.set_status(status, Some(description));
    release.0["info"]["last_deployed"] = json!(jiff::Timestamp::now().to_string());
    Ok(())
}

/// Opens the run's pending revision: N+1 created `pending-upgrade` (the
/// lock that keeps Helm out; creating fails if N+1 appeared meanwhile), or
/// the revision a killed run left pending, taken over.
pub(super) async fn open(
    cluster: &Cluster,
    me: &str,
    base: &StoredRelease,
    last: &StoredRelease,
    abandoned: Option<StoredRelease>,
    targets: &[(&ComponentChange, Setting)],
    description: &str,
) -> Result<StoredRelease> {
    match abandoned {
        Some(mut pending) => {
            write_guarded(cluster, me, &mut pending, |s| {
                rewrite(
                    &mut s.release,
                    &base.release,
                    targets,
                    PENDING_UPGRADE,
                    description,
                )
            })
            .await?;
            Ok(pending)
        }
        None => {
            let mut next = base.release.clone();
            next.0["version"] = json!(last.release.version() + 1);
            rewrite(&mut next, &base.release, targets, PENDING_UPGRADE, description)?;
            let ours = BTreeMap::from([(WRITTEN_BY.to_string(), me.to_string())]);
            helm::create(cluster, base.driver, &base.namespace, &next, &last.labels, ours)
                .await
                .map_err(|e| match e {
                    ApiError::Conflict { .. } => anyhow::Error::new(Refused(format!(
                        "revision {} of {} was just created by someone else (a concurrent helm or scale); nothing was changed, retry",
                        next.version(),
                        next.name()
                    ))),
                    other => other.into(),
                })
        }
    }
}

/// Finishes like Helm: N+1 `deployed` at what was reached (first, so a
/// crash in between leaves a deployed revision), then, at once, every
/// revision deployed before the run `superseded` and history pruned (the
/// pruning never deletes a revision it reads as deployed, so the order of
/// the two does not matter).
pub(super) async fn finish(
    cluster: &Cluster,
    me: &str,
    run: &Finish<'_>,
    pending: &mut StoredRelease,
) -> Result<(), Unfinished> {
    let targets: Vec<(&ComponentChange, Setting)> = run
        .changes
        .iter()
        .map(|c| {
            let at = run.reached.get(&c.component).copied();
            (c, at.unwrap_or_else(|| c.target_setting()))
        })
        .collect();
    no_newer_revision(cluster, pending)
        .await
        .map_err(Unfinished::Record)?;
    write_guarded(cluster, me, pending, |s| {
        rewrite(
            &mut s.release,
            &run.base.release,
            &targets,
            DEPLOYED,
            run.description,
        )
    })
    .await
    .map_err(Unfinished::Record)?;
    tokio::try_join!(supersede(cluster, run.deployed_before), async {
        prune(cluster, pending, run.history_max)
            .await
            .context("pruning history beyond --history-max")
    })
    .map(|_| ())
    .map_err(Unfinished::Tidy)
}

/// What finishing needs to know about the run.
pub(super) struct Finish<'a> {
    pub base: &'a StoredRelease,
    /// Every revision `deployed` when the run began (Helm keeps one).
    pub deployed_before: &'a [StoredRelease],
    pub changes: &'a [ComponentChange],
    pub reached: &'a BTreeMap<String, Setting>,
    pub description: &'a str,
    pub history_max: usize,
}

/// Where finishing a run stopped short.
pub(super) enum Unfinished {
    /// Revision N+1 could not be written as `deployed` (it stays pending).
    Record(anyhow::Error),
    /// N+1 is deployed; superseding or pruning older revisions failed.
    Tidy(anyhow::Error),
}

/// Marks the run's own pending revision `failed` (what Helm does with an
/// upgrade that did not complete), unless someone else has written it.
pub(super) async fn fail(
    cluster: &Cluster,
    me: &str,
    pending: &mut StoredRelease,
    description: &str,
) -> Result<()> {
    write_guarded(cluster, me, pending, |s| {
        s.release.set_status(FAILED, Some(description));
        Ok(())
    })
    .await
}

/// Refuses to finish when a revision newer than ours exists: writing ours
/// `deployed` would leave two deployed revisions, or undo theirs. (Read
/// from the records' labels: nothing is decoded.)
async fn no_newer_revision(cluster: &Cluster, ours: &StoredRelease) -> Result<()> {
    let history = helm::history_meta(cluster, ours.driver, &ours.namespace, ours.release.name()).await?;
    if let Some(newer) = history.iter().find(|r| r.version > ours.release.version()) {
        return Err(OtherWriter(format!(
            "revision {} ({}) was written by another Helm operation while scaling",
            newer.version, newer.status
        ))
        .into());
    }
    Ok(())
}

/// Applies `change` to a record and writes it, guarded by the
/// resourceVersion it was read at. On a conflict the record is re-read:
/// if it already holds exactly this write (ours, whose answer was lost),
/// that is success; anything else is someone else's write, and nothing is
/// written over it ([`OtherWriter`]).
async fn write_guarded(
    cluster: &Cluster,
    me: &str,
    stored: &mut StoredRelease,
    change: impl FnOnce(&mut StoredRelease) -> Result<()>,
) -> Result<()> {
    let version = stored.release.version();
    let name = stored.release.name().to_string();
    let mut next = stored.clone();
    change(&mut next)?;
    next.annotations.insert(WRITTEN_BY.to_string(), me.to_string());
    match helm::update(cluster, &mut next).await {
        Ok(()) => {
            *stored = next;
            Ok(())
        }
        Err(ApiError::Conflict { .. }) => {
            let fresh = helm::history(cluster, &stored.namespace, &name).await?;
            let Some(again) = fresh.into_iter().find(|r| r.release.version() == version) else {
                return Err(OtherWriter(format!(
                    "revision {version} of {name} was deleted by someone else while being written"
                ))
                .into());
            };
            let landed = again.annotations.get(WRITTEN_BY).map(String::as_str) == Some(me)
                && again.release.status() == next.release.status()
                && again.release.description() == next.release.description()
                && again.release.config() == next.release.config();
            if !landed {
                return Err(OtherWriter(format!(
                    "revision {version} of {name} was changed by someone else (now {}: {:?})",
                    again.release.status(),
                    again.release.description()
                ))
                .into());
            }
            *stored = again;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Marks each revision `superseded`. One someone else changed meanwhile
/// is written only if it is still `deployed` (the one thing to fix).
pub(super) async fn supersede(cluster: &Cluster, revisions: &[StoredRelease]) -> Result<()> {
    for revision in revisions {
        let mut revision = revision.clone();
        let version = revision.release.version();
        for _ in 0..5 {
            revision.release.set_status(SUPERSEDED, None);
            match helm::update(cluster, &mut revision).await {
                Ok(()) => break,
                Err(ApiError::Conflict { .. }) => {
                    let fresh = helm::history(cluster, &revision.namespace, revision.release.name()).await?;
                    match fresh.into_iter().find(|r| r.release.version() == version) {
                        Some(again) if again.release.status() == DEPLOYED => revision = again,
                        _ => break,
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("marking revision {version} superseded")),
            }
        }
    }
    Ok(())
}

/// Keeps at most `max` revisions (0 = all), never a deployed one; each
/// deleted only as it was read (from the records' labels: nothing is
/// decoded).
async fn prune(cluster: &Cluster, newest: &StoredRelease, max: usize) -> Result<()> {
    if max == 0 {
        return Ok(());
    }
    let history =
        helm::history_meta(cluster, newest.driver, &newest.namespace, newest.release.name()).await?;
    let excess = history.len().saturating_sub(max);
    for old in history.iter().filter(|r| r.status != DEPLOYED).take(excess) {
        match helm::delete_record(cluster, old).await {
            Ok(()) | Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
