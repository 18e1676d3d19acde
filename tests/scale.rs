//! `kubectl milvus plan` / `scale` on the real control plane, checked with
//! real kubectl and real helm.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use testbed::proxy::{FaultProxy, Mode};
use testbed::seed::{Driver, RecordShape, Scenario, SeedOptions};
use testbed::sim::{Fault, FaultRule};

/// (revision, status) rows of `helm history`.
fn history(ns: &str, release: &str, driver: Option<&str>) -> Vec<(u64, String, String)> {
    let mut cmd = bed().helm();
    if let Some(d) = driver {
        cmd.env("HELM_DRIVER", d);
    }
    let out =
        testbed::clients::run(cmd.args(["history", release, "-n", ns, "-o", "json"])).expect("helm history");
    let rows: Vec<Value> = serde_json::from_str(&out).expect("json");
    rows.iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
                r["description"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn user_values(ns: &str, release: &str, driver: Option<&str>) -> Value {
    let mut cmd = bed().helm();
    if let Some(d) = driver {
        cmd.env("HELM_DRIVER", d);
    }
    let out = testbed::clients::run(cmd.args(["get", "values", release, "-n", ns, "-o", "json"]))
        .expect("helm get values");
    serde_json::from_str(&out).expect("json")
}

/// Seeds queryNode=3/dataNode=2 with slow pod termination, and starts
/// `scale COMPONENT=1` in the background: its scale-in takes seconds per step.
fn slow_scale_in(
    ns: &str,
    component: &str,
    label: &str,
    extra: &[&str],
    kubeconfig: &std::path::Path,
) -> Child {
    slow_scale_in_by(ns, component, label, extra, kubeconfig, 3000)
}

/// [`slow_scale_in`] with pods taking `stop_ms` to go.
fn slow_scale_in_by(
    ns: &str,
    component: &str,
    label: &str,
    extra: &[&str],
    kubeconfig: &std::path::Path,
    stop_ms: u64,
) -> Child {
    slow_terminations(ns, &format!("component={label}"), stop_ms);
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let target = format!("{component}=1");
    let mut args = vec!["scale", "my-release", target.as_str(), "-n", ns];
    args.extend_from_slice(extra);
    spawn_plugin(&args, kubeconfig)
}

/// [`slow_scale_in`] of queryNode 3 → 1, returned once its first step
/// (3 → 2) is written, while the removed pod is still terminating.
fn querynode_scale_in_at_first_step(ns: &str, extra: &[&str], kubeconfig: &std::path::Path) -> Child {
    let child = slow_scale_in(ns, "queryNode", "querynode", extra, kubeconfig);
    wait_until("the first scale-in step", Duration::from_secs(30), || {
        replicas(ns, "my-release-milvus-querynode") == "2"
    });
    child
}

#[test]
fn the_documentation_scenario_with_real_helm() {
    let ns = namespace("sc-docs");
    let ns = ns.name();
    let ns_owned = ns.to_string();
    bed()
        .block_on(async move {
            testbed::seed::install_test_chart(&ns_owned, "my-release", &[("queryNode.replicas", "1")]).await
        })
        .unwrap()
        .unwrap();
    let qn = "my-release-milvus-querynode";
    let watched = watch_replicas(ns, qn);

    // Out: 1 → 3 in one step; two new pods Running 1/1.
    let out = ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
    assert!(
        out.contains("release my-release scaled: queryNode 1→3 (revision 2)"),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("my-release-milvus-querynode-") && l.contains("1/1     Running"))
            .count(),
        3,
        "{out}"
    );
    assert_eq!(replicas(ns, qn), "3");
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 3);
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(1, "superseded"), (2, "deployed")]
    );
    assert!(h[1].2.contains("scaled queryNode 1→3"), "{h:?}");
    let manifest = helm(&["get", "manifest", "my-release", "-n", ns]);
    assert!(manifest.contains("replicas: 3"), "helm get manifest agrees");

    // Real helm agrees: --reuse-values keeps 3.
    let chart = testbed::seed::test_chart_dir();
    helm(&[
        "upgrade",
        "my-release",
        chart.to_str().unwrap(),
        "-n",
        ns,
        "--reuse-values",
        "--server-side=false",
        "--wait",
    ]);
    assert_eq!(replicas(ns, qn), "3");
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 3);

    // In: 3 → 1, one replica at a time, observed through the watch.
    let out = ok(&["scale", "my-release", "querynode", "--replicas", "1", "-n", ns]);
    assert!(out.contains("queryNode 3→1"), "{out}");
    assert_eq!(replicas(ns, qn), "1");
    let seen = watched.values();
    assert_eq!(seen, [1, 3, 2, 1], "replica sequence seen by the watch");
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 1);
    let h = history(ns, "my-release", None);
    assert_eq!(h.last().map(|r| (r.0, r.1.as_str())), Some((4, "deployed")));
    assert!(h[..3].iter().all(|r| r.1 == "superseded"), "{h:?}");

    // Rollback to the revision before the scale-in restores its count.
    helm(&[
        "rollback",
        "my-release",
        "3",
        "-n",
        ns,
        "--server-side=false",
        "--wait",
    ]);
    assert_eq!(replicas(ns, qn), "3");

    // Target equal to current: nothing to do, no new revision.
    let before = history(ns, "my-release", None).len();
    let out = ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
    assert!(out.starts_with("nothing to do"), "{out}");
    assert_eq!(history(ns, "my-release", None).len(), before);
}

