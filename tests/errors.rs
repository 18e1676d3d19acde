//! Every user-facing error, provoked for real: one line on stderr, a
//! non-zero exit code, no panic, nothing changed.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use testbed::proxy::{FaultProxy, Mode};
use testbed::seed::{Scenario, SeedOptions};

fn record_secret(ns: &str, name: &str, payload: &str) {
    let ns = ns.to_string();
    let name = name.to_string();
    let payload = payload.to_string();
    bed()
        .block_on(async move {
            let client = bed().client().await.unwrap();
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {
                    "name": format!("sh.helm.release.v1.{name}.v1"),
                    "labels": {"name": name, "owner": "helm", "status": "deployed", "version": "1"}
                },
                "type": "helm.sh/release.v1",
                "stringData": {"release": payload}
            }))
            .unwrap();
            Api::<Secret>::namespaced(client, &ns)
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        })
        .unwrap();
}

#[test]
fn missing_release_names_the_ones_that_exist() {
    let ns = namespace("err-missing");
    seed(ns.name(), Scenario::Defaults, SeedOptions::default());
    let err = fails(&["status", "nope", "-n", ns.name()], 2);
    assert!(
        err.contains("\"nope\" not found") && err.contains("Milvus releases here: my-release"),
        "{err}"
    );
    let empty = namespace("err-empty");
    let err = fails(&["status", "-n", empty.name()], 2);
    assert!(
        err.contains("no Milvus Helm releases found") && err.contains("-A"),
        "{err}"
    );
    let err = fails(&["status", "nope", "-n", empty.name()], 2);
    assert!(err.contains("-n NAMESPACE"), "{err}");
}

#[test]
fn other_charts_and_corrupt_records_are_named() {
    let ns = namespace("err-records");
    let ns = ns.name();
    let mut rel: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/helm-release/release-v4-rev2-deployed-qn3-dn2.json"
    ))
    .unwrap();
    rel["name"] = json!("cache");
    rel["chart"]["metadata"]["name"] = json!("redis");
    record_secret(ns, "cache", &testbed::seed::encode_release(&rel).unwrap());
    let err = fails(&["status", "cache", "-n", ns], 2);
    assert!(err.contains("is chart \"redis\", not milvus"), "{err}");
    // Only Milvus releases are listed without RELEASE.
    let err = fails(&["status", "-n", ns], 2);
    assert!(err.contains("no Milvus Helm releases found"), "{err}");

    record_secret(ns, "broken", "H4sIAAAAbroken");
    let err = fails(&["status", "broken", "-n", ns], 1);
    assert!(
        err.contains(&format!(
            "Secret {ns}/sh.helm.release.v1.broken.v1 cannot be decoded"
        )),
        "{err}"
    );
    assert!(
        err.contains("kubectl delete secret sh.helm.release.v1.broken.v1"),
        "{err}"
    );

    // As `kubectl get -A` does, one odd record does not hide the others: a
    // namespace, -A and completion list what can be read and warn of the rest.
    seed(ns, Scenario::Defaults, SeedOptions::default());
    let warning =
        format!("warning: Helm release record Secret {ns}/sh.helm.release.v1.broken.v1 cannot be decoded");
    for args in [
        vec!["status", "-n", ns],
        vec!["status", "-A"],
        vec!["status", "-A", "-o", "json"],
    ] {
        let r = run(plugin().args(&args));
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("Release:     my-release (namespace ")
                || r.stdout.contains("\"release\": \"my-release\""),
            "{args:?}: {}",
            r.stdout
        );
        assert!(
            r.stderr.lines().any(|l| l.starts_with(&warning)),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = run(plugin().args(["__complete", "--", "status", "-n", ns, ""]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("my-release")),
        "{}",
        r.stdout
    );
    // The release named is the broken one: that fails, nothing else does.
    // Exit 1 for every command (README's table): a record the plugin cannot
    // read is trouble in the cluster, not invalid input (2) nor a safety
    // refusal (3).
    let secrets = || kubectl(&["get", "secrets", "-n", ns, "-o", "name"]);
    let before = secrets();
    for args in [
        ["scale", "broken", "queryNode=2", "-n", ns],
        ["plan", "broken", "queryNode=2", "-n", ns],
    ] {
        let err = fails(&args, 1);
        assert!(
            err.contains(&format!(
                "Helm release record Secret {ns}/sh.helm.release.v1.broken.v1 cannot be decoded"
            )) && err.contains("kubectl delete secret sh.helm.release.v1.broken.v1"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(secrets(), before, "nothing written");
}

/// Rules that can read Helm records but nothing else.
fn records_only() -> Vec<PolicyRule> {
    vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["secrets".into(), "configmaps".into()]),
        verbs: vec!["get".into(), "list".into()],
        ..Default::default()
    }]
}

