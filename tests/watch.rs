//! `kubectl milvus status RELEASE -w` on the real control plane: run in the
//! background with stdout to a pipe beside a real `scale`, it prints a new
//! snapshot when (and only when) what it shows changes, and ends on SIGINT
//! with exit 0.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use testbed::seed::Scenario;

/// The snapshots of a table stream: each starts at its `Release:` line.
fn snapshots(text: &str) -> Vec<String> {
    text.split("Release:     ")
        .skip(1)
        .map(|s| format!("Release:     {s}"))
        .collect()
}

/// The cells of a component's row in a snapshot.
fn row(snapshot: &str, component: &str) -> Vec<String> {
    snapshot
        .lines()
        .find(|l| l.starts_with(&format!("{component} ")))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn status_watch_redraws_on_change_only_and_ends_on_ctrl_c() {
    let ns = namespace("watch");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let admin = bed().admin_kubeconfig();
    let table = Watching::start(&["status", "my-release", "-n", ns, "-w"], admin);
    let json = Watching::start(&["status", "my-release", "-n", ns, "-w", "-o", "json"], admin);
    table.wait_for("the first snapshot", |t| t.contains("\nNAME "));
    json.wait_for("the first document", |t| t.ends_with("}\n"));
    let first = snapshots(&table.text());
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        row(&first[0], "queryNode"),
        ["queryNode", "worker", "3", "3", "3/3", "3", "3", "-"]
    );
    // The first snapshot is what `status` prints (but for the AGE, which
    // moved on since).
    let ageless = |text: &str| -> Vec<String> {
        let mut pods = false;
        text.lines()
            .map(|l| {
                pods |= l.starts_with("NAME ");
                let mut cells: Vec<&str> = l.split_whitespace().collect();
                if pods {
                    cells.pop();
                }
                cells.join(" ")
            })
            .collect()
    };
    assert_eq!(
        ageless(&first[0]),
        ageless(&ok(&["status", "my-release", "-n", ns]))
    );

    ok(&["scale", "my-release", "queryNode=4", "-n", ns]);
    table.wait_for("a snapshot at 4 ready query nodes", |t| {
        snapshots(t)
            .last()
            .is_some_and(|s| row(s, "queryNode") == ["queryNode", "worker", "4", "4", "4/4", "4", "4", "-"])
    });
    // Snapshots are separated by one blank line; the new one shows the
    // Helm revision the scale recorded (the records are watched too).
    let text = table.text();
    assert!(text.contains("\n\nRelease:     my-release"), "{text}");
    let last = snapshots(&text).pop().unwrap();
    assert!(last.contains("Revision:    2 deployed"), "{last}");
    assert_eq!(
        last.lines()
            .filter(|l| l.starts_with("my-release-milvus-querynode-") && l.contains(" Running "))
            .count(),
        4,
        "{last}"
    );

    // Settled: nothing changes, nothing more is printed (no polling, and an
    // AGE ticking over is no change).
    std::thread::sleep(Duration::from_secs(1));
    let settled = snapshots(&table.text()).len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(snapshots(&table.text()).len(), settled, "{}", table.text());

    // -o json: one document per change, the last at the new count.
    json.wait_for("a document at 4 ready query nodes", |t| {
        let docs: Vec<Value> = serde_json::Deserializer::from_str(t)
            .into_iter::<Value>()
            .filter_map(Result::ok)
            .collect();
        docs.last().is_some_and(|d| {
            d["items"][0]["components"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["component"] == "queryNode" && c["live"]["ready"] == 4)
        })
    });
    let docs = serde_json::Deserializer::from_str(&json.text())
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .expect("every document is JSON");
    assert!(docs.len() >= 2, "{docs:?}");
    assert!(docs.iter().all(|d| d["kind"] == "MilvusStatusList"));

    for w in [table, json] {
        let (code, stderr) = w.interrupt();
        assert_eq!((code, stderr.as_str()), (0, ""), "Ctrl-C ends the watch cleanly");
    }

    let err = fails(&["status", "-A", "-w"], 2);
    assert!(err.contains("--watch follows one namespace"), "{err}");
}

