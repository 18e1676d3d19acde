//! `scale` is never the only writer: real Helm 3 and Helm 4 (client- and
//! server-side) roll back or upgrade the release while a scale is under
//! way. The run must notice while its step is under way (it writes no
//! further step), stop, write over nothing of theirs and never leave two
//! `deployed` revisions. The waits are for events (the run's own exit, a
//! watch of the Deployment's count), with generous bounds only as hang
//! guards.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use testbed::sim::{Fault, FaultRule};

/// Which Helm client, and how it applies.
#[derive(Clone, Copy, Debug)]
enum Helm {
    /// Helm 4 with `--server-side=false` (what Helm 3 users get too).
    V4ClientSide,
    /// Helm 4's default: server-side apply.
    V4ServerSide,
    /// Helm 3, ConfigMap driver.
    V3ConfigMaps,
}

impl Helm {
    fn command(self) -> Command {
        match self {
            Helm::V4ClientSide | Helm::V4ServerSide => bed().helm(),
            Helm::V3ConfigMaps => {
                let mut c = bed().helm3();
                c.env("HELM_DRIVER", "configmap");
                c
            }
        }
    }
    fn apply_flag(self) -> &'static [&'static str] {
        match self {
            Helm::V4ClientSide => &["--server-side=false"],
            Helm::V4ServerSide => &["--server-side=true"],
            Helm::V3ConfigMaps => &[],
        }
    }
    /// Runs helm; returns (success, stdout + stderr).
    fn run(self, args: &[&str]) -> (bool, String) {
        let out = self.command().args(args).output().expect("run helm");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
    fn ok(self, args: &[&str]) -> String {
        let (ok, out) = self.run(args);
        assert!(ok, "helm {args:?}: {out}");
        out
    }
    /// (revision, status) of every revision, as Helm itself reads them.
    fn history(self, ns: &str) -> Vec<(u64, String)> {
        let out = self.ok(&["history", "my-release", "-n", ns, "-o", "json"]);
        let list: Vec<Value> = serde_json::from_str(&out).expect("history json");
        list.iter()
            .map(|r| {
                (
                    r["revision"].as_u64().expect("revision"),
                    r["status"].as_str().expect("status").to_string(),
                )
            })
            .collect()
    }
}