#[test]
fn forbidden_says_which_verb_and_resource() {
    let ns = namespace("err-rbac");
    seed(ns.name(), Scenario::Defaults, SeedOptions::default());
    let kc = restricted(ns.name(), "records-only", records_only());
    let r = run(plugin()
        .args(["status", "my-release", "-n", ns.name()])
        .env("KUBECONFIG", &kc));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: forbidden: you cannot list "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("README"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    // With no rights at all: the first thing refused is reading Helm's records.
    let none = restricted(ns.name(), "nothing", vec![]);
    let r = run(plugin()
        .args(["status", "my-release", "-n", ns.name()])
        .env("KUBECONFIG", &none));
    assert!(r.stderr.contains("cannot list secrets"), "{}", r.stderr);
}

#[test]
fn unreachable_and_slow_servers_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("closed.kubeconfig");
    write_file(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: gone-ctx\n  context:\n    cluster: gone\n    user: u\nusers:\n- name: u\n  user: {}\ncurrent-context: gone-ctx\n",
    );
    let r = run(plugin().args(["status", "-n", "x"]).env("KUBECONFIG", &kc));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot reach the API server http://127.0.0.1:9/ (context \"gone-ctx\")"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.to_lowercase().contains("connection refused"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);

    let ns = namespace("err-slow");
    seed(ns.name(), Scenario::Defaults, SeedOptions::default());
    let proxy = FaultProxy::start(bed()).unwrap();
    proxy.set_mode(Mode::Latency(Duration::from_secs(3)));
    let r = run(plugin()
        .args(["status", "my-release", "-n", ns.name(), "--request-timeout", "1s"])
        .env("KUBECONFIG", proxy.kubeconfig()));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("did not answer within 1s"), "{}", r.stderr);
    proxy.set_mode(Mode::PassThrough);
    let r = run(plugin()
        .args(["status", "my-release", "-n", ns.name()])
        .env("KUBECONFIG", proxy.kubeconfig()));
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A KUBECONFIG list with missing files works like kubectl (they are skipped).
    let list = std::env::join_paths([
        dir.path().join("missing.kubeconfig"),
        bed().admin_kubeconfig().to_path_buf(),
    ])
    .unwrap();
    let r = run(plugin()
        .args(["status", "my-release", "-n", ns.name()])
        .env("KUBECONFIG", list));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn bad_flags_are_usage_errors() {
    let r = run(plugin().args(["status", "-o", "xml"]));
    assert_eq!(r.code, 2);
    let r = run(plugin().args(["status", "--request-timeout", "soon"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid duration"), "{}", r.stderr);
    let help = run(plugin().arg("--help"));
    assert!(help.stdout.contains("Usage: kubectl milvus"), "{}", help.stdout);
    let v = run(plugin().arg("version"));
    assert!(
        v.stdout
            .starts_with(&format!("kubectl-milvus v{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        v.stdout
    );
}

/// The Roles the README documents are exactly enough: `status` works with
/// the first, `scale` with both, and `scale` fails cleanly without the second.
#[test]
fn the_readme_rbac_is_sufficient() {
    let (status_rules, scale_rules) = readme_rules();

    let ns = namespace("err-readme-rbac");
    seed_ready(ns.name(), Scenario::QueryNode3DataNode2);
    let status_kc = restricted(ns.name(), "status", status_rules);
    let scale_kc = restricted(ns.name(), "scale", scale_rules);

    let r = run(plugin()
        .args(["status", "my-release", "-n", ns.name()])
        .env("KUBECONFIG", &status_kc));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(plugin()
        .args(["plan", "my-release", "queryNode=2", "-n", ns.name()])
        .env("KUBECONFIG", &status_kc));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(plugin()
        .args(["scale", "my-release", "queryNode=2", "-n", ns.name()])
        .env("KUBECONFIG", &status_kc));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: taking the release's lock (a Lease): forbidden: you cannot create leases.coordination.k8s.io in namespace "), "{}", r.stderr);
    let revisions = kubectl(&[
        "get",
        "secrets",
        "-n",
        ns.name(),
        "-l",
        "owner=helm",
        "-o",
        "name",
    ]);
    assert_eq!(revisions.lines().count(), 1, "a refused scale wrote nothing");

    let r = run(plugin()
        .args(["scale", "my-release", "queryNode=2", "-n", ns.name()])
        .env("KUBECONFIG", &scale_kc));
    assert_eq!(r.code, 0, "{}", r.stderr);

    // `status -w` with the status Role: its watches are allowed. Proven by
    // a change that only a working watch shows (a second snapshot with the
    // new pod), however long the machine takes, then a clean Ctrl-C.
    let watching = Watching::start(&["status", "my-release", "-n", ns.name(), "-w"], &status_kc);
    watching.wait_for("the first snapshot", |t| t.contains("\nNAME "));
    scale_deployment(ns.name(), "my-release-milvus-querynode", 3);
    watching.wait_for("a later snapshot with the third query node Running", |t| {
        t.split("Release:     ").skip(2).any(|later| {
            later
                .lines()
                .filter(|l| l.starts_with("my-release-milvus-querynode-") && l.contains(" Running "))
                .count()
                == 3
        })
    });
    let (code, stderr) = watching.interrupt();
    assert_eq!((code, stderr.as_str()), (0, ""));

    // The negative control: the same Role without `watch` ends `status -w`
    // on its own, exit 1, one line naming the verb.
    let mut no_watch = readme_rules().0;
    for rule in &mut no_watch {
        rule.verbs.retain(|v| v != "watch");
    }
    no_watch.retain(|rule| !rule.verbs.is_empty());
    let no_watch_kc = restricted(ns.name(), "status-no-watch", no_watch);
    let child = spawn_plugin(&["status", "my-release", "-n", ns.name(), "-w"], &no_watch_kc);
    let (code, _stdout, stderr) = exits_within(child, Duration::from_secs(120));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: forbidden: you cannot watch "),
        "{stderr}"
    );
}

/// `--context`, `--as` and `--as-group` behave as in kubectl.
#[test]
fn context_and_impersonation_flags() {
    let ns = namespace("err-flags");
    seed(ns.name(), Scenario::Defaults, SeedOptions::default());
    // A kubeconfig whose current context is dead, with a live one beside it.
    let admin: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(bed().admin_kubeconfig()).unwrap()).unwrap();
    let mut kc = admin.clone();
    let live_ctx = admin["current-context"].as_str().unwrap().to_string();
    kc["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}}));
    kc["contexts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "dead", "context": {"cluster": "dead", "user": admin["contexts"][0]["context"]["user"]}}));
    kc["current-context"] = json!("dead");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-contexts.kubeconfig");
    write_file(&path, &serde_json::to_string(&kc).unwrap());
    let path = path.to_str().unwrap();

    let err = fails(&["status", "--kubeconfig", path, "-n", ns.name()], 1);
    assert!(err.contains("context \"dead\""), "{err}");
    let out = ok(&[
        "status",
        "--kubeconfig",
        path,
        "--context",
        &live_ctx,
        "-n",
        ns.name(),
    ]);
    assert!(out.contains("Release:     my-release"), "{out}");
    let err = fails(
        &[
            "status",
            "--kubeconfig",
            path,
            "--context",
            "nope",
            "-n",
            ns.name(),
        ],
        1,
    );
    assert!(err.contains("cannot use context \"nope\""), "{err}");

    let who = format!("system:serviceaccount:{}:nobody", ns.name());
    let err = fails(&["status", "my-release", "-n", ns.name(), "--as", &who], 1);
    assert!(
        err.starts_with("error: forbidden: you cannot list secrets in namespace ")
            && err.contains(&format!("\"{who}\"")),
        "{err}"
    );
    // Impersonating a group with full rights works again.
    let out = ok(&[
        "status",
        "my-release",
        "-n",
        ns.name(),
        "--as",
        &who,
        "--as-group",
        "system:masters",
    ]);
    assert!(out.contains("Release:     my-release"), "{out}");
}

/// Without `watch` on pods, a step cannot be followed: `scale` says so at
/// once (not after `--timeout`) and records where it stopped.
#[test]
fn scale_without_watch_permission_stops_at_once() {
    let (_, mut rules) = readme_rules();
    for rule in &mut rules {
        if rule
            .resources
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r == "pods"))
        {
            rule.verbs.retain(|v| v != "watch");
        }
    }
    rules.retain(|rule| !rule.verbs.is_empty());
    let ns = namespace("err-no-watch");
    seed_ready(ns.name(), Scenario::QueryNode3DataNode2);
    let kc = restricted(ns.name(), "no-watch", rules);
    let r = run(plugin()
        .args([
            "scale",
            "my-release",
            "queryNode=4",
            "-n",
            ns.name(),
            "--timeout",
            "10m",
        ])
        .env("KUBECONFIG", &kc));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("forbidden: you cannot watch pods in namespace"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("recorded it as revision 2"), "{}", r.stderr);
}

/// Without the right to list a namespace's Deployments and pods, `status`
/// cannot know what runs there (an Argo CD-rendered instance has no Helm
/// record): it says so, rather than that nothing was found.
#[test]
fn status_that_cannot_read_the_live_objects_says_so() {
    let ns = namespace("err-rbac-live");
    let kc = restricted(ns.name(), "records-only-live", records_only());
    let r = run(plugin().args(["status", "-n", ns.name()]).env("KUBECONFIG", &kc));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: forbidden: you cannot list ")
            && !r.stderr.contains("no Milvus Helm releases found"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// Values may hold passwords: nothing the plugin prints — `plan` in every
/// format, `scale --dry-run`, `status`, and its refusals and errors — ever
/// shows one, even where it names the values it reads or would write.
#[test]
fn no_secret_is_printed_by_plan_or_errors() {
    let ns = namespace("err-secrets");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    const SECRET: &str = "s3cr3t-do-not-print";
    edit_revision(ns, 1, |r| {
        let config = r["config"].as_object_mut().expect("user values");
        config.insert("minio".into(), json!({"accessKey": SECRET, "secretKey": SECRET}));
        config.insert("externalS3".into(), json!({"secretAccessKey": SECRET}));
        config.insert(
            "extraConfigFiles".into(),
            json!({"user.yaml": format!("minio:\n  secretAccessKey: {SECRET}\n")}),
        );
        let query_node = config.entry("queryNode").or_insert(json!({}));
        query_node["extraEnv"] = json!([{"name": "PASSWORD", "value": SECRET}]);
    });
    let as_user = |args: &[&str]| {
        let r = run(plugin().args(args));
        assert!(
            !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
            "{args:?} printed a secret:\n{}{}",
            r.stdout,
            r.stderr
        );
        r
    };
    // Outputs that succeed.
    for args in [
        &["plan", "my-release", "queryNode=2", "-n", ns][..],
        &[
            "plan",
            "my-release",
            "queryNode=2",
            "dataNode=3",
            "-n",
            ns,
            "-o",
            "json",
        ],
        &["plan", "my-release", "queryNode=2", "-n", ns, "-o", "yaml"],
        &["scale", "my-release", "queryNode=2", "-n", ns, "--dry-run"],
        &["status", "my-release", "-n", ns, "-o", "json"],
        &["status", "my-release", "-n", ns, "-o", "yaml"],
        &["status", "-n", ns, "-o", "wide"],
    ] {
        assert_eq!(as_user(args).code, 0, "{args:?}");
    }
    // Refusals and errors, each of which names the release and its values.
    for (args, code) in [
        (&["scale", "my-release", "queryNode=0", "-n", ns][..], 3),
        (&["scale", "my-release", "mixCoordinator=2", "-n", ns], 3),
        (&["scale", "my-release", "etcd=2", "-n", ns], 2),
        (
            &[
                "plan",
                "my-release",
                "queryNode",
                "--min",
                "1",
                "--max",
                "2",
                "-n",
                ns,
            ],
            3,
        ),
        (
            &[
                "scale",
                "my-release",
                "queryNode=2",
                "--remove",
                "no-such-pod",
                "-n",
                ns,
            ],
            2,
        ),
    ] {
        let r = as_user(args);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    // A real scale records the values (secret included) as Helm does, but
    // prints none of them.
    let r = as_user(&["scale", "my-release", "queryNode=2", "-n", ns]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let values = helm(&["get", "values", "my-release", "-n", ns, "-o", "json"]);
    assert!(values.contains(SECRET), "Helm's values keep it: {values}");
}