/// `status -w -o yaml`: one YAML document per change, `---` between them;
/// SIGTERM ends it as Ctrl-C does (exit 0, nothing on stderr).
#[test]
fn status_watch_as_yaml_and_sigterm() {
    let ns = namespace("watch-yaml");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let yaml = Watching::start(
        &["status", "my-release", "-n", ns, "-w", "-o", "yaml"],
        bed().admin_kubeconfig(),
    );
    let documents = |text: &str| -> Vec<Value> {
        text.split("\n---\n")
            .map(|d| serde_saphyr::from_str::<Value>(d).expect("every document is YAML"))
            .collect()
    };
    let ready_query_nodes = |d: &Value| {
        d["items"][0]["components"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["component"] == "queryNode")
            .map(|c| c["live"]["ready"].clone())
    };
    yaml.wait_for("the first document", |t| {
        t.contains("kind: MilvusStatusList") && t.contains("pods:")
    });
    ok(&["scale", "my-release", "queryNode=4", "-n", ns]);
    yaml.wait_for("a document at 4 ready query nodes", |t| {
        t.contains("\n---\n") && documents(t).last().and_then(ready_query_nodes) == Some(4.into())
    });
    let docs = documents(&yaml.text());
    assert!(docs.len() >= 2, "{docs:?}");
    assert!(docs.iter().all(|d| d["kind"] == "MilvusStatusList"));
    assert_eq!(ready_query_nodes(&docs[0]), Some(3.into()));
    let (code, stderr) = yaml.signal("-TERM");
    assert_eq!((code, stderr.as_str()), (0, ""), "SIGTERM ends the watch cleanly");
}

/// The watches behind `status -w` are cut, then answered 503 and 429 when
/// they reconnect: `status -w` rides it out (no exit, no lost change) and
/// shows the next change once the server answers again.
#[test]
fn status_watch_survives_cut_streams_and_5xx_and_429() {
    use testbed::proxy::{FaultProxy, Mode, Rule};
    let ns = namespace("watch-faults");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let proxy = FaultProxy::start(bed()).unwrap();
    let table = Watching::start(&["status", "my-release", "-n", ns, "-w"], proxy.kubeconfig());
    table.wait_for("the first snapshot", |t| t.contains("\nNAME "));
    let watches = || {
        proxy
            .requests()
            .iter()
            .filter(|r| r.path.contains("watch=") && r.status == Some(200))
            .count()
    };
    // Every watcher lists, then watches: wait until each watches.
    let listings = || {
        proxy
            .requests()
            .iter()
            .filter(|r| r.path.contains("limit=500"))
            .count()
    };
    wait_until("every watch established", Duration::from_secs(120), || {
        listings() > 0 && watches() >= listings()
    });
    let established = watches();
    for code in [503, 429] {
        proxy.push_rule(Rule {
            path_contains: Some("watch=".into()),
            method: Some("GET".into()),
            mode: Mode::Status(code),
            times: Some(3),
        });
    }
    // Cut every open stream: the reconnections meet the 503s and 429s.
    proxy.set_mode(Mode::Refuse);
    proxy.set_mode(Mode::PassThrough);
    wait_until(
        "the faults answered and the watches back",
        Duration::from_secs(120),
        || {
            let seen = proxy.requests();
            let answered = |code| seen.iter().filter(|r| r.status == Some(code)).count();
            answered(503) == 3 && answered(429) == 3 && watches() >= established * 2
        },
    );
    kubectl(&[
        "scale",
        "deployment",
        "my-release-milvus-querynode",
        "-n",
        ns,
        "--replicas=4",
    ]);
    table.wait_for("a later snapshot with a fourth query node Running", |t| {
        snapshots(t).last().is_some_and(|s| {
            s.lines()
                .filter(|l| l.starts_with("my-release-milvus-querynode-") && l.contains(" Running "))
                .count()
                == 4
        })
    });
    let (code, stderr) = table.interrupt();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}
