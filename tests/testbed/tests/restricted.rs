//! Restricted users get real 403s; granted verbs work.

mod common;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Api;
use testbed::TestBed;
use testbed::clients::run;
use testbed::kubeconfig::client_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_user_gets_403_outside_its_role() {
    let bed = TestBed::get();
    let ns = bed.namespace("rbac").await.unwrap();
    let kc = bed
        .restricted_kubeconfig(
            &ns,
            "pod-reader",
            vec![PolicyRule {
                api_groups: Some(vec!["".into()]),
                resources: Some(vec!["pods".into()]),
                verbs: vec!["get".into(), "list".into()],
                ..Default::default()
            }],
        )
        .await
        .unwrap();

    // Real kubectl: granted verb works, others are Forbidden.
    let kubectl = testbed::clients::kubectl_bin();
    let mut ok = std::process::Command::new(&kubectl);
    ok.args(["--kubeconfig"])
        .arg(&kc)
        .args(["get", "pods", "-n", &ns]);
    run(&mut ok).unwrap();
    let out = std::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["get", "secrets", "-n", &ns])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Forbidden") || err.contains("forbidden"), "{err}");

    // kube client: a real 403 Status.
    let client = client_for(&kc).await.unwrap();
    Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .unwrap();
    match Api::<Secret>::namespaced(client, &ns)
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_user_without_bindings_is_forbidden() {
    let bed = TestBed::get();
    let Some(kc) = bed.restricted_user_kubeconfig() else {
        eprintln!("foreign cluster: no restricted certificate user; skipped");
        return;
    };
    let client = client_for(kc).await.unwrap();
    match Api::<Pod>::namespaced(client, "default")
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("expected 403, got {other:?}"),
    }
}