fn replicas(ns: &str) -> String {
    kubectl(&[
        "get",
        "deploy",
        "my-release-milvus-querynode",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

/// Installs the test chart with `helm` at queryNode=3, pods slow to leave
/// and slow to start, and starts `scale queryNode=<target>` in the
/// background, returned once its first step is written.
fn scale_under_way(ns: &str, helm: Helm, target: u32) -> Child {
    scale_under_way_by(ns, helm, target, 4000)
}

/// [`scale_under_way`] with removed pods taking `stop_ms` to go (and new
/// ones `stop_ms` + 2 s to start).
fn scale_under_way_by(ns: &str, helm: Helm, target: u32, stop_ms: u64) -> Child {
    slow_terminations(ns, "component=querynode", stop_ms);
    let chart = testbed::seed::test_chart_dir();
    let mut args = vec!["install", "my-release", chart.to_str().expect("path"), "-n", ns];
    args.extend_from_slice(helm.apply_flag());
    args.extend_from_slice(&["--set", "queryNode.replicas=3", "--wait"]);
    helm.ok(&args);
    if target > 3 {
        // New pods take a while to start: the scale-out waits on them.
        faults(
            ns,
            vec![FaultRule::new(
                "component=querynode",
                Fault::SlowStart {
                    delay_ms: stop_ms + 2000,
                },
            )],
        );
    }
    let mut cmd = plugin();
    if let Helm::V3ConfigMaps = helm {
        cmd.env("HELM_DRIVER", "configmap");
    }
    let child = cmd
        .args(["scale", "my-release", &format!("queryNode={target}"), "-n", ns])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn scale");
    // Out: straight to the target; in: one replica at a time.
    let first = if target > 3 { target } else { 2 };
    wait_until("the first step", Duration::from_secs(30), || {
        replicas(ns) == first.to_string()
    });
    child
}

/// Waits for the scale run to end on its own (the bound is only a hang
/// guard: a loaded machine may take long to notice); asserts it failed
/// with exit 1 and returns its one-line error.
fn stopped(child: Child) -> String {
    let (code, _, stderr) = exits_within(child, Duration::from_secs(300));
    assert_eq!(code, 1, "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"))
        .to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    error
}

/// A scale-in whose removed pod takes 30 s to go (the chart's grace, which
/// caps the simulator's), stopped by what the test does next: it must stop
/// while that step is still under way (the pod it drained, `leaving`, still
/// terminating, and no other of the pods it started from), however long a
/// loaded machine takes to notice; its one-line error.
fn stopped_mid_step(ns: &str, child: Child, leaving: &Leaving) -> String {
    let stderr = stopped_at_once(child, || leaving.alone_terminating(ns, "component=querynode"));
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"))
        .to_string()
}

/// Every count the query-node Deployment took since `watched` started,
/// once the watch has caught up with the count read now (every write made
/// so far delivered; called once the writers have ended).
fn counts(ns: &str, watched: &Watched) -> Vec<i64> {
    let now: i64 = replicas(ns).parse().expect("a count");
    wait_until("the watch to catch up", Duration::from_secs(120), || {
        watched.values().last() == Some(&now)
    });
    watched.values()
}

fn watch_query_nodes(ns: &str) -> Watched {
    watch_replicas(ns, "my-release-milvus-querynode")
}

/// Pods of the test chart no longer slow to start or go.
fn quick_pods(ns: &str) {
    faults(ns, vec![]);
}

fn deployed_count(history: &[(u64, String)]) -> usize {
    history.iter().filter(|(_, s)| s == "deployed").count()
}

/// The case seen on a real cluster: `helm rollback` (which does not look at
/// pending revisions) mid scale-in, client-side. The run stops in its
/// first step (its removed pod takes 30 s to go) and writes no further
/// count; the rollback's revision stands, the run's own revision is marked
/// failed, one revision deployed.
#[test]
fn client_side_rollback_mid_scale_in_stops_the_run_and_stands() {
    let ns = namespace("wr-rb-csa");
    let ns = ns.name();
    let helm = Helm::V4ClientSide;
    let child = scale_under_way_by(ns, helm, 1, 30_000);
    let watched = watch_query_nodes(ns);
    let (rolled_back, out) = helm.run(&["rollback", "my-release", "1", "-n", ns, "--server-side=false"]);
    assert!(
        rolled_back,
        "client-side rollback over a pending revision succeeds: {out}"
    );
    let err = stopped(child);
    assert!(
        err.contains("another Helm operation wrote revision 3 of my-release"),
        "{err}"
    );
    assert!(err.contains("helm history my-release"), "{err}");
    let h = helm.history(ns);
    assert_eq!(
        h,
        [
            (1, "superseded".to_string()),
            (2, "failed".to_string()),
            (3, "deployed".to_string())
        ],
        "{err}"
    );
    // The run's first step (2), the rollback's count (3), and nothing
    // after: the run stopped in its step and wrote no other count.
    assert_eq!(counts(ns, &watched), [2, 3], "{err}");
    // And the next scale starts from it, cleanly.
    quick_pods(ns);
    let out = ok(&["scale", "my-release", "queryNode=2", "-n", ns]);
    assert!(out.contains("queryNode 3→2 (revision 4)"), "{out}");
    assert_eq!(deployed_count(&helm.history(ns)), 1);
}

/// Helm 4's default, server-side, rolls back mid scale-in. Whether the
/// rollback's apply conflicts with our field ownership of `spec.replicas`
/// depends on the server's field tracking (seen both ways: it went through
/// on v1.20, failed on a newer server); either way the run stops, writes
/// over nothing of Helm's and never leaves two `deployed` revisions. Each
/// outcome is asserted exactly, and which one was seen is printed.
#[test]
fn server_side_rollback_mid_scale_in_is_not_written_over() {
    let ns = namespace("wr-rb-ssa");
    let ns = ns.name();
    let helm = Helm::V4ServerSide;
    let child = scale_under_way_by(ns, helm, 1, 30_000);
    let watched = watch_query_nodes(ns);
    let (rolled_back, rollback) = helm.run(&["rollback", "my-release", "1", "-n", ns]);
    let err = stopped(child);
    assert!(
        err.contains("another Helm operation wrote revision 3 of my-release"),
        "{err} (rollback said: {rollback})"
    );
    assert!(
        err.contains("their change stands, nothing of it was written over"),
        "{err}"
    );
    let s = |h: &[(u64, &str)]| h.iter().map(|(r, s)| (*r, s.to_string())).collect::<Vec<_>>();
    if rolled_back {
        branch("the server-side rollback went through mid-run (no conflict on spec.replicas)");
        // As client-side: the rollback stands, the run's revision failed.
        assert_eq!(
            helm.history(ns),
            s(&[(1, "superseded"), (2, "failed"), (3, "deployed")]),
            "{err}"
        );
        assert!(err.contains("revision 2 is marked failed"), "{err}");
        // The run's first step, the rollback's count, nothing after.
        assert_eq!(counts(ns, &watched), [2, 3], "{err}");
    } else {
        branch("the server-side rollback conflicted with our spec.replicas mid-run");
        assert!(rollback.contains("conflict"), "{rollback}");
        // Nothing written after the run's first step, by either.
        assert_eq!(counts(ns, &watched), [2], "{err}");
        // Exactly what Helm wrote stands: its failed rollback; none of our
        // revisions flipped back to deployed. Revision 2 is the run's
        // `failed` mark, or `superseded` when Helm recorded its failed
        // rollback after the mark (Helm writes the last revision it read
        // unguarded, so whichever of the two writes comes last stands).
        let h = helm.history(ns);
        let ours = h.get(1).map(|r| r.1.clone()).unwrap_or_default();
        assert!(ours == "failed" || ours == "superseded", "{h:?}: {err}");
        // Revision 1 (deployed while the run's revision was pending) is
        // left deployed or superseded by Helm's failed rollback, as its
        // unguarded writes interleave with the run's (seen both ways).
        let first = h.first().map(|r| r.1.clone()).unwrap_or_default();
        assert!(first == "superseded" || first == "deployed", "{h:?}: {err}");
        branch(&format!(
            "revisions 1 and 2 ended {first} and {ours} after the conflicting rollback"
        ));
        assert_eq!(h, s(&[(1, &first), (2, &ours), (3, "failed")]), "{err}");
        // Our claim on spec.replicas is gone: the same rollback goes through.
        helm.ok(&["rollback", "my-release", "1", "-n", ns, "--wait"]);
        assert_eq!(counts(ns, &watched), [2, 3]);
        assert_eq!(
            helm.history(ns),
            s(&[(1, "superseded"), (2, &ours), (3, "failed"), (4, "deployed")])
        );
    }
    // Either way the rollback's count stands, and the next scale starts
    // from it.
    quick_pods(ns);
    let last = helm.history(ns).len();
    let out = ok(&["scale", "my-release", "queryNode=2", "-n", ns]);
    assert!(
        out.contains(&format!("queryNode 3→2 (revision {})", last + 1)),
        "{out}"
    );
    assert_eq!(deployed_count(&helm.history(ns)), 1);
}

/// Helm 3 with the ConfigMap driver rolls back mid scale-out (the new pods
/// take 32 s to start): the watch on ConfigMap records sees it as well, and
/// the run stops before its step ends.
#[test]
fn helm3_rollback_mid_scale_out_stops_the_run() {
    let ns = namespace("wr-rb-h3");
    let ns = ns.name();
    let helm = Helm::V3ConfigMaps;
    let child = scale_under_way_by(ns, helm, 5, 30_000);
    let watched = watch_query_nodes(ns);
    helm.ok(&["rollback", "my-release", "1", "-n", ns]);
    let err = stopped(child);
    assert!(
        err.contains("another Helm operation wrote revision 3 of my-release ("),
        "{err}"
    );
    assert_eq!(
        helm.history(ns),
        [
            (1, "superseded".to_string()),
            (2, "failed".to_string()),
            (3, "deployed".to_string())
        ],
        "{err}"
    );
    // The run's step (5), the rollback's count (3), nothing after.
    assert_eq!(counts(ns, &watched), [5, 3], "{err}");
}

/// `helm upgrade` (Helm 4 and Helm 3) mid-run is kept out by the pending
/// revision, as Helm keeps itself out, and the run finishes undisturbed.
#[test]
fn helm_upgrade_mid_run_is_kept_out_and_the_run_finishes() {
    for (helm, target) in [(Helm::V4ClientSide, 1), (Helm::V3ConfigMaps, 5)] {
        let ns = namespace("wr-up");
        let ns = ns.name();
        let child = scale_under_way(ns, helm, target);
        let chart = testbed::seed::test_chart_dir();
        let mut args = vec!["upgrade", "my-release", chart.to_str().expect("path"), "-n", ns];
        args.extend_from_slice(helm.apply_flag());
        args.extend_from_slice(&["--reuse-values", "--set", "dataNode.replicas=2"]);
        let (ok, out) = helm.run(&args);
        assert!(
            !ok,
            "{helm:?}: upgrade must be refused while the scale runs: {out}"
        );
        assert!(out.contains("another operation"), "{helm:?}: {out}");
        let done = child.wait_with_output().expect("wait for scale");
        assert!(
            done.status.success(),
            "{helm:?}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            stdout.starts_with(&format!(
                "release my-release scaled: queryNode 3→{target} (revision 2)"
            )),
            "{helm:?}: {stdout}"
        );
        assert_eq!(replicas(ns), target.to_string());
        let h = helm.history(ns);
        assert_eq!(
            h,
            [(1, "superseded".to_string()), (2, "deployed".to_string())],
            "{helm:?}"
        );
        // Helm goes on from what scale recorded.
        helm.ok(&args);
        assert_eq!(
            replicas(ns),
            target.to_string(),
            "{helm:?}: --reuse-values keeps the count"
        );
    }
}

