//! Dev-only test bed for kubectl-milvus: a real Kubernetes control plane
//! (or any cluster via `KUBECTL_MILVUS_TEST_KUBECONFIG`), a pod-lifecycle
//! simulator, Milvus Helm release seeding, the Milvus Operator (CRD,
//! reconciliation stand-in, sample seeding), GitOps-owned releases (Flux,
//! Argo CD), a demo, real kubectl/helm clients, restricted users and a
//! fault-injection proxy. See README.md.
//!
//! Entry point: [`TestBed::get()`] (sync; once per process).

pub mod clients;
pub mod demo;
pub mod gitops;
pub mod kubeconfig;
pub mod milvus;
pub mod namespace;
pub mod netns;
pub mod operator;
pub mod pki;
pub mod plane;
pub mod proxy;
pub mod rbac;
pub mod seed;
pub mod sim;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::version::Info;

pub use namespace::TestNamespace;

/// Environment variable naming an admin kubeconfig of an existing cluster;
/// when set, nothing is started.
pub const KUBECONFIG_ENV: &str = "KUBECTL_MILVUS_TEST_KUBECONFIG";

/// The shared test environment of this process.
pub struct TestBed {
    admin_kubeconfig: PathBuf,
    restricted_user: Option<PathBuf>,
    plane: Option<plane::Plane>,
    version: Info,
    minor: u32,
    /// Runs the simulator, proxies and cleanup, independent of whatever
    /// runtime (or none) a test uses.
    rt: tokio::runtime::Runtime,
    /// The simulator's own runtime: tests' futures (seeding, watches) run on
    /// `rt`, and whatever they do there never slows the "kubelet" down.
    _sim_rt: tokio::runtime::Runtime,
    sim: sim::Simulator,
    /// The pod network, or why there is none (pod IPs are then link-local).
    network: Result<netns::PodNetwork, String>,
    /// Per-process scratch: helm homes, generated kubeconfigs.
    scratch: tempfile::TempDir,
}

static BED: OnceLock<Result<TestBed, String>> = OnceLock::new();

