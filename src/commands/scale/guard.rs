//! Noticing another writer of the release while a scale works: a newer
//! revision appearing (`helm rollback` or `helm upgrade` do not look at
//! pending revisions), or the run's own pending revision being rewritten
//! or deleted. Watched, so it is seen within a round trip, not at the end.

use futures::StreamExt;
use kube::runtime::watcher::Event;

use crate::cluster::Cluster;
use crate::cluster::api::forbidden_watch;
use crate::helm::{self, StoredRelease};

/// Resolves, with a one-line account, when someone other than this run has
/// written the release's records since `ours` was written. Never resolves
/// while nobody does. A watch the server forbids resolves at once: a run
/// that cannot watch for other writers must not go on.
pub(super) async fn other_writer(cluster: &Cluster, ours: &StoredRelease) -> String {
    let version = ours.release.version();
    let name = ours.release.name();
    let mut events = helm::watch_history(cluster, ours.driver, &ours.namespace, name);
    while let Some(event) = events.next().await {
        let seen = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => Some((o, false)),
            Ok(Event::Delete(o)) => Some((o, true)),
            Ok(Event::Init | Event::InitDone) => None,
            Err(e) if forbidden_watch(&e).is_some() => {
                return format!(
                    "cannot watch {name}'s Helm records ({e}); `scale` needs list and watch on {}s to notice other writers",
                    ours.driver.as_str().to_lowercase()
                );
            }
            // The watcher re-lists after its backoff; nothing is missed.
            Err(_) => None,
        };
        let Some((object, deleted)) = seen else { continue };
        let Some(v) = helm::watched_version(&object) else {
            continue;
        };
        let status = object
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("status"))
            .cloned()
            .unwrap_or_default();
        if v > version && !deleted {
            return format!("another Helm operation wrote revision {v} of {name} ({status}) while scaling");
        }
        if v == version && deleted {
            return format!("revision {v} of {name} was deleted by someone else while scaling");
        }
        if v == version && object.metadata.resource_version != ours.resource_version {
            return format!(
                "revision {v} of {name} was changed by someone else while scaling (now {status})"
            );
        }
    }
    format!("the watch on {name}'s Helm records ended")
}
