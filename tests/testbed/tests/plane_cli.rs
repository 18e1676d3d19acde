//! `testbed up|status|down` from the outside: each test runs the real binary
//! on a state dir of its own, so the shared plane of the other tests is
//! never touched.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use testbed::plane::Layout;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");

fn testbed(state: &Path, args: &[&str]) -> Output {
    Command::new(TESTBED)
        .args(args)
        .env("TESTBED_STATE_DIR", state)
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

/// The control-plane binaries: missing only when the suite is attached to
/// some other cluster and nothing was provisioned here.
fn binaries_provisioned() -> bool {
    let bin = Layout::from_env().k8s_bin_dir.join("kube-apiserver");
    if bin.is_file() {
        return true;
    }
    assert!(
        std::env::var_os(testbed::KUBECONFIG_ENV).is_some(),
        "{} missing: run tests/testbed/scripts/provision.sh",
        bin.display()
    );
    eprintln!("skipped: no local control-plane binaries; the suite runs against another cluster");
    false
}

/// `kill -0`: right in any pid namespace, unlike `/proc/<pid>` (see below).
fn pid_exists(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .status()
        .is_ok_and(|s| s.success())
}

fn netns_exists(name: &str) -> bool {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn up_reuses_and_down_stops_exactly_what_up_started() {
    if !binaries_provisioned() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let up = testbed(state.path(), &["up"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("started control plane"), "{}", text(&up));
    let pids: Vec<String> = ["etcd", "kube-apiserver", "kube-controller-manager"]
        .iter()
        .map(|c| {
            let file = std::fs::read_to_string(state.path().join("pids").join(format!("{c}.pid"))).unwrap();
            file.split_whitespace().next().unwrap().to_string()
        })
        .collect();
    assert!(pids.iter().all(|p| pid_exists(p)), "{pids:?}");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("state.json")).unwrap()).unwrap();
    let ports: Vec<u16> = ["etcd_port", "apiserver_port", "controller_manager_port"]
        .iter()
        .map(|k| recorded[k].as_u64().unwrap() as u16)
        .collect();
    assert!(ports.iter().all(|p| port_open(*p)), "{ports:?}");
    // `up` made this plane's pod network (its own names: no collision with
    // the shared plane's).
    let layout = Layout {
        state_dir: state.path().to_path_buf(),
        ..Layout::from_env()
    };
    let (netns_name, veth) = testbed::netns::names(&layout);
    assert!(
        text(&up).contains(&format!("network namespace {netns_name}")),
        "{}",
        text(&up)
    );
    assert!(netns_exists(&netns_name));
    assert_ne!(testbed::netns::names(&Layout::from_env()).0, netns_name);

    let again = testbed(state.path(), &["up"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already running"), "{}", text(&again));
    let status = testbed(state.path(), &["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("(ready: true)"), "{}", text(&status));

    let down = testbed(state.path(), &["down"]);
    assert!(down.status.success(), "{}", text(&down));
    // `down` returns once the processes have exited; their ports close with them.
    assert!(ports.iter().all(|p| !port_open(*p)), "still listening: {ports:?}");
    assert!(!state.path().join("pids/kube-apiserver.pid").exists());
    assert!(!netns_exists(&netns_name), "down leaves the network namespace");
    let link = Command::new("ip").args(["link", "show", &veth]).output().unwrap();
    assert!(!link.status.success(), "down leaves the veth {veth}");
    assert!(!testbed(state.path(), &["status"]).status.success());
}

#[test]
fn works_in_a_pid_namespace_that_sees_the_hosts_proc() {
    if !binaries_provisioned() {
        return;
    }
    // A sandbox may forbid new pid namespaces (no CAP_SYS_ADMIN): then
    // there is nothing to reproduce here.
    let probe = Command::new("unshare").args(["--pid", "--fork", "true"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot create a pid namespace here: {probe:?}");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let script = format!("{TESTBED} up && {TESTBED} up && {TESTBED} status && {TESTBED} down && echo done");
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "bash", "-c", &script])
        .env("TESTBED_STATE_DIR", state.path())
        .output()
        .expect("run unshare (util-linux)");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("started control plane"), "{all}");
    assert!(all.contains("already running"), "{all}");
    assert!(all.contains("(ready: true)"), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim_end().ends_with("done"),
        "{all}"
    );
}

/// `down` signals a recorded pid only when it is provably our process: a
/// pid file naming an unrelated live process (a recycled pid), or a pid
/// recorded in another pid namespace, is left alone.
#[test]
fn down_never_signals_a_process_it_did_not_start() {
    let state = tempfile::tempdir().unwrap();
    let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = bystander.id();
    let own_namespace = std::fs::read_link("/proc/self/ns/pid").unwrap();
    std::fs::create_dir_all(state.path().join("pids")).unwrap();
    let write = |component: &str, namespace: &str| {
        std::fs::write(
            state.path().join("pids").join(format!("{component}.pid")),
            format!("{pid} {namespace}\n"),
        )
        .unwrap()
    };
    write("kube-apiserver", &own_namespace.to_string_lossy());
    write("etcd", "pid:[1]");

    let down = testbed(state.path(), &["down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "down killed a process it did not start"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}
