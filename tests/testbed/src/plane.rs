//! Start, reuse and stop a local control plane: etcd + kube-apiserver +
//! kube-controller-manager on loopback ports.
//!
//! Everything lives in a state dir (`$TESTBED_STATE_DIR`, default
//! `/tmp/kubectl-milvus-testbed`). Many processes (test binaries, nextest
//! workers, the `testbed` CLI) share one plane; an exclusive `flock` on
//! `<state>/lock` makes "check health, else start" atomic across them.
//! The plane is deliberately left running when a test process exits; `testbed
//! down` (or CI) stops exactly the pids recorded in `<state>/pids/`.

use std::fs::{File, OpenOptions};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::kubeconfig::{self, Credentials};
use crate::pki::Pki;

/// Kubernetes version built by `scripts/provision.sh`.
pub const DEFAULT_K8S_VERSION: &str = "v1.20.2";
/// Node-independent service range; big enough for many seeded releases.
const SERVICE_CIDR: &str = "10.96.0.0/16";
const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The three components, in start order.
const COMPONENTS: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

/// Where binaries come from and where state goes.
#[derive(Debug, Clone)]
pub struct Layout {
    pub state_dir: PathBuf,
    pub k8s_bin_dir: PathBuf,
    pub etcd_bin: PathBuf,
}

impl Layout {
    /// From the environment: `TESTBED_STATE_DIR`, `TESTBED_CACHE`,
    /// `TESTBED_K8S_VERSION`, `TESTBED_K8S_BIN_DIR`, `TESTBED_ETCD`.
    pub fn from_env() -> Layout {
        let state_dir = std::env::var_os("TESTBED_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/kubectl-milvus-testbed"));
        let version = std::env::var("TESTBED_K8S_VERSION").unwrap_or_else(|_| DEFAULT_K8S_VERSION.into());
        let k8s_bin_dir = std::env::var_os("TESTBED_K8S_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join(version).join("bin"));
        let etcd_bin = std::env::var_os("TESTBED_ETCD")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        Layout {
            state_dir,
            k8s_bin_dir,
            etcd_bin,
        }
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.state_dir.join("admin.kubeconfig")
    }
    pub fn restricted_kubeconfig(&self) -> PathBuf {
        self.state_dir.join("restricted.kubeconfig")
    }
    fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
    fn pid_file(&self, component: &str) -> PathBuf {
        self.state_dir.join("pids").join(format!("{component}.pid"))
    }
    fn log_file(&self, component: &str) -> PathBuf {
        self.state_dir.join("logs").join(format!("{component}.log"))
    }
    fn binary(&self, component: &str) -> PathBuf {
        if component == "etcd" {
            self.etcd_bin.clone()
        } else {
            self.k8s_bin_dir.join(component)
        }
    }
    /// etcd data goes to tmpfs when there is one: etcd fsyncs every write and
    /// a disk-backed WAL makes every API write slow.
    fn etcd_data_dir(&self) -> PathBuf {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let tag = fnv(self.state_dir.to_string_lossy().as_bytes());
            shm.join(format!("kubectl-milvus-testbed-{tag:016x}"))
        } else {
            self.state_dir.join("etcd-data")
        }
    }
}

/// `$TESTBED_CACHE` or `/var/cache/kubectl-milvus-testbed` (see provision.sh).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TESTBED_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kubectl-milvus-testbed"))
}

/// What a running plane looks like; persisted as `<state>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaneState {
    pub etcd_port: u16,
    pub etcd_peer_port: u16,
    pub apiserver_port: u16,
    pub controller_manager_port: u16,
    pub pids: Vec<(String, u32)>,
    /// The pid namespace the pids belong to (see [`pid_namespace`]).
    #[serde(default)]
    pub pid_namespace: String,
    /// Unix seconds when the plane was started.
    pub started_at: i64,
    /// Wall time of the start, from spawning etcd to a ready API server and
    /// a listening controller-manager.
    pub startup_millis: u64,
    pub etcd_data_dir: PathBuf,
}

impl PlaneState {
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }
}

/// Result of [`ensure_up`].
#[derive(Debug, Clone)]
pub struct Plane {
    pub layout: Layout,
    pub state: PlaneState,
    /// True when this call started the plane (false: reused a healthy one).
    pub started_now: bool,
}

