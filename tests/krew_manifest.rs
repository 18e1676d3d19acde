//! The krew manifest (`plugin-manifest/milvus.yaml`) against every rule of
//! krew-index's validator (`internal/index/validation/validate.go` and
//! `cmd/validate-krew-manifest`), and the validator against broken copies.

use std::path::Path;

use serde_json::{Value, json};

/// The os/arch pairs krew-index accepts (`allPlatforms()`).
const SUPPORTED: &[(&str, &str)] = &[
    ("windows", "386"),
    ("windows", "amd64"),
    ("windows", "arm64"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

/// The platforms we ship.
const REQUIRED: &[(&str, &str)] = &[
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "amd64"),
];

const LICENSE_NAMES: &[&str] = &["license", "license.txt", "license.md", "copying", "copying.txt"];

fn manifest_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-manifest/milvus.yaml")
}

pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read manifest");
    serde_saphyr::from_str(&text).expect("manifest is YAML")
}

fn is_word_or_dash(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_windows_reserved(s: &str) -> bool {
    let up = s.to_ascii_uppercase();
    matches!(up.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((up.starts_with("COM") || up.starts_with("LPT"))
            && up.len() == 4
            && matches!(up.as_bytes()[3], b'1'..=b'9'))
}

/// `v` + strict semver (`k8s.io/apimachinery` `ParseSemantic`).
fn is_krew_semver(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let (rest, build) = match rest.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (rest, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let numeric =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|i| ident(i) && (!i.chars().all(|c| c.is_ascii_digit()) || numeric(i)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Does a LabelSelector select these labels? (`matchLabels` and
/// `matchExpressions` with In/NotIn/Exists/DoesNotExist.)
fn selects(selector: &Value, os: &str, arch: &str) -> bool {
    let label = |k: &str| match k {
        "os" => Some(os),
        "arch" => Some(arch),
        _ => None,
    };
    let labels_ok = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let have = e["key"].as_str().and_then(label);
            let values: Vec<&str> = e["values"]
                .as_array()
                .map_or(Vec::new(), |v| v.iter().filter_map(Value::as_str).collect());
            match e["operator"].as_str() {
                Some("In") => have.is_some_and(|h| values.contains(&h)),
                Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
                Some("Exists") => have.is_some(),
                Some("DoesNotExist") => have.is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

/// Where krew puts a `files` entry: into `to` when `to` is a directory
/// (here: `.` or ending in `/`), else at `to`.
fn destination(from: &str, to: &str) -> String {
    let base = from.rsplit('/').next().unwrap_or(from);
    if to == "." {
        base.to_string()
    } else if let Some(dir) = to.strip_suffix('/') {
        format!("{dir}/{base}")
    } else {
        to.to_string()
    }
}

/// Is `p` a clean relative path that stays inside the install directory?
fn inside(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && !p.contains('\\') && p.split('/').all(|c| c != "..")
}

fn clean(p: &str) -> bool {
    p == "." || (!p.is_empty() && p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// krew-index's checks for the manifest stored as `file_name`; every
/// violation, as text.
pub fn validate(file_name: &str, m: &Value, cargo_version: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let mut err = |s: String| errs.push(s);

    let Some(stem) = file_name.strip_suffix(".yaml") else {
        return vec![format!("manifest file {file_name} must end in .yaml")];
    };
    if m["apiVersion"] != "krew.googlecontainertools.github.com/v1alpha2" {
        err(format!("wrong apiVersion {}", m["apiVersion"]));
    }
    if m["kind"] != "Plugin" {
        err(format!("wrong kind {}", m["kind"]));
    }
    let name = m["metadata"]["name"].as_str().unwrap_or_default();
    if !is_word_or_dash(name) {
        err(format!("invalid plugin name {name:?}"));
    }
    if is_windows_reserved(name) {
        err(format!("plugin name {name:?} is a reserved name on Windows"));
    }
    if name != stem {
        err(format!(
            "plugin name {name:?} differs from the file name {file_name}"
        ));
    }

    let spec = &m["spec"];
    let short = spec["shortDescription"].as_str().unwrap_or_default();
    if short.is_empty() {
        err("shortDescription is empty".into());
    }
    if short.contains('\n') || short.contains('\r') {
        err("shortDescription has a line break".into());
    }
    if short.chars().count() > 50 {
        err(format!(
            "shortDescription is {} chars; `krew search` cuts it at 50",
            short.chars().count()
        ));
    }
    let version = spec["version"].as_str().unwrap_or_default();
    if !is_krew_semver(version) {
        err(format!("version {version:?} is not v + semver"));
    }
    if version != format!("v{cargo_version}") {
        err(format!(
            "version {version:?} is not v{cargo_version} (Cargo.toml)"
        ));
    }

    let platforms = spec["platforms"].as_array().cloned().unwrap_or_default();
    if platforms.is_empty() {
        err("no platforms".into());
    }
    for (i, p) in platforms.iter().enumerate() {
        let at = format!("platform {i}");
        if p["uri"].as_str().unwrap_or_default().is_empty() {
            err(format!("{at}: uri missing"));
        }
        if !is_sha256(p["sha256"].as_str().unwrap_or_default()) {
            err(format!("{at}: sha256 {} is not 64 lowercase hex", p["sha256"]));
        }
        let bin = p["bin"].as_str().unwrap_or_default();
        if bin.is_empty() {
            err(format!("{at}: bin missing"));
        } else if !inside(bin) {
            err(format!("{at}: bin {bin:?} is outside the install directory"));
        }
        let files = match &p["files"] {
            Value::Null => None,
            Value::Array(f) => Some(f.clone()),
            other => {
                err(format!("{at}: files is not a list: {other}"));
                Some(Vec::new())
            }
        };
        let mut installed = Vec::new();
        match &files {
            Some(f) if f.is_empty() => err(format!("{at}: files is present but empty")),
            Some(f) => {
                for op in f {
                    let from = op["from"].as_str().unwrap_or_default();
                    let to = op["to"].as_str().unwrap_or_default();
                    if from.is_empty() || to.is_empty() {
                        err(format!("{at}: a files entry lacks from/to: {op}"));
                        continue;
                    }
                    if !clean(to) || !inside(to) {
                        err(format!(
                            "{at}: files `to` {to:?} is not a clean path inside the install dir"
                        ));
                    }
                    installed.push(destination(from, to));
                }
            }
            None => err(format!(
                "{at}: no files list (we list the binary, shim and LICENSE)"
            )),
        }
        if !bin.is_empty() && files.is_some() && !installed.iter().any(|d| d == bin) {
            err(format!(
                "{at}: bin {bin:?} is not installed by files {installed:?}"
            ));
        }
        if files.is_some()
            && !installed.iter().any(|d| {
                LICENSE_NAMES.contains(&d.rsplit('/').next().unwrap_or(d).to_ascii_lowercase().as_str())
            })
        {
            err(format!(
                "{at}: no LICENSE among the installed files {installed:?}"
            ));
        }

        let sel = &p["selector"];
        match sel.as_object() {
            None => err(format!("{at}: selector missing")),
            Some(o) if o.is_empty() => err(format!("{at}: selector empty")),
            Some(o) => {
                for (k, v) in o {
                    if k != "matchLabels" && k != "matchExpressions" {
                        err(format!("{at}: selector has {k}"));
                    }
                    if v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty())
                    {
                        err(format!("{at}: selector {k} is present but empty"));
                    }
                }
                let keys: Vec<String> = sel["matchLabels"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
                    .into_iter()
                    .chain(
                        sel["matchExpressions"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|e| e["key"].as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_else(Vec::new),
                    )
                    .collect();
                for k in keys {
                    if k != "os" && k != "arch" {
                        err(format!("{at}: selector key {k:?} is not os or arch"));
                    }
                }
                if !SUPPORTED.iter().any(|(os, arch)| selects(sel, os, arch)) {
                    err(format!("{at}: selector matches no supported os/arch"));
                }
            }
        }
    }
    for (os, arch) in SUPPORTED {
        let n = platforms
            .iter()
            .filter(|p| p["selector"].is_object() && selects(&p["selector"], os, arch))
            .count();
        if n > 1 {
            err(format!("{os}/{arch} is selected by {n} platforms"));
        }
    }
    for (os, arch) in REQUIRED {
        if !platforms
            .iter()
            .any(|p| p["selector"].is_object() && selects(&p["selector"], os, arch))
        {
            err(format!("no platform for {os}/{arch}"));
        }
    }
    errs
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn checked_in_manifest_passes_every_rule() {
    let m = load(&manifest_path());
    assert_eq!(validate("milvus.yaml", &m, VERSION), Vec::<String>::new());
    // What we promise beyond the validator.
    let spec = &m["spec"];
    assert_eq!(
        spec["homepage"],
        "https://github.com/kubectl-milvus/kubectl-milvus"
    );
    for word in ["status", "plan", "scale"] {
        assert!(
            spec["description"]
                .as_str()
                .unwrap()
                .contains(&format!("kubectl milvus {word}")),
            "{word}"
        );
    }
    let caveats = spec["caveats"].as_str().unwrap();
    for verb in [
        "secrets",
        "configmaps",
        "deployments",
        "pods",
        "horizontalpodautoscalers",
        "patch deployments",
        "watch",
        "leases",
        "milvuses",
    ] {
        assert!(caveats.contains(verb), "caveats lack {verb}");
    }
    for p in spec["platforms"].as_array().unwrap() {
        let labels = p["selector"]["matchLabels"].as_object().unwrap();
        assert_eq!(p["selector"].as_object().unwrap().len(), 1, "matchLabels only");
        let (os, arch) = (labels["os"].as_str().unwrap(), labels["arch"].as_str().unwrap());
        let uri = p["uri"].as_str().unwrap();
        let prefix = format!(
            "https://github.com/kubectl-milvus/kubectl-milvus/releases/download/v{VERSION}/kubectl-milvus-"
        );
        assert!(uri.starts_with(&prefix), "{uri}");
        let windows = os == "windows";
        assert!(uri.ends_with(if windows { ".zip" } else { ".tar.gz" }), "{uri}");
        let exe = if windows { ".exe" } else { "" };
        assert_eq!(p["bin"], format!("kubectl-milvus{exe}"));
        let froms: Vec<&str> = p["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        let shim = if windows {
            "kubectl_complete-milvus.cmd"
        } else {
            "kubectl_complete-milvus"
        };
        assert_eq!(
            froms,
            [format!("kubectl-milvus{exe}").as_str(), shim, "LICENSE"],
            "{os}/{arch}"
        );
        // The shim and license shipped in the archive exist in the repo.
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(shim)
                .is_file()
        );
    }
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join("LICENSE").is_file());
}

#[test]
fn krew_release_bot_template_matches_the_manifest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let template = std::fs::read_to_string(root.join(".krew.yaml")).unwrap();
    // Render it the way the bot does for tag v<version>, with a fake sha.
    let tag = format!("v{VERSION}");
    let mut rendered = String::new();
    for line in template.lines() {
        if let Some(start) = line.find("{{addURIAndSha \"") {
            let url = &line[start + "{{addURIAndSha \"".len()..];
            let url = &url[..url.find('"').unwrap()].replace("{{ .TagName }}", &tag);
            let indent = &line[..start];
            rendered.push_str(&format!(
                "{indent}uri: {url}\n{indent}sha256: {}\n",
                "a".repeat(64)
            ));
        } else {
            rendered.push_str(&line.replace("{{ .TagName }}", &tag));
            rendered.push('\n');
        }
    }
    assert!(!rendered.contains("{{"), "{rendered}");
    let rendered: Value = serde_saphyr::from_str(&rendered).unwrap();
    assert_eq!(validate("milvus.yaml", &rendered, VERSION), Vec::<String>::new());
    // Same manifest apart from the sha256 values.
    let mut checked_in = load(&manifest_path());
    for p in checked_in["spec"]["platforms"].as_array_mut().unwrap() {
        p["sha256"] = json!("a".repeat(64));
    }
    pretty_assertions::assert_eq!(rendered, checked_in);
}

/// One broken copy per rule: each must be caught.
#[test]
fn validator_rejects_each_broken_rule() {
    let good = load(&manifest_path());
    // (the rule broken, the validator's message for it, the breakage)
    type Mutation = (&'static str, &'static str, fn(&mut Value));
    let cases: Vec<Mutation> = vec![
        ("wrong apiVersion", "wrong apiVersion", |m| {
            m["apiVersion"] = json!("krew.googlecontainertools.github.com/v1alpha1")
        }),
        ("wrong kind", "wrong kind", |m| m["kind"] = json!("Plugins")),
        (
            "name differs from file",
            "plugin name \"milvus2\" differs from the file name milvus.yaml",
            |m| m["metadata"]["name"] = json!("milvus2"),
        ),
        ("name with a dot", "invalid plugin name \"mil.vus\"", |m| {
            m["metadata"]["name"] = json!("mil.vus")
        }),
        ("empty shortDescription", "shortDescription is empty", |m| {
            m["spec"]["shortDescription"] = json!("")
        }),
        (
            "shortDescription newline",
            "shortDescription has a line break",
            |m| m["spec"]["shortDescription"] = json!("Inspect\nand scale"),
        ),
        ("shortDescription too long", "`krew search` cuts it at 50", |m| {
            m["spec"]["shortDescription"] =
                json!("Inspect and safely scale Helm-installed Milvus clusters now")
        }),
        ("version without v", "is not v + semver", |m| {
            m["spec"]["version"] = json!(VERSION)
        }),
        (
            "version not strict semver",
            "version \"v0.1\" is not v + semver",
            |m| m["spec"]["version"] = json!("v0.1"),
        ),
        (
            "version leading zero",
            "version \"v0.01.0\" is not v + semver",
            |m| m["spec"]["version"] = json!("v0.01.0"),
        ),
        ("version not Cargo's", "version \"v9.9.9\" is not v", |m| {
            m["spec"]["version"] = json!("v9.9.9")
        }),
        ("no platforms", "no platforms", |m| {
            m["spec"]["platforms"] = json!([])
        }),
        ("uri missing", "platform 0: uri missing", |m| {
            m["spec"]["platforms"][0].as_object_mut().unwrap().remove("uri");
        }),
        ("sha256 uppercase", "is not 64 lowercase hex", |m| {
            m["spec"]["platforms"][0]["sha256"] = json!("A".repeat(64))
        }),
        (
            "sha256 short",
            "platform 0: sha256 \"ab12\" is not 64 lowercase hex",
            |m| m["spec"]["platforms"][0]["sha256"] = json!("ab12"),
        ),
        ("bin missing", "platform 0: bin missing", |m| {
            m["spec"]["platforms"][0].as_object_mut().unwrap().remove("bin");
        }),
        (
            "bin not installed",
            "platform 0: bin \"kubectl-milvus2\" is not installed by files",
            |m| m["spec"]["platforms"][0]["bin"] = json!("kubectl-milvus2"),
        ),
        (
            "bin outside install dir",
            "platform 0: bin \"../kubectl-milvus\" is outside the install directory",
            |m| m["spec"]["platforms"][0]["bin"] = json!("../kubectl-milvus"),
        ),
        ("files empty", "platform 0: files is present but empty", |m| {
            m["spec"]["platforms"][0]["files"] = json!([])
        }),
        (
            "files from empty",
            "platform 0: a files entry lacks from/to",
            |m| m["spec"]["platforms"][0]["files"][1]["from"] = json!(""),
        ),
        (
            "files to missing",
            "platform 0: a files entry lacks from/to",
            |m| {
                m["spec"]["platforms"][0]["files"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("to");
            },
        ),
        (
            "files to unclean",
            "platform 0: files `to` \"./\" is not a clean path inside the install dir",
            |m| m["spec"]["platforms"][0]["files"][1]["to"] = json!("./"),
        ),
        (
            "LICENSE not installed",
            "platform 0: no LICENSE among the installed files",
            |m| {
                m["spec"]["platforms"][0]["files"].as_array_mut().unwrap().pop();
            },
        ),
        ("selector missing", "platform 0: selector missing", |m| {
            m["spec"]["platforms"][0]
                .as_object_mut()
                .unwrap()
                .remove("selector");
        }),
        ("selector empty", "platform 0: selector empty", |m| {
            m["spec"]["platforms"][0]["selector"] = json!({})
        }),
        (
            "matchLabels present but empty",
            "platform 0: selector matchLabels is present but empty",
            |m| m["spec"]["platforms"][0]["selector"]["matchLabels"] = json!({}),
        ),
        (
            "selector key not os/arch",
            "platform 0: selector key \"libc\" is not os or arch",
            |m| m["spec"]["platforms"][0]["selector"]["matchLabels"]["libc"] = json!("musl"),
        ),
        (
            "selector matches no supported pair",
            "platform 0: selector matches no supported os/arch",
            |m| m["spec"]["platforms"][0]["selector"]["matchLabels"]["arch"] = json!("s390x"),
        ),
        ("overlapping platforms", "is selected by 2 platforms", |m| {
            let dup = m["spec"]["platforms"][0].clone();
            m["spec"]["platforms"].as_array_mut().unwrap().push(dup);
        }),
        (
            "overlap through an os-only selector",
            "is selected by 2 platforms",
            |m| {
                m["spec"]["platforms"][4]["selector"] = json!({"matchLabels": {"os": "linux"}});
            },
        ),
        ("required platform missing", "no platform for ", |m| {
            m["spec"]["platforms"].as_array_mut().unwrap().remove(4);
        }),
    ];
    for (rule, message, mutate) in cases {
        let mut broken = good.clone();
        mutate(&mut broken);
        let errs = validate("milvus.yaml", &broken, VERSION);
        // Caught by its own rule, not by some other one it happens to break.
        assert!(
            errs.iter().any(|e| e.contains(message)),
            "{rule}: expected an error containing {message:?}, got {errs:?}"
        );
    }
    // Rules on the name and the file name.
    assert_eq!(
        validate("milvus.yml", &good, VERSION),
        ["manifest file milvus.yml must end in .yaml"]
    );
    assert_eq!(
        validate("other.yaml", &good, VERSION),
        ["plugin name \"milvus\" differs from the file name other.yaml"]
    );
    for reserved in ["CON", "nul", "com1", "LPT9"] {
        let mut m = good.clone();
        m["metadata"]["name"] = json!(reserved);
        let errs = validate(&format!("{reserved}.yaml"), &m, VERSION);
        assert!(
            errs.iter()
                .any(|e| e == &format!("plugin name {reserved:?} is a reserved name on Windows")),
            "{reserved}: {errs:?}"
        );
    }
}

#[test]
fn semver_and_selector_helpers() {
    for ok in ["v0.1.0", "v1.2.3-rc.1", "v1.0.0+build.5", "v10.20.30"] {
        assert!(is_krew_semver(ok), "{ok}");
    }
    for bad in [
        "0.1.0",
        "v1.2",
        "v1.2.3.4",
        "v01.2.3",
        "v1.2.3-",
        "v1.2.3-01",
        "V1.2.3",
    ] {
        assert!(!is_krew_semver(bad), "{bad}");
    }
    let sel = json!({"matchExpressions": [{"key": "os", "operator": "In", "values": ["linux", "darwin"]}]});
    assert!(
        selects(&sel, "linux", "arm")
            && selects(&sel, "darwin", "amd64")
            && !selects(&sel, "windows", "amd64")
    );
    assert!(!is_windows_reserved("com0") && !is_windows_reserved("milvus") && is_windows_reserved("Aux"));
}
