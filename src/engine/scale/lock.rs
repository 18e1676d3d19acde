//! The run's lock: one scale run at a time per name, a Lease (the same
//! name for both shapes: a Helm release and a resource of one name would
//! share Deployments).

use anyhow::Result;

use crate::cli::ScaleArgs;
use crate::cluster::Cluster;
use crate::cluster::lease::{self, HeldLease, NotAcquired};
use crate::core::lock;
use crate::error::Refused;
use crate::render::progress::Progress;

/// Takes the release's (or Milvus resource's) Lease, or says who holds it.
pub(super) async fn acquire(cluster: &Cluster, args: &ScaleArgs, progress: &Progress) -> Result<HeldLease> {
    let me = this_run();
    let namespace = cluster.namespace();
    let waiting =
        |holder: &str, within: std::time::Duration| waiting_line(progress, &args.release, holder, within);
    lease::acquire(cluster, namespace, &args.release, &me, waiting)
        .await
        .map_err(|e| match e {
            NotAcquired::Busy { holder } => busy(&args.release, namespace, lock::readable(&holder)),
            NotAcquired::Api(e) => anyhow::Error::new(e).context("taking the release's lock (a Lease)"),
        })
}

/// Said once while a silent holder's Lease is watched out.
pub(super) fn waiting_line(progress: &Progress, release: &str, holder: &str, within: std::time::Duration) {
    progress.line(&format!(
        "{release} is held by kubectl milvus scale on {holder}, which has not renewed its lock for a few seconds; waiting up to {}s in all to see whether that run is still alive",
        within.as_secs()
    ));
}

/// The refusal while another run holds the release's Lease.
pub(super) fn busy(release: &str, namespace: &str, holder: &str) -> anyhow::Error {
    Refused(format!(
        "{release} is being scaled right now by kubectl milvus scale on {holder}; wait for it to finish (`kubectl milvus status {release} -n {namespace}` shows it)"
    ))
    .into()
}

/// This run's identity on the Lease: `host/pid/random`.
fn this_run() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_string());
    // A per-process random value: std seeds every RandomState randomly.
    let nonce = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    lock::identity(&host, std::process::id(), nonce)
}
