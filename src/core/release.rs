//! Helm release records: the JSON Helm stores per revision, and its storage
//! encoding (JSON → gzip → base64, `pkg/storage/driver/util.go`).
//!
//! The record is kept as a JSON value so a revision the plugin writes carries
//! every field Helm (3 or 4, or a later one) put there, known to us or not.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Helm release statuses (`pkg/release/common/status.go`).
pub const DEPLOYED: &str = "deployed";
pub const SUPERSEDED: &str = "superseded";
pub const PENDING_UPGRADE: &str = "pending-upgrade";

pub fn is_pending(status: &str) -> bool {
    status.starts_with("pending-")
}

/// One decoded revision of a release.
#[derive(Debug, Clone, PartialEq)]
pub struct Release(pub Value);

impl Release {
    fn str_at(&self, pointer: &str) -> &str {
        self.0.pointer(pointer).and_then(Value::as_str).unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.str_at("/name")
    }
    pub fn namespace(&self) -> &str {
        self.str_at("/namespace")
    }
    pub fn version(&self) -> u64 {
        self.0.get("version").and_then(Value::as_u64).unwrap_or(0)
    }
    pub fn status(&self) -> &str {
        self.str_at("/info/status")
    }
    pub fn description(&self) -> &str {
        self.str_at("/info/description")
    }
    pub fn last_deployed(&self) -> &str {
        self.str_at("/info/last_deployed")
    }
    pub fn chart_name(&self) -> &str {
        self.str_at("/chart/metadata/name")
    }
    pub fn chart_version(&self) -> &str {
        self.str_at("/chart/metadata/version")
    }
    /// Applied server-side (Helm 4's `apply_method: ssa`); absent or `csa`
    /// is client-side, as Helm 3 and Helm 4 upgrades of Helm 3 releases do.
    pub fn server_side(&self) -> bool {
        self.str_at("/apply_method") == "ssa"
    }
    pub fn app_version(&self) -> &str {
        self.str_at("/chart/metadata/appVersion")
    }
    pub fn manifest(&self) -> &str {
        self.str_at("/manifest")
    }
    /// User-supplied values (`helm get values`); `null` when there are none.
    pub fn config(&self) -> &Value {
        self.0.get("config").unwrap_or(&Value::Null)
    }
    /// Chart default values as stored with the release.
    pub fn chart_values(&self) -> &Value {
        self.0.pointer("/chart/values").unwrap_or(&Value::Null)
    }
    /// `helm get values --all`.
    pub fn effective_values(&self) -> Value {
        crate::core::values::coalesce(self.chart_values(), self.config())
    }

    pub fn is_milvus(&self) -> bool {
        self.chart_name() == "milvus"
    }

    /// The next revision, as `helm upgrade` makes it from this one: same
    /// chart and fields, version + 1, the given status and description,
    /// `last_deployed` = now, `first_deployed` kept.
    pub fn next_revision(&self, status: &str, description: &str, now: &str) -> Release {
        let mut next = self.0.clone();
        next["version"] = Value::from(self.version() + 1);
        if !next.get("info").is_some_and(Value::is_object) {
            next["info"] = Value::Object(Default::default());
        }
        next["info"]["status"] = Value::from(status);
        next["info"]["description"] = Value::from(description);
        next["info"]["last_deployed"] = Value::from(now);
        Release(next)
    }

    pub fn set_status(&mut self, status: &str, description: Option<&str>) {
        self.0["info"]["status"] = Value::from(status);
        if let Some(d) = description {
            self.0["info"]["description"] = Value::from(d);
        }
    }

    pub fn set_config(&mut self, config: Value) {
        self.0["config"] = config;
    }

    pub fn set_manifest(&mut self, manifest: String) {
        self.0["manifest"] = Value::from(manifest);
    }
}

/// Decodes a storage payload (the base64 text Helm wrote). Records older
/// Helm wrote without gzip are accepted, as Helm itself does.
pub fn decode(payload: &[u8]) -> Result<Release> {
    let payload: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = STANDARD.decode(&payload).context("release data is not base64")?;
    let json = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::with_capacity(raw.len() * 6);
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .context("release data is not valid gzip")?;
        out
    } else {
        raw
    };
    let value: Value = serde_json::from_slice(&json).context("release data is not valid release JSON")?;
    if !value.is_object() {
        bail!("release data is not a JSON object");
    }
    Ok(Release(value))
}

