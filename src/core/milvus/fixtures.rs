//! Shared fixtures of the Milvus modules' tests: pods and a gathered view
//! in the shapes Milvus answers with.

use std::collections::BTreeMap;
use std::time::Duration;

use super::api::{Balance, Health, NodeInfo, NodeState, Unreachable};
use super::drain::Held;
use super::nodes::MilvusPod;
use super::view::Gathered;

/// A running, ready pod on the default metrics port.
pub fn pod(name: &str, component: &str, ip: &str) -> MilvusPod {
    MilvusPod {
        name: name.into(),
        component: component.into(),
        ip: ip.into(),
        metrics_port: 9091,
        running: true,
        ready: true,
    }
}

/// A `node/list` entry at `ip`.
pub fn info(id: i64, ip: &str, state: &str) -> NodeInfo {
    NodeInfo {
        id,
        address: format!("{ip}:21123"),
        state: NodeState::parse(state),
    }
}

/// A proxy, two query nodes (7 holding 8 segments and 2 channels; 12
/// suspended by someone, its count timed out, its pod unhealthy) and a
/// streaming node embedding query node 9.
pub fn gathered() -> Gathered {
    let pods = vec![
        pod("proxy-0", "proxy", "10.0.0.2"),
        pod("qn-a", "queryNode", "10.0.0.5"),
        pod("qn-b", "queryNode", "10.0.0.6"),
        pod("sn-0", "streamingNode", "10.0.0.9"),
    ];
    let mut held = BTreeMap::new();
    held.insert(
        7,
        Ok(Held {
            segments: 8,
            channels: 2,
        }),
    );
    held.insert(9, Ok(Held::default()));
    held.insert(12, Err(Unreachable::timeout(Duration::from_secs(2))));
    Gathered {
        health: vec![
            (pods[0].clone(), Health::Healthy),
            (pods[1].clone(), Health::Healthy),
            (
                pods[2].clone(),
                Health::Unhealthy {
                    reason: "Not all components are healthy, 0/1".into(),
                },
            ),
        ],
        nodes: Some(Ok(vec![
            info(7, "10.0.0.5", "active"),
            info(12, "10.0.0.6", "suspended"),
            info(9, "10.0.0.9", "active"),
        ])),
        held,
        balance: Some(Ok(Balance::Active)),
        pods,
        requests: 9,
        ..Gathered::default()
    }
}
