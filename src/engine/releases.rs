//! Finding Milvus releases from Helm's own records, shared by every command.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::cluster::Cluster;
use crate::cluster::helm_records::{self as helm, Driver, Listing, Revisions, StoredRelease};
use crate::cluster::lease;
use crate::core::lock::{self, PendingWork};
use crate::core::release::is_pending;
use crate::core::status::PLUGIN_DESCRIPTION_PREFIX;
use crate::error::InvalidInput;

/// A release's current records: the deployed revision and, if newer, a
/// pending one.
#[derive(Debug, Clone)]
pub struct CurrentRelease {
    pub deployed: Option<StoredRelease>,
    pub pending: Option<StoredRelease>,
}

impl CurrentRelease {
    /// The record to describe: deployed, else (first install pending) the pending one.
    pub fn record(&self) -> Option<&StoredRelease> {
        self.deployed.as_ref().or(self.pending.as_ref())
    }
}

/// Who is behind a pending revision: another Helm operation, a `scale`
/// run holding the release's Lease, an interrupted one, or unknown (the
/// Lease unreadable). (Only `scale` judges whether a holder is alive, by
/// watching the Lease; this tells.)
pub async fn pending_work(cluster: &Cluster, pending: &StoredRelease) -> PendingWork {
    let description = pending.release.description();
    if !description.starts_with(PLUGIN_DESCRIPTION_PREFIX) {
        return PendingWork::Helm;
    }
    // A Lease that cannot be read (RBAC, an outage) says nothing about
    // whether a run is at work: that is "unknown", never "interrupted".
    let seen = lease::seen(cluster, &pending.namespace, pending.release.name())
        .await
        .map_err(|e| e.to_string());
    let seen = seen.as_ref().map(Option::as_ref).map_err(String::as_str);
    lock::pending_work(description, PLUGIN_DESCRIPTION_PREFIX, seen)
}

/// Groups current records by (namespace, release name).
pub fn group(records: Vec<StoredRelease>) -> BTreeMap<(String, String), CurrentRelease> {
    let mut out: BTreeMap<(String, String), CurrentRelease> = BTreeMap::new();
    for r in records {
        let key = (r.namespace.clone(), r.release.name().to_string());
        let entry = out.entry(key).or_insert(CurrentRelease {
            deployed: None,
            pending: None,
        });
        let slot = if is_pending(r.release.status()) {
            &mut entry.pending
        } else {
            &mut entry.deployed
        };
        // If several are labelled alike, the highest revision wins (as in Helm).
        if slot
            .as_ref()
            .is_none_or(|s| s.release.version() < r.release.version())
        {
            *slot = Some(r);
        }
    }
    for cur in out.values_mut() {
        if let (Some(d), Some(p)) = (&cur.deployed, &cur.pending)
            && p.release.version() < d.release.version()
        {
            cur.pending = None;
        }
    }
    out
}

/// Reads the current records of one release (Secrets first, then ConfigMaps:
/// one request for the default driver) or of every release in scope.
/// Unreadable records are returned named, not as an error: one odd object
/// must not hide every other release.
pub async fn current_records(
    cluster: &Cluster,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Listing> {
    match name {
        Some(n) => {
            let found = helm::list(cluster, Driver::Secret, namespace, Some(n), Revisions::Current).await?;
            if !found.records.is_empty() || !found.unreadable.is_empty() {
                return Ok(found);
            }
            Ok(helm::list(cluster, Driver::ConfigMap, namespace, Some(n), Revisions::Current).await?)
        }
        None => Ok(helm::list_both(cluster, namespace, None, Revisions::Current).await?),
    }
}

/// Says on stderr which records could not be read, as kubectl warns of
/// objects it cannot show, and carries on.
pub fn warn_unreadable(listing: &Listing) {
    for bad in &listing.unreadable {
        eprintln!("warning: {bad}; skipped");
    }
}

/// The error for a release whose only records cannot be read.
pub fn unreadable_release(listing: &Listing, name: &str) -> Option<anyhow::Error> {
    if !listing.records.is_empty() {
        return None;
    }
    let bad = listing
        .unreadable
        .iter()
        .find(|u| u.release.as_deref() == Some(name))?;
    Some(anyhow::anyhow!(
        "{bad}; repair or delete that record ({}) and retry",
        bad.delete_command()
    ))
}

/// The error for a release that is not there, naming the ones that are.
pub async fn not_found(cluster: &Cluster, namespace: &str, name: &str) -> anyhow::Error {
    let others = match current_records(cluster, Some(namespace), None).await {
        Ok(listing) => {
            let mut names: Vec<String> = listing
                .records
                .iter()
                .filter(|r| r.release.is_milvus())
                .map(|r| r.release.name().to_string())
                .collect();
            names.dedup();
            names
        }
        Err(_) => Vec::new(),
    };
    let hint = if others.is_empty() {
        "there are no Milvus releases in this namespace; try another with -n NAMESPACE, or -A to look everywhere".to_string()
    } else {
        format!("Milvus releases here: {}", others.join(", "))
    };
    InvalidInput(format!(
        "Helm release {name:?} not found in namespace {namespace:?}; {hint}"
    ))
    .into()
}

/// Resolves RELEASE in the namespace for `plan`/`scale`: it must exist and be
/// a Milvus chart.
pub async fn one(cluster: &Cluster, namespace: &str, name: &str) -> Result<CurrentRelease> {
    let listing = current_records(cluster, Some(namespace), Some(name)).await?;
    if let Some(e) = unreadable_release(&listing, name) {
        return Err(e);
    }
    let Some((_, cur)) = group(listing.records).into_iter().next() else {
        return Err(not_found(cluster, namespace, name).await);
    };
    check_milvus(&cur)?;
    Ok(cur)
}

pub fn check_milvus(cur: &CurrentRelease) -> Result<()> {
    cur.record().map_or(Ok(()), check_milvus_record)
}

/// Refuses a record whose chart is not `milvus`.
pub fn check_milvus_record(r: &StoredRelease) -> Result<()> {
    if !r.release.is_milvus() {
        return Err(InvalidInput(format!(
            "Helm release {:?} in namespace {:?} is chart {:?}, not milvus",
            r.release.name(),
            r.namespace,
            r.release.chart_name()
        ))
        .into());
    }
    Ok(())
}
