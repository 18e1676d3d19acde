//! Every fault mode of the proxy bites; counters count.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use testbed::TestBed;
use testbed::clients::kubectl_bin;
use testbed::proxy::{FaultProxy, Mode, Rule};

fn kubectl_via(proxy: &FaultProxy, args: &[&str]) -> std::process::Output {
    Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(proxy.kubeconfig())
        .args(["--request-timeout=20s"])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_modes_and_counters() {
    let bed = TestBed::get();
    let ns = bed.namespace("proxy").await.unwrap();
    let proxy = FaultProxy::start(bed).unwrap();

    // Pass-through + counters.
    proxy.reset_counters();
    let out = kubectl_via(&proxy, &["get", "pods", "-n", &ns]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = proxy.requests();
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.starts_with(&format!("/api/v1/namespaces/{ns}/pods"))),
        "{seen:?}"
    );
    assert!(proxy.response_bytes() > 0);
    proxy.reset_counters();
    assert_eq!(proxy.request_count(), 0);
    let client = proxy.client_without_retries().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.list(&Default::default()).await.unwrap();
    assert_eq!(proxy.request_count(), 1);

    // Impersonation headers pass through: --as a user without rights → 403.
    let out = kubectl_via(&proxy, &["get", "pods", "-n", &ns, "--as", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));

    // Latency.
    proxy.set_mode(Mode::Latency(Duration::from_millis(400)));
    let t = Instant::now();
    pods.list(&Default::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(400), "{:?}", t.elapsed());

    // 500 to kubectl and to kube.
    proxy.set_mode(Mode::Status(500));
    let out = kubectl_via(&proxy, &["get", "pods", "-n", &ns]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("injected"), "{err}");
    match pods.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 500),
        other => panic!("expected 500, got {other:?}"),
    }

    // 429: seen as such without retries; kube's default client retries through it.
    proxy.set_mode(Mode::Status(429));
    match pods.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 429),
        other => panic!("expected 429, got {other:?}"),
    }
    proxy.set_mode(Mode::PassThrough);
    proxy.push_rule(Rule {
        path_contains: Some("/pods".into()),
        method: None,
        mode: Mode::Status(503),
        times: Some(2),
    });
    proxy.reset_counters();
    let retrying: Api<Pod> = Api::namespaced(proxy.client().await.unwrap(), &ns);
    retrying.list(&Default::default()).await.unwrap();
    assert_eq!(proxy.request_count(), 3, "{:?}", proxy.requests());

    // Cut mid-stream.
    proxy.set_mode(Mode::CutMidStream { after_bytes: 16 });
    assert!(pods.list(&Default::default()).await.is_err());
    let out = kubectl_via(&proxy, &["get", "pods", "-n", &ns]);
    assert!(!out.status.success());

    // Refuse.
    proxy.set_mode(Mode::Refuse);
    let e = std::net::TcpStream::connect(proxy.addr()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    let out = kubectl_via(&proxy, &["get", "ns"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "{err}");

    // And back.
    proxy.set_mode(Mode::PassThrough);
    let nss: Api<Namespace> = Api::all(proxy.client_without_retries().await.unwrap());
    nss.get(&ns).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_streams_watches() {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let bed = TestBed::get();
    let ns = bed.namespace("proxy-watch").await.unwrap();
    let proxy = FaultProxy::start(bed).unwrap();
    let client = proxy.client().await.unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, &ns);
    let mut stream = watcher::watcher(cms, Default::default()).boxed();
    // Drain the initial list, then create an object and see it arrive.
    loop {
        if let Some(Ok(watcher::Event::InitDone)) = stream.next().await {
            break;
        }
    }
    common::kubectl(&["create", "configmap", "seen-through-proxy", "-n", &ns]);
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(cm)) = ev
                && cm.metadata.name.as_deref() == Some("seen-through-proxy")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true));
}