#[test]
fn plan_shows_steps_victims_and_the_pinned_helm_command() {
    let ns = namespace("sc-plan");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let out = ok(&["plan", "my-release", "queryNode=1", "dataNode=+1", "-n", ns]);
    assert!(out.contains("3 → 2 → 1"), "{out}");
    assert!(out.contains("2 → 3"), "{out}");
    assert_eq!(out.matches("- removed (step").count(), 2, "{out}");
    assert_eq!(out.matches("+ new").count(), 1, "{out}");
    assert!(
        out.contains(&format!(
            "helm upgrade my-release milvus/milvus --namespace {ns} --version 5.0.19 --reset-then-reuse-values --set queryNode.replicas=1 --set dataNode.replicas=3"
        )),
        "{out}"
    );
    let dry = ok(&[
        "scale",
        "my-release",
        "queryNode=1",
        "dataNode=+1",
        "-n",
        ns,
        "--dry-run",
    ]);
    assert!(dry.contains("3 → 2 → 1"), "{dry}");
    let doc = plan_json(ns, "queryNode=1");
    assert_eq!(doc["items"][0]["changes"][0]["steps"], serde_json::json!([2, 1]));
    // plan and --dry-run change nothing.
    assert_eq!(replicas(ns, "my-release-milvus-querynode"), "3");
    assert_eq!(history(ns, "my-release", None).len(), 1);
}

#[test]
fn every_refusal_changes_nothing() {
    let ns = namespace("sc-refuse");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNodeHpa);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["mixCoordinator=2"],
            3,
            "coordinator: Milvus adds worker nodes only",
        ),
        (&["mixcoord=2"], 3, "coordinator"),
        (
            &["bogus=2"],
            2,
            "scalable components of release my-release: proxy, queryNode, dataNode, streamingNode",
        ),
        (&["indexNode=2"], 2, "not enabled in release my-release"),
        (
            &["queryNode=4"],
            3,
            "managed by HorizontalPodAutoscaler my-release-milvus-querynode-hpa",
        ),
        (&["dataNode=-5"], 2, "below zero"),
        (&["dataNode=abc"], 2, "invalid replica count"),
        (&["dataNode"], 2, "write COMPONENT=N"),
        (&["dataNode=0"], 3, "pass --force"),
        (&["proxy=2", "proxy=3"], 2, "given twice"),
    ];
    for (changes, code, message) in cases {
        let mut args = vec!["scale", "my-release"];
        args.extend_from_slice(changes);
        args.extend(["-n", ns]);
        let err = fails(&args, *code);
        assert!(err.contains(message), "{changes:?}: {err}");
        assert_eq!(
            history(ns, "my-release", None).len(),
            1,
            "{changes:?} wrote a revision"
        );
        assert_eq!(replicas(ns, "my-release-milvus-datanode"), "1");
    }
    // Standalone: refused.
    let sa = namespace("sc-standalone");
    seed(sa.name(), Scenario::Standalone, SeedOptions::default());
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", sa.name()], 3);
    assert!(err.contains("runs Milvus standalone"), "{err}");
    // Another Helm operation pending: refused, named.
    let pending = namespace("sc-pending");
    seed(
        pending.name(),
        Scenario::Defaults,
        SeedOptions {
            last_pending_upgrade: true,
            ..Default::default()
        },
    );
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", pending.name()]);
    assert!(
        plan.contains("revision 2 is pending-upgrade: another Helm operation is in progress"),
        "{plan}"
    );
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", pending.name()], 3);
    assert!(
        err.contains("revision 2 of my-release is pending-upgrade"),
        "{err}"
    );
    assert_eq!(history(pending.name(), "my-release", None).len(), 2);
}

/// A first install still pending (nothing deployed to scale from) and a
/// rollback in progress are refused, exit 3, with what to do; nothing is
/// written.
#[test]
fn pending_install_and_pending_rollback_are_refused() {
    let install = namespace("sc-pending-install");
    let install = install.name();
    seed(install, Scenario::Defaults, SeedOptions::default());
    edit_revision(install, 1, |r| {
        r["info"]["status"] = "pending-install".into();
        r["info"]["description"] = "Initial install underway".into();
    });
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", install], 3);
    assert_eq!(
        err,
        "error: release my-release has no deployed revision (last is 1 pending-install); fix it with helm first\n"
    );
    let err = fails(&["plan", "my-release", "queryNode=2", "-n", install], 3);
    assert_eq!(err, "error: release my-release has no deployed revision yet\n");
    assert_eq!(history(install, "my-release", None).len(), 1);

    let rollback = namespace("sc-pending-rollback");
    let rollback = rollback.name();
    seed(
        rollback,
        Scenario::Defaults,
        SeedOptions {
            revisions: 3,
            ..Default::default()
        },
    );
    // As `helm rollback my-release 1` leaves it while it works: revision 3
    // pending-rollback, the one before still deployed.
    edit_revision(rollback, 2, |r| r["info"]["status"] = "deployed".into());
    edit_revision(rollback, 3, |r| {
        r["info"]["status"] = "pending-rollback".into();
        r["info"]["description"] = "Rollback to 1".into();
    });
    let plan = ok(&["plan", "my-release", "queryNode=2", "-n", rollback]);
    assert!(
        plan.contains("revision 3 is pending-rollback: another Helm operation is in progress, so `scale` is refused until it ends"),
        "{plan}"
    );
    let err = fails(&["scale", "my-release", "queryNode=2", "-n", rollback], 3);
    assert_eq!(
        err,
        "error: revision 3 of my-release is pending-rollback (\"Rollback to 1\"): another Helm operation is in progress; wait for it to finish (or roll it back) and retry\n"
    );
    assert_eq!(history(rollback, "my-release", None).len(), 3);
}

