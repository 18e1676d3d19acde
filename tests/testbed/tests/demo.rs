//! `testbed demo` and `testbed down` from the outside, on a state dir (and
//! so a plane) of its own: the shared plane is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::plane::Layout;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");

fn testbed(state: &Path, args: &[&str]) -> Output {
    Command::new(TESTBED)
        .args(args)
        .env("TESTBED_STATE_DIR", state)
        .env_remove(testbed::KUBECONFIG_ENV)
        .output()
        .expect("run testbed")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Value {
    let out = Command::new(testbed::clients::kubectl_bin())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pid_alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops the private plane even when an assertion fails.
struct Down(PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = testbed(&self.0, &["down"]);
    }
}

#[test]
fn demo_seeds_both_kinds_of_milvus_and_down_stops_it() {
    if !Layout::from_env().k8s_bin_dir.join("kube-apiserver").is_file() {
        eprintln!("skipped: no local control-plane binaries");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _down = Down(state.clone());
    let t = Instant::now();
    let out = testbed(&state, &["demo"]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("demo ready in {:?}", t.elapsed());
    let kubeconfig = state.join("admin.kubeconfig");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{}",
        text(&out)
    );
    let pid: u32 = std::fs::read_to_string(state.join("pids/demo.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));

    // The Operator cluster is Healthy, the Helm release's Deployments exist.
    let m = kubectl(&kubeconfig, &["get", "milvus", "my-milvus", "-n", "milvus-demo"]);
    assert_eq!(m["status"]["status"], "Healthy", "{:#}", m["status"]);
    let deploys = kubectl(&kubeconfig, &["get", "deploy", "-n", "milvus-demo"]);
    let names: Vec<&str> = deploys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    for n in [
        "my-release-milvus-querynode",
        "my-milvus-milvus-querynode-0",
        "my-milvus-milvus-proxy",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let helm_records = kubectl(
        &kubeconfig,
        &["get", "secret", "-n", "milvus-demo", "-l", "owner=helm"],
    );
    let mut releases: Vec<&str> = helm_records["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["metadata"]["labels"]["name"].as_str())
        .collect();
    releases.sort();
    assert_eq!(
        releases,
        [
            "my-milvus-etcd",
            "my-milvus-minio",
            "my-milvus-pulsar",
            "my-release"
        ]
    );

    // Idempotent: a second `demo` finds it running.
    let again = testbed(&state, &["demo"]);
    assert!(
        again.status.success() && text(&again).contains("already running"),
        "{}",
        text(&again)
    );

    // The demo process keeps the operator alive: a CR edit is reconciled.
    let patch = Command::new(testbed::clients::kubectl_bin())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "patch",
            "milvus",
            "my-milvus",
            "-n",
            "milvus-demo",
            "--type",
            "merge",
            "-p",
        ])
        .arg(r#"{"spec":{"components":{"dataNode":{"replicas":2}}}}"#)
        .output()
        .unwrap();
    assert!(patch.status.success(), "{}", text(&patch));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = kubectl(
            &kubeconfig,
            &["get", "deploy", "my-milvus-milvus-datanode", "-n", "milvus-demo"],
        );
        if d["spec"]["replicas"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "datanode not scaled by the demo's stand-in"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let out = testbed(&state, &["down"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("demo stopped"), "{}", text(&out));
    // Gone, once whoever adopted the detached process has reaped it (a
    // zombie still answers `kill -0`).
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!pid_alive(pid), "demo process {pid} still running");
    assert!(!state.join("pids/demo.pid").exists());
}
