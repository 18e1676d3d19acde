//! The pod network: a network namespace the test bed makes itself, so the
//! API server's pod proxy (`pods/NAME:PORT/proxy/…`) only ever dials into it.
//!
//! Per plane (state dir) one namespace `kubectl-milvus-testbed-<tag>`, a veth
//! pair `kmtb<tag>` (host) ⇄ `eth0` (inside), and a pod block from the
//! benchmarking range 198.18.0.0/15 (RFC 2544: never used on real networks)
//! routed ONLY into that veth. Inside, the block is a `local` route on `lo`
//! (AnyIP), so a listener can bind any pod IP without configuring it. The
//! namespace has no default route: nothing in it can reach anything but the
//! host end of its own veth.
//!
//! Layout of 198.18.0.0/15: seven /18 pod blocks (one per plane on this
//! machine), the eighth /18 holds the /30 links (`198.19.192.4k/30` for block
//! k: host `.4k+1`, namespace `.4k+2`). A block is taken only when no route of
//! the machine (any table) overlaps it or its link; any route into the /15
//! that is not ours (a `kmtb*` device, or our guard) makes [`ensure`] refuse.
//! The guard: `unreachable 198.18.0.0/15`, so an address of a block whose
//! namespace is gone (a removed netns, a stale pod status) is refused on
//! this machine instead of following the default route out.
//!
//! Pod IPs inside a block are handed out per simulator process in /24 slots
//! ([`PodIps`]), claimed in `<state>/ipam/` under a flock and reclaimed when
//! their process is gone.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::plane::Layout;

/// RFC 2544 benchmarking range: the only addresses simulated pods get.
pub const RANGE: Cidr = Cidr::new(Ipv4Addr::new(198, 18, 0, 0), 15);
/// Pod blocks per machine (the eighth /18 holds the links).
const BLOCKS: u32 = 7;
const BLOCK_PREFIX: u8 = 18;
/// Host-side veth names start with this; routes on them are ours.
const VETH_PREFIX: &str = "kmtb";
/// Addresses per simulator slot (a /24 without .0 and .255).
const SLOT_PREFIX: u8 = 24;

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    pub const fn new(addr: Ipv4Addr, len: u8) -> Cidr {
        Cidr { addr, len }
    }
    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len as u32)
        }
    }
    fn first(self) -> u32 {
        u32::from(self.addr) & self.mask()
    }
    fn last(self) -> u32 {
        self.first() | !self.mask()
    }
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip >= self.first() && ip <= self.last()
    }
    pub fn overlaps(self, other: Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
    fn nth(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + n)
    }
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        Some(Cidr::new(a.parse().ok()?, l.parse().ok().filter(|l| *l <= 32)?))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.first()), self.len)
    }
}

/// The namespace of one plane, as made by [`ensure`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetwork {
    /// `ip netns` name (a file under `/run/netns`).
    pub netns: String,
    /// Host end of the veth pair (the other end is `eth0` inside).
    pub veth: String,
    /// Pod addresses: routed only into `veth`, local inside the namespace.
    pub pod_cidr: Cidr,
    pub host_addr: Ipv4Addr,
    pub netns_addr: Ipv4Addr,
    /// `<state>/ipam`: per-process /24 slot claims.
    pub ipam_dir: PathBuf,
}

impl PodNetwork {
    /// Bind a TCP listener to `addr` inside the namespace. The socket keeps
    /// its namespace for life; only a short-lived thread enters it (setns
    /// changes the calling thread only), so no runtime thread ever does.
    pub fn bind_tcp(&self, addr: SocketAddrV4) -> std::io::Result<std::net::TcpListener> {
        let path = netns_path(&self.netns);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path)?;
                // SAFETY: plain syscall on an fd we own; affects this thread only.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("netns bind thread panicked")))
        })
    }
}

/// Names derived from the state dir, so two planes never collide.
pub fn names(layout: &Layout) -> (String, String) {
    let tag = crate::plane::state_tag(layout) as u32;
    (
        format!("kubectl-milvus-testbed-{tag:08x}"),
        format!("{VETH_PREFIX}{tag:08x}"),
    )
}

fn netns_path(name: &str) -> PathBuf {
    let run = Path::new("/run/netns").join(name);
    if run.exists() {
        run
    } else {
        Path::new("/var/run/netns").join(name)
    }
}