/// Scaling a component to 0 needs `--force` (Helm record and live count
/// both go to 0, no pod left).
#[test]
fn scale_to_zero_with_force() {
    let ns = namespace("sc-zero");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let err = fails(&["scale", "my-release", "dataNode=0", "-n", ns], 3);
    assert!(
        err.contains("scaling dataNode to 0 stops it serving; pass --force if that is what you want"),
        "{err}"
    );
    let out = ok(&["scale", "my-release", "dataNode=0", "-n", ns, "--force"]);
    assert!(
        out.starts_with("release my-release scaled: dataNode 2→0 (revision 2)"),
        "{out}"
    );
    assert_eq!(replicas(ns, "my-release-milvus-datanode"), "0");
    assert_eq!(user_values(ns, "my-release", None)["dataNode"]["replicas"], 0);
    assert_eq!(
        pods_jsonpath(ns, "component=datanode", "{.items[*].metadata.name}"),
        ""
    );
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(1, "superseded"), (2, "deployed")]
    );
}

#[test]
fn interrupted_scale_in_records_what_was_reached_and_a_rerun_finishes() {
    // SIGINT, as Ctrl-C sends it.
    interrupted_mid_step("-INT");
}

/// SIGTERM (what `kill`, systemd and a CI runner's cancel send) stops a
/// run exactly as Ctrl-C does.
#[test]
fn sigterm_stops_a_scale_as_ctrl_c_does() {
    interrupted_mid_step("-TERM");
}

fn interrupted_mid_step(signal: &str) {
    let ns = namespace("sc-signal");
    let ns = ns.name();
    let qn = "my-release-milvus-querynode";
    let child = querynode_scale_in_at_first_step(ns, &[], bed().admin_kubeconfig());
    // Mid-step: the pod the run drained is on its way out, and no other
    // of the pods it started from (no fixed sleep).
    let leaving = leaving_pod(ns, "component=querynode");
    assert!(
        leaving.alone_terminating(ns, "component=querynode"),
        "{} is not the only pod leaving",
        leaving.name
    );
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by a signal"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "continue with: kubectl milvus scale my-release queryNode=1 -n {ns}"
        )),
        "{stderr}"
    );
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.last().map(|r| (r.0, r.1.as_str())),
        Some((2, "deployed")),
        "{h:?}"
    );
    assert!(h.last().unwrap().2.contains("interrupted"), "{h:?}");
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 2);
    assert_eq!(replicas(ns, qn), "2");
    // Re-run finishes the job.
    let out = ok(&["scale", "my-release", "queryNode=1", "-n", ns]);
    assert!(out.contains("queryNode 2→1"), "{out}");
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 1);
    assert_eq!(
        history(ns, "my-release", None).last().map(|r| r.1.clone()),
        Some("deployed".into())
    );
}

#[test]
fn killed_scale_is_repaired_by_the_next_run() {
    let ns = namespace("sc-kill");
    let ns = ns.name();
    let qn = "my-release-milvus-querynode";
    let mut child = querynode_scale_in_at_first_step(ns, &[], bed().admin_kubeconfig());
    child.kill().unwrap(); // SIGKILL: no chance to clean up.
    child.wait().unwrap();
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.last().map(|r| (r.0, r.1.as_str())),
        Some((2, "pending-upgrade")),
        "{h:?}"
    );
    // The killed run's Lease stays: from one read `status` cannot tell a
    // dead holder from a live one, so it says who holds the lock and what
    // `scale` will do about it, never "at work" nor "interrupted".
    let status = ok(&["status", "my-release", "-n", ns]);
    assert!(
        status.contains("holds the release's lock (last renewed ")
            && status.contains("takes over and repairs it once the lock has gone 15s unrenewed"),
        "{status}"
    );
    // A dry run judges the Lease as `scale` does — by watching it with its
    // own clock, without taking it — and, the holder silent for its
    // duration, shows the repair.
    let r = run(plugin().args(["scale", "my-release", "queryNode=1", "-n", ns, "--dry-run"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("waiting up to 15s"), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("\nqueryNode   3        2         1        2 → 1   my-release-milvus-querynode\n"),
        "{}",
        r.stdout
    );
    // Real helm refuses while it is pending; the plugin waits the Lease out
    // by its own clock, takes it over, repairs and carries on.
    let out = ok(&["scale", "my-release", "queryNode=1", "-n", ns]);
    assert!(out.contains("queryNode 2→1"), "{out}");
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(1, "superseded"), (2, "deployed")],
        "{h:?}"
    );
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 1);
    assert_eq!(replicas(ns, qn), "1");
}