/// Someone rewrites the run's own pending record (here: an annotation
/// through kubectl): the run stops rather than write over it.
#[test]
fn a_change_to_the_runs_own_record_stops_it() {
    let ns = namespace("wr-own");
    let ns = ns.name();
    let helm = Helm::V4ClientSide;
    let child = scale_under_way_by(ns, helm, 1, 30_000);
    let leaving = leaving_pod(ns, "component=querynode");
    kubectl(&[
        "annotate",
        "secret",
        "sh.helm.release.v1.my-release.v2",
        "-n",
        ns,
        "example.com/touched=yes",
    ]);
    let err = stopped_mid_step(ns, child, &leaving);
    assert!(
        err.contains("revision 2 of my-release was changed by someone else"),
        "{err}"
    );
    // Left exactly as they wrote it: still pending, their annotation kept.
    let h = helm.history(ns);
    assert_eq!(
        h.last().map(|r| (r.0, r.1.as_str())),
        Some((2, "pending-upgrade")),
        "{h:?}"
    );
    let touched = kubectl(&[
        "get",
        "secret",
        "sh.helm.release.v1.my-release.v2",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.annotations.example\\.com/touched}",
    ]);
    assert_eq!(touched, "yes", "their annotation is kept");
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Liveness is judged by watching the Lease with our own clock, never by
/// the holder's timestamps or host name: a holder on this very host name
/// whose clock runs an hour ahead, silent, is taken over after the lease
/// duration; one whose clock runs a day behind but renews is left alone.
#[test]
fn the_lock_trusts_no_clock_and_no_host_name() {
    let ns = namespace("wr-clock");
    let ns = ns.name();
    seed_ready(ns, testbed::seed::Scenario::QueryNode3DataNode2);

    // Silent holder, same host name, a pid that is surely not ours, clock
    // ahead: gone after 15 s of silence by our clock.
    let ahead = micro(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1));
    apply(&lease_yaml(ns, &format!("{}/1/deadbeef", this_host()), &ahead));
    let since = Instant::now();
    let r = run(plugin().args(["scale", "my-release", "queryNode=4", "-n", ns]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        since.elapsed() >= Duration::from_secs(14),
        "took it over too early"
    );
    assert!(r.stderr.contains("waiting up to 15s"), "{}", r.stderr);
    let leases = kubectl(&["get", "leases", "-n", ns, "-o", "name"]);
    assert!(leases.trim().is_empty(), "given up after the run: {leases}");

    // A live holder whose clock is a day behind: refused within seconds.
    let behind = micro(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24));
    apply(&lease_yaml(ns, "elsewhere/7/cafe", &behind));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewer = {
        let (stop, ns) = (stop.clone(), ns.to_string());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                kubectl(&[
                    "annotate",
                    "lease",
                    "kubectl-milvus.scale.my-release",
                    "-n",
                    &ns,
                    "--overwrite",
                    &format!("renewals={n}"),
                ]);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let since = Instant::now();
    let err = fails(&["scale", "my-release", "queryNode=3", "-n", ns], 3);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    renewer.join().expect("renewer");
    assert!(since.elapsed() < Duration::from_secs(10), "{:?}", since.elapsed());
    assert!(
        err.contains("being scaled right now by kubectl milvus scale on elsewhere/7"),
        "{err}"
    );
    assert_eq!(replicas(ns), "4", "the refused run changed nothing");
}