/// Exclusive cross-process lock on `<state>/lock`, released on drop.
struct StateLock(File);

impl StateLock {
    fn acquire(layout: &Layout) -> Result<StateLock> {
        std::fs::create_dir_all(&layout.state_dir)
            .with_context(|| format!("create state dir {}", layout.state_dir.display()))?;
        let path = layout.state_dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        f.lock().with_context(|| format!("flock {}", path.display()))?;
        Ok(StateLock(f))
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Start the plane unless a healthy one is already running (idempotent).
pub async fn ensure_up(layout: &Layout) -> Result<Plane> {
    let lock_layout = layout.clone();
    let _lock = tokio::task::spawn_blocking(move || StateLock::acquire(&lock_layout))
        .await
        .context("lock task")??;
    if let Some(state) = read_state(layout)?
        && all_alive(layout, &state)
        && apiserver_ready(layout, Duration::from_secs(3)).await
    {
        return Ok(Plane {
            layout: layout.clone(),
            state,
            started_now: false,
        });
    }
    // Stale or partial plane (crash, reboot, half-finished start): clear it.
    stop_locked(layout)?;
    let state = match start_locked(layout).await {
        Ok(state) => state,
        Err(e) => {
            // Leave nothing half-started behind.
            let _ = stop_locked(layout);
            return Err(e);
        }
    };
    Ok(Plane {
        layout: layout.clone(),
        state,
        started_now: true,
    })
}

/// Stop the plane: SIGTERM (then SIGKILL) exactly the recorded pids, remove
/// etcd data. Keeps the lock file. No-op when nothing runs.
pub fn down(layout: &Layout) -> Result<()> {
    let _lock = StateLock::acquire(layout)?;
    stop_locked(layout)?;
    crate::netns::down(layout)
}

/// Health summary for `testbed status`.
pub async fn status(layout: &Layout) -> Result<Option<(PlaneState, Vec<(String, u32, bool)>, bool)>> {
    let Some(state) = read_state(layout)? else {
        return Ok(None);
    };
    let procs = state
        .pids
        .iter()
        .map(|(c, p)| (c.clone(), *p, pid_is(layout, c, *p, &state.pid_namespace)))
        .collect();
    let ready = apiserver_ready(layout, Duration::from_secs(3)).await;
    Ok(Some((state, procs, ready)))
}

pub fn read_state(layout: &Layout) -> Result<Option<PlaneState>> {
    let path = layout.state_file();
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn all_alive(layout: &Layout, state: &PlaneState) -> bool {
    state.pids.len() == COMPONENTS.len()
        && state
            .pids
            .iter()
            .all(|(c, p)| pid_is(layout, c, *p, &state.pid_namespace))
}

/// Is `pid` (recorded in pid namespace `namespace`) alive, not a zombie,
/// and running our binary for `component`? (Guards against signalling a
/// recycled pid, or a pid recorded by an earlier sandbox.)
///
/// The identity check reads `/proc`. Sandboxes that give a process its own
/// pid namespace but leave the host's `/proc` mounted (`unshare --pid`
/// without `--mount-proc`; the CI runner) make `/proc/<pid>` name some other
/// process: [`proc_dir`] finds the right entry there.
fn pid_is(layout: &Layout, component: &str, pid: u32, namespace: &str) -> bool {
    let Some(cmdline) = live_cmdline(pid, namespace) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0 == layout.binary(component).as_os_str().as_encoded_bytes()
        && String::from_utf8_lossy(&cmdline).contains(&marker(layout, component))
}

/// The NUL-separated command line of `pid` (recorded in pid namespace
/// `namespace`) when it is alive and not a zombie; `None` otherwise.
pub(crate) fn live_cmdline(pid: u32, namespace: &str) -> Option<Vec<u8>> {
    if namespace != pid_namespace() {
        return None;
    }
    let dir = proc_dir(pid)?;
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // Field 3 (after the parenthesised comm) is the state; Z = zombie.
    if let Some(rest) = stat.rsplit(')').next()
        && rest.trim_start().starts_with('Z')
    {
        return None;
    }
    std::fs::read(dir.join("cmdline")).ok()
}

/// Start time (clock ticks since boot, `/proc/<pid>/stat` field 22) of a
/// live process recorded in pid namespace `namespace`: with the pid it names
/// one process for good, even after the pid is reused.
pub(crate) fn start_time(pid: u32, namespace: &str) -> Option<u64> {
    if namespace != pid_namespace() {
        return None;
    }
    let stat = std::fs::read_to_string(proc_dir(pid)?.join("stat")).ok()?;
    // Fields after the parenthesised comm: state is field 3, starttime 22.
    let rest = stat.rsplit(')').next()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// A number only this state dir has (names of its etcd data, netns, veth).
pub(crate) fn state_tag(layout: &Layout) -> u64 {
    fnv(layout.state_dir.to_string_lossy().as_bytes())
}

/// Our pid namespace, as `pid:[inode]`. `/proc/self` names this process
/// whichever namespace's `/proc` is mounted, so this is always right.
pub(crate) fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `/proc` entry of `pid`, a pid as our own pid namespace numbers it.
/// When the mounted `/proc` is another namespace's, that is the entry in our
/// namespace whose innermost pid (last `NSpid:` field) is `pid`.
fn proc_dir(pid: u32) -> Option<PathBuf> {
    let proc_is_ours = std::fs::read_link("/proc/self")
        .is_ok_and(|target| target.as_os_str() == std::process::id().to_string().as_str());
    if proc_is_ours {
        return Some(PathBuf::from(format!("/proc/{pid}")));
    }
    let ours = pid_namespace();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|dir| {
            std::fs::read_link(dir.join("ns/pid")).is_ok_and(|ns| ns.as_os_str() == ours.as_str())
                && std::fs::read_to_string(dir.join("status")).is_ok_and(|status| {
                    status
                        .lines()
                        .find_map(|line| line.strip_prefix("NSpid:"))
                        .and_then(|pids| pids.split_whitespace().last()?.parse().ok())
                        == Some(pid)
                })
        })
}

/// A string that only our instance of `component` has on its command line.
fn marker(layout: &Layout, component: &str) -> String {
    if component == "etcd" {
        etcd_token(layout)
    } else {
        layout.state_dir.to_string_lossy().into_owned()
    }
}

fn etcd_token(layout: &Layout) -> String {
    format!(
        "kubectl-milvus-testbed-{:016x}",
        fnv(layout.state_dir.to_string_lossy().as_bytes())
    )
}

fn stop_locked(layout: &Layout) -> Result<()> {
    let mut pids: Vec<(String, u32, String)> = Vec::new();
    // Pid files are the source of truth (state.json is written only after a
    // complete start, pid files as each process is spawned).
    for c in COMPONENTS.iter().rev() {
        if let Some((pid, namespace)) = read_pid_file(layout, c) {
            pids.push((c.to_string(), pid, namespace));
        }
    }
    for (c, pid, ns) in &pids {
        if pid_is(layout, c, *pid, ns) {
            // SAFETY: plain syscall on a pid we verified belongs to our process.
            unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (c, pid, ns) in &pids {
        while pid_is(layout, c, *pid, ns) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if pid_is(layout, c, *pid, ns) {
            // SAFETY: as above.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(layout.pid_file(c));
    }
    let data = read_state(layout)
        .ok()
        .flatten()
        .map(|s| s.etcd_data_dir)
        .unwrap_or_else(|| layout.etcd_data_dir());
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(layout.state_file());
    Ok(())
}

async fn start_locked(layout: &Layout) -> Result<PlaneState> {
    let t0 = Instant::now();
    for c in COMPONENTS {
        let b = layout.binary(c);
        if !b.is_file() {
            bail!(
                "{} not found: run `bash tests/testbed/scripts/provision.sh` first \
                 (or set KUBECTL_MILVUS_TEST_KUBECONFIG to use an existing cluster)",
                b.display()
            );
        }
    }
    let dir = &layout.state_dir;
    for sub in ["pids", "logs", "pki", "kubeconfigs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let pki = Pki::generate(&dir.join("pki"))?;
    let [etcd_port, etcd_peer_port, apiserver_port, cm_port] = free_ports()?;
    let etcd_data = layout.etcd_data_dir();
    let _ = std::fs::remove_dir_all(&etcd_data);
    std::fs::create_dir_all(&etcd_data)?;

    // Kubeconfigs first: the controller-manager needs its own.
    let server = format!("https://127.0.0.1:{apiserver_port}");
    let ca = std::fs::read_to_string(&pki.ca_cert)?;
    for (file, cert) in [
        (layout.admin_kubeconfig(), &pki.admin),
        (dir.join("controller-manager.kubeconfig"), &pki.controller_manager),
        (layout.restricted_kubeconfig(), &pki.restricted),
    ] {
        let cert_pem = std::fs::read_to_string(&cert.cert)?;
        let key_pem = std::fs::read_to_string(&cert.key)?;
        kubeconfig::write(
            &file,
            &server,
            Some(&ca),
            Credentials::Cert {
                cert_pem: &cert_pem,
                key_pem: &key_pem,
            },
            None,
        )?;
    }

    let mut children = Vec::new();
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
    let etcd_args = vec![
        "--name=testbed".to_string(),
        format!("--data-dir={}", etcd_data.display()),
        format!("--listen-client-urls={etcd_url}"),
        format!("--advertise-client-urls={etcd_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=testbed={peer_url}"),
        "--initial-cluster-state=new".into(),
        "--log-level=warn".into(),
        // Marker so `pid_is` can tell our etcd from any other.
        format!("--initial-cluster-token={}", etcd_token(layout)),
    ];
    let mut etcd = spawn(layout, "etcd", &etcd_args)?;
    wait_until(Duration::from_secs(15), "etcd /health", || {
        !exited(&mut etcd) && http_get_ok(etcd_port, "/health")
    })
    .await
    .with_context(|| log_tail(layout, "etcd"))?;

    let p = |x: &Path| x.display().to_string();
    let mut api_args = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={apiserver_port}"),
        format!("--cert-dir={}", p(&dir.join("pki"))),
        format!("--tls-cert-file={}", p(&pki.serving_cert)),
        format!("--tls-private-key-file={}", p(&pki.serving_key)),
        format!("--client-ca-file={}", p(&pki.ca_cert)),
        format!("--service-account-key-file={}", p(&pki.sa_pub)),
        format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
        format!("--service-account-issuer={SA_ISSUER}"),
        "--authorization-mode=Node,RBAC".into(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--allow-privileged=true".into(),
        // No kubelet/PV controller runs; the pvc-protection finalizer would
        // then block namespace deletion forever.
        "--disable-admission-plugins=StorageObjectInUseProtection".into(),
        // The `kubernetes` Service endpoint would be 127.0.0.1, which
        // Endpoints validation rejects (loopback); skip that reconciler.
        "--endpoint-reconciler-type=none".into(),
        // Lets the controller-manager find a request-header CA instead of
        // logging a lookup error every second.
        format!("--requestheader-client-ca-file={}", p(&pki.ca_cert)),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--profiling=false".into(),
        "--v=0".into(),
    ];
    children.push(("etcd", etcd));
    let minor = minor_version(&layout.binary("kube-apiserver"))?;
    if minor < 24 {
        // Before 1.24 an insecure HTTP port is served unless disabled; the
        // flag is gone from 1.24 on (unknown flags are fatal).
        api_args.push("--insecure-port=0".into());
    }
    let mut apiserver = spawn(layout, "kube-apiserver", &api_args)?;
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if apiserver_ready(layout, Duration::from_secs(2)).await {
            break;
        }
        if Instant::now() > ready_deadline || exited(&mut apiserver) {
            bail!(
                "kube-apiserver did not become ready\n{}",
                log_tail(layout, "kube-apiserver")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let cm_kubeconfig = p(&dir.join("controller-manager.kubeconfig"));
    let controllers = [
        "replicaset",
        "deployment",
        "statefulset",
        "job",
        "cronjob",
        "garbagecollector",
        "serviceaccount",
        "serviceaccount-token",
        "namespace",
        "horizontalpodautoscaling",
        "nodelifecycle",
        "podgc",
        "endpoint",
        "endpointslice",
        "disruption",
        "clusterrole-aggregation",
        "root-ca-cert-publisher",
        "ttl",
    ];
    let mut cm_args = vec![
        format!("--kubeconfig={cm_kubeconfig}"),
        format!("--authentication-kubeconfig={cm_kubeconfig}"),
        format!("--authorization-kubeconfig={cm_kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={cm_port}"),
        format!("--cert-dir={}", p(&dir.join("pki"))),
        "--leader-elect=false".into(),
        format!("--service-account-private-key-file={}", p(&pki.sa_key)),
        format!("--root-ca-file={}", p(&pki.ca_cert)),
        "--use-service-account-credentials=true".into(),
        format!("--controllers={}", controllers.join(",")),
        // Tests create many objects at once; the default 20 qps throttles.
        "--kube-api-qps=200".into(),
        "--kube-api-burst=400".into(),
        "--node-monitor-period=5s".into(),
        "--horizontal-pod-autoscaler-sync-period=5s".into(),
        "--profiling=false".into(),
        "--v=0".into(),
    ];
    children.push(("kube-apiserver", apiserver));
    if minor < 24 {
        // Same for the controller-manager's insecure port.
        cm_args.push("--port=0".into());
    }
    let mut controller_manager = spawn(layout, "kube-controller-manager", &cm_args)?;
    wait_until(Duration::from_secs(30), "kube-controller-manager port", || {
        !exited(&mut controller_manager) && TcpStream::connect(("127.0.0.1", cm_port)).is_ok()
    })
    .await
    .with_context(|| log_tail(layout, "kube-controller-manager"))?;
    children.push(("kube-controller-manager", controller_manager));

    let state = PlaneState {
        etcd_port,
        etcd_peer_port,
        apiserver_port,
        controller_manager_port: cm_port,
        pids: children
            .iter()
            .map(|(c, child)| (c.to_string(), child.id()))
            .collect(),
        pid_namespace: pid_namespace(),
        started_at: jiff::Timestamp::now().as_second(),
        startup_millis: t0.elapsed().as_millis() as u64,
        etcd_data_dir: etcd_data,
    };
    std::fs::write(layout.state_file(), serde_json::to_vec_pretty(&state)?)?;
    Ok(state)
}

/// Spawn a component detached from our process group (so Ctrl-C on a test
/// run does not take the shared plane down) with output to its log file and
/// no inherited pipes (nextest would otherwise report a leak and wait).
/// The child is never waited for once the start is done: the plane outlives
/// this process. While starting, [`exited`] tells from the handle itself
/// (not `/proc`) whether it died.
fn spawn(layout: &Layout, component: &str, args: &[String]) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let log = File::create(layout.log_file(component))?;
    let child = Command::new(layout.binary(component))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("spawn {}", layout.binary(component).display()))?;
    std::fs::write(
        layout.pid_file(component),
        format!("{} {}\n", child.id(), pid_namespace()),
    )?;
    Ok(child)
}

/// The minor version a Kubernetes binary reports (`Kubernetes v1.20.2`).
fn minor_version(binary: &Path) -> Result<u32> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("run {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|word| word.strip_prefix("v1."))
        .and_then(|rest| rest.split(['.', '-', '+']).next()?.parse().ok())
        .with_context(|| format!("no version in `{} --version`: {text:?}", binary.display()))
}

/// Has a child we spawned exited (reaping it if so)?
fn exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

/// `<pid> <pid namespace>` from a component's pid file.
fn read_pid_file(layout: &Layout, component: &str) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(layout.pid_file(component)).ok()?;
    let (pid, namespace) = text.trim().split_once(' ')?;
    Some((pid.parse().ok()?, namespace.to_string()))
}

/// `/readyz` through the admin kubeconfig.
pub async fn apiserver_ready(layout: &Layout, timeout: Duration) -> bool {
    let check = async {
        let client = kubeconfig::client_for(&layout.admin_kubeconfig()).await.ok()?;
        let req = http::Request::get("/readyz").body(Vec::new()).ok()?;
        let text = client.request_text(req).await.ok()?;
        Some(text.trim() == "ok")
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(true)))
}

fn free_ports() -> Result<[u16; 4]> {
    // Hold all listeners until every port is picked so we never get the same
    // port twice; the tiny race with other processes after release is fine.
    let ls: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("pick free loopback ports")?;
    let mut out = [0u16; 4];
    for (i, l) in ls.iter().enumerate() {
        out[i] = l.local_addr()?.port();
    }
    Ok(out)
}

fn http_get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

async fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn log_tail(layout: &Layout, component: &str) -> String {
    let text = std::fs::read_to_string(layout.log_file(component)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(30);
    format!(
        "last lines of {}:\n{}",
        layout.log_file(component).display(),
        lines[start..].join("\n")
    )
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
