//! The control plane, the simulated kubelet, and real kubectl.

mod common;

use std::time::{Duration, Instant};

use common::{kubectl, wait_pods};
use testbed::TestBed;
use testbed::sim::{Fault, FaultRule, set_pod_faults};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_reaches_ready_pods_and_back() {
    let bed = TestBed::get();
    let ns = bed.namespace("scale").await.unwrap();
    kubectl(&["create", "deployment", "web", "--image=nginx:1.25", "-n", &ns]);
    kubectl(&["rollout", "status", "deployment/web", "-n", &ns, "--timeout=60s"]);

    let t = Instant::now();
    kubectl(&["scale", "deployment/web", "--replicas=3", "-n", &ns]);
    kubectl(&["rollout", "status", "deployment/web", "-n", &ns, "--timeout=60s"]);
    eprintln!("scale 1 -> 3 ready in {:?}", t.elapsed());
    let lines = wait_pods(
        &ns,
        Some("app=web"),
        Duration::from_secs(30),
        "3 Running 1/1",
        |l| l.len() == 3 && l.iter().all(|p| p.contains(" 1/1 Running ")),
    )
    .await;
    assert_eq!(lines.len(), 3);

    kubectl(&["scale", "deployment/web", "--replicas=1", "-n", &ns]);
    // Scale-in: pods are visibly Terminating for the simulated grace, then gone.
    wait_pods(
        &ns,
        Some("app=web"),
        Duration::from_secs(30),
        "Terminating pods",
        |l| l.iter().any(|p| p.contains(" Terminating ")),
    )
    .await;
    let lines = wait_pods(&ns, Some("app=web"), Duration::from_secs(30), "1 pod left", |l| {
        l.len() == 1
    })
    .await;
    assert!(lines[0].contains(" 1/1 Running "), "{lines:?}");
    let ready = kubectl(&[
        "get",
        "deploy",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(ready, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_pods_complete() {
    let bed = TestBed::get();
    let ns = bed.namespace("job").await.unwrap();
    kubectl(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "-n",
        &ns,
        "--",
        "true",
    ]);
    kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/once",
        "-n",
        &ns,
        "--timeout=60s",
    ]);
    let lines = wait_pods(
        &ns,
        Some("job-name=once"),
        Duration::from_secs(10),
        "Completed",
        |l| l.len() == 1 && l[0].contains(" 0/1 Completed "),
    )
    .await;
    assert_eq!(lines.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_faults_show_in_kubectl() {
    let bed = TestBed::get();
    let ns = bed.namespace("faults").await.unwrap();
    set_pod_faults(
        &ns,
        vec![
            FaultRule::new("app=never", Fault::NeverReady),
            FaultRule::new("app=crash", Fault::CrashLoop { restarts: 4 }),
            FaultRule::new("app=stuck", Fault::StuckPending),
            FaultRule::new("app=slow", Fault::SlowStart { delay_ms: 3000 }),
        ],
    )
    .await
    .unwrap();
    for app in ["never", "crash", "stuck", "slow"] {
        kubectl(&["create", "deployment", app, "--image=nginx", "-n", &ns]);
    }
    wait_pods(
        &ns,
        Some("app=never"),
        Duration::from_secs(30),
        "0/1 Running",
        |l| l.len() == 1 && l[0].contains(" 0/1 Running 0 "),
    )
    .await;
    wait_pods(
        &ns,
        Some("app=crash"),
        Duration::from_secs(30),
        "CrashLoopBackOff",
        |l| l.len() == 1 && l[0].contains(" 0/1 CrashLoopBackOff 4 "),
    )
    .await;
    // Slow start: still ContainerCreating well after normal pods are ready.
    let slow = common::pod_lines(&ns, Some("app=slow"));
    assert!(slow[0].contains(" ContainerCreating "), "{slow:?}");
    wait_pods(
        &ns,
        Some("app=slow"),
        Duration::from_secs(30),
        "slow pod ready",
        |l| l.len() == 1 && l[0].contains(" 1/1 Running "),
    )
    .await;
    let stuck = common::pod_lines(&ns, Some("app=stuck"));
    assert!(
        stuck.len() == 1 && stuck[0].contains(" 0/1 Pending "),
        "{stuck:?}"
    );
    let node = kubectl(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-l",
        "app=stuck",
        "-o",
        "jsonpath={.items[0].spec.nodeName}",
    ]);
    assert_eq!(node, "", "stuck pod must not be bound");

    // Clearing the rules lets the stuck pod start.
    set_pod_faults(&ns, vec![]).await.unwrap();
    wait_pods(&ns, Some("app=stuck"), Duration::from_secs(30), "unstuck", |l| {
        l.len() == 1 && l[0].contains(" 1/1 Running ")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_grace_override() {
    let bed = TestBed::get();
    let ns = bed.namespace("grace").await.unwrap();
    set_pod_faults(
        &ns,
        vec![FaultRule::new(
            "app=slowstop",
            Fault::TerminatingGrace { grace_ms: 4000 },
        )],
    )
    .await
    .unwrap();
    kubectl(&["create", "deployment", "slowstop", "--image=nginx", "-n", &ns]);
    kubectl(&[
        "rollout",
        "status",
        "deployment/slowstop",
        "-n",
        &ns,
        "--timeout=60s",
    ]);
    kubectl(&["scale", "deployment/slowstop", "--replicas=0", "-n", &ns]);
    let t = Instant::now();
    wait_pods(&ns, Some("app=slowstop"), Duration::from_secs(30), "gone", |l| {
        l.is_empty()
    })
    .await;
    assert!(
        t.elapsed() >= Duration::from_millis(3000),
        "left after {:?}",
        t.elapsed()
    );
}

#[test]
fn simulator_node_is_registered_and_tainted() {
    let bed = TestBed::get();
    let node = bed.simulator().node_name().to_string();
    let taints = kubectl(&["get", "node", &node, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(taints.contains(testbed::sim::TAINT_KEY), "{taints}");
    let ready = kubectl(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
    ]);
    assert_eq!(ready, "True");
}
