//! kubectl's plugin completion protocol: `kubectl_complete-milvus` run the
//! way kubectl runs it, and through the real `kubectl __complete`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use testbed::seed::Scenario;

/// A PATH dir holding only the plugin (as built for the tests) and the shim.
fn bin_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(PLUGIN, dir.join("kubectl-milvus")).unwrap();
    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kubectl_complete-milvus");
    std::fs::copy(&shim, dir.join("kubectl_complete-milvus")).unwrap();
    (tmp, dir)
}

fn env_for(c: &mut Command, dir: &Path) {
    c.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
        .env("HOME", dir.parent().unwrap())
        .env("KUBECONFIG", bed().admin_kubeconfig());
}

/// Candidates (without descriptions) and the directive, from the protocol text.
fn parse(out: &str) -> (Vec<String>, u32) {
    let mut lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    let last = lines.pop().expect("a directive line");
    let directive = last
        .strip_prefix(':')
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    (
        lines
            .iter()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect(),
        directive,
    )
}

/// `kubectl_complete-milvus WORDS…` as kubectl runs it.
fn shim(dir: &Path, words: &[&str]) -> (Vec<String>, u32) {
    let mut c = Command::new(dir.join("kubectl_complete-milvus"));
    env_for(&mut c, dir);
    let r = run(c.args(words));
    assert_eq!(r.code, 0, "{words:?}: {}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stderr, "",
        "nothing on stderr (kubectl shows it in the terminal)"
    );
    parse(&r.stdout)
}

#[test]
fn static_words_subcommands_flags_and_values() {
    let (_tmp, dir) = bin_dir();
    let (subs, d) = shim(&dir, &[""]);
    assert_eq!(subs, ["status", "plan", "scale", "version", "completion"]);
    assert_eq!(d, 4);
    assert_eq!(shim(&dir, &["sc"]).0, ["scale"]);

    let (flags, d) = shim(&dir, &["status", "-"]);
    for f in [
        "-n",
        "--namespace",
        "-A",
        "--all-namespaces",
        "-o",
        "--output",
        "--kubeconfig",
        "--context",
    ] {
        assert!(flags.iter().any(|x| x == f), "{f} not in {flags:?}");
    }
    assert_eq!(d, 4);
    // Flags among the words reach the plugin untouched (`-h` is not help).
    assert_eq!(shim(&dir, &["-n", "x", "-h"]).0, ["-h"]);
    assert_eq!(shim(&dir, &["scale", "r", "--dry"]).0, ["--dry-run"]);
    assert_eq!(
        shim(&dir, &["status", "-o", ""]).0,
        ["table", "wide", "json", "yaml"]
    );
    assert_eq!(
        shim(&dir, &["completion", ""]).0,
        ["bash", "elvish", "fish", "powershell", "zsh"]
    );
    // The kubeconfig's contexts.
    let (contexts, _) = shim(&dir, &["--context", ""]);
    assert!(!contexts.is_empty());
}

#[test]
fn cluster_words_releases_components_and_namespaces() {
    let ns = namespace("cmp");
    let ns = ns.name();
    seed(ns, Scenario::Defaults, Default::default());
    let (_tmp, dir) = bin_dir();
    let admin = bed().admin_kubeconfig().display().to_string();

    let (releases, d) = shim(&dir, &["status", "-n", ns, ""]);
    assert_eq!((releases, d), (vec!["my-release".to_string()], 4));
    let (releases, _) = shim(&dir, &["--kubeconfig", &admin, "status", "--namespace", ns, "my"]);
    assert_eq!(releases, ["my-release"]);
    // Not in the default namespace.
    assert!(shim(&dir, &["plan", "my-r"]).0.is_empty());

    let (workers, d) = shim(&dir, &["-n", ns, "scale", "my-release", ""]);
    assert_eq!(d, 6, "NoSpace|NoFileComp after `COMPONENT=`");
    for w in ["queryNode=", "dataNode="] {
        assert!(workers.iter().any(|x| x == w), "{w} not in {workers:?}");
    }
    for not in ["mixCoordinator=", "etcd=", "minio="] {
        assert!(!workers.iter().any(|x| x == not), "{not} offered: {workers:?}");
    }
    // Components already changed are not offered again.
    let (rest, _) = shim(&dir, &["plan", "my-release", "-n", ns, "queryNode=2", ""]);
    assert!(
        !rest.iter().any(|x| x == "queryNode=") && rest.iter().any(|x| x == "dataNode="),
        "{rest:?}"
    );

    let (namespaces, d) = shim(&dir, &["status", "-n", ""]);
    assert!(namespaces.iter().any(|x| x == ns), "{ns} not in {namespaces:?}");
    assert_eq!(d, 4);

    // A release that is not there, or no cluster: only the directive.
    assert_eq!(shim(&dir, &["scale", "-n", ns, "nope", ""]), (vec![], 6));
    assert_eq!(
        shim(&dir, &["status", "--kubeconfig", "/nonexistent", ""]),
        (vec![], 4)
    );
}

/// `Milvus` resources of the Milvus Operator are offered beside Helm
/// releases, with their worker components by the resource's spec keys.
#[test]
fn cluster_words_include_milvus_operator_resources() {
    let ns = namespace("cmp-op");
    let ns = ns.name();
    seed_operator(
        ns,
        testbed::operator::OperatorSample::ClusterDefault,
        testbed::operator::OperatorSeedOptions {
            name: Some("vectors".to_string()),
            ..Default::default()
        },
    );
    let (_tmp, dir) = bin_dir();

    let (names, _) = shim(&dir, &["status", "-n", ns, ""]);
    assert_eq!(names, ["vectors"]);
    let (workers, d) = shim(&dir, &["scale", "-n", ns, "vectors", ""]);
    assert_eq!(d, 6);
    for w in ["queryNode=", "dataNode=", "proxy="] {
        assert!(workers.iter().any(|x| x == w), "{w} not in {workers:?}");
    }
    assert!(
        !workers.iter().any(|x| x.contains("Coord")),
        "no coordinators: {workers:?}"
    );
    // Named by its label, query nodes count as already changed.
    let (rest, _) = shim(&dir, &["plan", "vectors", "-n", ns, "querynode=2", ""]);
    assert!(
        !rest.iter().any(|x| x == "queryNode=") && rest.iter().any(|x| x == "dataNode="),
        "{rest:?}"
    );
}

#[test]
fn real_kubectl_calls_the_shim() {
    let ns = namespace("cmpk");
    let ns = ns.name();
    seed(ns, Scenario::Defaults, Default::default());
    let (_tmp, dir) = bin_dir();
    let kubectl = |words: &[&str]| {
        let mut c = Command::new("/usr/bin/kubectl");
        env_for(&mut c, &dir);
        let r = run(c.arg("__complete").arg("milvus").args(words));
        assert_eq!(r.code, 0, "{words:?}: {}{}", r.stdout, r.stderr);
        parse(&r.stdout)
    };
    let (subs, _) = kubectl(&["st"]);
    assert_eq!(subs, ["status"]);
    let (all, _) = kubectl(&[""]);
    assert!(
        all.iter().any(|s| s == "status") && all.iter().any(|s| s == "scale"),
        "{all:?}"
    );
    let (releases, _) = kubectl(&["status", "-n", ns, ""]);
    assert_eq!(releases, ["my-release"]);
    let (workers, d) = kubectl(&["scale", "my-release", "-n", ns, "q"]);
    assert_eq!((workers, d), (vec!["queryNode=".to_string()], 6));
}