/// A run that finds its Lease taken stops stepping at once, and leaves the
/// revision for the new holder (it writes no record after losing the lock).
#[test]
fn a_run_whose_lock_is_taken_stops() {
    let ns = namespace("wr-taken");
    let ns = ns.name();
    let child = scale_under_way_by(ns, Helm::V4ClientSide, 1, 30_000);
    let leaving = leaving_pod(ns, "component=querynode");
    apply(&lease_yaml(ns, "intruder/9/beef", &micro(jiff::Timestamp::now())));
    let err = stopped_mid_step(ns, child, &leaving);
    assert!(
        err.contains("taken over by another kubectl milvus scale (intruder/9)"),
        "{err}"
    );
    let h = Helm::V4ClientSide.history(ns);
    assert_eq!(
        h.last().map(|r| (r.0, r.1.as_str())),
        Some((2, "pending-upgrade")),
        "{h:?}"
    );
    assert_eq!(replicas(ns), "2", "no further step after the lock was lost");
}

/// A pending revision of ours, as a `scale` run leaves it, and that run's
/// Lease held by `holder` who last renewed at `renew_time` by its clock.
fn pending_scale_held_by(ns: &str, holder: &str, renew_time: &str) {
    seed(
        ns,
        testbed::seed::Scenario::QueryNode3DataNode2,
        testbed::seed::SeedOptions {
            revisions: 2,
            last_pending_upgrade: true,
            ..Default::default()
        },
    );
    describe_revision(ns, 2, "kubectl-milvus: scaling queryNode 3→1");
    apply(&lease_yaml(ns, holder, renew_time));
}