#[test]
fn a_step_that_never_gets_ready_stops_and_is_recorded() {
    let ns = namespace("sc-never");
    let ns = ns.name();
    seed_ready(ns, Scenario::Defaults);
    faults(ns, vec![FaultRule::new("component=querynode", Fault::NeverReady)]);
    let r = run(plugin().args(["scale", "my-release", "queryNode=2", "-n", ns, "--timeout", "4s"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("did not reach 2 ready replicas within 4s"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("recorded it as revision 2"), "{}", r.stderr);
    let h = history(ns, "my-release", None);
    assert_eq!(h.last().map(|r| (r.0, r.1.as_str())), Some((2, "deployed")));
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 2);
}

/// Another writer touches the revision the run will supersede: the run's
/// write of it gets a real 409 (seen at the proxy), re-reads it (still
/// deployed) and writes again from that read, keeping their label.
#[test]
fn a_concurrent_writer_conflict_is_retried() {
    let ns = namespace("sc-race");
    let ns = ns.name();
    let proxy = FaultProxy::start(bed()).unwrap();
    let child = slow_scale_in(ns, "dataNode", "datanode", &[], proxy.kubeconfig());
    wait_until("the pending revision", Duration::from_secs(30), || {
        kubectl(&[
            "get",
            "secret",
            "-n",
            ns,
            "-l",
            "owner=helm,status=pending-upgrade",
            "-o",
            "name",
        ])
        .contains("v2")
    });
    // (A touch of the run's own pending revision stops the run instead:
    // tests/writers.rs.)
    kubectl(&[
        "label",
        "secret",
        "sh.helm.release.v1.my-release.v1",
        "-n",
        ns,
        "touched=yes",
    ]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("release my-release scaled: dataNode 2→1 (revision 2)"),
        "{stdout}"
    );
    // At the proxy: a write of revision 1 answered 409, then a fresh read
    // of the release's records (a list), then a write of it answered 200.
    let v1 = format!("/api/v1/namespaces/{ns}/secrets/sh.helm.release.v1.my-release.v1");
    let records = format!("/api/v1/namespaces/{ns}/secrets?");
    let seen: Vec<(String, String, Option<u16>)> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&v1) || r.path.starts_with(&records))
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let write_of_v1 = |(m, p, _): &(String, String, Option<u16>)| m != "GET" && p.starts_with(&v1);
    let conflict = seen
        .iter()
        .position(|r| write_of_v1(r) && r.2 == Some(409))
        .unwrap_or_else(|| panic!("no write of revision 1 answered 409: {seen:#?}"));
    let retry = conflict
        + 1
        + seen[conflict + 1..]
            .iter()
            .position(write_of_v1)
            .unwrap_or_else(|| panic!("no write of revision 1 after the 409: {seen:#?}"));
    assert_eq!(seen[retry].2, Some(200), "{seen:#?}");
    assert!(
        seen[conflict + 1..retry]
            .iter()
            .any(|(m, p, s)| m == "GET" && p.starts_with(&records) && *s == Some(200)),
        "re-read between the 409 and the retry: {seen:#?}"
    );
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(1, "superseded"), (2, "deployed")]
    );
    assert_eq!(user_values(ns, "my-release", None)["dataNode"]["replicas"], 1);
    let labels = kubectl(&[
        "get",
        "secret",
        "sh.helm.release.v1.my-release.v1",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.labels.touched}/{.metadata.labels.status}",
    ]);
    assert_eq!(labels, "yes/superseded", "their label kept beside ours");
}

#[test]
fn an_api_outage_leaves_history_consistent_and_a_rerun_finishes() {
    let ns = namespace("sc-outage");
    let ns = ns.name();
    let proxy = FaultProxy::start(bed()).unwrap();
    let qn = "my-release-milvus-querynode";
    let child = querynode_scale_in_at_first_step(ns, &["--timeout", "20s"], proxy.kubeconfig());
    proxy.set_mode(Mode::Refuse);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The run stops and writes nothing more, whichever it meets first: its
    // lock cannot be renewed (the outage began mid-step), or the next
    // step's first request fails (on a slow machine the first step may be
    // over before the outage begins). Either way it says how to carry on.
    let lock_lost = stderr.contains("lock could not be renewed")
        && stderr.contains("left pending for the next run to repair");
    let step_failed = stderr.contains("cannot reach the API server") && stderr.contains("re-run to repair");
    assert!(lock_lost || step_failed, "{stderr}");
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(1, "deployed"), (2, "pending-upgrade")]
    );
    proxy.set_mode(Mode::PassThrough);
    ok(&["scale", "my-release", "queryNode=1", "-n", ns]);
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(1, "superseded"), (2, "deployed")]
    );
    assert_eq!(replicas(ns, qn), "1");
}

