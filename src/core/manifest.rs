//! The manifest Helm stored with a release: which workloads the release owns,
//! under which names and labels. Names are never guessed from the release
//! name (fullnameOverride, nameOverride, resource groups all change them).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Deserialize;

pub type Labels = BTreeMap<String, String>;

/// The parts of one manifest document the plugin uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestObject {
    pub kind: String,
    pub name: String,
    pub labels: Labels,
    /// `spec.replicas`; `None` when the field is absent.
    pub replicas: Option<i64>,
    pub selector: Labels,
    pub pod_labels: Labels,
    /// For HorizontalPodAutoscalers: the scale target's kind and name.
    pub scale_target: Option<(String, String)>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Doc {
    kind: Option<String>,
    metadata: Meta,
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Meta {
    name: Option<String>,
    labels: Option<Labels>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    replicas: Option<i64>,
    selector: Option<Selector>,
    template: Option<Template>,
    scale_target_ref: Option<TargetRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Selector {
    match_labels: Option<Labels>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Template {
    metadata: Meta,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TargetRef {
    kind: Option<String>,
    name: Option<String>,
}

/// Parses the stored manifest (a `---`-separated YAML stream).
pub fn parse(manifest: &str) -> Result<Vec<ManifestObject>> {
    let mut out = Vec::new();
    for (i, (text, _)) in documents(manifest).enumerate() {
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let doc: Doc = serde_saphyr::from_str_with_options(text, yaml_options())
            .with_context(|| format!("document {} of the stored manifest is not valid YAML", i + 1))?;
        let (Some(kind), Some(name)) = (doc.kind, doc.metadata.name) else {
            continue;
        };
        out.push(ManifestObject {
            kind,
            name,
            labels: doc.metadata.labels.unwrap_or_default(),
            replicas: doc.spec.replicas,
            selector: doc.spec.selector.and_then(|s| s.match_labels).unwrap_or_default(),
            pod_labels: doc
                .spec
                .template
                .and_then(|t| t.metadata.labels)
                .unwrap_or_default(),
            scale_target: doc
                .spec
                .scale_target_ref
                .and_then(|t| Some((t.kind.unwrap_or_default(), t.name?))),
        });
    }
    Ok(out)
}

/// The Milvus configuration files the chart's ConfigMap mounts into every
/// Milvus pod, lowest precedence first: `default.yaml` (the chart's
/// `config.tpl`) then `user.yaml` (`extraConfigFiles`), each parsed (an
/// all-comment file is `null`). Empty when the release renders no such
/// ConfigMap (`customConfigMap`). Only these two keys are read: the
/// ConfigMap holds credentials next to them.
pub fn milvus_config_layers(manifest: &str) -> Vec<(String, serde_json::Value)> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct ConfigMap {
        kind: Option<String>,
        data: BTreeMap<String, String>,
    }
    for (text, _) in documents(manifest) {
        if !text.contains("default.yaml") {
            continue;
        }
        let Ok(doc) = serde_saphyr::from_str_with_options::<ConfigMap>(text, yaml_options()) else {
            continue;
        };
        if doc.kind.as_deref() != Some("ConfigMap") || !doc.data.contains_key("default.yaml") {
            continue;
        }
        return config_layers(&doc.data);
    }
    Vec::new()
}

/// The files of the Milvus configuration a ConfigMap holds (its
/// `default.yaml`, then `user.yaml`), each parsed; the ConfigMap's other
/// keys are never read.
pub fn config_layers(data: &BTreeMap<String, String>) -> Vec<(String, serde_json::Value)> {
    MILVUS_CONFIG_FILES
        .iter()
        .filter_map(|file| {
            let body = data.get(*file)?;
            let parsed = serde_saphyr::from_str_with_options(body, yaml_options()).unwrap_or_default();
            Some((file.to_string(), parsed))
        })
        .collect()
}

/// The Milvus configuration files of the chart's ConfigMap, lowest
/// precedence first.
pub const MILVUS_CONFIG_FILES: [&str; 2] = ["default.yaml", "user.yaml"];

/// Helm accepts what its Go YAML parser accepts: a repeated mapping key
/// (user `labels` overlapping the chart's own) keeps the last value. No
/// source excerpt in errors: a neighbouring line may be a Secret's data.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        with_snippet: false,
    }
}

/// Splits a YAML stream on document separator lines: each document with
/// the separator line that ends it (empty for the last), so that joining
/// the pairs gives back the text byte for byte.
fn documents(manifest: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = manifest;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut offset = 0;
        for line in rest.split_inclusive('\n') {
            if line.trim_end() == "---" {
                let (doc, tail) = rest.split_at(offset);
                rest = &tail[line.len()..];
                return Some((doc, line));
            }
            offset += line.len();
        }
        let doc = rest;
        rest = "";
        Some((doc, ""))
    })
}

