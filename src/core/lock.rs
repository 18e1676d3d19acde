//! One `scale` at a time per release: the rules of the lock.
//!
//! The lock is a `coordination.k8s.io/v1` Lease per release, judged the way
//! Kubernetes' own leader election judges one: the holder renews it every
//! [`RENEW_EVERY`]; an observer calls it gone only when the Lease has not
//! changed for its `leaseDurationSeconds` **as measured by the observer's
//! own monotonic clock**. Nobody compares another machine's wall clock
//! with its own, and no host name or pid is trusted to mean "same machine"
//! (two containers can share a host name and not a pid namespace).

use std::time::Duration;

use jiff::Timestamp;

/// How long a holder's silence makes its Lease free (client-go's default).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often a holder renews.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// A holder that could not renew for this long stops working: by then an
/// observer may be about to take the Lease over (client-go's default).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often an observer looks at a Lease held by someone else.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(1);
/// How long a holder may stay silent before an observer says it waits.
pub const QUIET_BEFORE_TELLING: Duration = Duration::from_secs(3);

/// The Lease of a release (release names are DNS labels of at most 53
/// characters, so this is a valid object name).
pub fn lease_name(release: &str) -> String {
    format!("kubectl-milvus.scale.{release}")
}

/// A run's identity on the Lease: readable (`host/pid`) and unique (a
/// random suffix), so that two runs never take each other for the same one.
pub fn identity(host: &str, pid: u32, nonce: u64) -> String {
    format!("{host}/{pid}/{:08x}", nonce & 0xffff_ffff)
}

/// The part of an identity a person reads (`host/pid`).
pub fn readable(identity: &str) -> &str {
    identity.rsplit_once('/').map_or(identity, |(who, _)| who)
}

/// What an observer decides about a Lease held by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It changed while we watched: its holder is working.
    Alive,
    /// Not yet known: keep watching.
    Undecided,
    /// Unchanged for its whole duration by our clock: its holder is gone.
    Expired,
}

/// Judges a Lease another run holds, from what we saw: whether its record
/// changed since we first looked, and for how long (by our monotonic
/// clock) it has stayed the same. `duration` is the holder's own
/// `leaseDurationSeconds` (ours when it gave none).
pub fn judge(changed: bool, unchanged_for: Duration, duration: Option<Duration>) -> Verdict {
    if changed {
        Verdict::Alive
    } else if unchanged_for >= duration.unwrap_or(LEASE_DURATION) {
        Verdict::Expired
    } else {
        Verdict::Undecided
    }
}

/// Who is behind a pending revision, as `scale`, `plan` and `status` tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingWork {
    /// Another Helm operation (running, or died): `scale` keeps out.
    Helm,
    /// A `scale` run holds the release's Lease (`host/pid`): at work, or
    /// gone without giving it up. One read cannot tell which (only watching
    /// the Lease can, as `scale` does); `renewed` is the last renewal time
    /// the holder wrote, by its own clock.
    Held {
        holder: String,
        renewed: Option<Timestamp>,
    },
    /// No run holds the Lease: the run is gone; the next `scale` repairs it.
    Interrupted,
    /// The Lease could not be read (`why`): a run may be at work.
    Unknown { why: String },
}

/// A Lease as `status` and `plan` see it in one read: its holder, and the
/// renewal time it wrote by its own clock (never compared with ours: the
/// holder's clock may be off by any amount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSeen {
    pub holder: String,
    pub renewed: Option<Timestamp>,
}

/// Classifies a pending revision: ours (by its description) or another
/// Helm operation's, and if ours, what one read of the Lease (`lease`:
/// what it held, or why it could not be read) says about the run: held,
/// gone, or unknown. It describes; it never decides (`scale` decides by
/// watching the Lease with its own clock).
pub fn pending_work(
    description: &str,
    ours_prefix: &str,
    lease: Result<Option<&LeaseSeen>, &str>,
) -> PendingWork {
    if !description.starts_with(ours_prefix) {
        return PendingWork::Helm;
    }
    match lease {
        Ok(Some(seen)) if !seen.holder.is_empty() => PendingWork::Held {
            holder: readable(&seen.holder).to_string(),
            renewed: seen.renewed,
        },
        Ok(_) => PendingWork::Interrupted,
        Err(why) => PendingWork::Unknown { why: why.to_string() },
    }
}

/// A holder's renewal time as it wrote it, for people: "last renewed
/// 2026-12-05 12:03:04 UTC by its own clock", or that it wrote none.
pub fn renewed_by_holder(renewed: Option<Timestamp>) -> String {
    match renewed {
        Some(t) => format!(
            "last renewed {} by its own clock",
            t.strftime("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => "no renewal time written".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_that_changes_is_alive_one_that_does_not_expires_by_our_clock() {
        let s = Duration::from_secs;
        assert_eq!(judge(true, s(0), None), Verdict::Alive);
        assert_eq!(judge(true, s(60), None), Verdict::Alive);
        assert_eq!(judge(false, s(14), None), Verdict::Undecided);
        assert_eq!(judge(false, s(15), None), Verdict::Expired);
        // The holder's own duration counts, not ours.
        assert_eq!(judge(false, s(20), Some(s(30))), Verdict::Undecided);
        assert_eq!(judge(false, s(5), Some(s(5))), Verdict::Expired);
    }

    #[test]
    fn identities_are_unique_and_readable() {
        let a = identity("laptop", 42, 0x1234_5678_9abc);
        let b = identity("laptop", 42, 0x1234_5678_9abd);
        assert_ne!(a, b, "same host and pid, different runs");
        assert_eq!(a, "laptop/42/56789abc");
        assert_eq!(readable(&a), "laptop/42");
        assert_eq!(lease_name("my-release"), "kubectl-milvus.scale.my-release");
    }

    #[test]
    fn pending_revisions_are_classified() {
        let ours = "kubectl-milvus: scaling queryNode 3→1";
        let p = "kubectl-milvus:";
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let seen = |holder: &str, renewed: &str| LeaseSeen {
            holder: holder.into(),
            renewed: Some(at(renewed)),
        };
        let held = |renewed: &str| PendingWork::Held {
            holder: "ci/7".into(),
            renewed: Some(at(renewed)),
        };
        assert_eq!(
            pending_work(
                "Upgrade in progress",
                p,
                Ok(Some(&seen("h/1/2", "2026-01-01T00:00:00Z")))
            ),
            PendingWork::Helm
        );
        // Whatever the holder's clock says (a day behind, a year ahead),
        // one read tells who holds the Lease and when by its own clock:
        // never "fresh" or "stale" by ours.
        for t in [
            "1970-01-02T00:00:00Z",
            "2026-12-05T12:00:00Z",
            "2999-01-01T00:00:00Z",
        ] {
            assert_eq!(pending_work(ours, p, Ok(Some(&seen("ci/7/abc", t)))), held(t));
        }
        assert_eq!(pending_work(ours, p, Ok(None)), PendingWork::Interrupted);
        assert_eq!(
            pending_work(
                ours,
                p,
                Ok(Some(&LeaseSeen {
                    holder: String::new(),
                    renewed: None
                }))
            ),
            PendingWork::Interrupted
        );
        // An unreadable Lease (RBAC) is not proof that nobody is at work.
        assert_eq!(
            pending_work(ours, p, Err("forbidden")),
            PendingWork::Unknown {
                why: "forbidden".into()
            }
        );
        assert_eq!(
            renewed_by_holder(Some(at("2999-01-01T00:00:00Z"))),
            "last renewed 2999-01-01 00:00:00 UTC by its own clock"
        );
    }
}