#[test]
fn resource_groups_scale_together() {
    let ns = namespace("sc-rg");
    let ns = ns.name();
    seed_ready(ns, Scenario::ResourceGroups);
    let out = ok(&["scale", "my-release", "queryNode=2", "-n", ns]);
    assert!(out.contains("queryNode 1→2"), "{out}");
    assert_eq!(replicas(ns, "my-release-milvus-querynode-rg1"), "2");
    assert_eq!(replicas(ns, "my-release-milvus-querynode-rg2"), "2");
    let manifest = helm(&["get", "manifest", "my-release", "-n", ns]);
    let objects = kubectl_milvus::core::manifest::parse(&manifest).unwrap();
    for rg in [
        "my-release-milvus-querynode-rg1",
        "my-release-milvus-querynode-rg2",
    ] {
        let d = objects
            .iter()
            .find(|o| o.name == rg)
            .expect("RG Deployment in the stored manifest");
        assert_eq!(d.replicas, Some(2), "{rg}");
    }
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 2);
}

#[test]
fn configmap_driver_helm3_records_and_history_pruning() {
    let ns = namespace("sc-cm");
    let ns = ns.name();
    seed(
        ns,
        Scenario::Defaults,
        SeedOptions {
            driver: Driver::ConfigMap,
            shape: RecordShape::Helm3,
            revisions: 3,
            wait_ready: true,
            ..Default::default()
        },
    );
    ok(&[
        "scale",
        "my-release",
        "dataNode=2",
        "-n",
        ns,
        "--history-max",
        "3",
    ]);
    let h = history(ns, "my-release", Some("configmap"));
    assert_eq!(
        h.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(2, "superseded"), (3, "superseded"), (4, "deployed")]
    );
    assert_eq!(
        user_values(ns, "my-release", Some("configmap"))["dataNode"]["replicas"],
        2
    );
    // The new record keeps the Helm 3 shape it was copied from.
    let cm = kubectl(&[
        "get",
        "configmap",
        "sh.helm.release.v1.my-release.v4",
        "-n",
        ns,
        "-o",
        "jsonpath={.data.release}",
    ]);
    let rel = testbed::seed::decode_release(&cm).unwrap();
    assert!(rel.get("apply_method").is_none());
    assert_eq!(rel["info"]["deleted"], "");
}

/// The history limit as Helm keeps it: 10 revisions by default, or
/// `HELM_MAX_HISTORY`, or `--history-max` over both (0: keep all); the
/// deployed revision is never pruned.
#[test]
fn history_limit_default_env_and_flag() {
    let ns = namespace("sc-hist");
    let ns = ns.name();
    seed(
        ns,
        Scenario::Defaults,
        SeedOptions {
            revisions: 10,
            wait_ready: true,
            ..Default::default()
        },
    );
    let revisions = || -> Vec<u64> { history(ns, "my-release", None).iter().map(|r| r.0).collect() };
    let scale = |to: &str, env: Option<&str>, flag: Option<&str>| {
        let mut cmd = plugin();
        cmd.args(["scale", "my-release", to, "-n", ns]);
        if let Some(max) = env {
            cmd.env("HELM_MAX_HISTORY", max);
        }
        if let Some(max) = flag {
            cmd.args(["--history-max", max]);
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, 0, "{}", r.stderr);
    };
    scale("dataNode=2", None, None);
    assert_eq!(revisions(), (2..=11).collect::<Vec<_>>(), "the default keeps 10");
    scale("dataNode=1", Some("2"), None);
    assert_eq!(revisions(), [11, 12], "HELM_MAX_HISTORY=2");
    scale("dataNode=2", Some("2"), Some("0"));
    assert_eq!(
        revisions(),
        [11, 12, 13],
        "--history-max 0 over HELM_MAX_HISTORY keeps all"
    );
    let h = history(ns, "my-release", None);
    assert_eq!(
        h.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["superseded", "superseded", "deployed"]
    );
}

