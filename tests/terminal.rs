//! On a terminal, `scale` shows a live spinner line on stderr (issue 14:
//! one that was never finished stayed on screen). Run under a real
//! pseudo-terminal (util-linux `script`, part of every Debian system), the
//! screen the user is left with — the output replayed through a terminal
//! emulator — must hold no spinner frame once the run has exited.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use testbed::operator::{OperatorSample, OperatorSeedOptions};
use testbed::seed::Scenario;

const ROWS: std::num::NonZero<u16> = std::num::NonZero::new(1000).unwrap();
const COLS: std::num::NonZero<u16> = std::num::NonZero::new(200).unwrap();

/// A spinner frame: indicatif's spinners are Braille patterns, which
/// nothing else the plugin prints uses.
fn is_frame(c: char) -> bool {
    ('\u{2800}'..='\u{28ff}').contains(&c)
}

/// Runs the plugin with `args` under a pseudo-terminal of 40×200; its exit
/// code, the raw bytes the terminal received, and the screen they leave.
fn on_a_terminal(args: &[&str]) -> (i32, String, String) {
    let line = std::iter::once(PLUGIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    // The pty's size is set inside it: with no terminal on our side,
    // `script` would leave it at 0×0.
    let inner = format!("stty rows 40 cols {COLS}; exec {line}");
    let child = Command::new("script")
        .args(["--quiet", "--return", "--command", &inner, "/dev/null"])
        .env("KUBECONFIG", bed().admin_kubeconfig())
        .env("TERM", "xterm-256color")
        .env_remove("HELM_DRIVER")
        .env_remove("HELM_MAX_HISTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1) from util-linux");
    // A hang guard only: the run's own exit is what is waited for.
    let (code, raw, stderr) = exits_within(child, Duration::from_secs(300));
    assert!(stderr.is_empty(), "script(1) said: {stderr}");
    // A screen taller than the output: nothing scrolls out of it.
    let mut screen = vt100::Parser::new(ROWS, COLS, 0);
    screen.process(raw.as_bytes());
    let contents = screen.screen().contents();
    (code, raw, contents)
}

/// The run showed a spinner, exited, and left none on the screen: the
/// last thing on it is `last` (its final line), with nothing after.
fn spinner_finished(code: i32, raw: &str, screen: &str, last: &str) {
    assert_eq!(code, 0, "{screen}");
    assert!(
        raw.chars().any(is_frame),
        "no spinner was shown on the terminal: {raw:?}"
    );
    let frames: Vec<&str> = screen.lines().filter(|l| l.chars().any(is_frame)).collect();
    assert!(
        frames.is_empty(),
        "a spinner frame was left on the screen: {frames:?}\n{screen}"
    );
    let end = screen.trim_end().lines().last().unwrap_or_default();
    assert!(
        end.contains(last),
        "the screen ends with {end:?}, not {last:?}:\n{screen}"
    );
}

/// A Helm release scaled in on a terminal.
#[test]
fn scale_leaves_no_spinner_on_the_terminal() {
    let ns = namespace("tty-scale");
    let ns = ns.name();
    seed_ready(ns, Scenario::QueryNode3DataNode2);
    let (code, raw, screen) = on_a_terminal(&["scale", "my-release", "queryNode=2", "-n", ns]);
    assert!(
        screen.contains("release my-release scaled: queryNode 3→2"),
        "{screen}"
    );
    spinner_finished(code, &raw, &screen, &last_pod(ns));
}

/// A `Milvus` resource seeded from `sample`, then `scale my-release ARGS`
/// on a terminal: the spinner finished, the screen as it was left.
fn operator_scale_on_a_terminal(
    prefix: &str,
    sample: OperatorSample,
    dependencies: bool,
    args: &[&str],
) -> String {
    let ns = namespace(prefix);
    let ns = ns.name();
    let opts = OperatorSeedOptions {
        dependencies,
        ..Default::default()
    };
    seed_operator(ns, sample, opts);
    let args = [&["scale", "my-release"][..], args, &["-n", ns]].concat();
    let (code, raw, screen) = on_a_terminal(&args);
    spinner_finished(code, &raw, &screen, &last_pod(ns));
    screen
}

/// A `Milvus` resource scaled on a terminal (the Operator path's run).
#[test]
fn operator_scale_leaves_no_spinner_on_the_terminal() {
    let screen =
        operator_scale_on_a_terminal("tty-op", OperatorSample::ClusterDefault, false, &["queryNode=2"]);
    assert!(
        screen.contains("Milvus my-release scaled: queryNode 1→2"),
        "{screen}"
    );
}

/// A `Milvus` resource's HPA bounds set on a terminal: the path that once
/// started a second spinner and never finished it (issue 14).
#[test]
fn operator_bounds_leave_no_spinner_on_the_terminal() {
    let screen = operator_scale_on_a_terminal(
        "tty-op-hpa",
        OperatorSample::Hpa,
        true,
        &["proxy", "--min", "3", "--max", "6"],
    );
    assert!(screen.contains("2-10 → 3-6"), "{screen}");
}

/// The last pod of the namespace by name: the closing table's last row.
fn last_pod(ns: &str) -> String {
    let pods = kubectl(&["get", "pods", "-n", ns, "-o", "name"]);
    pods.lines()
        .last()
        .unwrap_or_default()
        .trim_start_matches("pod/")
        .to_string()
}