/// Rewrites `spec.replicas` of one Deployment in the manifest text, leaving
/// every other byte alone (so `helm get manifest` and Helm's 3-way merge see
/// exactly the chart's rendering with the new count). Inserts the field when
/// the chart had omitted it.
pub fn set_replicas(manifest: &str, kind: &str, name: &str, replicas: u32) -> Result<String> {
    set_spec_count(manifest, kind, name, "replicas", replicas)
}

/// Rewrites one top-level count of an object's `spec` (`replicas`, an
/// HPA's `minReplicas`), as [`set_replicas`] does.
pub fn set_spec_count(manifest: &str, kind: &str, name: &str, field: &str, n: u32) -> Result<String> {
    edit_object(manifest, kind, name, |doc| rewrite_count(doc, field, n))
}

/// The manifest with the first object of that kind and name replaced by
/// what `edit` makes of it (`None`: the object has no top-level spec).
fn edit_object(
    manifest: &str,
    kind: &str,
    name: &str,
    edit: impl FnOnce(&str) -> Option<String>,
) -> Result<String> {
    let mut out = String::with_capacity(manifest.len() + 16);
    let mut edit = Some(edit);
    for (doc, sep) in documents(manifest) {
        match edit.take_if(|_| doc_is(doc, kind, name)) {
            Some(edit) => out.push_str(
                &edit(doc)
                    .with_context(|| format!("the stored manifest's {kind} {name} has no top-level spec"))?,
            ),
            None => out.push_str(doc),
        }
        out.push_str(sep);
    }
    anyhow::ensure!(edit.is_none(), "the stored manifest has no {kind} named {name}");
    Ok(out)
}

/// The lines of a document, where its `spec:` is, where its body ends and
/// the indent of its fields.
fn spec_body(doc: &str) -> Option<(Vec<&str>, usize, usize, usize)> {
    let lines: Vec<&str> = doc.split_inclusive('\n').collect();
    let spec = lines.iter().position(|l| l.trim_end() == "spec:")?;
    let body_end = lines[spec + 1..]
        .iter()
        .position(|l| !l.starts_with(' ') && !l.trim().is_empty())
        .map_or(lines.len(), |p| spec + 1 + p);
    let indent = lines[spec + 1..body_end]
        .iter()
        .find(|l| !l.trim().is_empty())
        .map_or(2, |l| l.len() - l.trim_start().len());
    Some((lines, spec, body_end, indent))
}

/// Removes one top-level field of an object's `spec` (the chart renders no
/// `replicas:` when the values leave it to an HPA), leaving every other
/// byte alone.
pub fn remove_spec_field(manifest: &str, kind: &str, name: &str, field: &str) -> Result<String> {
    edit_object(manifest, kind, name, |doc| drop_field(doc, field))
}

/// `doc` without the `spec` field `field` (the line at spec's own indent).
fn drop_field(doc: &str, field: &str) -> Option<String> {
    let (lines, spec, body_end, indent) = spec_body(doc)?;
    let key = format!("{}{field}:", " ".repeat(indent));
    Some(
        lines
            .iter()
            .enumerate()
            .filter(|(i, l)| !(*i > spec && *i < body_end && l.starts_with(&key)))
            .map(|(_, l)| *l)
            .collect(),
    )
}