/// Helm 4 installs and upgrades with server-side apply by default: Helm's
/// field manager owns `spec.replicas`. After `scale` — a whole run, or a
/// killed one and its repairing re-run — Helm's next server-side apply of
/// another count (`helm upgrade --set`, `helm rollback`) must not meet a
/// field conflict with the plugin.
#[test]
fn server_side_applied_release_takes_helm_changes_after_scale() {
    let ns = namespace("sc-ssa");
    let ns = ns.name();
    let chart = helm_install_server_side(ns, &["queryNode.replicas=1"]);
    let chart = chart.as_str();
    let qn = "my-release-milvus-querynode";
    let managers = || managers(ns, "deploy", qn);
    let out = ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
    assert!(out.contains("queryNode 1→3"), "{out}");
    assert!(!managers().contains("kubectl-milvus"), "{}", managers());

    // The documentation's command, server-side (Helm 4's default).
    helm(&[
        "upgrade",
        "my-release",
        chart,
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "queryNode.replicas=2",
        "--wait",
    ]);
    assert_eq!(replicas(ns, qn), "2");
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 2);

    // Killed after writing the count, before its pods were ready: the claim
    // is ours until the re-run repairs the revision and hands it back.
    faults(
        ns,
        vec![FaultRule::new(
            "component=querynode",
            Fault::SlowStart { delay_ms: 3000 },
        )],
    );
    let mut child = spawn_plugin(
        &["scale", "my-release", "queryNode=4", "-n", ns],
        bed().admin_kubeconfig(),
    );
    wait_until("the scale-out write", Duration::from_secs(30), || {
        replicas(ns, qn) == "4"
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(managers().contains("kubectl-milvus"), "{}", managers());
    let out = ok(&["scale", "my-release", "queryNode=4", "-n", ns]);
    // The repair waits for what the killed run did not see: 4 ready pods.
    assert!(out.contains("queryNode 4→4 (revision 4)"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("my-release-milvus-querynode-") && l.contains("1/1     Running"))
            .count(),
        4,
        "{out}"
    );
    assert!(!managers().contains("kubectl-milvus"), "{}", managers());

    helm(&["rollback", "my-release", "1", "-n", ns, "--wait"]);
    assert_eq!(replicas(ns, qn), "1");
}

/// Most releases in the field were written by Helm 3. With the real Helm 3
/// client and its ConfigMap driver: what `scale` records is what Helm 3
/// reads back (history, values), and Helm 3's own `upgrade --reuse-values`
/// and `rollback` carry on from it.
#[test]
fn helm3_reads_and_continues_what_scale_recorded() {
    let ns = namespace("sc-helm3");
    let ns = ns.name();
    let chart = testbed::seed::test_chart_dir();
    let chart = chart.to_str().unwrap();
    let helm3 = |args: &[&str]| {
        testbed::clients::run(bed().helm3().env("HELM_DRIVER", "configmap").args(args)).expect("helm 3")
    };
    assert!(helm3(&["version", "--short"]).starts_with("v3."));
    helm3(&[
        "install",
        "my-release",
        chart,
        "-n",
        ns,
        "--set",
        "queryNode.replicas=1",
        "--wait",
    ]);
    let qn = "my-release-milvus-querynode";

    let out = ok(&["scale", "my-release", "queryNode=3", "-n", ns]);
    assert!(out.contains("queryNode 1→3 (revision 2)"), "{out}");
    let history: Vec<Value> =
        serde_json::from_str(&helm3(&["history", "my-release", "-n", ns, "-o", "json"])).unwrap();
    let rows: Vec<(u64, &str)> = history
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [(1, "superseded"), (2, "deployed")]);
    assert!(
        history[1]["description"]
            .as_str()
            .unwrap()
            .contains("scaled queryNode 1→3"),
        "{history:?}"
    );
    let values: Value =
        serde_json::from_str(&helm3(&["get", "values", "my-release", "-n", ns, "-o", "json"])).unwrap();
    assert_eq!(values["queryNode"]["replicas"], 3);
    assert!(helm3(&["get", "manifest", "my-release", "-n", ns]).contains("replicas: 3"));

    helm3(&[
        "upgrade",
        "my-release",
        chart,
        "-n",
        ns,
        "--reuse-values",
        "--wait",
    ]);
    assert_eq!(replicas(ns, qn), "3");

    // `--timeout 0`: no limit (a zero limit would stop at the first step).
    let out = ok(&["scale", "my-release", "queryNode=1", "-n", ns, "--timeout", "0"]);
    assert!(out.contains("queryNode 3→1 (revision 4)"), "{out}");
    helm3(&["rollback", "my-release", "3", "-n", ns, "--wait"]);
    assert_eq!(replicas(ns, qn), "3");
    let last: Vec<Value> = serde_json::from_str(&helm3(&[
        "history",
        "my-release",
        "-n",
        ns,
        "-o",
        "json",
        "--max",
        "1",
    ]))
    .unwrap();
    assert_eq!(last[0]["revision"], 5);
    assert_eq!(last[0]["status"], "deployed");
}

/// A Node object with no kubelet behind it (nor the simulator), deleted
/// when dropped: pods bound to it are left alone by the simulator, and the
/// pod garbage collector does not take them for orphans (it deletes pods
/// bound to a node that does not exist, 40 s after it notices — within a
/// run on a loaded machine, which made the evicted pod vanish mid-test).
struct SilentNode(String);

impl SilentNode {
    fn new(name: &str) -> SilentNode {
        let node = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.json");
        write_file(&file, &node.to_string());
        kubectl(&["create", "-f", file.to_str().unwrap()]);
        SilentNode(name.to_string())
    }
}

impl Drop for SilentNode {
    fn drop(&mut self) {
        let _ = testbed::clients::run(bed().kubectl().args(["delete", "node", &self.0, "--wait=false"]));
    }
}

