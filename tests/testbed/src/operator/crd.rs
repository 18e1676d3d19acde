//! Install the real Milvus Operator CRD (`tests/fixtures/milvus-operator`).
//!
//! The fixture is installed unchanged wherever the API server accepts it
//! (v1.33 does). v1.20's structural-schema validation rejects it: 50 schema
//! entries carry `default: ""` on string `name` fields (`…default: Invalid
//! value: "null": … must be of type string`). Only after such a rejection
//! are exactly those `default` entries dropped and the CRD created again;
//! nothing else is changed. (Those defaults only fill `name: ""` in
//! `secretKeyRef`/`imagePullSecrets`-like objects the tests never omit.)

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

use crate::seed::fixtures_dir;

/// `milvuses.milvus.io`.
pub const CRD_NAME: &str = "milvuses.milvus.io";

/// How [`install_crd`] found or left the CRD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdInstall {
    /// It was there already (installed by another test process or earlier run).
    AlreadyPresent,
    /// Created from the unchanged fixture.
    Unchanged,
    /// The server rejected the fixture; created with this many `default: ""`
    /// entries on string `name` fields removed.
    DefaultsDropped(usize),
}

/// The `Milvus` resource (`milvus.io/v1beta1`, plural `milvuses`).
pub fn milvus_resource() -> ApiResource {
    ApiResource {
        group: "milvus.io".into(),
        version: "v1beta1".into(),
        api_version: "milvus.io/v1beta1".into(),
        kind: "Milvus".into(),
        plural: "milvuses".into(),
    }
}

fn crd_resource() -> ApiResource {
    ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    }
}

/// The fixture, parsed.
pub fn fixture_crd() -> Result<Value> {
    let path = fixtures_dir().join("milvus-operator/crd-milvus.io_milvuses.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

/// Remove `default: ""` from every schema node of `type: string` that is the
/// `name` property of its parent; returns how many were removed.
pub fn drop_empty_name_defaults(v: &mut Value) -> usize {
    let mut n = 0;
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get_mut("properties")
                && let Some(Value::Object(name)) = props.get_mut("name")
                && name.get("type").and_then(Value::as_str) == Some("string")
                && name.get("default").and_then(Value::as_str) == Some("")
            {
                name.remove("default");
                n += 1;
            }
            for child in m.values_mut() {
                n += drop_empty_name_defaults(child);
            }
        }
        Value::Array(a) => {
            for child in a {
                n += drop_empty_name_defaults(child);
            }
        }
        _ => {}
    }
    n
}

async fn create(
    api: &Api<DynamicObject>,
    crd: &Value,
) -> Result<std::result::Result<(), kube::core::Status>> {
    let obj: DynamicObject = serde_json::from_value(crd.clone()).context("CRD as object")?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Ok(())),
        Err(kube::Error::Api(e)) if e.code == 422 => Ok(Err(*e)),
        Err(e) => Err(e).context("create CRD milvuses.milvus.io"),
    }
}

/// Install the Milvus CRD if absent (idempotent, safe from parallel
/// processes) and wait until it is `Established`.
pub async fn install_crd(client: &kube::Client) -> Result<CrdInstall> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
    let outcome = if api.get_opt(CRD_NAME).await.context("get CRD")?.is_some() {
        CrdInstall::AlreadyPresent
    } else {
        let mut crd = fixture_crd()?;
        match create(&api, &crd).await? {
            Ok(()) => CrdInstall::Unchanged,
            Err(rejected) => {
                let n = drop_empty_name_defaults(&mut crd);
                if n == 0 {
                    bail!("API server rejected the Milvus CRD: {}", rejected.message);
                }
                match create(&api, &crd).await? {
                    Ok(()) => CrdInstall::DefaultsDropped(n),
                    Err(again) => bail!(
                        "API server rejected the Milvus CRD even without {n} `default: \"\"` entries: {} (first answer: {})",
                        again.message,
                        rejected.message
                    ),
                }
            }
        }
    };
    wait_established(client).await?;
    Ok(outcome)
}

async fn wait_established(client: &kube::Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={CRD_NAME}"));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let established = async {
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(crd) | Event::InitApply(crd)) = ev {
                let ok = crd
                    .status
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
                if ok {
                    return true;
                }
            }
        }
        false
    };
    match tokio::time::timeout(Duration::from_secs(30), established).await {
        Ok(true) => Ok(()),
        _ => bail!("CRD {CRD_NAME} not Established after 30s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_has_exactly_the_documented_defaults() {
        let mut crd = fixture_crd().unwrap();
        let before = serde_json::to_string(&crd).unwrap().len();
        assert_eq!(drop_empty_name_defaults(&mut crd), 50);
        assert_eq!(drop_empty_name_defaults(&mut crd), 0);
        let after = serde_json::to_string(&crd).unwrap().len();
        assert_eq!(before - after, 50 * r#","default":"""#.len());
    }
}
