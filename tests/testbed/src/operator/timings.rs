//! How fast the stand-in plays the operator: the operator's own periods
//! ([`Timings::REAL`]) or short ones that keep the suite quick
//! ([`Timings::FAST`], the default), and whether a two-Deployment scale
//! waits for a stable serving Deployment (the operator does; `FAST` does
//! not, so the plugin's current tests still see a scale-in step unsettled
//! right after the generation is observed — see docs/operator.md).
//!
//! Process default: `TESTBED_OPERATOR_TIMINGS=real|fast`, then each field
//! from `TESTBED_OPERATOR_MIN_READY_SECONDS`, `TESTBED_OPERATOR_REQUEUE_MS`,
//! `TESTBED_OPERATOR_SYNC_MS`, `TESTBED_OPERATOR_SYNC_HEALTHY_MS`,
//! `TESTBED_OPERATOR_SCALE_WAITS_FOR_STABLE` (`1`/`0`),
//! `TESTBED_OPERATOR_UPGRADE_DEREGISTER_MS`.
//! Per namespace (what a test sets, [`set_timings`]): ConfigMap
//! [`TIMINGS_CONFIGMAP`], `data["timings.json"]`, watched, so a change
//! applies from the next pass or status sync on.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

/// Per-namespace override of the stand-in's timings.
pub const TIMINGS_CONFIGMAP: &str = "milvus-operator-stand-in";
const TIMINGS_KEY: &str = "timings.json";

/// The stand-in's periods (see docs/operator.md for where each comes from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Timings {
    /// `minReadySeconds` of the Deployments (the operator: 30).
    pub min_ready_seconds: i32,
    /// `RequeueAfter` of a pass that ended in `ErrRequeue` (the operator:
    /// `unhealthySyncInterval / 2` = 15 s).
    pub requeue_ms: u64,
    /// Status sync of resources not Healthy-and-updated (30 s).
    pub sync_unhealthy_ms: u64,
    /// Status sync of Healthy-and-updated resources (60 s).
    pub sync_healthy_ms: u64,
    /// A two-Deployment scale waits until the serving Deployment is stable
    /// (`checkCanScaleNow`; the operator: yes).
    pub scale_waits_for_stable: bool,
    /// How long a `MilvusUpgrade` waits after its Milvus's Deployments
    /// reached 0 before it counts the components as deregistered
    /// (`isComponentsDeregistered`: 1 minute).
    pub upgrade_deregister_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings::FAST
    }
}

impl Timings {
    /// The operator's own values.
    pub const REAL: Timings = Timings {
        min_ready_seconds: 30,
        requeue_ms: 15_000,
        sync_unhealthy_ms: 30_000,
        sync_healthy_ms: 60_000,
        scale_waits_for_stable: true,
        upgrade_deregister_ms: 60_000,
    };
    /// The suite's default: the same rules, short periods.
    pub const FAST: Timings = Timings {
        min_ready_seconds: 0,
        requeue_ms: 250,
        sync_unhealthy_ms: 1_000,
        sync_healthy_ms: 2_000,
        scale_waits_for_stable: false,
        upgrade_deregister_ms: 1_000,
    };
    /// `FAST` periods with the operator's scale rule.
    pub const FAST_STRICT: Timings = Timings {
        scale_waits_for_stable: true,
        ..Timings::FAST
    };

