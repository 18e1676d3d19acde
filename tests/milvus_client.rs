//! `cluster::milvus` against the test bed's Milvus stand-in, through the
//! real API server's pod proxy: the status view, a drain and its stops,
//! the repair of what a killed run leaves, and Milvus unreachable as a
//! value.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kubectl_milvus::cluster::milvus::{Milvus, Prepared};
use kubectl_milvus::cluster::{Cluster, ConnectOptions, connect};
use kubectl_milvus::core::milvus::api::{Call, Unreachable};
use kubectl_milvus::core::milvus::drain::{self, DrainOptions, Outcome, Resumed, StopCause, marked_pods};
use kubectl_milvus::core::milvus::nodes::{MilvusPod, milvus_pods};
use kubectl_milvus::core::milvus::view::{self, Budget};
use testbed::TestBed;
use testbed::milvus::{self as standin, MilvusKnobs, Model};
use testbed::seed::{Scenario, SeedOptions, seed_release, wait_release_ready};

const WAIT: Duration = Duration::from_secs(60);
const RUN: &str = "test-host/4242/0000abcd";

async fn cluster(ns: &str) -> Cluster {
    let bed = TestBed::get();
    let conn = connect(&ConnectOptions {
        kubeconfig: Some(bed.admin_kubeconfig().to_path_buf()),
        namespace: Some(ns.to_string()),
        request_timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    })
    .await
    .expect("connect");
    Cluster::new(conn)
}

/// A release with three query nodes and `segments` sealed segments loaded.
async fn seeded(ns: &str, segments: u32, knobs: MilvusKnobs) -> (String, Model) {
    let bed = TestBed::get();
    bed.pod_network()
        .expect("the Milvus stand-in needs the test bed's pod network");
    let knobs = MilvusKnobs {
        segments: [("*".to_string(), segments)].into(),
        ..knobs
    };
    standin::set_knobs(ns, knobs).await.expect("knobs");
    let rel = seed_release(bed, ns, Scenario::QueryNode3DataNode2, SeedOptions::default())
        .await
        .expect("seed");
    wait_release_ready(ns).await.expect("ready");
    let model = standin::wait_until(ns, &rel.release, WAIT, "segments loaded", |m| {
        m.unplaced.is_empty()
            && m.nodes.values().map(|n| n.segments.len()).sum::<usize>() == segments as usize
    })
    .await
    .expect("loaded");
    (rel.release, model)
}

async fn pods(cluster: &Cluster, ns: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(cluster.client(), ns);
    api.list(&ListParams::default()).await.expect("pods").items
}

async fn milvus(cluster: &Cluster, ns: &str) -> (Milvus, Vec<MilvusPod>, Vec<Pod>) {
    let all = pods(cluster, ns).await;
    let refs: Vec<&Pod> = all.iter().collect();
    let m = Milvus::new(cluster, ns, &Budget::default());
    (m, milvus_pods(&refs), all)
}

