//! The Lease that lets one `scale` at a time work on a release: acquiring
//! it (waiting out a holder that has gone silent), renewing it while the
//! run works, and releasing it. The rules are in [`crate::core::lock`].

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use tokio::time::Instant;

use super::api::{ApiError, Cluster, Op};
use crate::core::lock::{self, LeaseSeen, Verdict};

/// Why the Lease could not be had.
#[derive(Debug)]
pub enum NotAcquired {
    /// Another run renews it: it is working.
    Busy { holder: String },
    /// The API server said no.
    Api(ApiError),
}

impl From<ApiError> for NotAcquired {
    fn from(e: ApiError) -> Self {
        NotAcquired::Api(e)
    }
}

/// Why a held Lease was lost while working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Someone else holds it now.
    Taken { holder: String },
    /// Someone deleted it.
    Deleted,
    /// It could not be renewed within [`lock::RENEW_DEADLINE`].
    NotRenewed { cause: String },
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Taken { holder } => write!(
                f,
                "the release's lock was taken over by another kubectl milvus scale ({})",
                lock::readable(holder)
            ),
            Lost::Deleted => f.write_str(
                "the release's lock (its Lease) was deleted by someone else while this run held it, so another run may start",
            ),
            Lost::NotRenewed { cause } => write!(
                f,
                "the release's lock could not be renewed for {}s ({cause}), so another run may take over",
                lock::RENEW_DEADLINE.as_secs()
            ),
        }
    }
}

/// A Lease this run holds.
pub struct HeldLease {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    lease: tokio::sync::Mutex<Lease>,
}

fn op<'a>(verb: &'a str, namespace: &'a str, name: &'a str) -> Op<'a> {
    Op {
        verb,
        resource: "leases.coordination.k8s.io",
        namespace: Some(namespace),
        name: Some(name),
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

fn duration(lease: &Lease) -> Option<Duration> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_duration_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
}

/// A release's Lease as one read shows it (for `status` and `plan`, which
/// only describe; `scale` decides by watching, see [`acquire`]): its holder
/// and the renewal time the holder wrote, by the holder's own clock (which
/// may be anything: it is never compared with ours).
pub async fn seen(cluster: &Cluster, namespace: &str, release: &str) -> Result<Option<LeaseSeen>, ApiError> {
    let name = lock::lease_name(release);
    let api: Api<Lease> = Api::namespaced(cluster.client(), namespace);
    let Some(lease) = cluster
        .call(op("get", namespace, &name), api.get_opt(&name))
        .await?
    else {
        return Ok(None);
    };
    let renewed = lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    Ok(holder(&lease).map(|h| LeaseSeen {
        holder: h.to_string(),
        renewed,
    }))
}

/// What watching a release's Lease (without taking it) found.
enum Watched {
    /// There is none.
    Absent,
    /// It is there with no holder, or its holder stayed silent for the
    /// Lease's duration by our clock: free to take.
    Free(Box<Lease>),
    /// Its holder renewed it while we watched.
    Alive { holder: String },
}

/// Watches a release's Lease (by our own clock) until it is absent, free,
/// or seen renewed. `waiting` is told once if the holder has been silent
/// for [`lock::QUIET_BEFORE_TELLING`].
async fn watch(
    cluster: &Cluster,
    api: &Api<Lease>,
    namespace: &str,
    name: &str,
    waiting: &mut Option<impl FnOnce(&str, Duration)>,
) -> Result<Watched, ApiError> {
    let mut seen: Option<(Lease, Instant)> = None;
    loop {
        let Some(current) = cluster
            .call(op("get", namespace, name), api.get_opt(name))
            .await?
        else {
            return Ok(Watched::Absent);
        };
        let verdict = match &seen {
            _ if holder(&current).is_none() => Verdict::Expired,
            None => Verdict::Undecided,
            Some((first, since)) => lock::judge(
                first.metadata.resource_version != current.metadata.resource_version,
                since.elapsed(),
                duration(first),
            ),
        };
        match verdict {
            Verdict::Alive => {
                return Ok(Watched::Alive {
                    holder: holder(&current).unwrap_or_default().to_string(),
                });
            }
            Verdict::Expired => return Ok(Watched::Free(Box::new(current))),
            Verdict::Undecided => {
                match &seen {
                    None => seen = Some((current, Instant::now())),
                    // A live holder renews within a couple of seconds; only
                    // a longer silence is worth telling the user about.
                    Some((first, since)) if since.elapsed() >= lock::QUIET_BEFORE_TELLING => {
                        if let Some(tell) = waiting.take() {
                            tell(
                                lock::readable(holder(first).unwrap_or_default()),
                                duration(first).unwrap_or(lock::LEASE_DURATION),
                            );
                        }
                    }
                    Some(_) => {}
                }
                tokio::time::sleep(lock::OBSERVE_EVERY).await;
            }
        }
    }
}

/// Whether a `scale` run is at work on a release now, judged as [`acquire`]
/// judges it (watching the Lease by our own clock) but without taking it:
/// the holder's identity if it is, `None` if nobody is.
pub async fn at_work(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
    waiting: impl FnOnce(&str, Duration),
) -> Result<Option<String>, ApiError> {
    let name = lock::lease_name(release);
    let api: Api<Lease> = Api::namespaced(cluster.client(), namespace);
    Ok(
        match watch(cluster, &api, namespace, &name, &mut Some(waiting)).await? {
            Watched::Alive { holder } => Some(holder),
            Watched::Absent | Watched::Free(_) => None,
        },
    )
}

