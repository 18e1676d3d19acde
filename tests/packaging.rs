//! `scripts/dist.sh` end to end: package, install the archive the way krew
//! does, and run the plugin through the real kubectl against the test bed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;
use testbed::seed::Scenario;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory the test binaries were built in (…/debug/kubectl-milvus → …).
fn cargo_target_dir() -> PathBuf {
    Path::new(PLUGIN)
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn host_target() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host line")
        .to_string()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The platform entry of the manifest for linux/amd64 etc.
fn platform<'m>(manifest: &'m Value, os: &str, arch: &str) -> &'m Value {
    manifest["spec"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["selector"]["matchLabels"]["os"] == os && p["selector"]["matchLabels"]["arch"] == arch)
        .unwrap_or_else(|| panic!("no {os}/{arch} platform"))
}

/// krew's install: unpack into a scratch dir, apply `files` (from → to,
/// `to` being a directory when it is one), then link `bin` into krew's bin.
fn krew_install(archive: &Path, platform: &Value, krew_root: &Path) -> PathBuf {
    let unpacked = krew_root.join("tmp/unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(st.success(), "untar");
    let install = krew_root.join(format!("store/milvus/v{VERSION}"));
    std::fs::create_dir_all(&install).unwrap();
    for op in platform["files"].as_array().unwrap() {
        let from = unpacked.join(op["from"].as_str().unwrap());
        let to = install.join(op["to"].as_str().unwrap());
        let dest = if to.is_dir() {
            to.join(from.file_name().unwrap())
        } else {
            to
        };
        assert!(from.is_file(), "archive lacks {}", from.display());
        std::fs::rename(&from, &dest).unwrap();
    }
    let bin = install.join(platform["bin"].as_str().unwrap());
    assert!(
        bin.starts_with(&install) && bin.is_file(),
        "bin {} not installed",
        bin.display()
    );
    let bin_dir = krew_root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(&bin, bin_dir.join("kubectl-milvus")).unwrap();
    bin_dir
}

/// kubectl with only krew's bin dir and /usr/bin on PATH (no stray plugins).
fn kubectl_with(bin_dir: &Path, home: &Path) -> Command {
    let mut c = Command::new("/usr/bin/kubectl");
    c.env_clear()
        .env("PATH", format!("{}:/usr/bin", bin_dir.display()))
        .env("HOME", home)
        .env("KUBECONFIG", bed().admin_kubeconfig());
    c
}

#[test]
fn dist_archive_installs_like_krew_and_runs_under_kubectl() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    // `--debug` reuses the test build's cache: a release build takes minutes.
    let r = run(Command::new(repo().join("scripts/dist.sh"))
        .arg("--debug")
        .env("CARGO_TARGET_DIR", cargo_target_dir())
        .env("DIST_DIR", &dist)
        .env_remove("TARGET")
        .env_remove("KUBECTL_MILVUS_BIN"));
    assert_eq!(r.code, 0, "dist.sh failed:\n{}{}", r.stdout, r.stderr);
    let target = host_target();
    let archive = dist.join(format!("kubectl-milvus-{target}.tar.gz"));
    assert!(
        r.stdout.contains(&format!("wrote {}", archive.display())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("wrote {}", dist.join("milvus.yaml").display())),
        "{}",
        r.stdout
    );

    // The archive holds exactly the binary, the completion shim and LICENSE.
    let list = Command::new("tar").arg("-tzf").arg(&archive).output().unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(names, ["LICENSE", "kubectl-milvus", "kubectl_complete-milvus"]);

    // The generated manifest: valid YAML, host platform filled in.
    let text = std::fs::read_to_string(dist.join("milvus.yaml")).unwrap();
    let manifest: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(manifest["spec"]["version"], format!("v{VERSION}"));
    let (os, arch) = match target.split('-').next().unwrap() {
        "x86_64" => ("linux", "amd64"),
        "aarch64" => ("linux", "arm64"),
        other => panic!("test runs on linux x86_64/aarch64, not {other}"),
    };
    let entry = platform(&manifest, os, arch);
    assert_eq!(
        entry["sha256"],
        sha256_of(&archive),
        "manifest sha256 is the archive's"
    );
    assert_eq!(
        entry["uri"],
        format!(
            "https://github.com/kubectl-milvus/kubectl-milvus/releases/download/v{VERSION}/kubectl-milvus-{target}.tar.gz"
        )
    );
    // Apart from that entry, the checked-in manifest unchanged.
    let mut checked_in: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(repo().join("plugin-manifest/milvus.yaml")).unwrap())
            .unwrap();
    let mut generated = manifest.clone();
    for m in [&mut checked_in, &mut generated] {
        for p in m["spec"]["platforms"].as_array_mut().unwrap() {
            if p["selector"]["matchLabels"]["os"] == os && p["selector"]["matchLabels"]["arch"] == arch {
                p["uri"] = Value::Null;
                p["sha256"] = Value::Null;
            }
        }
    }
    pretty_assertions::assert_eq!(generated, checked_in);

    // Install as krew would and run through the real kubectl.
    let krew_root = tmp.path().join("krew");
    let bin_dir = krew_install(&archive, entry, &krew_root);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let v = run(kubectl_with(&bin_dir, &home).args(["milvus", "version"]));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains(&format!("kubectl-milvus v{VERSION}")),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("commit: "), "{}", v.stdout);
    assert!(v.stdout.contains(&format!("target: {target}")), "{}", v.stdout);
    let short = run(kubectl_with(&bin_dir, &home).args(["milvus", "--version"]));
    assert_eq!(
        (short.code, short.stdout.trim()),
        (0, format!("kubectl-milvus {VERSION}").as_str())
    );

    let list = run(kubectl_with(&bin_dir, &home).args(["plugin", "list"]));
    assert_eq!(list.code, 0, "{}{}", list.stdout, list.stderr);
    assert!(
        list.stdout
            .contains(&bin_dir.join("kubectl-milvus").display().to_string()),
        "{}",
        list.stdout
    );
    assert!(!list.stderr.contains("warning"), "{}", list.stderr);
    assert!(!list.stdout.contains("warning"), "{}", list.stdout);

    // `kubectl milvus status` against the test bed names the seeded release.
    let ns = namespace("pkg");
    seed(ns.name(), Scenario::Defaults, Default::default());
    let status = run(kubectl_with(&bin_dir, &home).args(["milvus", "status", "-n", ns.name()]));
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(status.stdout.contains("my-release"), "{}", status.stdout);
}
