//! What an Operator run checks around each step besides the Deployments:
//! that an observed generation was applied, that the resource is healthy
//! before a scale-in step, and that it no longer reports terminating pods
//! after one (the rules: `core::operator_checks`).

use std::time::Duration;

use tokio::sync::watch;

use super::stop::Stop;
use crate::cluster::Cluster;
use crate::cluster::operator as api;
use crate::core::operator::{MilvusResource, Write};
use crate::core::operator_checks::{self, Health};
use crate::render::progress::Progress;

/// Stops at once when the operator observed the step's generation but the
/// serving Deployment does not have the count: nothing will apply it.
pub(super) async fn applied(cluster: &Cluster, cr: &MilvusResource, writes: &[Write]) -> Result<(), Stop> {
    let deployments = api::deployments(cluster, Some(cr.namespace()), &Default::default())
        .await
        .map_err(|e| Stop::Step(e.to_string()))?;
    match operator_checks::unapplied(cr, &deployments, writes) {
        Some(why) => Err(Stop::Step(why)),
        None => Ok(()),
    }
}

/// Waits on the watched resource until `done` says it is (`Ok`), telling
/// once what it waits for; past `timeout` (zero: none) stops with the last
/// reason and `then`.
async fn wait_for(
    cr: &watch::Receiver<MilvusResource>,
    timeout: Duration,
    progress: &Progress,
    done: impl Fn(&MilvusResource) -> Result<(), String>,
    then: &str,
) -> Result<(), Stop> {
    let mut cr = cr.clone();
    let mut last: Option<String> = None;
    let wait = async {
        loop {
            let now = cr.borrow_and_update().clone();
            match done(&now) {
                Ok(()) => return Ok(()),
                Err(why) => {
                    if last.as_ref() != Some(&why) {
                        progress.line(&format!("waiting: {why}"));
                    }
                    last = Some(why);
                }
            }
            if cr.changed().await.is_err() {
                return Err(Stop::Step("the watch on the Milvus resource ended".to_string()));
            }
        }
    };
    if timeout.is_zero() {
        return wait.await;
    }
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => {
            let why = done(&cr.borrow()).err().unwrap_or_default();
            Err(Stop::Step(format!("{why}, still after {timeout:?}; {then}")))
        }
    }
}

/// Before a scale-in step: the resource must be Healthy (it lags its
/// Deployments by up to a status sync, and is Unhealthy for about
/// `minReadySeconds` after a scale-out).
pub(super) async fn healthy(
    cr: &watch::Receiver<MilvusResource>,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), Stop> {
    let name = cr.borrow().name().to_string();
    let namespace = cr.borrow().namespace().to_string();
    wait_for(
        cr,
        timeout,
        progress,
        |now| match operator_checks::health(now) {
            Health::Healthy | Health::Stopped => Ok(()),
            Health::Not(why) => Err(format!("{why}; a scale-in step starts only on a Healthy cluster")),
        },
        &format!("see what is not ready with kubectl milvus status {name} -n {namespace}"),
    )
    .await
}

/// After a scale-in step: the resource no longer says it has terminating
/// pods (a second sign, next to the pods watched, that the step is over).
pub(super) async fn no_terminating_pods(
    cr: &watch::Receiver<MilvusResource>,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), Stop> {
    let name = cr.borrow().name().to_string();
    wait_for(
        cr,
        timeout,
        progress,
        |now| match operator_checks::terminating_pods(now) {
            None => Ok(()),
            Some(message) => Err(format!(
                "Milvus {name} reports \"{message}\" (condition MilvusUpdated)"
            )),
        },
        "a pod of it is still stopping: kubectl milvus status shows which",
    )
    .await
}
