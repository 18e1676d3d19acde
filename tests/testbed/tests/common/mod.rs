//! Helpers shared by the testbed's own tests.
#![allow(dead_code)]

use std::time::Duration;

use testbed::TestBed;
use testbed::clients::run;

/// `kubectl get pods -n ns --no-headers` (optionally with a selector), as lines.
pub fn pod_lines(ns: &str, selector: Option<&str>) -> Vec<String> {
    let bed = TestBed::get();
    let mut cmd = bed.kubectl();
    cmd.args(["get", "pods", "-n", ns, "--no-headers"]);
    if let Some(s) = selector {
        cmd.args(["-l", s]);
    }
    run(&mut cmd)
        .expect("kubectl get pods")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// Poll `kubectl get pods` until `pred(lines)` holds.
pub async fn wait_pods(
    ns: &str,
    selector: Option<&str>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ns2 = ns.to_string();
        let sel = selector.map(str::to_string);
        let lines = tokio::task::spawn_blocking(move || pod_lines(&ns2, sel.as_deref()))
            .await
            .unwrap();
        if pred(&lines) {
            return lines;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; pods now:\n{}", lines.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run kubectl with args; return stdout (panics with stderr on failure).
pub fn kubectl(args: &[&str]) -> String {
    run(TestBed::get().kubectl().args(args)).unwrap_or_else(|e| panic!("{e:#}"))
}
