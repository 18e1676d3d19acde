//! The Milvus stand-in, from the outside: through the API server's pod proxy
//! (`pods/NAME:9091/proxy/…`, as kubectl and the plugin reach pods), with pod
//! addresses that exist only in the test bed's network namespace.

use std::net::Ipv4Addr;
use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testbed::TestBed;
use testbed::milvus::{self, MilvusKnobs, Model, NodeState};
use testbed::netns;
use testbed::seed::{Scenario, SeedOptions, seed_release, wait_release_ready};
use testbed::sim::{Fault, FaultRule, set_pod_faults};

const WAIT: Duration = Duration::from_secs(60);

/// `METHOD /api/v1/namespaces/NS/pods/POD:PORT/proxy<path>` as the admin;
/// `form` is sent urlencoded. Returns status and body, whatever the status.
async fn call(ns: &str, pod: &str, method: &str, path: &str, form: Option<&str>) -> (u16, String) {
    let client = TestBed::get().client().await.unwrap();
    let uri = format!("/api/v1/namespaces/{ns}/pods/{pod}:9091/proxy{path}");
    let mut req = http::Request::builder().method(method).uri(uri);
    let body = match form {
        Some(f) => {
            req = req.header("Content-Type", "application/x-www-form-urlencoded");
            f.as_bytes().to_vec()
        }
        None => Vec::new(),
    };
    let resp = client.send(req.body(body.into()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get(ns: &str, pod: &str, path: &str) -> (u16, String) {
    call(ns, pod, "GET", path, None).await
}

async fn post(ns: &str, pod: &str, path: &str, form: &str) -> (u16, String) {
    call(ns, pod, "POST", path, Some(form)).await
}

async fn pods(ns: &str, selector: &str) -> Vec<Pod> {
    let client = TestBed::get().client().await.unwrap();
    let api: Api<Pod> = Api::namespaced(client, ns);
    let mut list = api
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items;
    list.sort_by_key(|p| p.metadata.name.clone());
    list
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap()
}

fn ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// Node list through the proxy pod, as JSON.
async fn node_list(ns: &str, proxy: &str) -> Vec<Value> {
    let (status, body) = get(ns, proxy, "/management/querycoord/node/list").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["nodeInfos"].as_array().cloned().unwrap_or_default()
}

async fn seeded(ns: &str, scenario: Scenario, knobs: MilvusKnobs) -> String {
    let bed = TestBed::get();
    bed.pod_network()
        .expect("the stand-in needs the test bed's pod network");
    milvus::set_knobs(ns, knobs).await.unwrap();
    let rel = seed_release(bed, ns, scenario, SeedOptions::default())
        .await
        .unwrap();
    wait_release_ready(ns).await.unwrap();
    rel.release
}

fn segments(n: u32) -> MilvusKnobs {
    MilvusKnobs {
        segments: [("*".to_string(), n)].into(),
        ..MilvusKnobs::default()
    }
}

async fn proxy_pod(ns: &str) -> String {
    name(&pods(ns, "app.kubernetes.io/name=milvus,component=proxy").await[0])
}

async fn loaded(ns: &str, instance: &str, n: usize) -> Model {
    milvus::wait_until(ns, instance, WAIT, "segments loaded and balanced", |m| {
        !m.busy() && m.unplaced.is_empty() && m.nodes.values().map(|n| n.segments.len()).sum::<usize>() == n
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_ips_exist_only_in_the_test_beds_network_namespace() {
    let bed = TestBed::get();
    let net = bed.pod_network().expect("pod network");
    assert!(netns::RANGE.contains(net.pod_cidr.addr));
    let ns = bed.namespace("mv-ips").await.unwrap();
    seeded(&ns, Scenario::Defaults, MilvusKnobs::default()).await;
    let all = pods(&ns, "").await;
    assert!(all.len() >= 20, "{}", all.len());
    for p in &all {
        let addr: Ipv4Addr = ip(p).parse().unwrap_or_else(|_| panic!("{} has no IP", name(p)));
        assert!(
            net.pod_cidr.contains(addr),
            "{} got {addr}, outside {}",
            name(p),
            net.pod_cidr
        );
    }
    // The host routes each of them into the namespace's veth, nowhere else.
    let out = std::process::Command::new("ip")
        .args(["-4", "route", "get", &ip(&all[0])])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&out.stdout);
    assert!(route.contains(&format!("dev {}", net.veth)), "{route}");
    // Non-Milvus pods (etcd, minio, pulsar) have nobody listening.
    let etcd = name(&pods(&ns, "app.kubernetes.io/name=etcd").await[0]);
    let (status, _) = get(&ns, &etcd, "/healthz").await;
    assert_ne!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_milvus_pod_answers_healthz_through_the_pod_proxy() {
    let ns = TestBed::get().namespace("mv-healthz").await.unwrap();
    seeded(&ns, Scenario::Defaults, MilvusKnobs::default()).await;
    let milvus_pods = pods(&ns, "app.kubernetes.io/name=milvus").await;
    assert_eq!(
        milvus_pods.len(),
        5,
        "mixcoord, proxy, querynode, datanode, streamingnode"
    );
    for p in &milvus_pods {
        assert_eq!(
            get(&ns, &name(p), "/healthz").await,
            (200, "OK".to_string()),
            "{}",
            name(p)
        );
        let ready = get(&ns, &name(p), "/management/check/ready").await;
        assert_eq!(ready, (200, r#"{"msg": "OK"}"#.to_string()));
    }
    // Only proxies have the QueryCoord routes.
    let qn = name(&pods(&ns, "component=querynode").await[0]);
    let (status, body) = get(&ns, &qn, "/management/querycoord/node/list").await;
    assert_eq!((status, body.as_str()), (404, "404 page not found\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_list_maps_query_and_streaming_nodes_to_pod_ips() {
    let ns = TestBed::get().namespace("mv-list").await.unwrap();
    let rel = seeded(&ns, Scenario::QueryNode3DataNode2, segments(12)).await;
    let proxy = proxy_pod(&ns).await;
    loaded(&ns, &rel, 12).await;
    let nodes = node_list(&ns, &proxy).await;
    let mut holders = pods(&ns, "app.kubernetes.io/name=milvus,component=querynode").await;
    holders.extend(pods(&ns, "app.kubernetes.io/name=milvus,component=streamingnode").await);
    assert_eq!(nodes.len(), 4, "{nodes:?}");
    let mut addrs: Vec<String> = nodes
        .iter()
        .map(|n| n["address"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = holders.iter().map(|p| format!("{}:21123", ip(p))).collect();
    addrs.sort();
    want.sort();
    assert_eq!(addrs, want);
    // Sequential server IDs, shared with the instance's other components.
    let mut ids: Vec<i64> = nodes.iter().map(|n| n["ID"].as_i64().unwrap()).collect();
    ids.sort();
    assert!(ids.iter().all(|id| (1..=8).contains(id)), "{ids:?}");
    assert!(nodes.iter().all(|n| n["state"] == "active"), "{nodes:?}");
    // Segments on query nodes (as strings), the channel on the streaming node.
    let m = milvus::state(&ns, &rel).unwrap();
    for n in &nodes {
        let id = n["ID"].as_i64().unwrap();
        let (status, body) = get(
            &ns,
            &proxy,
            &format!("/management/querycoord/distribution/get?node_id={id}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let d: Value = serde_json::from_str(&body).unwrap();
        let segs: Vec<i64> = d["sealed_segmentIDs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().expect("segment IDs are strings").parse().unwrap())
            .collect();
        assert_eq!(segs, m.nodes[&id].segments.iter().copied().collect::<Vec<_>>());
        let streaming = m.nodes[&id].kind == milvus::NodeKind::StreamingNode;
        if streaming {
            assert!(segs.is_empty());
            assert_eq!(d["channel_names"].as_array().map(Vec::len), Some(1), "{body}");
        } else {
            assert_eq!(segs.len(), 4, "12 segments over 3 query nodes");
            assert_eq!(
                d["channel_names"],
                Value::Null,
                "empty channel list comes back as null"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_node_empties_and_resumes() {
    let ns = TestBed::get().namespace("mv-suspend").await.unwrap();
    let rel = seeded(&ns, Scenario::QueryNode3DataNode2, segments(9)).await;
    let proxy = proxy_pod(&ns).await;
    let m = loaded(&ns, &rel, 9).await;
    let victim = *m
        .nodes
        .values()
        .find(|n| n.segments.len() == 3)
        .map(|n| &n.id)
        .unwrap();
    let (status, body) = post(
        &ns,
        &proxy,
        "/management/querycoord/node/suspend",
        &format!("node_id={victim}"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"msg": "OK"}"#));
    let listed = node_list(&ns, &proxy).await;
    let entry = listed.iter().find(|n| n["ID"] == victim).unwrap();
    assert_eq!(entry["state"], "suspended");
    let m = milvus::wait_until(&ns, &rel, WAIT, "suspended node emptied", |m| {
        m.nodes[&victim].segments.is_empty() && m.nodes[&victim].channels.is_empty()
    })
    .await
    .unwrap();
    assert!(m.lost.is_empty());
    let (_, body) = get(
        &ns,
        &proxy,
        &format!("/management/querycoord/distribution/get?node_id={victim}"),
    )
    .await;
    assert_eq!(body, r#"{"channel_names":null,"sealed_segmentIDs":[]}"#);
    let (status, _) = post(
        &ns,
        &proxy,
        "/management/querycoord/node/resume",
        &format!("node_id={victim}"),
    )
    .await;
    assert_eq!(status, 200);
    // The balancer gives it work again.
    milvus::wait_until(&ns, &rel, WAIT, "resumed node refilled", |m| {
        m.nodes[&victim].segments.len() == 3 && !m.nodes[&victim].suspended
    })
    .await
    .unwrap();
    // An unknown node: 500 with Milvus's wording.
    let (status, body) = post(&ns, &proxy, "/management/querycoord/node/suspend", "node_id=999").await;
    assert_eq!(status, 500);
    assert!(body.starts_with(r#"{"msg": "failed to suspend node, "#), "{body}");
    assert!(body.contains("node not found[node=999]"), "{body}");
    // A bad node_id: 400 before anything is asked.
    let (status, body) = post(&ns, &proxy, "/management/querycoord/node/suspend", "node_id=x").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"msg": "failed to suspend node, strconv.ParseInt: parsing "x": invalid syntax"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_move_segments_and_channels_while_balance_is_suspended() {
    let ns = TestBed::get().namespace("mv-transfer").await.unwrap();
    let rel = seeded(&ns, Scenario::QueryNode3DataNode2, segments(6)).await;
    let proxy = proxy_pod(&ns).await;
    let m = loaded(&ns, &rel, 6).await;
    let qn: Vec<i64> = m
        .nodes
        .values()
        .filter(|n| n.kind == milvus::NodeKind::QueryNode)
        .map(|n| n.id)
        .collect();
    let (a, b) = (qn[0], qn[1]);
    let q = "/management/querycoord";
    assert_eq!(
        post(&ns, &proxy, &format!("{q}/balance/suspend"), "").await.0,
        200
    );
    let (_, body) = get(&ns, &proxy, &format!("{q}/balance/status")).await;
    assert_eq!(body, r#"{"msg": "OK", "status": "suspended"}"#);
    assert!(milvus::state(&ns, &rel).unwrap().balance_suspended);
    // check: b lacks a's segments.
    let (status, body) = get(
        &ns,
        &proxy,
        &format!("{q}/distribution/check?source_node_id={a}&target_node_id={b}"),
    )
    .await;
    assert_eq!(status, 500);
    assert!(body.contains("segment lack"), "{body}");
    // One segment, by id.
    let one = *m.nodes[&a].segments.iter().next().unwrap();
    let (status, body) = post(
        &ns,
        &proxy,
        &format!("{q}/transfer/segment"),
        &format!("source_node_id={a}&target_node_id={b}&segment_id={one}"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"msg": "OK"}"#));
    milvus::wait_until(&ns, &rel, WAIT, "segment moved", |m| {
        m.nodes[&b].segments.contains(&one) && !m.nodes[&a].segments.contains(&one)
    })
    .await
    .unwrap();
    // The rest, to b.
    let (status, _) = post(
        &ns,
        &proxy,
        &format!("{q}/transfer/segment"),
        &format!("source_node_id={a}&target_node_id={b}"),
    )
    .await;
    assert_eq!(status, 200);
    let m = milvus::wait_until(&ns, &rel, WAIT, "a emptied to b", |m| {
        m.nodes[&a].segments.is_empty()
    })
    .await
    .unwrap();
    assert_eq!(m.nodes[&b].segments.len(), 4);
    assert_eq!(
        get(
            &ns,
            &proxy,
            &format!("{q}/distribution/check?source_node_id={a}&target_node_id={b}")
        )
        .await
        .0,
        200
    );
    // A segment the source does not hold.
    let (status, body) = post(
        &ns,
        &proxy,
        &format!("{q}/transfer/segment"),
        &format!("source_node_id={a}&segment_id={one}"),
    )
    .await;
    assert_eq!(status, 500);
    assert!(body.contains("segment not found in source node"), "{body}");
    // Channels: from the streaming node to all (no other streaming node: nothing moves, Milvus says OK).
    let sn = m
        .nodes
        .values()
        .find(|n| n.kind == milvus::NodeKind::StreamingNode)
        .unwrap()
        .id;
    assert_eq!(
        post(
            &ns,
            &proxy,
            &format!("{q}/transfer/channel"),
            &format!("source_node_id={sn}")
        )
        .await
        .0,
        200
    );
    // Milvus's own malformed body for a bad source id.
    let (status, body) = post(&ns, &proxy, &format!("{q}/transfer/channel"), "source_node_id=").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"msg": failed to transfer channel", strconv.ParseInt: parsing "": invalid syntax"}"#
    );
    // Balance resumed: b is evened out again.
    assert_eq!(post(&ns, &proxy, &format!("{q}/balance/resume"), "").await.0, 200);
    milvus::wait_until(&ns, &rel, WAIT, "balanced", |m| {
        m.nodes
            .values()
            .filter(|n| n.kind == milvus::NodeKind::QueryNode)
            .all(|n| n.segments.len() == 2)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pod_loses_its_segments_and_the_loss_is_recorded() {
    let ns = TestBed::get().namespace("mv-loss").await.unwrap();
    let rel = seeded(&ns, Scenario::QueryNode3DataNode2, segments(9)).await;
    loaded(&ns, &rel, 9).await;
    // Balance suspended and no move in flight: nothing leaves the victim
    // between this look at it and its kill.
    let proxy = proxy_pod(&ns).await;
    let suspend = post(&ns, &proxy, "/management/querycoord/balance/suspend", "").await;
    assert_eq!(suspend.0, 200, "{}", suspend.1);
    let m = milvus::wait_until(&ns, &rel, WAIT, "balance suspended, no move in flight", |m| {
        m.balance_suspended && m.moves.is_empty()
    })
    .await
    .unwrap();
    let victim = m
        .nodes
        .values()
        .find(|n| n.kind == milvus::NodeKind::QueryNode)
        .unwrap()
        .clone();
    let client = TestBed::get().client().await.unwrap();
    let api: Api<Pod> = Api::namespaced(client, &ns);
    // Killed: no grace, nothing can move out.
    api.delete(&victim.pod, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let m = milvus::wait_until(&ns, &rel, WAIT, "loss recorded", |m| !m.lost.is_empty())
        .await
        .unwrap();
    assert_eq!(m.lost.len(), 1);
    let loss = &m.lost[0];
    assert_eq!(loss.node_id, victim.id);
    assert_eq!(loss.pod, victim.pod);
    assert_eq!(loss.segments, victim.segments.iter().copied().collect::<Vec<_>>());
    assert!(!m.nodes.contains_key(&victim.id));
    // QueryCoord reloads what was lost on the others (and the new pod).
    loaded(&ns, &rel, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_moves_segments_out_unless_cut_short() {
    let ns = TestBed::get().namespace("mv-graceful").await.unwrap();
    let knobs = MilvusKnobs {
        move_ms: Some(30),
        ..segments(12)
    };
    // Enough grace (3 s) for 4 moves of 30 ms: nothing lost, `stopping`
    // meanwhile. (Written before the pods exist: it applies from the start.)
    set_pod_faults(
        &ns,
        vec![FaultRule::new(
            "component=querynode",
            Fault::TerminatingGrace { grace_ms: 3000 },
        )],
    )
    .await
    .unwrap();
    let rel = seeded(&ns, Scenario::QueryNode3DataNode2, knobs.clone()).await;
    let proxy = proxy_pod(&ns).await;
    loaded(&ns, &rel, 12).await;
    let client = TestBed::get().client().await.unwrap();
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let m = milvus::state(&ns, &rel).unwrap();
    let first = m
        .nodes
        .values()
        .find(|n| n.kind == milvus::NodeKind::QueryNode)
        .unwrap()
        .clone();
    api.delete(&first.pod, &DeleteParams::default()).await.unwrap();
    milvus::wait_until(&ns, &rel, WAIT, "stopping node drained", |m| {
        m.nodes
            .get(&first.id)
            .is_some_and(|n| n.state == NodeState::Stopping && n.segments.is_empty())
    })
    .await
    .unwrap();
    let listed = node_list(&ns, &proxy).await;
    assert_eq!(
        listed.iter().find(|n| n["ID"] == first.id).unwrap()["state"],
        "stopping"
    );
    // Its components report Stopping: unhealthy while it terminates.
    assert_eq!(
        get(&ns, &first.pod, "/healthz").await,
        (500, "Not all components are healthy, 0/1".to_string())
    );
    milvus::wait_until(&ns, &rel, WAIT, "node gone", |m| !m.nodes.contains_key(&first.id))
        .await
        .unwrap();
    assert!(milvus::state(&ns, &rel).unwrap().lost.is_empty());
    // Cut short: moves of 2 s, killed after 300 ms (3 s until the new rule
    // reaches the simulator): it still held segments.
    loaded(&ns, &rel, 12).await;
    milvus::set_knobs(
        &ns,
        MilvusKnobs {
            move_ms: Some(2000),
            ..knobs
        },
    )
    .await
    .unwrap();
    set_pod_faults(
        &ns,
        vec![FaultRule::new(
            "component=querynode",
            Fault::TerminatingGrace { grace_ms: 300 },
        )],
    )
    .await
    .unwrap();
    let m = milvus::state(&ns, &rel).unwrap();
    let second = m
        .nodes
        .values()
        .find(|n| n.kind == milvus::NodeKind::QueryNode && !n.segments.is_empty())
        .unwrap()
        .clone();
    api.delete(&second.pod, &DeleteParams::default()).await.unwrap();
    let m = milvus::wait_until(&ns, &rel, WAIT, "loss recorded", |m| !m.lost.is_empty())
        .await
        .unwrap();
    assert_eq!(m.lost[0].node_id, second.id);
    assert!(!m.lost[0].segments.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_knobs_unhealthy_failing_routes_no_routes_stalled_moves_legacy_names() {
    let ns = TestBed::get().namespace("mv-faults").await.unwrap();
    let rel = seeded(&ns, Scenario::QueryNode3DataNode2, segments(6)).await;
    let proxy = proxy_pod(&ns).await;
    let m = loaded(&ns, &rel, 6).await;
    let q = "/management/querycoord";
    let base = segments(6);

    milvus::set_knobs(
        &ns,
        MilvusKnobs {
            unhealthy: vec!["component=proxy".into()],
            ..base.clone()
        },
    )
    .await
    .unwrap();
    let (status, body) = get(&ns, &proxy, "/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (500, "Not all components are healthy, 0/1")
    );
    let qn = name(&pods(&ns, "component=querynode").await[0]);
    assert_eq!(get(&ns, &qn, "/healthz").await.0, 200, "only the selected pods");

    milvus::set_knobs(
        &ns,
        MilvusKnobs {
            routes_fail: true,
            ..base.clone()
        },
    )
    .await
    .unwrap();
    let (status, body) = get(&ns, &proxy, &format!("{q}/node/list")).await;
    assert_eq!(status, 500);
    assert!(
        body.starts_with(r#"{"msg": "failed to list query node, "#),
        "{body}"
    );
    assert_eq!(get(&ns, &proxy, "/healthz").await.0, 200);

    milvus::set_knobs(
        &ns,
        MilvusKnobs {
            no_routes: true,
            ..base.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        get(&ns, &proxy, &format!("{q}/node/list")).await,
        (404, "404 page not found\n".to_string())
    );
    assert_eq!(get(&ns, &proxy, "/healthz").await.0, 200);

    milvus::set_knobs(
        &ns,
        MilvusKnobs {
            legacy_state_names: true,
            ..base.clone()
        },
    )
    .await
    .unwrap();
    let listed = node_list(&ns, &proxy).await;
    assert!(listed.iter().all(|n| n["state"] == "Normal"), "{listed:?}");

    let older = MilvusKnobs {
        numeric_segment_ids: true,
        ..base.clone()
    };
    milvus::set_knobs(&ns, older).await.unwrap();
    let qn_id = m
        .nodes
        .values()
        .find(|n| n.kind == milvus::NodeKind::QueryNode)
        .unwrap()
        .id;
    let (_, body) = get(&ns, &proxy, &format!("{q}/distribution/get?node_id={qn_id}")).await;
    let d: Value = serde_json::from_str(&body).unwrap();
    assert!(
        d["sealed_segmentIDs"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_i64),
        "{body}"
    );
    assert!(d.get("channel_names").is_none(), "omitted when empty: {body}");

    milvus::set_knobs(
        &ns,
        MilvusKnobs {
            stall_moves: true,
            move_ms: Some(10),
            ..base.clone()
        },
    )
    .await
    .unwrap();
    let a = m
        .nodes
        .values()
        .find(|n| n.kind == milvus::NodeKind::QueryNode)
        .unwrap()
        .id;
    let (status, _) = post(
        &ns,
        &proxy,
        &format!("{q}/transfer/segment"),
        &format!("source_node_id={a}"),
    )
    .await;
    assert_eq!(status, 200, "accepted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = milvus::state(&ns, &rel).unwrap();
    assert_eq!(m.nodes[&a].segments.len(), 2, "never finishes");
    assert!(!m.moves.is_empty());
    // Lifted: the queued moves finish.
    milvus::set_knobs(
        &ns,
        MilvusKnobs {
            move_ms: Some(10),
            ..base
        },
    )
    .await
    .unwrap();
    milvus::wait_until(&ns, &rel, WAIT, "moves finish", |m| {
        m.nodes[&a].segments.is_empty() || m.moves.is_empty()
    })
    .await
    .unwrap();
}

/// Milvus Operator pods carry `app.kubernetes.io/component` instead of the
/// chart's `component`: pods of such a Deployment answer too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_labelled_pods_answer_and_register() {
    let bed = TestBed::get();
    bed.pod_network().expect("pod network");
    let ns = bed.namespace("mv-operator").await.unwrap();
    milvus::seed_segments(&ns, "my-milvus", 4, 1);
    let client = bed.client().await.unwrap();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, &ns);
    for (component, replicas) in [("proxy", 1), ("querynode", 2), ("mixcoord", 1)] {
        let labels = json!({
            "app.kubernetes.io/name": "milvus",
            "app.kubernetes.io/instance": "my-milvus",
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "milvus-operator",
        });
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("my-milvus-milvus-{component}"), "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                    "name": component, "image": "milvusdb/milvus:v2.5.4",
                    "ports": [{"name": "metrics", "containerPort": 9091, "protocol": "TCP"}]}]}}},
        });
        deployments
            .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
            .await
            .unwrap();
    }
    let m = milvus::wait_until(&ns, "my-milvus", WAIT, "2 query nodes holding 4 segments", |m| {
        m.nodes.len() == 2 && m.nodes.values().all(|n| n.segments.len() == 2)
    })
    .await
    .unwrap();
    let proxy = milvus::wait_until(&ns, "my-milvus", WAIT, "proxy registered", |m| {
        m.server_ids.keys().any(|p| p.contains("-proxy-"))
    })
    .await
    .unwrap()
    .server_ids
    .keys()
    .find(|p| p.contains("-proxy-"))
    .cloned()
    .unwrap();
    // The listener may come up just after registration: retry briefly.
    let listed = testbed::eventually(WAIT, Duration::from_millis(100), "node list", || {
        let (ns, proxy) = (ns.to_string(), proxy.clone());
        async move {
            let (status, body) = get(&ns, &proxy, "/management/querycoord/node/list").await;
            (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
        }
    })
    .await
    .unwrap();
    let ids: Vec<i64> = listed["nodeInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["ID"].as_i64().unwrap())
        .collect();
    let mut want: Vec<i64> = m.nodes.keys().copied().collect();
    want.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(ids, want);
    // Scale the query nodes in by deleting the Deployment's pods' owner: the
    // patch keeps the test fast and exercises a pod removal with grace.
    deployments
        .patch(
            "my-milvus-milvus-querynode",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    milvus::wait_until(&ns, "my-milvus", WAIT, "one query node left with all 4", |m| {
        m.nodes.len() == 1 && m.nodes.values().all(|n| n.segments.len() == 4)
    })
    .await
    .unwrap();
}

/// Standalone runs coordinator, proxy and query node in one pod: it answers
/// the management routes and is itself the only query node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_is_proxy_and_query_node_at_once() {
    let ns = TestBed::get().namespace("mv-standalone").await.unwrap();
    let rel = seeded(&ns, Scenario::Standalone, segments(3)).await;
    let pod = name(&pods(&ns, "app.kubernetes.io/name=milvus,component=standalone").await[0]);
    loaded(&ns, &rel, 3).await;
    let pod_obj = &pods(&ns, "app.kubernetes.io/name=milvus,component=standalone").await[0];
    let nodes = node_list(&ns, &pod).await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["address"], format!("{}:21123", ip(pod_obj)));
    // The JSON form of /healthz (asked with Content-Type: application/json).
    let client = TestBed::get().client().await.unwrap();
    let req = http::Request::get(format!("/api/v1/namespaces/{ns}/pods/{pod}:9091/proxy/healthz"))
        .header("Content-Type", "application/json")
        .body(Vec::new().into())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["state"], "OK");
    assert_eq!(v["detail"][0]["code"], 1);
}
