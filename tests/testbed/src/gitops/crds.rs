//! Install the minimal HelmRelease and Application CRDs
//! (`tests/fixtures/gitops/`), idempotently, and wait until Established.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

use crate::seed::fixtures_dir;

pub const HELMRELEASE_CRD: &str = "helmreleases.helm.toolkit.fluxcd.io";
pub const APPLICATION_CRD: &str = "applications.argoproj.io";

async fn install(client: &kube::Client, file: &str) -> Result<()> {
    let path = fixtures_dir().join("gitops").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).with_context(|| format!("create CRD {name}")),
    }
    // Small CRDs establish within milliseconds; poll the condition briefly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let crd = api.get(&name).await.with_context(|| format!("get CRD {name}"))?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("CRD {name} not Established after 30s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Install both CRDs (no-op when present).
pub async fn install_crds(client: &kube::Client) -> Result<()> {
    install(client, "helmrelease-crd.yaml").await?;
    install(client, "application-crd.yaml").await
}