/// `status` and `plan` read the Lease once: they cannot tell a live holder
/// from a dead one, and a holder's clock may be off by any amount. They say
/// what is known — who holds it, and its last renewal by its own clock —
/// and never "at work right now" nor "interrupted" from a wrong age.
#[test]
fn status_and_plan_describe_a_skewed_holder_by_its_own_clock() {
    let ns = namespace("wr-skew");
    let ns = ns.name();
    // A day behind (read against our clock: long dead), then a year ahead
    // (an age of "minus a year"): the same description, the holder's time.
    for (shift, shown) in [(-24, "2026"), (24 * 366, "2027")] {
        let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(shift);
        let renew_time = micro(t);
        if shift < 0 {
            pending_scale_held_by(ns, "skewed/7/cafe", &renew_time);
        } else {
            apply(&lease_yaml(ns, "skewed/7/cafe", &renew_time));
        }
        let own_clock = format!(
            "last renewed {} by its own clock",
            t.strftime("%Y-%m-%d %H:%M:%S UTC")
        );
        assert!(own_clock.contains(shown), "{own_clock}");
        let status = ok(&["status", "my-release", "-n", ns]);
        assert!(
            status.contains(&format!(
                "Pending:     revision 2 is pending-upgrade (`kubectl milvus scale` on skewed/7 holds the release's lock ({own_clock}): at work, or gone without giving it up;"
            )),
            "{status}"
        );
        assert!(!status.contains("interrupted"), "{status}");
        assert!(!status.contains("right now"), "{status}");
        let doc: Value =
            serde_json::from_str(&ok(&["status", "my-release", "-n", ns, "-o", "json"])).unwrap();
        let pending = &doc["items"][0]["pending"];
        assert_eq!(pending["heldBy"], "skewed/7", "{pending}");
        assert_eq!(
            pending["heldRenewTime"]
                .as_str()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok()),
            Some(renew_time.parse().unwrap()),
            "{pending}"
        );
        let plan = ok(&["plan", "my-release", "queryNode=1", "-n", ns]);
        assert!(
            plan.contains(&format!(
                "revision 2 is pending-upgrade and the release's lock is held by kubectl milvus scale on skewed/7 ({own_clock});"
            )),
            "{plan}"
        );
        assert!(!plan.contains("interrupted"), "{plan}");
    }
}