/// Finished pods (evicted, `Failed` after a node shutdown) linger until
/// garbage-collected; the ReplicaSet has already replaced them, so a step
/// must not wait for them to go (here they never go: a step that waited
/// would end in its timeout).
#[test]
fn finished_pods_do_not_hold_up_a_step() {
    let ns = namespace("sc-evicted");
    let ns = ns.name();
    seed_ready(ns, Scenario::Defaults);
    let labels = kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "component=querynode",
        "-o",
        "jsonpath={.items[0].metadata.labels}",
    ]);
    let labels: Value = serde_json::from_str(&labels).expect("labels");
    // Owned by the query nodes' ReplicaSet, as an evicted pod of it is. The
    // pod is made Failed before it carries the ReplicaSet's labels and
    // owner: while it matched and was still Pending, the ReplicaSet counted
    // it as one replica too many and deleted it first, a race the test
    // sometimes lost (a Failed pod is never counted, nor claimed).
    let rs: Value = serde_json::from_str(&kubectl(&[
        "get",
        "replicasets",
        "-n",
        ns,
        "-l",
        "component=querynode",
        "-o",
        "jsonpath={.items[0]}",
    ]))
    .expect("the query nodes' ReplicaSet");
    let owner = serde_json::json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    }]);
    let node = SilentNode::new(&format!("silent-{ns}"));
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "querynode-evicted", "namespace": ns},
        // Bound to a node no kubelet (nor the simulator) runs; tolerating its
        // not-ready taints, so the taint manager leaves it too.
        "spec": {
            "nodeName": node.0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "querynode", "image": "milvusdb/milvus"}],
        },
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    write_file(&file, &pod.to_string());
    kubectl(&["create", "-f", file.to_str().unwrap()]);
    kubectl(&[
        "patch",
        "pod",
        "querynode-evicted",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}}"#,
    ]);
    let metadata = serde_json::json!({"metadata": {"labels": labels, "ownerReferences": owner}});
    kubectl(&[
        "patch",
        "pod",
        "querynode-evicted",
        "-n",
        ns,
        "--type=merge",
        "-p",
        &metadata.to_string(),
    ]);
    assert!(kubectl(&["get", "pods", "-n", ns]).contains("querynode-evicted"));

    let out = ok(&["scale", "my-release", "queryNode=2", "-n", ns, "--timeout", "3m"]);
    assert!(out.contains("queryNode 1→2"), "{out}");
    let evicted = out
        .lines()
        .find(|l| l.starts_with("querynode-evicted "))
        .unwrap_or_else(|| panic!("the pod table shows it, as kubectl does:\n{out}"));
    assert!(evicted.contains(" Evicted "), "{evicted}");
    // It was there all along: still there now, still Failed.
    assert_eq!(
        kubectl(&[
            "get",
            "pod",
            "querynode-evicted",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.phase}"
        ]),
        "Failed"
    );
}