impl TestBed {
    /// The process-wide test bed: attaches to `KUBECTL_MILVUS_TEST_KUBECONFIG`
    /// or to the local plane (starting it if needed), and starts the pod
    /// simulator. Safe from `#[test]` and `#[tokio::test]`. Panics with the
    /// cause if the bed cannot be set up (the right failure in a test).
    pub fn get() -> &'static TestBed {
        match Self::try_get() {
            Ok(b) => b,
            Err(e) => panic!("kubectl-milvus test bed unavailable: {e}"),
        }
    }

    /// Like [`TestBed::get`] but returns the setup error.
    pub fn try_get() -> Result<&'static TestBed, String> {
        BED.get_or_init(|| TestBed::init().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn init() -> Result<TestBed> {
        raise_fd_limit();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testbed")
            .enable_all()
            .build()
            .context("build test bed runtime")?;
        let sim_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testbed-sim")
            .enable_all()
            .build()
            .context("build simulator runtime")?;
        let sim_handle = sim_rt.handle().clone();
        let setup = run_on(rt.handle(), async move {
            let sim_rt = sim_handle;
            let layout = plane::Layout::from_env();
            let (admin, plane) = match std::env::var_os(KUBECONFIG_ENV) {
                Some(kc) if !kc.is_empty() => {
                    let kc = PathBuf::from(kc);
                    // `testbed up` exports the local plane's kubeconfig: still
                    // "local" (restricted cert user available), just not ours to start.
                    let is_local = same_file(&kc, &layout.admin_kubeconfig());
                    let plane = if is_local {
                        plane::read_state(&layout)?.map(|state| plane::Plane {
                            layout: layout.clone(),
                            state,
                            started_now: false,
                        })
                    } else {
                        None
                    };
                    (kc, plane)
                }
                _ => {
                    let p = plane::ensure_up(&layout).await?;
                    (layout.admin_kubeconfig(), Some(p))
                }
            };
            let client = kubeconfig::client_for(&admin).await?;
            let version = client
                .apiserver_version()
                .await
                .with_context(|| format!("reach the API server of {}", admin.display()))?;
            // Pod addresses live in a network namespace of this plane; on a
            // foreign cluster (nothing to route there) they are link-local.
            let network = match &plane {
                Some(p) => {
                    let layout = p.layout.clone();
                    tokio::task::spawn_blocking(move || netns::ensure(&layout))
                        .await
                        .context("pod network task")?
                        .map_err(|e| format!("{e:#}"))
                }
                None => Err(format!(
                    "no pod network: the test bed is attached to a foreign cluster ({KUBECONFIG_ENV}); \
                     its API server cannot reach this machine's network namespace"
                )),
            };
            if let (Some(_), Err(e)) = (&plane, &network) {
                eprintln!("testbed: no pod network, pods get link-local addresses: {e}");
            }
            let ips = std::sync::Arc::new(netns::PodIps::new(network.clone().ok()));
            // The simulator's client is made on its own runtime too: a kube
            // client runs its connection tasks where it was built.
            let sim_admin = admin.clone();
            let sim = sim_rt
                .spawn(async move {
                    let client = kubeconfig::client_for(&sim_admin).await?;
                    sim::Simulator::start(client, sim::SimConfig::from_env(), ips).await
                })
                .await
                .context("simulator start task")??;
            Ok::<_, anyhow::Error>((admin, plane, version, sim, network))
        })??;
        let (admin_kubeconfig, plane, version, sim, network) = setup;
        let minor = version
            .minor
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(0);
        let restricted_user = plane.as_ref().map(|p| p.layout.restricted_kubeconfig());
        let scratch = tempfile::Builder::new()
            .prefix("kubectl-milvus-testbed-")
            .tempdir()
            .context("create scratch dir")?;
        // Statics are never dropped: tidy up at process exit instead.
        // SAFETY: registering a plain `extern "C" fn` with libc.
        unsafe { libc::atexit(at_exit) };
        Ok(TestBed {
            admin_kubeconfig,
            restricted_user,
            plane,
            version,
            minor,
            rt,
            _sim_rt: sim_rt,
            sim,
            network,
            scratch,
        })
    }

    /// The network namespace simulated pods live in (their IPs, the Milvus
    /// stand-in's listeners). An error says why there is none (no privilege,
    /// no iproute2, a foreign cluster): tests that need it fail with it.
    pub fn pod_network(&self) -> Result<&netns::PodNetwork> {
        self.network
            .as_ref()
            .map_err(|e| anyhow::anyhow!("the test bed has no pod network: {e}"))
    }

    /// Admin (cluster-admin) kubeconfig.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// Kubeconfig of the certificate user `restricted` (no group, no
    /// bindings). Local plane only; `None` on a foreign cluster.
    pub fn restricted_user_kubeconfig(&self) -> Option<&Path> {
        self.restricted_user.as_deref()
    }

    /// The local plane when this bed runs on one.
    pub fn plane(&self) -> Option<&plane::Plane> {
        self.plane.as_ref()
    }

    /// `/version` of the API server.
    pub fn server_version(&self) -> &Info {
        &self.version
    }

    /// Minor version number (e.g. 20 for v1.20.2).
    pub fn server_minor(&self) -> u32 {
        self.minor
    }

    /// A fresh admin client bound to the caller's runtime.
    pub async fn client(&self) -> Result<kube::Client> {
        kubeconfig::client_for(&self.admin_kubeconfig).await
    }

    /// The simulator of this process (node name, timings).
    pub fn simulator(&self) -> &sim::Simulator {
        &self.sim
    }

    /// Per-process scratch directory (removed at exit when possible).
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// Run a future on the bed's own runtime and wait for it from any
    /// context (sync code, or inside another runtime: the calling thread
    /// just blocks). Do not call from tasks already on the bed's runtime.
    pub fn block_on<F>(&self, fut: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        run_on(self.rt.handle(), fut)
    }

    /// Spawn a task on the bed's runtime (outlives the caller's runtime).
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(fut)
    }
}

/// Process exit: remove this process's simulator node (its pods are then
/// garbage-collected by the pod GC controller) and the scratch dir.
extern "C" fn at_exit() {
    let Some(Ok(bed)) = BED.get() else { return };
    let node = bed.sim.node_name().to_string();
    let admin = bed.admin_kubeconfig.clone();
    let _ = bed.block_on(async move {
        let del = async {
            let client = kubeconfig::client_for_opts(&admin, false).await.ok()?;
            let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
                kube::Api::namespaced(client.clone(), "kube-node-lease");
            let _ = leases.delete(&node, &Default::default()).await;
            let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
            nodes.delete(&node, &Default::default()).await.ok()
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), del).await;
    });
    let _ = std::fs::remove_dir_all(bed.scratch.path());
}

/// Every simulated Milvus pod holds a listening socket in this process:
/// lift the soft open-files limit to the hard one.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

fn run_on<F>(handle: &tokio::runtime::Handle, fut: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().context("test bed runtime task died")
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Poll `f` every `every` until it returns `Some`, or fail after `timeout`.
/// For conditions that have no watchable object (prefer watches otherwise).
pub async fn eventually<T, Fut>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> Result<T>
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}
