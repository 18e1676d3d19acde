//! Who is working on a pending revision written by `scale`.
//!
//! `scale` writes revision N+1 as `pending-upgrade` first, as Helm does; that
//! keeps Helm out, but a second `scale` must also tell a run that is still
//! working from one that was killed (which it repairs). The running process
//! names itself on the record and renews a heartbeat; a record whose
//! heartbeat is fresh, from a process not known to be dead, is busy.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

/// `<host>/<pid>` of the run holding the pending revision.
pub const HOLDER: &str = "kubectl-milvus.io/scale-holder";
/// RFC 3339 time of the holder's last sign of life.
pub const HEARTBEAT: &str = "kubectl-milvus.io/scale-heartbeat";
/// How often a running `scale` renews its heartbeat.
pub const RENEW_EVERY: SignedDuration = SignedDuration::from_secs(5);
/// A heartbeat older than this belongs to a run that is gone.
pub const TTL: SignedDuration = SignedDuration::from_secs(20);

/// A process running `scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

impl Holder {
    pub fn parse(text: &str) -> Option<Holder> {
        let (host, pid) = text.rsplit_once('/')?;
        Some(Holder {
            host: host.to_string(),
            pid: pid.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.pid)
    }
}

/// What the lock annotations of a pending revision say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// No run is working on it (killed, or written before heartbeats
    /// existed): the next `scale` repairs it.
    Abandoned,
    /// A run is working on it right now.
    Busy { holder: Holder, age: SignedDuration },
}

/// Judges a pending revision's lock annotations at `now`. `me` is this
/// process; `alive(pid)` tells whether a process on this host still runs.
pub fn judge(
    annotations: &BTreeMap<String, String>,
    now: Timestamp,
    me: &Holder,
    alive: impl Fn(u32) -> bool,
) -> LockState {
    let holder = annotations.get(HOLDER).and_then(|h| Holder::parse(h));
    let heartbeat = annotations
        .get(HEARTBEAT)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let (Some(holder), Some(heartbeat)) = (holder, heartbeat) else {
        return LockState::Abandoned;
    };
    let age = now.duration_since(heartbeat);
    let gone_here = holder.host == me.host && (holder.pid == me.pid || !alive(holder.pid));
    if age > TTL || gone_here {
        LockState::Abandoned
    } else {
        LockState::Busy { holder, age }
    }
}

/// The annotations a holder writes: its name and a fresh heartbeat.
pub fn annotations(me: &Holder, now: Timestamp) -> [(String, String); 2] {
    [
        (HOLDER.to_string(), me.to_string()),
        (HEARTBEAT.to_string(), now.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Holder {
        Holder {
            host: "laptop".into(),
            pid: 100,
        }
    }

    fn record(holder: &str, heartbeat: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (HOLDER.to_string(), holder.to_string()),
            (HEARTBEAT.to_string(), heartbeat.to_string()),
        ])
    }

    #[test]
    fn a_fresh_heartbeat_from_a_live_run_is_busy() {
        let now: Timestamp = "2026-11-28T10:00:10Z".parse().unwrap();
        let other_host = record("ci-runner/42", "2026-11-28T10:00:00Z");
        assert_eq!(
            judge(&other_host, now, &me(), |_| false),
            LockState::Busy {
                holder: Holder::parse("ci-runner/42").unwrap(),
                age: SignedDuration::from_secs(10)
            }
        );
        let same_host_alive = record("laptop/42", "2026-11-28T10:00:00Z");
        assert!(matches!(
            judge(&same_host_alive, now, &me(), |pid| pid == 42),
            LockState::Busy { .. }
        ));
    }

    #[test]
    fn stale_dead_or_missing_locks_are_abandoned() {
        let now: Timestamp = "2026-11-28T10:01:00Z".parse().unwrap();
        // Heartbeat older than the TTL, wherever it ran.
        let stale = record("ci-runner/42", "2026-11-28T10:00:00Z");
        assert_eq!(judge(&stale, now, &me(), |_| true), LockState::Abandoned);
        // Same host, process gone (kill -9): no need to wait for the TTL.
        let killed = record("laptop/42", "2026-11-28T10:00:59Z");
        assert_eq!(judge(&killed, now, &me(), |_| false), LockState::Abandoned);
        // Written by an older plugin, or garbled.
        assert_eq!(
            judge(&BTreeMap::new(), now, &me(), |_| true),
            LockState::Abandoned
        );
        let garbled = record("no-pid", "yesterday");
        assert_eq!(judge(&garbled, now, &me(), |_| true), LockState::Abandoned);
    }

    #[test]
    fn holder_names_round_trip() {
        let h = Holder::parse("host.example.com/4242").unwrap();
        assert_eq!(h.to_string(), "host.example.com/4242");
        assert_eq!(Holder::parse("x/notapid"), None);
    }
}