/// A run killed half-way through several components, repaired by a re-run
/// that names only one of them: the repair carries the whole job on, so
/// Helm's values record every component as it runs.
#[test]
fn a_repair_records_every_component_the_killed_run_changed() {
    let ns = namespace("sc-kill-multi");
    let ns = ns.name();
    slow_terminations(ns, "component=datanode", 3000);
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let mut child = spawn_plugin(
        &["scale", "my-release", "queryNode=4", "dataNode=1", "-n", ns],
        bed().admin_kubeconfig(),
    );
    // Scale-outs go first: queryNode is at 4 once dataNode's step is written.
    wait_until("the dataNode step", Duration::from_secs(30), || {
        replicas(ns, "my-release-milvus-datanode") == "1"
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(replicas(ns, "my-release-milvus-querynode"), "4");

    let out = ok(&["scale", "my-release", "dataNode=1", "-n", ns]);
    assert!(out.contains("dataNode 1→1, queryNode 4→4"), "{out}");
    let values = user_values(ns, "my-release", None);
    assert_eq!(values["queryNode"]["replicas"], 4, "{values}");
    assert_eq!(values["dataNode"]["replicas"], 1, "{values}");
    let manifest = helm(&["get", "manifest", "my-release", "-n", ns]);
    let querynode = manifest
        .split("\n---")
        .find(|doc| doc.contains("kind: Deployment") && doc.contains("name: my-release-milvus-querynode"))
        .expect("querynode Deployment in the stored manifest");
    assert!(querynode.contains("replicas: 4"), "{querynode}");
}

/// Helm keeps one `deployed` revision. Older ones an earlier failure left
/// `deployed` (a run stopped between writing its revision and superseding
/// the old one) are superseded by the next run, even one with nothing to do.
#[test]
fn revisions_left_deployed_are_superseded_by_the_next_run() {
    let statuses = |ns: &str| -> Vec<(u64, String)> {
        history(ns, "my-release", None)
            .into_iter()
            .map(|(rev, status, _)| (rev, status))
            .collect()
    };
    let stale = || SeedOptions {
        stale_deployed: true,
        wait_ready: true,
        ..Default::default()
    };
    let idle = namespace("sc-stale-idle");
    seed(idle.name(), Scenario::QueryNode3DataNode2, stale());
    let s = |list: &[(u64, &str)]| list.iter().map(|(r, s)| (*r, s.to_string())).collect::<Vec<_>>();
    assert_eq!(statuses(idle.name()), s(&[(1, "deployed"), (2, "deployed")]));
    let out = ok(&["scale", "my-release", "queryNode=3", "-n", idle.name()]);
    assert!(
        out.contains("nothing to do") && out.contains("now superseded: 1"),
        "{out}"
    );
    assert_eq!(statuses(idle.name()), s(&[(1, "superseded"), (2, "deployed")]));

    let busy = namespace("sc-stale-busy");
    seed(busy.name(), Scenario::QueryNode3DataNode2, stale());
    ok(&["scale", "my-release", "queryNode=4", "-n", busy.name()]);
    assert_eq!(
        statuses(busy.name()),
        s(&[(1, "superseded"), (2, "superseded"), (3, "deployed")])
    );
}

/// While one `scale` works it holds the release's Lease and renews it: a
/// second `scale` sees the renewals, is refused and changes nothing,
/// `status` and `plan` say who works on it, and the first run finishes
/// undisturbed and gives the Lease up.
#[test]
fn a_second_scale_while_one_runs_is_refused() {
    let ns = namespace("sc-busy");
    let ns = ns.name();
    let qn = "my-release-milvus-querynode";
    // Pods take 15 s to go: the run is still at work through every check
    // below, however loaded the machine.
    let child = slow_scale_in_by(
        ns,
        "queryNode",
        "querynode",
        &[],
        bed().admin_kubeconfig(),
        15_000,
    );
    wait_until("the first scale-in step", Duration::from_secs(30), || {
        replicas(ns, qn) == "2"
    });
    let before = history(ns, "my-release", None);
    let err = fails(&["scale", "my-release", "queryNode=3", "-n", ns], 3);
    assert!(
        err.contains("my-release is being scaled right now by kubectl milvus scale on "),
        "{err}"
    );
    let status = ok(&["status", "my-release", "-n", ns]);
    assert!(
        status.contains("holds the release's lock (last renewed "),
        "{status}"
    );
    let plan = ok(&["plan", "my-release", "queryNode=3", "-n", ns]);
    assert!(
        plan.contains(
            "revision 2 is pending-upgrade and the release's lock is held by kubectl milvus scale on "
        ),
        "{plan}"
    );
    // A dry run, which takes no Lease, does not show the live run's
    // revision as a repair to make: it is refused the same way.
    let err = fails(&["scale", "my-release", "queryNode=3", "-n", ns, "--dry-run"], 3);
    assert!(
        err.contains("my-release is being scaled right now by kubectl milvus scale on "),
        "{err}"
    );
    assert_eq!(
        history(ns, "my-release", None),
        before,
        "the refused run wrote nothing"
    );

    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("release my-release scaled: queryNode 3→1 (revision 2)"),
        "the first run finished its own job: {stdout}"
    );
    assert_eq!(replicas(ns, qn), "1");
    assert_eq!(user_values(ns, "my-release", None)["queryNode"]["replicas"], 1);
    let leases = kubectl(&["get", "leases", "-n", ns, "-o", "name"]);
    assert!(leases.trim().is_empty(), "the Lease is given up: {leases}");
}

/// Runs the plugin to its end and returns (exit code, stdout, peak RSS in
/// KiB), the peak as the kernel accounted it for exactly that process.
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by wait4, which std cannot do for us
fn run_measured(args: &[&str]) -> (i32, String, i64) {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let child = plugin()
        .args(args)
        .stdout(out.reopen().expect("reopen"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (std never reaps it).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let stdout = std::fs::read_to_string(out.path()).expect("read output");
    (code, stdout, usage.ru_maxrss)
}

#[cfg(target_os = "linux")]
#[test]
fn huge_targets_are_refused_or_summarised_in_bounded_memory() {
    let ns = namespace("sc-huge");
    let ns = ns.name();
    seed_ready(ns, Scenario::Defaults);
    // A count no Deployment holds: refused at parse time, one line, exit 2.
    for absurd in ["queryNode=4294967295", "queryNode=2147483648"] {
        let err = fails(&["plan", "my-release", absurd, "-n", ns], 2);
        assert!(err.contains("at most 2147483647"), "{err}");
        let err = fails(&["scale", "my-release", absurd, "-n", ns], 2);
        assert!(err.contains("at most 2147483647"), "{err}");
    }
    let err = fails(&["scale", "my-release", "queryNode=+2147483647", "-n", ns], 2);
    assert!(err.contains("would reach 2147483648"), "{err}");
    assert_eq!(history(ns, "my-release", None).len(), 1, "nothing recorded");
    assert_eq!(replicas(ns, "my-release-milvus-querynode"), "1");

    // The largest count a Deployment holds: planned in the memory and the
    // output a small plan takes.
    let (code, small, small_rss) = run_measured(&["plan", "my-release", "queryNode=3", "-n", ns]);
    assert_eq!(code, 0, "{small}");
    let (code, huge, huge_rss) = run_measured(&["plan", "my-release", "queryNode=2147483647", "-n", ns]);
    assert_eq!(code, 0, "{huge}");
    // One querynode runs: 2,147,483,646 new pods, the first 10 listed.
    assert!(huge.contains("… and 2,147,483,636 more new pods"), "{huge}");
    assert!(huge.lines().count() < small.lines().count() + 20, "{huge}");
    assert!(
        huge_rss < small_rss + 16 * 1024,
        "peak RSS {huge_rss} KiB at the huge target vs {small_rss} KiB at 3"
    );
    let (code, json, _) = run_measured(&["plan", "my-release", "queryNode=99999", "-n", ns, "-o", "json"]);
    assert_eq!(code, 0, "{json}");
    let doc: Value = serde_json::from_str(&json).expect("json");
    // One querynode runs: 99,998 new pods, the first 10 listed.
    assert_eq!(doc["items"][0]["newPodsNotShown"], 99_988);
}