/// Acquires the release's Lease for `identity`. A Lease another run holds
/// is watched (by our own clock) until it either changes — its holder is
/// alive: [`NotAcquired::Busy`] — or stays the same for its whole duration —
/// its holder is gone: taken over. `waiting` is told once if the holder
/// has been silent for [`lock::QUIET_BEFORE_TELLING`].
pub async fn acquire(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
    identity: &str,
    waiting: impl FnOnce(&str, Duration),
) -> Result<HeldLease, NotAcquired> {
    let name = lock::lease_name(release);
    let api: Api<Lease> = Api::namespaced(cluster.client(), namespace);
    let mut waiting = Some(waiting);
    loop {
        match watch(cluster, &api, namespace, &name, &mut waiting).await? {
            Watched::Alive { holder } => return Err(NotAcquired::Busy { holder }),
            Watched::Absent => {
                let fresh = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.to_string()),
                        labels: Some(
                            [(
                                "app.kubernetes.io/managed-by".to_string(),
                                "kubectl-milvus".to_string(),
                            )]
                            .into(),
                        ),
                        ..Default::default()
                    },
                    spec: Some(spec(identity, 0)),
                };
                match cluster
                    .call(
                        op("create", namespace, &name),
                        api.create(&PostParams::default(), &fresh),
                    )
                    .await
                {
                    Ok(lease) => return Ok(held(api, name, namespace, identity, lease)),
                    // Someone created it first: look again (it is theirs now).
                    Err(ApiError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Watched::Free(current) => {
                let transitions = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                let mut taken = *current;
                taken.spec = Some(spec(identity, transitions + 1));
                match cluster
                    .call(
                        op("update", namespace, &name),
                        api.replace(&name, &PostParams::default(), &taken),
                    )
                    .await
                {
                    Ok(lease) => return Ok(held(api, name, namespace, identity, lease)),
                    // Someone else moved first; judge afresh.
                    Err(ApiError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

fn spec(identity: &str, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(lock::LEASE_DURATION.as_secs() as i32),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

fn held(api: Api<Lease>, name: String, namespace: &str, identity: &str, lease: Lease) -> HeldLease {
    HeldLease {
        api,
        name,
        namespace: namespace.to_string(),
        identity: identity.to_string(),
        lease: tokio::sync::Mutex::new(lease),
    }
}

impl HeldLease {
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Renews the Lease every [`lock::RENEW_EVERY`] while the run works.
    /// Returns only when the hold is lost: taken by another run, or not
    /// renewed within [`lock::RENEW_DEADLINE`] — the run must then stop.
    pub async fn keep(&self, cluster: &Cluster) -> Lost {
        let mut last_renewed = Instant::now();
        let mut cause = "no answer".to_string();
        loop {
            tokio::time::sleep(lock::RENEW_EVERY).await;
            // An attempt that hangs must not carry the run past the deadline.
            let deadline = last_renewed + lock::RENEW_DEADLINE;
            match tokio::time::timeout_at(deadline, self.renew(cluster)).await {
                Ok(Ok(())) => last_renewed = Instant::now(),
                Ok(Err(lost @ (Lost::Taken { .. } | Lost::Deleted))) => return lost,
                Ok(Err(Lost::NotRenewed { cause: why })) => cause = why,
                Err(_) => cause = "the API server did not answer".to_string(),
            }
            if last_renewed.elapsed() >= lock::RENEW_DEADLINE {
                return Lost::NotRenewed { cause };
            }
        }
    }

    async fn renew(&self, cluster: &Cluster) -> Result<(), Lost> {
        let mut lease = self.lease.lock().await;
        let mut renewed = lease.clone();
        if let Some(spec) = renewed.spec.as_mut() {
            spec.renew_time = Some(now());
        }
        let result = cluster
            .call(
                op("update", &self.namespace, &self.name),
                self.api.replace(&self.name, &PostParams::default(), &renewed),
            )
            .await;
        match result {
            Ok(written) => {
                *lease = written;
                Ok(())
            }
            Err(ApiError::Conflict { .. }) => {
                // Changed under us: ours still (re-read and go on) or not.
                match cluster
                    .call(
                        op("get", &self.namespace, &self.name),
                        self.api.get_opt(&self.name),
                    )
                    .await
                {
                    Ok(Some(now)) if holder(&now) == Some(self.identity.as_str()) => {
                        *lease = now;
                        Ok(())
                    }
                    Ok(Some(now)) => Err(Lost::Taken {
                        holder: holder(&now).unwrap_or("nobody").to_string(),
                    }),
                    Ok(None) => Err(Lost::Deleted),
                    Err(e) => Err(Lost::NotRenewed { cause: e.to_string() }),
                }
            }
            Err(ApiError::NotFound { .. }) => Err(Lost::Deleted),
            Err(e) => Err(Lost::NotRenewed { cause: e.to_string() }),
        }
    }

    /// Gives the Lease up (deletes it, only as we last wrote it: a Lease
    /// someone else took meanwhile is theirs and stays).
    pub async fn release(self, cluster: &Cluster) -> Result<(), ApiError> {
        let lease = self.lease.into_inner();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: None,
            }),
            ..Default::default()
        };
        match cluster
            .call(
                op("delete", &self.namespace, &self.name),
                self.api.delete(&self.name, &params),
            )
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
