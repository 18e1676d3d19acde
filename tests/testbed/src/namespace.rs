//! Per-test namespaces owned by this process's simulator.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::TestBed;
use crate::sim::OWNER_LABEL;

/// A unique namespace, deleted (best effort) on drop or [`TestNamespace::cleanup`].
/// Set `TESTBED_KEEP_NAMESPACES=1` to keep them for debugging.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    cleaned: bool,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keep the namespace after the test (e.g. to inspect it).
    pub fn keep(mut self) -> String {
        self.cleaned = true;
        self.name.clone()
    }

    /// Delete now and wait for the request (not for the namespace to vanish).
    pub async fn cleanup(mut self) -> Result<()> {
        self.cleaned = true;
        let name = self.name.clone();
        TestBed::get().spawn(delete_namespace(name)).await?
    }
}

impl std::fmt::Display for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for TestNamespace {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl std::ops::Deref for TestNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned || std::env::var_os("TESTBED_KEEP_NAMESPACES").is_some() {
            return;
        }
        let Ok(bed) = TestBed::try_get() else { return };
        let name = self.name.clone();
        // Runs on the bed's runtime, so this works from sync tests and from
        // inside a (possibly finished) tokio test runtime alike.
        let _ = bed.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(15), delete_namespace(name)).await;
        });
    }
}

/// Delete the namespace, then force-delete its pods: the simulator that
/// would finish their graceful deletion may exit with this process.
async fn delete_namespace(name: String) -> Result<()> {
    let client = TestBed::get().client().await?;
    let nss: Api<Namespace> = Api::all(client.clone());
    match nss.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e).context("delete namespace"),
    }
    let pods: Api<Pod> = Api::namespaced(client, &name);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    let _ = pods.delete_collection(&dp, &ListParams::default()).await;
    Ok(())
}

impl TestBed {
    /// Create `<prefix>-xxxxx` (server-generated suffix), labelled for this
    /// process's simulator, and wait until pods can be created in it
    /// (ServiceAccount `default` exists; on < 1.21 also its token Secret).
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let mut prefix: String = prefix
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        prefix.truncate(40);
        let prefix = prefix.trim_matches('-');
        let prefix = if prefix.is_empty() { "t" } else { prefix };
        let name = self
            .create_owned_namespace(json!({"generateName": format!("{prefix}-")}))
            .await?;
        Ok(TestNamespace { name, cleaned: false })
    }

    /// A namespace with a fixed `name`, owned by this process's simulator
    /// (and the operator stand-in) like [`TestBed::namespace`], but not
    /// deleted on drop: for long-lived setups such as `testbed demo`. A
    /// leftover namespace of that name is deleted first.
    pub async fn owned_namespace(&self, name: &str) -> Result<()> {
        let client = self.client().await?;
        let nss: Api<Namespace> = Api::all(client);
        if nss.get_opt(name).await.context("get namespace")?.is_some() {
            delete_namespace(name.to_string()).await?;
            let gone = crate::eventually(
                Duration::from_secs(120),
                Duration::from_millis(500),
                "old namespace to go",
                || {
                    let nss = nss.clone();
                    async move { matches!(nss.get_opt(name).await, Ok(None)).then_some(()) }
                },
            );
            gone.await?;
        }
        self.create_owned_namespace(json!({"name": name})).await?;
        Ok(())
    }

    /// Create a namespace with `metadata` plus our labels, and wait until
    /// pods can be created in it (ServiceAccount `default`, on < 1.21 also
    /// its token Secret). Returns its name.
    async fn create_owned_namespace(&self, mut metadata: serde_json::Value) -> Result<String> {
        let client = self.client().await?;
        metadata["labels"] =
            json!({OWNER_LABEL: self.simulator().id(), "kubectl-milvus.test/testbed": "true"});
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": metadata,
        }))?;
        let created = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .context("create test namespace")?;
        let name = created.metadata.name.context("namespace without name")?;
        let need_token_secret = self.server_minor() < 21;
        let sas: Api<ServiceAccount> = Api::namespaced(client, &name);
        let cfg = watcher::Config::default().fields("metadata.name=default");
        let mut stream = watcher::watcher(sas, cfg).default_backoff().boxed();
        let ready = async {
            while let Some(ev) = stream.next().await {
                if let Ok(Event::Apply(sa) | Event::InitApply(sa)) = ev
                    && (!need_token_secret || sa.secrets.as_ref().is_some_and(|s| !s.is_empty()))
                {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(Duration::from_secs(30), ready).await {
            Ok(true) => Ok(name),
            _ => anyhow::bail!(
                "ServiceAccount default in {name} not ready after 30s (is the controller-manager running?)"
            ),
        }
    }
}