/// A query-node pod holding segments, and its node ID in the stand-in.
fn loaded_query_node(model: &Model) -> (String, i64) {
    let n = model
        .nodes
        .values()
        .filter(|n| n.pod.contains("querynode") && !n.segments.is_empty())
        .max_by_key(|n| n.segments.len())
        .expect("a loaded query node");
    (n.pod.clone(), n.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_view_shows_the_stand_ins_node_ids_and_counts() {
    let bed = TestBed::get();
    let ns = bed.namespace("mc-view").await.expect("ns");
    let (release, _) = seeded(&ns, 12, MilvusKnobs::default()).await;
    let model = standin::wait_until(&ns, &release, WAIT, "balanced", |m| !m.busy())
        .await
        .expect("balanced");
    let c = cluster(&ns).await;
    let (m, mpods, _) = milvus(&c, &ns).await;
    let g = m.gather(mpods, Vec::new(), None, &Budget::default()).await;
    let v = view::view(&g);
    assert_eq!(v.unreachable, None);
    let seen: Vec<(i64, usize, Option<String>)> = v
        .query_nodes
        .iter()
        .map(|q| {
            (
                q.node.id,
                q.held.map_or(usize::MAX, |h| h.segments),
                q.node.pod.clone(),
            )
        })
        .collect();
    let truth: Vec<(i64, usize, Option<String>)> = model
        .nodes
        .values()
        .map(|n| (n.id, n.segments.len(), Some(n.pod.clone())))
        .collect();
    assert_eq!(seen, truth);
    assert!(
        v.components.iter().all(|c| c.healthy == c.asked && c.asked > 0),
        "{:?}",
        v.components
    );
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    assert!(
        g.requests <= 3 * v.components.len() + 2 + v.query_nodes.len(),
        "{}",
        g.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_empties_the_node_and_a_stop_after_it_resumes_the_node() {
    let bed = TestBed::get();
    let ns = bed.namespace("mc-drain").await.expect("ns");
    let (release, model) = seeded(&ns, 12, MilvusKnobs::default()).await;
    let (victim, id) = loaded_query_node(&model);
    let before = model.nodes[&id].segments.len();
    let c = cluster(&ns).await;
    let (m, mpods, _) = milvus(&c, &ns).await;
    let Prepared::Drain(mut d) = m.prepare(&mpods, &victim, RUN, DrainOptions::default()).await else {
        panic!("prepared a drain")
    };
    let mut lines = Vec::new();
    m.drive(&c, &mpods, &mut d, std::future::pending(), |l| {
        lines.push(l.to_string())
    })
    .await
    .expect("drained");
    let last = lines.last().expect("progress");
    assert!(
        last.starts_with(&format!("node {id}: {before} → 0 segments")),
        "{lines:?}"
    );
    let now = standin::state(&ns, &release).expect("model");
    let node = &now.nodes[&id];
    assert!(
        node.suspended && node.segments.is_empty() && node.channels.is_empty(),
        "{node:?}"
    );
    let (_, _, all) = milvus(&c, &ns).await;
    let marks = marked_pods(&all.iter().collect::<Vec<_>>());
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (marks[0].pod.as_str(), marks[0].mark.node_id),
        (victim.as_str(), id)
    );
    // The pod could not be removed: the node gets its work back, the mark goes.
    let outcome = m
        .finish_drain(
            &c,
            &mpods,
            &mut d,
            Some(StopCause::Api {
                detail: "step failed".into(),
            }),
        )
        .await;
    assert!(
        matches!(
            outcome,
            Outcome::Stopped {
                resumed: Resumed::Yes,
                mark_left: false,
                ..
            }
        ),
        "{outcome}"
    );
    let now = standin::state(&ns, &release).expect("model");
    assert!(!now.nodes[&id].suspended);
    let (_, _, all) = milvus(&c, &ns).await;
    assert!(marked_pods(&all.iter().collect::<Vec<_>>()).is_empty());
    assert!(now.lost.is_empty(), "{:?}", now.lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_drain_stops_within_its_timeout_with_the_node_resumed() {
    let bed = TestBed::get();
    let ns = bed.namespace("mc-stall").await.expect("ns");
    let (release, model) = seeded(&ns, 9, MilvusKnobs::default()).await;
    standin::set_knobs(
        &ns,
        MilvusKnobs {
            segments: [("*".to_string(), 9)].into(),
            stall_moves: true,
            ..MilvusKnobs::default()
        },
    )
    .await
    .expect("stall");
    let (victim, id) = loaded_query_node(&model);
    let c = cluster(&ns).await;
    let (m, mpods, _) = milvus(&c, &ns).await;
    let opts = DrainOptions {
        timeout: Duration::from_secs(3),
        ..DrainOptions::default()
    };
    let Prepared::Drain(mut d) = m.prepare(&mpods, &victim, RUN, opts).await else {
        panic!("prepared a drain")
    };
    let started = std::time::Instant::now();
    let outcome = m
        .drive(&c, &mpods, &mut d, std::future::pending(), |_| {})
        .await
        .expect_err("stopped");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let Outcome::Stopped {
        cause,
        resumed,
        reached,
        from,
        ..
    } = &outcome
    else {
        panic!("{outcome}")
    };
    assert!(
        matches!(cause, StopCause::Timeout { after_secs: 3, .. }),
        "{cause}"
    );
    assert_eq!(resumed, &Resumed::Yes);
    assert_eq!(reached, from, "nothing moved");
    let now = standin::state(&ns, &release).expect("model");
    assert!(!now.nodes[&id].suspended, "resumed");
    let (_, _, all) = milvus(&c, &ns).await;
    assert!(
        marked_pods(&all.iter().collect::<Vec<_>>()).is_empty(),
        "mark taken off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_killed_run_left_is_found_and_repaired() {
    let bed = TestBed::get();
    let ns = bed.namespace("mc-repair").await.expect("ns");
    let (release, model) = seeded(&ns, 6, MilvusKnobs::default()).await;
    let (victim, id) = loaded_query_node(&model);
    let c = cluster(&ns).await;
    let (m, mpods, _) = milvus(&c, &ns).await;
    // A run killed right after mark + suspend: exactly what it leaves.
    let Prepared::Drain(d) = m.prepare(&mpods, &victim, RUN, DrainOptions::default()).await else {
        panic!("prepared a drain")
    };
    let mark = drain::DrainMark {
        node_id: d.node(),
        run: RUN.into(),
        since: "2026-12-05T12:00:00Z".into(),
        suspended_by_run: true,
    };
    let pods_api: Api<Pod> = Api::namespaced(c.client(), &ns);
    pods_api
        .patch(
            &victim,
            &Default::default(),
            &kube::api::Patch::Merge(drain::mark_patch(&mark)),
        )
        .await
        .expect("mark");
    m.manage(&mpods, &Call::suspend(id)).await.expect("suspend");
    assert!(standin::state(&ns, &release).expect("model").nodes[&id].suspended);
    // status: a NOTE naming the repair.
    let (_, mpods, all) = milvus(&c, &ns).await;
    let marked = marked_pods(&all.iter().collect::<Vec<_>>());
    let v = view::view(
        &m.gather(mpods.clone(), marked.clone(), None, &Budget::default())
            .await,
    );
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("did not finish") && n.contains(&victim)),
        "{:?}",
        v.notes
    );
    // The next run repairs it.
    let said = m
        .repair(&c, &mpods, &marked, "this-host/1/run")
        .await
        .expect("repair");
    assert_eq!(said.len(), 1, "{said:?}");
    let now = standin::state(&ns, &release).expect("model");
    assert!(!now.nodes[&id].suspended);
    let (_, _, all) = milvus(&c, &ns).await;
    assert!(marked_pods(&all.iter().collect::<Vec<_>>()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_unreachable_is_a_value_with_its_reason() {
    let bed = TestBed::get();
    let ns = bed.namespace("mc-old").await.expect("ns");
    seeded(
        &ns,
        3,
        MilvusKnobs {
            no_routes: true,
            ..MilvusKnobs::default()
        },
    )
    .await;
    let c = cluster(&ns).await;
    let (m, mpods, _) = milvus(&c, &ns).await;
    let v = view::view(
        &m.gather(mpods.clone(), Vec::new(), None, &Budget::default())
            .await,
    );
    assert!(
        matches!(v.unreachable, Some(Unreachable::NoRoute { .. })),
        "{:?}",
        v.unreachable
    );
    // healthz still answers on an old Milvus.
    assert!(!v.components.is_empty());
    let victim = mpods
        .iter()
        .find(|p| p.component == "queryNode")
        .expect("qn")
        .name
        .clone();
    assert!(matches!(
        m.prepare(&mpods, &victim, RUN, DrainOptions::default()).await,
        Prepared::Unreachable(Unreachable::NoRoute { .. })
    ));
    // Without pods/proxy in the Role: forbidden, said as such.
    let kubeconfig = bed
        .restricted_kubeconfig(
            &ns,
            "no-proxy",
            vec![k8s_openapi::api::rbac::v1::PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["pods".into()]),
                verbs: vec!["list".into()],
                ..Default::default()
            }],
        )
        .await
        .expect("restricted");
    let conn = connect(&ConnectOptions {
        kubeconfig: Some(kubeconfig),
        namespace: Some(ns.to_string()),
        ..ConnectOptions::default()
    })
    .await
    .expect("connect");
    let rc = Cluster::new(conn);
    let rm = Milvus::new(&rc, &ns, &Budget::default());
    let v = view::view(&rm.gather(mpods, Vec::new(), None, &Budget::default()).await);
    assert!(
        matches!(v.unreachable, Some(Unreachable::Forbidden { .. })),
        "{:?}",
        v.unreachable
    );
    assert!(
        v.unreachable.expect("why").to_string().contains("pods/proxy"),
        "the line names what to add"
    );
}

/// The query-node Deployment's active pods, by name.
async fn query_node_pods(c: &Cluster, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = pods(c, ns)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("component"))
                .is_some_and(|v| v == "querynode")
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_server_without_deletion_cost_the_drained_pod_is_exactly_the_one_that_leaves() {
    let bed = TestBed::get();
    let ns = bed.namespace("mc-v120").await.expect("ns");
    let (release, model) = seeded(&ns, 12, MilvusKnobs::default()).await;
    // Pods stopped at once: a node removed holding segments loses them.
    // New query-node pods take 5 s to start, as Milvus does (image, process,
    // etcd session) and far longer than the controller takes to remove a
    // replacement it created meanwhile (docs/milvus.md).
    testbed::sim::set_pod_faults(
        &ns,
        vec![
            testbed::sim::FaultRule::new(
                "component=querynode",
                testbed::sim::Fault::TerminatingGrace { grace_ms: 0 },
            ),
            testbed::sim::FaultRule::new(
                "component=querynode",
                testbed::sim::Fault::SlowStart { delay_ms: 5000 },
            ),
        ],
    )
    .await
    .expect("faults");
    let c = cluster(&ns).await;
    let rules = c.controller_rules().await.expect("version");
    let removal = drain::Removal::for_rules(rules);
    if bed.server_minor() < 22 {
        assert_eq!(removal, drain::Removal::DeleteThenLower);
    }
    let deployment = format!("{release}-milvus-querynode");
    let mut removed = Vec::new();
    // 3 → 1, one step at a time, each leaving pod chosen as the run does.
    for target in [2, 1] {
        let before = query_node_pods(&c, &ns).await;
        let state = standin::state(&ns, &release).expect("model");
        let (victim, _) = loaded_query_node(&state);
        let (m, mpods, _) = milvus(&c, &ns).await;
        let cl = c.clone();
        let nsc = ns.to_string();
        let dep = deployment.clone();
        let v = victim.clone();
        let lower = move || async move {
            if removal == drain::Removal::DeletionCost {
                let api: Api<Pod> = Api::namespaced(cl.client(), &nsc);
                let pod = api.get(&v).await.map_err(|e| e.to_string())?;
                api.patch(
                    &v,
                    &Default::default(),
                    &kube::api::Patch::Merge(kubectl_milvus::core::scale_in::mark_patch(&pod)),
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(cl.client(), &nsc);
            deployments
                .patch(
                    &dep,
                    &Default::default(),
                    &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": target}})),
                )
                .await
                .map_err(|e| e.to_string())?;
            for _ in 0..600 {
                let now = query_node_pods(&cl, &nsc).await;
                if now.len() == target as usize && !now.contains(&v) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err("the step did not settle".to_string())
        };
        let (step, err) = m
            .drained_step(
                &c,
                &mpods,
                &victim,
                removal,
                RUN,
                DrainOptions::default(),
                std::future::pending(),
                |_| {},
                lower,
            )
            .await;
        assert_eq!(err, None);
        assert!(
            matches!(step, kubectl_milvus::cluster::milvus::StepDrain::Drained(_)),
            "{step:?}"
        );
        // Let the controller settle, then: exactly the drained pod left.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = query_node_pods(&c, &ns).await;
        let gone: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
        assert_eq!(gone, [&victim], "before {before:?}, after {after:?}");
        assert_eq!(after.len(), target as usize, "{after:?}");
        removed.push(victim);
    }
    let end = standin::wait_until(&ns, &release, WAIT, "settled", |m| !m.busy())
        .await
        .expect("model");
    assert!(end.lost.is_empty(), "segments lost: {:?}", end.lost);
    assert_eq!(end.nodes.values().map(|n| n.segments.len()).sum::<usize>(), 12);
    assert!(model.lost.is_empty());
    let (_, _, all) = milvus(&c, &ns).await;
    assert!(
        marked_pods(&all.iter().collect::<Vec<_>>()).is_empty(),
        "marks left with their pods"
    );
    assert_eq!(removed.len(), 2);
}

/// The control: the same step without a drain loses what the removed pod
/// held — what the drain above prevents, so that test can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_drain_the_same_step_loses_segments() {
    let bed = TestBed::get();
    let ns = bed.namespace("mc-nodrain").await.expect("ns");
    let (release, _) = seeded(&ns, 12, MilvusKnobs::default()).await;
    standin::wait_until(&ns, &release, WAIT, "balanced", |m| !m.busy())
        .await
        .expect("balanced");
    testbed::sim::set_pod_faults(
        &ns,
        vec![testbed::sim::FaultRule::new(
            "component=querynode",
            testbed::sim::Fault::TerminatingGrace { grace_ms: 0 },
        )],
    )
    .await
    .expect("faults");
    let c = cluster(&ns).await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(c.client(), &ns);
    deployments
        .patch(
            &format!("{release}-milvus-querynode"),
            &Default::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale");
    let end = standin::wait_until(&ns, &release, WAIT, "a loss recorded", |m| !m.lost.is_empty())
        .await
        .expect("the removed pod's segments are lost");
    assert!(
        end.lost.iter().map(|l| l.segments.len()).sum::<usize>() > 0,
        "{:?}",
        end.lost
    );
}
