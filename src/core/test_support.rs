//! Shared fixtures for the core's unit tests.

use crate::core::release::Release;
use crate::core::status::LiveWorkload;

/// The real Helm 4 record of `my-release` (queryNode=3, dataNode=2).
pub fn fixture_release() -> Release {
    let path = format!(
        "{}/tests/fixtures/helm-release/release-v4-rev2-deployed-qn3-dn2.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Release(serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json"))
}

/// A Deployment with every replica ready.
pub fn ready_deployment(name: &str, replicas: i32) -> LiveWorkload {
    LiveWorkload {
        kind: "Deployment".into(),
        name: name.into(),
        replicas,
        ready: replicas,
        up_to_date: replicas,
        available: replicas,
    }
}
