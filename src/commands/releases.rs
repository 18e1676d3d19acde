//! Finding Milvus releases from Helm's own records, shared by every command.

use std::collections::BTreeMap;

use anyhow::Result;
use jiff::SignedDuration;

use crate::cluster::Cluster;
use crate::core::lock::{self, Holder, LockState};
use crate::core::release::is_pending;
use crate::core::status::PLUGIN_DESCRIPTION_PREFIX;
use crate::error::InvalidInput;
use crate::helm::{self, Driver, Revisions, StoredRelease};

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

/// Who is behind a pending revision, as `scale`, `plan` and `status` tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingWork {
    /// Another Helm operation (running, or died): `scale` keeps out.
    Helm,
    /// A `scale` run is working on it right now.
    Scaling { holder: Holder, age: SignedDuration },
    /// A `scale` run that is gone: the next `scale` repairs it.
    Interrupted,
}

pub fn pending_work(pending: &StoredRelease) -> PendingWork {
    if !pending
        .release
        .description()
        .starts_with(PLUGIN_DESCRIPTION_PREFIX)
    {
        return PendingWork::Helm;
    }
    match lock::judge(
        &pending.annotations,
        jiff::Timestamp::now(),
        &this_process(),
        alive,
    ) {
        LockState::Busy { holder, age } => PendingWork::Scaling { holder, age },
        LockState::Abandoned => PendingWork::Interrupted,
    }
}

/// This process, as it names itself on a pending revision it holds.
pub fn this_process() -> Holder {
    Holder {
        host: hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".to_string()),
        pid: std::process::id(),
    }
}

/// Does a process of this host still run? (Unix; elsewhere only the
/// heartbeat's age tells.)
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 delivers nothing; it only checks the pid exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
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
pub async fn current_records(
    cluster: &Cluster,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<StoredRelease>> {
    match name {
        Some(n) => {
            let found = helm::list(cluster, Driver::Secret, namespace, Some(n), Revisions::Current).await?;
            if !found.is_empty() {
                return Ok(found);
            }
            helm::list(cluster, Driver::ConfigMap, namespace, Some(n), Revisions::Current).await
        }
        None => helm::list_both(cluster, namespace, None, Revisions::Current).await,
    }
}

/// The error for a release that is not there, naming the ones that are.
pub async fn not_found(cluster: &Cluster, namespace: &str, name: &str) -> anyhow::Error {
    let others = match current_records(cluster, Some(namespace), None).await {
        Ok(records) => {
            let mut names: Vec<String> = records
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
    let records = current_records(cluster, Some(namespace), Some(name)).await?;
    let Some((_, cur)) = group(records).into_iter().next() else {
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