fn record_file(layout: &Layout) -> PathBuf {
    layout.state_dir.join("netns.json")
}

/// Machine-wide lock: block choice looks at every plane's routes.
struct MachineLock(File);

impl MachineLock {
    fn acquire() -> Result<MachineLock> {
        let f = lock_file(&machine_dir().join("kubectl-milvus-testbed-netns.lock"))?;
        Ok(MachineLock(f))
    }
}

/// `/run` (gone at reboot, like network namespaces), else the temp dir.
fn machine_dir() -> PathBuf {
    if Path::new("/run").is_dir() && writable("/run") {
        PathBuf::from("/run")
    } else {
        std::env::temp_dir()
    }
}

/// `<machine dir>/kubectl-milvus-testbed-netns.d/<veth>`: the state dir that
/// owns a veth, so a network whose plane's state dir is gone (a test that
/// died before its `down`) can be reclaimed.
fn owner_file(veth: &str) -> PathBuf {
    machine_dir().join("kubectl-milvus-testbed-netns.d").join(veth)
}

/// Remove networks of this machine whose state dir no longer exists.
fn reclaim_orphans(routes: &[Route]) {
    let veths: std::collections::BTreeSet<&str> = routes
        .iter()
        .filter(|r| r.dst.overlaps(RANGE) && r.dev.starts_with(VETH_PREFIX))
        .map(|r| r.dev.as_str())
        .collect();
    for veth in veths {
        let owner = std::fs::read_to_string(owner_file(veth)).ok();
        if owner.is_some_and(|dir| Path::new(dir.trim()).is_dir()) {
            continue;
        }
        let tag = &veth[VETH_PREFIX.len()..];
        teardown_names(&format!("kubectl-milvus-testbed-{tag}"), veth);
        let _ = std::fs::remove_file(owner_file(veth));
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn writable(dir: &str) -> bool {
    // SAFETY: access(2) on a NUL-terminated path.
    let c = std::ffi::CString::new(dir).unwrap_or_default();
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn lock_file(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.lock().with_context(|| format!("flock {}", path.display()))?;
    Ok(f)
}

/// Make (or reuse) the plane's pod network. Idempotent and safe when several
/// processes call it at once (machine-wide flock). Needs root (CAP_NET_ADMIN,
/// CAP_SYS_ADMIN) and iproute2's `ip`.
pub fn ensure(layout: &Layout) -> Result<PodNetwork> {
    ip(&["-V"]).context(
        "iproute2's `ip` is needed for the test bed's pod network: run \
         `bash tests/testbed/scripts/provision.sh` (installs it) as root",
    )?;
    let _lock = MachineLock::acquire()?;
    let routes = machine_routes()?;
    range_is_free(&routes)?;
    ip(&["route", "replace", "unreachable", &RANGE.to_string()])
        .context("add the guard route (needs root: CAP_NET_ADMIN)")?;
    if let Some(net) = read_record(layout)
        && healthy(&net)
    {
        return Ok(net);
    }
    let (netns, veth) = names(layout);
    teardown_names(&netns, &veth);
    reclaim_orphans(&routes);
    let routes = machine_routes()?;
    let Some(block) = (0..BLOCKS).find(|k| {
        let (pods, link) = block_cidrs(*k);
        !routes
            .iter()
            .any(|r| !r.guard() && (r.dst.overlaps(pods) || r.dst.overlaps(link)))
    }) else {
        bail!("all {BLOCKS} pod blocks of {RANGE} are used by other test planes on this machine");
    };
    let (pod_cidr, link) = block_cidrs(block);
    let net = PodNetwork {
        netns,
        veth,
        pod_cidr,
        host_addr: link.nth(1),
        netns_addr: link.nth(2),
        ipam_dir: layout.state_dir.join("ipam"),
    };
    if let Err(e) = create(&net) {
        teardown_names(&net.netns, &net.veth);
        return Err(e.context(format!(
            "make the test bed's network namespace {} (needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)",
            net.netns
        )));
    }
    std::fs::create_dir_all(&layout.state_dir)?;
    std::fs::write(record_file(layout), serde_json::to_vec_pretty(&net)?)?;
    let owner = owner_file(&net.veth);
    if let Some(dir) = owner.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Absolute: whoever checks it later may run in another directory.
    let dir = std::fs::canonicalize(&layout.state_dir)?;
    std::fs::write(&owner, dir.to_string_lossy().as_bytes())?;
    Ok(net)
}

/// Remove the plane's namespace, veth (and with it the route) and IP claims.
/// No-op when nothing exists.
pub fn down(layout: &Layout) -> Result<()> {
    let _lock = MachineLock::acquire()?;
    let (netns, veth) = names(layout);
    teardown_names(&netns, &veth);
    let _ = std::fs::remove_file(owner_file(&veth));
    let _ = std::fs::remove_file(record_file(layout));
    let _ = std::fs::remove_dir_all(layout.state_dir.join("ipam"));
    // The guard goes with the last plane's network.
    let others = machine_routes()?
        .iter()
        .any(|r| r.dst.overlaps(RANGE) && r.dev.starts_with(VETH_PREFIX));
    if !others {
        let _ = ip(&["route", "del", "unreachable", &RANGE.to_string()]);
    }
    Ok(())
}

/// The recorded network of a plane, if one was made (no check that it is up).
pub fn read_record(layout: &Layout) -> Option<PodNetwork> {
    serde_json::from_slice(&std::fs::read(record_file(layout)).ok()?).ok()
}

/// Refuse the range when a route that is not ours reaches into it: those
/// addresses may exist on a real network.
fn range_is_free(routes: &[Route]) -> Result<()> {
    if let Some(r) = routes.iter().find(|r| r.dst.overlaps(RANGE) && !r.ours()) {
        bail!(
            "the test bed's pod range {RANGE} is already routed on this machine ({}): \
             it will not hand out pod addresses that may exist on a real network; \
             remove that route or run the tests on another machine",
            r.line
        );
    }
    Ok(())
}

fn block_cidrs(k: u32) -> (Cidr, Cidr) {
    let pods = Cidr::new(RANGE.nth(k << (32 - BLOCK_PREFIX)), BLOCK_PREFIX);
    let links = RANGE.nth(BLOCKS << (32 - BLOCK_PREFIX));
    let link = Cidr::new(Ipv4Addr::from(u32::from(links) + 4 * k), 30);
    (pods, link)
}

fn create(net: &PodNetwork) -> Result<()> {
    let (ns, v) = (net.netns.as_str(), net.veth.as_str());
    let host = format!("{}/30", net.host_addr);
    let inner = format!("{}/30", net.netns_addr);
    let pods = net.pod_cidr.to_string();
    let via = net.netns_addr.to_string();
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    ip(&["addr", "add", &host, "dev", v])?;
    ip(&["link", "set", v, "up"])?;
    ip(&["-n", ns, "addr", "add", &inner, "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    // AnyIP: every pod address is local inside, so listeners bind any of them.
    ip(&["-n", ns, "route", "add", "local", &pods, "dev", "lo"])?;
    ip(&["route", "add", &pods, "via", &via, "dev", v])?;
    Ok(())
}

fn healthy(net: &PodNetwork) -> bool {
    let pods = net.pod_cidr.to_string();
    netns_path(&net.netns).exists()
        && ip(&["-4", "-o", "route", "show", "exact", &pods]).is_ok_and(|out| {
            out.contains(&format!("dev {} ", net.veth)) || out.trim_end().ends_with(&net.veth)
        })
        && ip(&[
            "-n", &net.netns, "-4", "-o", "route", "show", "table", "local", "exact", &pods,
        ])
        .is_ok_and(|out| out.starts_with("local "))
}

fn teardown_names(netns: &str, veth: &str) {
    // Deleting one end of a veth pair deletes both, and its routes with it.
    let _ = ip(&["link", "del", veth]);
    let _ = ip(&["netns", "del", netns]);
}

/// `ip ARGS` → stdout, or an error with its stderr.
fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("run `ip {}`", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One IPv4 route of the machine (any table).
#[derive(Debug, Clone)]
struct Route {
    kind: String,
    dst: Cidr,
    dev: String,
    line: String,
}

impl Route {
    /// `unreachable 198.18.0.0/15`, added by [`ensure`].
    fn guard(&self) -> bool {
        self.kind == "unreachable" && self.dst == RANGE
    }
    fn ours(&self) -> bool {
        self.guard() || self.dev.starts_with(VETH_PREFIX)
    }
}

/// Every IPv4 route of this (root) network namespace except default routes
/// (which cover everything by definition and lose to any longer prefix).
fn machine_routes() -> Result<Vec<Route>> {
    let out = ip(&["-4", "-o", "route", "show", "table", "all"])?;
    Ok(parse_routes(&out))
}

fn parse_routes(text: &str) -> Vec<Route> {
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "unreachable",
        "prohibit",
        "blackhole",
        "throw",
        "nat",
        "anycast",
    ];
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().peekable();
            let kind = match words.peek() {
                Some(w) if TYPES.contains(w) => words.next().unwrap_or_default(),
                _ => "unicast",
            }
            .to_string();
            let dst = words.next()?;
            if dst == "default" {
                return None;
            }
            let dst = Cidr::parse(dst)?;
            let words: Vec<&str> = words.collect();
            let dev = words
                .iter()
                .position(|w| *w == "dev")
                .and_then(|i| words.get(i + 1))
                .unwrap_or(&"")
                .to_string();
            Some(Route {
                kind,
                dst,
                dev,
                line: line.trim().to_string(),
            })
        })
        .collect()
}

// ------------------------------------------------------------------ IPAM ----

/// Pod IPs of one simulator process: /24 slots of the plane's block claimed in
/// `<state>/ipam/slot-N` (owner pid + start time), more claimed when one is
/// full, addresses of finished pods reused. Without a pod network (a foreign
/// cluster, or no privilege) addresses are link-local (169.254/16): the API
/// server refuses to proxy to those, so nothing is ever sent.
pub struct PodIps {
    net: Option<PodNetwork>,
    inner: Mutex<IpState>,
}

#[derive(Default)]
struct IpState {
    slots: Vec<u32>,
    next: u32,
    /// Oldest first: a released address is reused as late as possible (its
    /// old listener may still be closing).
    free: std::collections::VecDeque<Ipv4Addr>,
}

const PER_SLOT: u32 = (1 << (32 - SLOT_PREFIX)) - 2;

impl PodIps {
    pub fn new(net: Option<PodNetwork>) -> PodIps {
        PodIps {
            net,
            inner: Mutex::new(IpState::default()),
        }
    }

    /// The pod network the addresses live in (`None`: link-local fallback).
    pub fn network(&self) -> Option<&PodNetwork> {
        self.net.as_ref()
    }

    /// A pod IP unique among live simulators of this plane: the next fresh
    /// one of the current slot, else the oldest released one, else a fresh
    /// one of a newly claimed slot.
    pub fn alloc(&self) -> Result<Ipv4Addr> {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(net) = &self.net else {
            let n = st.next;
            st.next += 1;
            return Ok(Ipv4Addr::new(
                169,
                254,
                (1 + (n / 254) % 254) as u8,
                (1 + n % 254) as u8,
            ));
        };
        if st.slots.is_empty() || st.next >= PER_SLOT {
            if !st.slots.is_empty()
                && let Some(ip) = st.free.pop_front()
            {
                return Ok(ip);
            }
            let slot = claim_slot(net, &st.slots)?;
            st.slots.push(slot);
            st.next = 0;
        }
        let slot = *st.slots.last().unwrap_or(&0);
        let n = st.next;
        st.next += 1;
        Ok(net.pod_cidr.nth((slot << (32 - SLOT_PREFIX)) + 1 + n))
    }

    /// Give an address back once its pod is gone.
    pub fn release(&self, ip: Ipv4Addr) {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !st.free.contains(&ip) {
            st.free.push_back(ip);
        }
    }
}

/// Claim a free /24 slot of the block (or one whose owner process is gone).
fn claim_slot(net: &PodNetwork, mine: &[u32]) -> Result<u32> {
    std::fs::create_dir_all(&net.ipam_dir).with_context(|| format!("create {}", net.ipam_dir.display()))?;
    let lock = lock_file(&net.ipam_dir.join("lock"))?;
    let slots = 1u32 << (SLOT_PREFIX - net.pod_cidr.len);
    let me = owner_line(std::process::id()).unwrap_or_default();
    let found = (0..slots).find(|s| {
        if mine.contains(s) {
            return false;
        }
        let path = net.ipam_dir.join(format!("slot-{s}"));
        match std::fs::read_to_string(&path) {
            Ok(owner) => !owner_alive(owner.trim()),
            Err(_) => true,
        }
    });
    let result = match found {
        Some(s) => {
            std::fs::write(net.ipam_dir.join(format!("slot-{s}")), &me)?;
            Ok(s)
        }
        None => Err(anyhow::anyhow!(
            "no free /24 of the pod block {} left for this simulator",
            net.pod_cidr
        )),
    };
    let _ = lock.unlock();
    result
}

/// `<pid> <pid namespace> <start time>`: identifies a process even if its
/// pid is reused later.
fn owner_line(pid: u32) -> Option<String> {
    Some(format!(
        "{pid} {} {}",
        crate::plane::pid_namespace(),
        crate::plane::start_time(pid, &crate::plane::pid_namespace())?
    ))
}

fn owner_alive(line: &str) -> bool {
    let mut w = line.split_whitespace();
    let (Some(pid), Some(ns), Some(start)) = (w.next(), w.next(), w.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    crate::plane::start_time(pid, ns).is_some_and(|s| s.to_string() == start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stay_inside_the_benchmarking_range_and_apart() {
        let mut seen: Vec<Cidr> = Vec::new();
        for k in 0..BLOCKS {
            let (pods, link) = block_cidrs(k);
            assert!(
                RANGE.overlaps(pods)
                    && RANGE.contains(pods.nth(0))
                    && RANGE.contains(Ipv4Addr::from(pods.last()))
            );
            assert!(RANGE.contains(link.nth(0)) && RANGE.contains(Ipv4Addr::from(link.last())));
            assert!(!pods.overlaps(link));
            for other in &seen {
                assert!(
                    !other.overlaps(pods) && !other.overlaps(link),
                    "{other} vs {pods}/{link}"
                );
            }
            seen.push(pods);
            seen.push(link);
        }
        assert_eq!(block_cidrs(0).0.to_string(), "198.18.0.0/18");
        assert_eq!(block_cidrs(6).0.to_string(), "198.19.128.0/18");
        assert_eq!(block_cidrs(1).1.to_string(), "198.19.192.4/30");
    }

    #[test]
    fn routes_parse_with_types_and_tables() {
        let text = "default via 192.0.2.1 dev eth0 \n\
                    192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2 \n\
                    local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1 \n\
                    broadcast 192.0.2.255 dev eth0 table local proto kernel scope link src 192.0.2.2 \n\
                    blackhole 198.18.4.0/24 \n";
        let r = parse_routes(text);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].dst.to_string(), "192.0.2.0/24");
        assert_eq!(r[1].dev, "lo");
        assert_eq!(r[2].dst.to_string(), "192.0.2.255/32");
        assert!(r[3].dst.overlaps(RANGE) && r[3].dev.is_empty() && !r[3].ours());
        let guard = parse_routes("unreachable 198.18.0.0/15 \n");
        assert!(guard[0].guard() && guard[0].ours());
    }

    #[test]
    fn a_foreign_route_into_the_range_is_refused_ours_and_default_are_not() {
        let ours = "default via 192.0.2.1 dev eth0 \n\
                    198.18.0.0/18 via 198.19.192.2 dev kmtb3c5eb000 \n\
                    unreachable 198.18.0.0/15 \n\
                    local 198.19.192.1 dev kmtb3c5eb000 table local proto kernel scope host src 198.19.192.1 \n";
        range_is_free(&parse_routes(ours)).unwrap();
        let foreign = format!("{ours}198.19.4.0/24 dev eth1 proto kernel scope link src 198.19.4.7 \n");
        let err = range_is_free(&parse_routes(&foreign)).unwrap_err().to_string();
        assert!(
            err.contains("already routed on this machine (198.19.4.0/24 dev eth1"),
            "{err}"
        );
        let wide = "10.0.0.0/8 via 192.0.2.1 dev eth0 \n128.0.0.0/1 via 192.0.2.1 dev eth0 \n";
        assert!(
            range_is_free(&parse_routes(wide)).is_err(),
            "a /1 covering it counts"
        );
    }

    #[test]
    fn link_local_fallback_never_leaves_169_254() {
        let ips = PodIps::new(None);
        for _ in 0..70_000 {
            let ip = ips.alloc().unwrap();
            assert!(ip.is_link_local(), "{ip}");
        }
    }
}
