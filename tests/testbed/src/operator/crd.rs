//! Install the real Milvus Operator CRDs (`tests/fixtures/milvus-operator`):
//! `milvuses.milvus.io` and `milvusupgrades.milvus.io`.
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
/// `milvusupgrades.milvus.io`.
pub const UPGRADE_CRD_NAME: &str = "milvusupgrades.milvus.io";

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

/// The `MilvusUpgrade` resource (`milvus.io/v1beta1`, plural `milvusupgrades`).
pub fn upgrade_resource() -> ApiResource {
    ApiResource {
        kind: "MilvusUpgrade".into(),
        plural: "milvusupgrades".into(),
        ..milvus_resource()
    }
}

/// The fixture, parsed.
pub fn fixture_crd() -> Result<Value> {
    fixture(CRD_NAME)
}

/// The fixture of CRD `name` (`crd-milvus.io_<plural>.yaml`), parsed.
fn fixture(name: &str) -> Result<Value> {
    let plural = name.trim_end_matches(".milvus.io");
    let path = fixtures_dir().join(format!("milvus-operator/crd-milvus.io_{plural}.yaml"));
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
    name: &str,
    crd: &Value,
) -> Result<std::result::Result<(), kube::core::Status>> {
    let obj: DynamicObject = serde_json::from_value(crd.clone()).context("CRD as object")?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Ok(())),
        Err(kube::Error::Api(e)) if e.code == 422 => Ok(Err(*e)),
        Err(e) => Err(e).with_context(|| format!("create CRD {name}")),
    }
}

/// Install the Milvus CRD if absent (idempotent, safe from parallel
/// processes) and wait until it is `Established`.
pub async fn install_crd(client: &kube::Client) -> Result<CrdInstall> {
    install(client, CRD_NAME).await
}

/// Install the `MilvusUpgrade` CRD the same way. On a server that reads
/// an empty string in a custom resource as `null` (the bed's v1.20 build
/// refuses `""` for any string field: `Invalid value: "null": … must be of
/// type string`), a condition without message (`message: ""`, what the
/// operator writes after a pass without error) could never be stored: only
/// there, and only after a probe has shown it, `message` is dropped from
/// the conditions' `required` list, so the stand-in can leave it out
/// (`true` is returned then).
pub async fn install_upgrade_crd(client: &kube::Client) -> Result<(CrdInstall, bool)> {
    let outcome = install(client, UPGRADE_CRD_NAME).await?;
    if !empty_strings_refused(client).await? {
        return Ok((outcome, false));
    }
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
    let crd = api.get(UPGRADE_CRD_NAME).await.context("get CRD")?;
    let mut v = serde_json::to_value(&crd)?;
    let required =
        "/spec/versions/0/schema/openAPIV3Schema/properties/status/properties/conditions/items/required";
    if let Some(Value::Array(r)) = v.pointer_mut(required)
        && r.iter().any(|x| x == "message")
    {
        r.retain(|x| x != "message");
        let obj: DynamicObject = serde_json::from_value(v)?;
        api.replace(UPGRADE_CRD_NAME, &PostParams::default(), &obj)
            .await
            .context("drop message from the MilvusUpgrade conditions' required fields")?;
    }
    Ok((outcome, true))
}

/// A dry-run create of a `MilvusUpgrade` with `spec.backupPVC: ""`: is the
/// empty string refused as `null`?
pub async fn empty_strings_refused(client: &kube::Client) -> Result<bool> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &upgrade_resource());
    let probe: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "milvus.io/v1beta1", "kind": "MilvusUpgrade",
        "metadata": {"name": "empty-string-probe", "namespace": "default"},
        "spec": {"milvus": {"name": "x"}, "sourceVersion": "2.6.0", "targetVersion": "2.6.1", "backupPVC": ""},
    }))?;
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match api.create(&pp, &probe).await {
        Ok(_) => Ok(false),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains("\"null\"") => Ok(true),
        Err(e) => Err(e).context("probe: dry-run create of a MilvusUpgrade"),
    }
}

async fn install(client: &kube::Client, name: &str) -> Result<CrdInstall> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
    let outcome = if api.get_opt(name).await.context("get CRD")?.is_some() {
        CrdInstall::AlreadyPresent
    } else {
        let mut crd = fixture(name)?;
        match create(&api, name, &crd).await? {
            Ok(()) => CrdInstall::Unchanged,
            Err(rejected) => {
                let n = drop_empty_name_defaults(&mut crd);
                if n == 0 {
                    bail!("API server rejected the CRD {name}: {}", rejected.message);
                }
                match create(&api, name, &crd).await? {
                    Ok(()) => CrdInstall::DefaultsDropped(n),
                    Err(again) => bail!(
                        "API server rejected the CRD {name} even without {n} `default: \"\"` entries: {} (first answer: {})",
                        again.message,
                        rejected.message
                    ),
                }
            }
        }
    };
    wait_established(client, name).await?;
    Ok(outcome)
}

async fn wait_established(client: &kube::Client, name: &str) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
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
        _ => bail!("CRD {name} not Established after 30s"),
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

    #[test]
    fn the_upgrade_fixture_is_the_milvusupgrade_crd_and_needs_no_change() {
        let mut crd = fixture(UPGRADE_CRD_NAME).unwrap();
        assert_eq!(crd["metadata"]["name"], UPGRADE_CRD_NAME);
        assert_eq!(crd["spec"]["names"]["kind"], "MilvusUpgrade");
        assert_eq!(drop_empty_name_defaults(&mut crd), 0);
    }
}