/// Encodes a record exactly as Helm's storage drivers do.
pub fn encode(release: &Release) -> Result<String> {
    let json = serde_json::to_vec(&release.0).context("serialising the release")?;
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::best());
    gz.write_all(&json).context("compressing the release")?;
    Ok(STANDARD.encode(gz.finish().context("compressing the release")?))
}

/// The storage object name of a revision.
pub fn object_name(release: &str, version: u64) -> String {
    format!("sh.helm.release.v1.{release}.v{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/helm-release/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).expect("fixture exists")
    }

    /// The `data.release` field of the `index`-th object of a driver fixture.
    fn stored_payload(file: &str, index: usize) -> Vec<u8> {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&fixture(file)).expect("yaml");
        let objects: Vec<&Value> = docs
            .iter()
            .flat_map(|d| {
                d.get("items")
                    .and_then(Value::as_array)
                    .map_or_else(|| vec![d], |v| v.iter().collect())
            })
            .collect();
        let data = objects[index]["data"]["release"]
            .as_str()
            .expect("data.release")
            .to_string();
        if objects[index]["kind"] == "Secret" {
            STANDARD.decode(data).expect("secret data is base64")
        } else {
            data.into_bytes()
        }
    }

    #[test]
    fn decodes_secret_and_configmap_drivers_to_the_same_record() {
        let from_secret = decode(&stored_payload("secrets-my-release-rev1-rev2.yaml", 1)).expect("decodes");
        let from_cm = decode(&stored_payload("configmaps-my-release-rev1-rev2.yaml", 1)).expect("decodes");
        assert_eq!(from_secret, from_cm);
        let json: Value =
            serde_json::from_str(&fixture("release-v4-rev2-deployed-qn3-dn2.json")).expect("json");
        assert_eq!(from_secret.0, json);
        assert_eq!(from_secret.version(), 2);
        assert_eq!(from_secret.status(), DEPLOYED);
        assert_eq!(from_secret.chart_version(), "5.0.19");
        assert_eq!(from_secret.app_version(), "2.6.15");
        assert!(from_secret.is_milvus());
    }

    #[test]
    fn decodes_helm3_shape() {
        let r = decode(&stored_payload("secret-v3shape-rev2.SYNTHETIC.yaml", 0)).expect("decodes");
        assert_eq!(r.name(), "my-release");
        assert_eq!(r.0["info"]["deleted"], "");
        assert!(r.0.get("apply_method").is_none());
    }

    #[test]
    fn encode_round_trips_and_accepts_uncompressed() {
        let r =
            Release(serde_json::from_str(&fixture("release-v4-rev2-deployed-qn3-dn2.json")).expect("json"));
        assert_eq!(
            decode(encode(&r).expect("encodes").as_bytes()).expect("decodes"),
            r
        );
        let plain = STANDARD.encode(serde_json::to_vec(&r.0).expect("json"));
        assert_eq!(decode(plain.as_bytes()).expect("decodes"), r);
    }

    #[test]
    fn corrupt_payloads_say_what_failed() {
        assert!(decode(b"!!!").unwrap_err().to_string().contains("not base64"));
        let bad_gzip = STANDARD.encode([0x1f, 0x8b, 0x08, 0, 1, 2]);
        assert!(
            decode(bad_gzip.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("gzip")
        );
        let not_json = STANDARD.encode(b"hello");
        assert!(
            decode(not_json.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("JSON")
        );
    }

    #[test]
    fn next_revision_copies_everything_but_bookkeeping() {
        let r =
            Release(serde_json::from_str(&fixture("release-v4-rev2-deployed-qn3-dn2.json")).expect("json"));
        let n = r.next_revision(PENDING_UPGRADE, "Scaling", "2026-01-12T00:00:00Z");
        assert_eq!(n.version(), 3);
        assert_eq!(n.status(), PENDING_UPGRADE);
        assert_eq!(n.0["chart"], r.0["chart"]);
        assert_eq!(n.0["info"]["first_deployed"], r.0["info"]["first_deployed"]);
        assert_eq!(n.0["apply_method"], r.0["apply_method"]);
        assert_eq!(object_name("my-release", 3), "sh.helm.release.v1.my-release.v3");
    }
}