fn doc_is(doc: &str, kind: &str, name: &str) -> bool {
    let top = |key: &str| {
        doc.lines().find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    if top("kind:").as_deref() != Some(kind) {
        return false;
    }
    // metadata.name is the first `  name:` line after `metadata:`.
    let mut in_meta = false;
    for line in doc.lines() {
        if line.starts_with("metadata:") {
            in_meta = true;
            continue;
        }
        if in_meta {
            if !line.starts_with(' ') && !line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("  name:") {
                return v.trim().trim_matches('"') == name;
            }
        }
    }
    false
}

fn rewrite_count(doc: &str, field: &str, n: u32) -> Option<String> {
    let (lines, spec, body_end, indent) = spec_body(doc)?;
    let key = format!("{}{field}:", " ".repeat(indent));
    let new_line = format!("{key} {n}\n");
    let mut out = String::with_capacity(doc.len() + new_line.len());
    match lines[spec + 1..body_end].iter().position(|l| l.starts_with(&key)) {
        Some(p) => {
            for (i, l) in lines.iter().enumerate() {
                out.push_str(if i == spec + 1 + p { &new_line } else { l });
            }
        }
        None => {
            for (i, l) in lines.iter().enumerate() {
                out.push_str(l);
                if i == spec {
                    out.push_str(&new_line);
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/rendered/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).expect("fixture exists")
    }

    #[test]
    fn reads_the_milvus_config_files_of_the_chart() {
        let layers = milvus_config_layers(&fixture("c-querynode3-datanode2.yaml"));
        let files: Vec<&str> = layers.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(files, ["default.yaml", "user.yaml"]);
        assert_eq!(layers[0].1["queryNode"]["port"], 21123);
        // The chart's user.yaml is all comments until extraConfigFiles says more.
        assert!(layers[1].1.is_null(), "{:?}", layers[1].1);
        let custom = "kind: ConfigMap\ndata:\n  default.yaml: |\n    common: {gracefulStopTimeout: 60}\n  user.yaml: |\n    queryNode:\n      gracefulStopTimeout: 90\n";
        let layers = milvus_config_layers(custom);
        assert_eq!(layers[1].1["queryNode"]["gracefulStopTimeout"], 90);
        assert!(milvus_config_layers("kind: Secret\ndata:\n  default.yaml: eA==\n").is_empty());
    }

    #[test]
    fn parses_default_render() {
        let objs = parse(&fixture("a-defaults.yaml")).expect("parses");
        let deploys: Vec<_> = objs
            .iter()
            .filter(|o| o.kind == "Deployment")
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(
            deploys,
            [
                "my-release-milvus-datanode",
                "my-release-milvus-mixcoord",
                "my-release-milvus-proxy",
                "my-release-milvus-querynode",
                "my-release-milvus-streamingnode"
            ]
        );
        let qn = objs
            .iter()
            .find(|o| o.kind == "Deployment" && o.name == "my-release-milvus-querynode")
            .expect("querynode");
        assert_eq!(qn.replicas, Some(1));
        assert_eq!(
            qn.selector.get("component").map(String::as_str),
            Some("querynode")
        );
        assert_eq!(objs.iter().filter(|o| o.kind == "StatefulSet").count(), 7);
        assert_eq!(objs.iter().filter(|o| o.kind == "Job").count(), 2);
    }

    #[test]
    fn parses_hpa_target_and_absent_replicas() {
        let objs = parse(&fixture("d2-querynode-hpa-replicas-minus1.yaml")).expect("parses");
        let hpa = objs
            .iter()
            .find(|o| o.kind == "HorizontalPodAutoscaler")
            .expect("hpa");
        assert_eq!(
            hpa.scale_target,
            Some((
                "Deployment".to_string(),
                "my-release-milvus-querynode".to_string()
            ))
        );
        let qn = objs
            .iter()
            .find(|o| o.kind == "Deployment" && o.name == "my-release-milvus-querynode")
            .expect("qn");
        assert_eq!(qn.replicas, None);
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value_like_helm() {
        let manifest = "---\nkind: Deployment\nmetadata:\n  name: q\n  labels:\n    component: querynode\n    component: custom\nspec:\n  replicas: 2\n";
        let objects = parse(manifest).expect("Helm installs this");
        assert_eq!(objects[0].labels["component"], "custom");
        assert_eq!(objects[0].replicas, Some(2));
    }

    #[test]
    fn parse_errors_quote_no_neighbouring_lines() {
        let manifest =
            "---\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\nspec: [unclosed\n";
        let err = format!("{:#}", parse(manifest).expect_err("invalid YAML"));
        assert!(err.contains("of the stored manifest is not valid YAML"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn set_replicas_changes_exactly_one_line() {
        let before = fixture("a-defaults.yaml");
        let after = set_replicas(&before, "Deployment", "my-release-milvus-querynode", 3).expect("edits");
        let after = set_replicas(&after, "Deployment", "my-release-milvus-datanode", 2).expect("edits");
        // The chart itself renders exactly this for queryNode=3, dataNode=2.
        assert_eq!(after, fixture("c-querynode3-datanode2.yaml"));
    }

    #[test]
    fn set_replicas_inserts_when_absent() {
        let before = fixture("d2-querynode-hpa-replicas-minus1.yaml");
        let after = set_replicas(&before, "Deployment", "my-release-milvus-querynode", 2).expect("edits");
        let qn = parse(&after)
            .expect("parses")
            .into_iter()
            .find(|o| o.kind == "Deployment" && o.name == "my-release-milvus-querynode")
            .expect("qn");
        assert_eq!(qn.replicas, Some(2));
        assert_eq!(after.len(), before.len() + "  replicas: 2\n".len());
    }

    #[test]
    fn hpa_bounds_change_exactly_their_lines() {
        let before = fixture("d-querynode-hpa.yaml");
        let hpa = "my-release-milvus-querynode-hpa";
        let after = set_spec_count(&before, "HorizontalPodAutoscaler", hpa, "minReplicas", 2).expect("edits");
        let after = set_spec_count(&after, "HorizontalPodAutoscaler", hpa, "maxReplicas", 10).expect("edits");
        let changed: Vec<(&str, &str)> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [
                ("  minReplicas: 1", "  minReplicas: 2"),
                ("  maxReplicas: 5", "  maxReplicas: 10")
            ]
        );
        assert_eq!(before.lines().count(), after.lines().count());
    }

    #[test]
    fn set_replicas_unknown_workload_is_an_error() {
        let err = set_replicas(&fixture("a-defaults.yaml"), "Deployment", "nope", 1).unwrap_err();
        assert!(err.to_string().contains("no Deployment named nope"));
    }
}