    /// The process default (see the module doc).
    pub fn from_env() -> Timings {
        let var = |k: &str| std::env::var(k).ok();
        let mut t = match var("TESTBED_OPERATOR_TIMINGS").as_deref() {
            Some("real") => Timings::REAL,
            _ => Timings::FAST,
        };
        let num = |k: &str| var(k).and_then(|v| v.parse::<u64>().ok());
        if let Some(s) = var("TESTBED_OPERATOR_MIN_READY_SECONDS").and_then(|v| v.parse().ok()) {
            t.min_ready_seconds = s;
        }
        if let Some(ms) = num("TESTBED_OPERATOR_REQUEUE_MS") {
            t.requeue_ms = ms;
        }
        if let Some(ms) = num("TESTBED_OPERATOR_SYNC_MS") {
            t.sync_unhealthy_ms = ms;
            t.sync_healthy_ms = ms * 2;
        }
        if let Some(ms) = num("TESTBED_OPERATOR_SYNC_HEALTHY_MS") {
            t.sync_healthy_ms = ms;
        }
        if let Some(v) = var("TESTBED_OPERATOR_SCALE_WAITS_FOR_STABLE") {
            t.scale_waits_for_stable = v == "1" || v == "true";
        }
        if let Some(ms) = num("TESTBED_OPERATOR_UPGRADE_DEREGISTER_MS") {
            t.upgrade_deregister_ms = ms;
        }
        t
    }

    pub fn requeue(&self) -> Duration {
        Duration::from_millis(self.requeue_ms.max(1))
    }
    pub fn sync_unhealthy(&self) -> Duration {
        Duration::from_millis(self.sync_unhealthy_ms.max(1))
    }
    pub fn sync_healthy(&self) -> Duration {
        Duration::from_millis(self.sync_healthy_ms.max(1))
    }
    pub fn upgrade_deregister(&self) -> Duration {
        Duration::from_millis(self.upgrade_deregister_ms)
    }
}

/// Make the stand-in use `timings` in namespace `ns` from now on.
pub async fn set_timings(ns: &str, timings: Timings) -> Result<()> {
    let client = crate::TestBed::get().client().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": TIMINGS_CONFIGMAP, "namespace": ns},
        "data": {TIMINGS_KEY: serde_json::to_string(&timings)?},
    });
    api.patch(
        TIMINGS_CONFIGMAP,
        &PatchParams::apply("kubectl-milvus-testbed").force(),
        &Patch::Apply(cm),
    )
    .await
    .with_context(|| format!("write {ns}/{TIMINGS_CONFIGMAP}"))?;
    Ok(())
}

fn parse(cm: &ConfigMap, default: Timings) -> Timings {
    cm.data
        .as_ref()
        .and_then(|d| d.get(TIMINGS_KEY))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(default)
}

/// The timings of `ns`, kept current by a watch on its ConfigMap; the watch
/// ends when every receiver is gone.
pub(crate) fn watch_timings(client: kube::Client, ns: &str, default: Timings) -> watch::Receiver<Timings> {
    let (tx, rx) = watch::channel(default);
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={TIMINGS_CONFIGMAP}"));
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                () = tx.closed() => return,
            };
            match ev {
                None => return,
                Some(Ok(Event::Apply(cm) | Event::InitApply(cm))) => {
                    tx.send_if_modified(|t| {
                        let new = parse(&cm, default);
                        std::mem::replace(t, new) != new
                    });
                }
                Some(Ok(Event::Delete(_))) => {
                    tx.send_if_modified(|t| std::mem::replace(t, default) != default);
                }
                _ => {}
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_values_are_the_operators() {
        // unhealthySyncInterval = 30 s; RequeueAfter = interval / 2; the
        // healthy loop runs at interval * 2; CreateDeploy sets 30.
        assert_eq!(Timings::REAL.requeue(), Duration::from_secs(15));
        assert_eq!(Timings::REAL.sync_unhealthy(), Duration::from_secs(30));
        assert_eq!(Timings::REAL.sync_healthy(), Duration::from_secs(60));
        assert_eq!(Timings::REAL.min_ready_seconds, 30);
        // isComponentsDeregistered: time.Since(stoppedAt) > time.Minute.
        assert_eq!(Timings::REAL.upgrade_deregister(), Duration::from_secs(60));
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": TIMINGS_CONFIGMAP},
            "data": {TIMINGS_KEY: serde_json::to_string(&Timings::REAL).unwrap()}}))
        .unwrap();
        assert_eq!(parse(&cm, Timings::FAST), Timings::REAL);
    }
}
