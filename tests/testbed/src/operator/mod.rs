//! Milvus Operator in the test bed: the real CRD, a stand-in for the
//! operator's reconciliation, and seeding of the operator's samples.
//!
//! * [`install_crd`] installs `milvuses.milvus.io` from
//!   `tests/fixtures/milvus-operator` (see [`crd`] for the v1.20 caveat),
//!   and the stand-in `milvusupgrades.milvus.io` too.
//! * Beside each namespace's `Milvus` loop the stand-in runs the
//!   `MilvusUpgrade` controller ([`upgrade`]).
//! * The **stand-in** ([`stand_in`]) plays the operator for `Milvus` CRs in
//!   the namespaces this process owns (label `kubectl-milvus.test/simulator`
//!   = the simulator id, what `bed.namespace()` creates), on the bed's
//!   runtime, so parallel test processes never fight. It is started lazily
//!   by the seeding API: tests that never touch the operator pay nothing.
//! * [`seed_operator_cluster`] applies a real sample with the webhook's
//!   defaults, seeds the dependency Helm releases the operator would
//!   install, and waits for `Healthy`.
//!
//! What the stand-in plays and what it does not is listed in the testbed
//! README ("The Milvus Operator stand-in").

pub mod controller;
pub mod crd;
pub mod deployment;
pub mod deps;
pub mod seed;
pub mod status;
pub mod timings;
pub mod topology;
pub mod two_deploy;
pub mod upgrade;
pub mod webhook;

use std::sync::Arc;

use anyhow::{Context, Result};

pub use controller::{PAUSE_RECONCILE, StandInConfig};
pub use crd::{CrdInstall, install_crd, install_upgrade_crd, milvus_resource, upgrade_resource};
pub use seed::{
    OperatorSample, OperatorSeedOptions, SeededOperatorCluster, seed_operator_cluster, wait_milvus_healthy,
};
pub use timings::{TIMINGS_CONFIGMAP, Timings, set_timings};

use crate::TestBed;

/// The running stand-in of this process.
#[derive(Debug)]
pub struct StandIn {
    owner: String,
    crd: CrdInstall,
}

impl StandIn {
    /// Namespaces labelled `kubectl-milvus.test/simulator=<owner>` are played.
    pub fn owner(&self) -> &str {
        &self.owner
    }
    /// How the CRD was found or installed when the stand-in started.
    pub fn crd_install(&self) -> CrdInstall {
        self.crd
    }
}

static STAND_IN: tokio::sync::OnceCell<StandIn> = tokio::sync::OnceCell::const_new();

/// Install the CRD (if needed) and start the stand-in on the bed's runtime,
/// once per process. Safe to call from any runtime, concurrently.
pub async fn stand_in(bed: &TestBed) -> Result<&'static StandIn> {
    STAND_IN
        .get_or_try_init(|| async {
            let admin = bed.admin_kubeconfig().to_path_buf();
            let owner = bed.simulator().id().to_string();
            let config = StandInConfig::from_env();
            // The client (and its background worker) must live on the bed's
            // runtime, which outlives any test's runtime.
            bed.spawn(async move {
                let client = crate::kubeconfig::client_for(&admin).await?;
                let crd = install_crd(&client).await?;
                let (_, omit_empty_messages) = install_upgrade_crd(&client).await?;
                let ctx = Arc::new(controller::Ctx {
                    client,
                    owner: owner.clone(),
                    config,
                    omit_empty_messages,
                });
                tokio::spawn(controller::namespace_loop(ctx));
                Ok::<_, anyhow::Error>(StandIn { owner, crd })
            })
            .await
            .context("operator stand-in task died")?
        })
        .await
}