/// A Lease that cannot be read (no RBAC for Leases, which the README calls
/// optional for `status`) says nothing about whether a run is at work: it
/// is "unknown", and `plan` promises no repair.
#[test]
fn an_unreadable_lock_is_unknown_not_interrupted() {
    let ns = namespace("wr-nolease");
    let ns = ns.name();
    pending_scale_held_by(ns, "busy/8/beef", &micro(jiff::Timestamp::now()));
    let (status_rules, _) = readme_rules();
    let without_leases: Vec<_> = status_rules
        .into_iter()
        .filter(|r| !r.resources.iter().flatten().any(|x| x == "leases"))
        .collect();
    let kubeconfig = restricted(ns, "no-leases", without_leases);
    let as_reader = |args: &[&str]| {
        let r = run(plugin().env("KUBECONFIG", &kubeconfig).args(args));
        assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
        r.stdout
    };
    let status = as_reader(&["status", "my-release", "-n", ns]);
    assert!(
        status.contains(
            "Pending:     revision 2 is pending-upgrade (written by `kubectl milvus scale`; whether a run is still at work on it is unknown: its lock could not be read (forbidden: you cannot get leases.coordination.k8s.io"
        ),
        "{status}"
    );
    assert!(!status.contains("interrupted"), "{status}");
    let doc: Value =
        serde_json::from_str(&as_reader(&["status", "my-release", "-n", ns, "-o", "json"])).unwrap();
    assert!(
        doc["items"][0]["pending"]["lockUnknown"]
            .as_str()
            .is_some_and(|w| w.starts_with("forbidden: you cannot get leases")),
        "{doc}"
    );
    let plan = as_reader(&["plan", "my-release", "queryNode=1", "-n", ns]);
    assert!(
        plan.contains("revision 2 is pending-upgrade by kubectl milvus scale; whether a run is still at work on it is unknown (its lock could not be read: forbidden"),
        "{plan}"
    );
    assert!(!plan.contains("repair"), "{plan}");
    assert!(!plan.contains("interrupted"), "{plan}");
}

/// A signal while the run waits out a silent holder's Lease ends it at
/// once: one line, exit 1 (as every interrupted run), and nothing changed —
/// the Lease still the holder's, the Helm records and the Deployment as
/// they were.
#[test]
fn a_signal_while_waiting_for_the_lock_ends_the_run_and_changes_nothing() {
    let ns = namespace("wr-sigwait");
    let ns = ns.name();
    pending_scale_held_by(ns, "silent/3/feed", &micro(jiff::Timestamp::now()));
    let lease = || {
        kubectl(&[
            "get",
            "lease",
            "kubectl-milvus.scale.my-release",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.holderIdentity} {.metadata.resourceVersion}",
        ])
    };
    let records = || {
        kubectl(&[
            "get",
            "secrets",
            "-n",
            ns,
            "-l",
            "owner=helm,name=my-release",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ])
    };
    let (lease_before, records_before) = (lease(), records());
    assert!(lease_before.starts_with("silent/3/feed "), "{lease_before}");
    let mut child = spawn_plugin(
        &["scale", "my-release", "queryNode=1", "-n", ns],
        bed().admin_kubeconfig(),
    );
    let (mut stderr, mut seen) = stderr_until(&mut child, "waiting up to");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    let since = Instant::now();
    let out = child.wait_with_output().expect("wait");
    std::io::Read::read_to_string(&mut stderr, &mut seen).expect("rest of stderr");
    assert!(
        since.elapsed() < Duration::from_secs(5),
        "ended at once, not after the lock wait: {:?}",
        since.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{seen}");
    assert_eq!(
        seen.lines().last(),
        Some("error: interrupted by a signal while waiting for its lock; nothing was changed for my-release"),
        "{seen}"
    );
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(lease(), lease_before, "the holder's Lease untouched");
    assert_eq!(records(), records_before, "the Helm records untouched");
    assert_eq!(replicas(ns), "3", "the Deployment untouched");
}
