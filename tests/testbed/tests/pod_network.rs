//! The pod network on its own (no control plane needed): made once however
//! many processes ask at the same time, addresses only from its block,
//! removed by `down`.

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::Command;

use testbed::netns::{self, PodIps};
use testbed::plane::Layout;

fn layout(dir: &std::path::Path) -> Layout {
    Layout {
        state_dir: dir.to_path_buf(),
        ..Layout::from_env()
    }
}

/// `down` even when an assertion fails first.
struct Down(Layout);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = netns::down(&self.0);
    }
}

#[test]
fn concurrent_ensures_make_one_network_and_down_removes_it() {
    let state = tempfile::tempdir().unwrap();
    let layout = layout(state.path());
    let _down = Down(layout.clone());
    // Several test processes starting at once: one namespace, one block.
    let nets: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| netns::ensure(&layout))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = nets[0]
        .as_ref()
        .expect("the test bed makes its network namespace (needs root and iproute2)")
        .clone();
    for n in &nets {
        assert_eq!(n.as_ref().unwrap(), &first);
    }
    assert!(netns::RANGE.contains(first.pod_cidr.addr));
    // Reused, not remade, by a later caller.
    assert_eq!(netns::ensure(&layout).unwrap(), first);

    // Addresses come only from the block, even across several /24 slots.
    let ips = PodIps::new(Some(first.clone()));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..600 {
        let ip = ips.alloc().unwrap();
        assert!(first.pod_cidr.contains(ip), "{ip} outside {}", first.pod_cidr);
        assert!(seen.insert(ip), "{ip} handed out twice");
    }
    // A listener bound inside is reachable from the host at that address
    // (the API server's path), and only through the namespace's veth.
    let ip = ips.alloc().unwrap();
    let listener = first.bind_tcp(SocketAddrV4::new(ip, 9091)).unwrap();
    let conn = TcpStream::connect(SocketAddrV4::new(ip, 9091));
    assert!(conn.is_ok(), "{conn:?}");
    drop(listener);
    let route = Command::new("ip")
        .args(["-4", "route", "get", &ip.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&route.stdout).contains(&format!("dev {}", first.veth)));
    // Nothing inside can reach anything but the host end of its veth.
    let inside = Command::new("ip")
        .args(["-n", &first.netns, "-4", "route", "show"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&inside.stdout).contains("default"));

    netns::down(&layout).unwrap();
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&first.netns));
    // Its block is no longer routed to the veth (and, with no plane's
    // network left, nothing of the range is ever sent out: the guard).
    let route = Command::new("ip")
        .args(["-4", "route", "show", "exact", &first.pod_cidr.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&route.stdout).trim().is_empty());
}

#[test]
fn the_whole_range_is_refused_unless_routed_into_a_test_bed_namespace() {
    let state = tempfile::tempdir().unwrap();
    let _down = Down(layout(state.path()));
    netns::ensure(&layout(state.path())).expect("pod network (needs root and iproute2)");
    // An address of a block no plane uses: the guard route refuses it here.
    let out = Command::new("ip")
        .args(["-4", "route", "get", "198.19.191.250"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success() || text.starts_with("unreachable"), "{text}");
    netns::down(&layout(state.path())).unwrap();
}

#[test]
fn without_a_network_pod_addresses_are_link_local() {
    let ips = PodIps::new(None);
    for _ in 0..1000 {
        let ip: Ipv4Addr = ips.alloc().unwrap();
        assert!(ip.is_link_local(), "{ip}");
    }
}

#[test]
fn a_network_whose_state_dir_is_gone_is_reclaimed() {
    let state = tempfile::tempdir().unwrap();
    let orphan = netns::ensure(&layout(state.path())).expect("pod network (needs root and iproute2)");
    drop(state); // the plane's state dir is gone, its network left behind
    let other = tempfile::tempdir().unwrap();
    let _down = Down(layout(other.path()));
    netns::ensure(&layout(other.path())).unwrap();
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&orphan.netns),
        "orphan {} still there",
        orphan.netns
    );
}
