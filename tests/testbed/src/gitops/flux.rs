//! A Milvus Helm release installed by Flux helm-controller.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::crds::install_crds;
use crate::TestBed;
use crate::seed::{PostRender, Scenario, SeedOptions, SeededRelease, seed_release_rendered};

/// Origin labels of helm-controller's post-renderer (`internal/postrender/origin_labels.go`).
pub const FLUX_NAME_LABEL: &str = "helm.toolkit.fluxcd.io/name";
pub const FLUX_NAMESPACE_LABEL: &str = "helm.toolkit.fluxcd.io/namespace";

#[derive(Debug, Clone, Default)]
pub struct FluxOptions {
    /// HelmRelease object name; default: the release name. (Flux labels
    /// objects with the HelmRelease's name, not the Helm release's.)
    pub helmrelease: Option<String>,
    /// The Helm release seeding (release name, revisions, driver, …).
    pub seed: SeedOptions,
}

#[derive(Debug, Clone)]
pub struct SeededFluxRelease {
    pub release: SeededRelease,
    /// HelmRelease name (in the release's namespace, which is also the
    /// storage namespace).
    pub helmrelease: String,
    /// The HelmRelease as created (with status).
    pub object: Value,
}

pub fn helmrelease_resource() -> ApiResource {
    ApiResource {
        group: "helm.toolkit.fluxcd.io".into(),
        version: "v2".into(),
        api_version: "helm.toolkit.fluxcd.io/v2".into(),
        kind: "HelmRelease".into(),
        plural: "helmreleases".into(),
    }
}

/// A stable stand-in for Helm's release digest (not Helm's real algorithm:
/// nothing in the bed verifies it).
fn fake_digest(parts: &[&str]) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::from("sha256:");
    for salt in 0u64..4 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        parts.hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Seed `scenario` into `ns` as Flux helm-controller would have installed it.
pub async fn seed_flux_release(
    bed: &TestBed,
    ns: &str,
    scenario: Scenario,
    opts: FluxOptions,
) -> Result<SeededFluxRelease> {
    let client = bed.client().await?;
    install_crds(&client).await?;
    let release_name = opts
        .seed
        .release
        .clone()
        .unwrap_or_else(|| scenario.fixture_release().to_string());
    let hr_name = opts.helmrelease.clone().unwrap_or_else(|| release_name.clone());
    let post = PostRender {
        labels: BTreeMap::from([
            (FLUX_NAME_LABEL.to_string(), hr_name.clone()),
            (FLUX_NAMESPACE_LABEL.to_string(), ns.to_string()),
        ]),
        field_manager: "helm-controller".into(),
    };
    let release = seed_release_rendered(bed, ns, scenario, opts.seed.clone(), &post).await?;

    let (chart_version, app_version) = scenario.chart_version();
    let values = scenario.user_values();
    let mut spec = json!({
        "interval": "10m",
        "releaseName": release.release,
        "chart": {"spec": {
            "chart": "milvus",
            "version": chart_version,
            "sourceRef": {"kind": "HelmRepository", "name": "zilliztech", "namespace": "flux-system"},
            "interval": "1h",
        }},
        "install": {"remediation": {"retries": 3}},
        "upgrade": {"remediation": {"retries": 3}},
    });
    if let Some(v) = &values {
        spec["values"] = v.clone();
    }
    let hr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": hr_name, "namespace": ns},
        "spec": spec,
    }))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &helmrelease_resource());
    let created = api
        .create(&PostParams::default(), &hr)
        .await
        .with_context(|| format!("create HelmRelease {hr_name}"))?;
    let generation = created.metadata.generation.unwrap_or(1);
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let config_digest = fake_digest(&[&values.clone().unwrap_or(Value::Null).to_string()]);
    // Newest first; one entry per revision Flux made.
    let history: Vec<Value> = (1..=release.revision)
        .rev()
        .map(|rev| {
            json!({
                "name": release.release, "namespace": ns, "version": rev,
                "status": if rev == release.revision { "deployed" } else { "superseded" },
                "chartName": "milvus", "chartVersion": chart_version, "appVersion": app_version,
                "configDigest": config_digest,
                "digest": fake_digest(&[&release.release, &rev.to_string()]),
                "firstDeployed": now, "lastDeployed": now,
            })
        })
        .collect();
    let action = if release.revision > 1 {
        "upgrade"
    } else {
        "install"
    };
    let verb = if release.revision > 1 {
        "upgrade"
    } else {
        "install"
    };
    let reason = if release.revision > 1 {
        "UpgradeSucceeded"
    } else {
        "InstallSucceeded"
    };
    let message = format!(
        "Helm {verb} succeeded for release {ns}/{}.v{} with chart milvus@{chart_version}",
        release.release, release.revision
    );
    let status = json!({
        "observedGeneration": generation,
        "storageNamespace": ns,
        "helmChart": format!("flux-system/{ns}-{hr_name}"),
        "lastAttemptedGeneration": generation,
        "lastAttemptedReleaseAction": action,
        "lastAttemptedRevision": chart_version,
        "lastAttemptedConfigDigest": config_digest,
        "history": history,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": reason, "message": message,
             "lastTransitionTime": now, "observedGeneration": generation},
            {"type": "Released", "status": "True", "reason": reason, "message": message,
             "lastTransitionTime": now, "observedGeneration": generation},
        ],
    });
    let object = api
        .patch_status(
            &hr_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .with_context(|| format!("write HelmRelease {hr_name} status"))?;
    Ok(SeededFluxRelease {
        release,
        helmrelease: hr_name,
        object: serde_json::to_value(object)?,
    })
}
