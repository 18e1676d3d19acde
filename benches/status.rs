//! Benchmark runner (plain, `harness = false`) for `kubectl milvus status`
//! and `scale` against the real local control plane of the `testbed` crate,
//! plus micro-benchmarks of the pure core. See `docs/benchmarks.md`.
//!
//! Environment:
//! - `KUBECTL_MILVUS_BIN`: plugin binary to measure (default: the release
//!   binary under `$CARGO_TARGET_DIR/release`, else the one cargo built).
//! - `KUBECTL_MILVUS_BIN_BEFORE`: a second binary (the "before" of a
//!   change), measured in the same runs, alternating with the first.
//! - `BENCH_MICRO` (default 1; 0 skips the micro-benchmarks of the core).
//! - `BENCH_MULTI` (default 10): `Milvus` resources and Helm releases in
//!   the one-namespace case (0 skips it).
//! - `BENCH_POD_LEVELS`: pod counts to reach (default `100,300,1000`); the
//!   seeded baseline is always measured first.
//! - `BENCH_RUNS` (default 5), `BENCH_SCALE_RUNS` (default 5).
//! - `BENCH_JSON`: where to write the JSON results
//!   (default `target/bench-status.json`).
//! - `BENCH_MILVUS=0` skips what asking Milvus costs; `BENCH_ONLY_MILVUS=1`
//!   measures only that.
//! - `BENCH_HOLD_SECS`: keep the status namespace that long at the end (to
//!   profile a binary against it while the simulator plays its pods).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use testbed::TestBed;
use testbed::proxy::FaultProxy;
use testbed::seed::{self, Scenario, SeedOptions};

const RELEASE: &str = "my-release";
const SELECTOR: &str = "app.kubernetes.io/instance=my-release";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn plugin_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL_MILVUS_BIN") {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let p = Path::new(&dir).join("release/kubectl-milvus");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-milvus"))
}

/// The binaries measured: `after` always, `before` when given.
struct Bins {
    after: PathBuf,
    before: Option<PathBuf>,
}

impl Bins {
    fn from_env() -> Bins {
        Bins {
            after: plugin_bin(),
            before: std::env::var_os("KUBECTL_MILVUS_BIN_BEFORE").map(PathBuf::from),
        }
    }

    /// (JSON key, binary): `after` first.
    fn each(&self) -> Vec<(&'static str, &Path)> {
        let mut v = vec![("after", self.after.as_path())];
        if let Some(b) = &self.before {
            v.push(("before", b.as_path()));
        }
        v
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median wall time (ms) of `runs` calls of `f`, after one warm-up call.
fn bench_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                ms(t.elapsed())
            })
            .collect(),
    )
}

/// A fresh namespace of the bed (deleted when dropped), and its name.
fn namespace(bed: &'static TestBed, prefix: &'static str) -> (testbed::TestNamespace, String) {
    let ns = bed
        .block_on(async move { TestBed::get().namespace(prefix).await })
        .unwrap()
        .unwrap();
    let name = ns.name().to_string();
    (ns, name)
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `status RELEASE -n NS`, or `status -n NS` (every instance) for an empty `release`.
fn status_cmd(bin: &Path, kubeconfig: &Path, ns: &str, release: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg("status");
    if !release.is_empty() {
        c.arg(release);
    }
    c.args(["-n", ns])
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HELM_DRIVER")
        .env_remove("HELM_MAX_HISTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn trio(bed: &TestBed, ns: &str) {
    run_ok(bed.helm().args(["get", "values", RELEASE, "--all", "-n", ns]));
    run_ok(bed.kubectl().args(["get", "deploy", "-l", SELECTOR, "-n", ns]));
    run_ok(bed.kubectl().args(["get", "pods", "-l", SELECTOR, "-n", ns]));
}

/// Peak RSS (KiB) of one `status` run, via `/usr/bin/time -f %M`.
fn peak_rss_kib(bin: &Path, kubeconfig: &Path, ns: &str) -> f64 {
    let out = tempfile::NamedTempFile::new().expect("tempfile");
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(out.path())
        .arg(bin)
        .args(["status", RELEASE, "-n", ns])
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn /usr/bin/time");
    assert!(status.success(), "status under /usr/bin/time failed");
    std::fs::read_to_string(out.path())
        .expect("time output")
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .next_back()
        .expect("max RSS")
}

fn count_pods(bed: &'static TestBed, ns: &str) -> (usize, usize) {
    let ns = ns.to_string();
    bed.block_on(async move {
        let api: kube::Api<Pod> = kube::Api::namespaced(bed.client().await.unwrap(), &ns);
        let pods = api.list(&ListParams::default().labels(SELECTOR)).await.unwrap();
        let ready = pods
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (pods.items.len(), ready)
    })
    .unwrap()
}

/// Requests, response bytes and request paths of one binary's `status`,
/// counted at the proxy (checked constant over a few runs).
fn counted(bin: &Path, proxy: &FaultProxy, ns: &str, release: &str, runs: usize) -> Value {
    let mut reqs = Vec::new();
    let mut bytes = Vec::new();
    let mut paths = Vec::new();
    for _ in 0..runs.clamp(1, 3) {
        proxy.reset_counters();
        run_ok(&mut status_cmd(bin, proxy.kubeconfig(), ns, release));
        reqs.push(proxy.request_count() as f64);
        bytes.push(proxy.response_bytes() as f64);
        paths = proxy
            .requests()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect();
    }
    json!({
        "requests": median(reqs.clone()),
        "requests_min": reqs.iter().copied().fold(f64::INFINITY, f64::min),
        "requests_max": reqs.iter().copied().fold(0.0, f64::max),
        "request_paths": paths,
        "response_bytes": median(bytes),
    })
}

/// One measurement row of `status` at the current state of `ns`: each
/// binary (and the by-hand trio, `with_trio`) timed in the same rounds, in
/// a rotating order, one warm-up round first; the medians.
fn measure_status(
    bed: &'static TestBed,
    bins: &Bins,
    proxy: &FaultProxy,
    ns: &str,
    release: &str,
    runs: usize,
    with_trio: bool,
) -> Value {
    let admin = bed.admin_kubeconfig();
    let each = bins.each();
    let mut row = counted(&bins.after, proxy, ns, release, runs);
    row["release"] = json!(release);
    let mut before = bins
        .before
        .as_deref()
        .map(|b| counted(b, proxy, ns, release, runs));
    // Contestants: each binary, then the trio.
    let contestants = each.len() + usize::from(with_trio);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contestants];
    for round in 0..=runs {
        for k in 0..contestants {
            let c = (k + round) % contestants;
            let t = Instant::now();
            match each.get(c) {
                Some((_, bin)) => {
                    run_ok(&mut status_cmd(bin, admin, ns, release));
                }
                None => trio(bed, ns),
            }
            if round > 0 {
                times[c].push(ms(t.elapsed()));
            }
        }
    }
    row["status_ms"] = json!(median(times[0].clone()));
    row["status_ms_runs"] = json!(times[0]);
    if let Some(b) = before.as_mut() {
        b["status_ms"] = json!(median(times[1].clone()));
        b["status_ms_runs"] = json!(times[1]);
    }
    if with_trio {
        let trio_ms = median(times[contestants - 1].clone());
        row["trio_ms"] = json!(trio_ms);
        row["trio_ms_runs"] = json!(times[contestants - 1]);
        row["speedup"] = json!(trio_ms / median(times[0].clone()));
        row["peak_rss_kib"] = json!(median(
            (0..runs).map(|_| peak_rss_kib(&bins.after, admin, ns)).collect()
        ));
        if let (Some(b), Some(bin)) = (before.as_mut(), bins.before.as_deref()) {
            b["speedup"] = json!(trio_ms / b["status_ms"].as_f64().unwrap_or(f64::NAN));
            b["peak_rss_kib"] = json!(median((0..runs).map(|_| peak_rss_kib(bin, admin, ns)).collect()));
        }
    }
    if let Some(b) = before {
        row["before"] = b;
    }
    row
}

fn scale_deployments(bed: &'static TestBed, ns: &str, qn: usize, dn: usize, px: usize) {
    for (d, n) in [("querynode", qn), ("datanode", dn), ("proxy", px)] {
        run_ok(bed.kubectl().args([
            "scale",
            "deployment",
            &format!("{RELEASE}-milvus-{d}"),
            &format!("--replicas={n}"),
            "-n",
            ns,
        ]));
    }
    let ns2 = ns.to_string();
    bed.block_on(async move { seed::wait_release_ready_timeout(&ns2, Duration::from_secs(900)).await })
        .unwrap()
        .expect("pods ready");
}

/// One 1 → 20 scale-out with `kubectl-milvus scale`.
struct ScaleRun {
    total_ms: f64,
    reaction_ms: f64,
    /// When the watch saw all 20 ready, and when the command exited.
    ready_at: Option<Instant>,
    done: Instant,
}

/// 1 → 20 scale-out with `kubectl-milvus scale` (through `kubeconfig`), then back to 1.
fn scale_run(bed: &'static TestBed, bin: &Path, kubeconfig: &Path, ns: &str) -> ScaleRun {
    let deployment = format!("{RELEASE}-milvus-querynode");
    let ready_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ns2, out, listed2) = (ns.to_string(), ready_at.clone(), listed.clone());
    let task = bed.spawn(async move {
        let api: kube::Api<Deployment> = kube::Api::namespaced(TestBed::get().client().await.unwrap(), &ns2);
        let stream = watcher(
            api,
            watcher::Config::default().fields(&format!("metadata.name={deployment}")),
        )
        .applied_objects();
        futures::pin_mut!(stream);
        while let Some(Ok(d)) = stream.next().await {
            let now = Instant::now();
            listed2.store(true, std::sync::atomic::Ordering::SeqCst);
            let spec = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            if spec == 20 && ready == 20 {
                out.lock().unwrap().get_or_insert(now);
            }
        }
    });
    while !listed.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["scale", RELEASE, "queryNode=20", "-n", ns])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("spawn scale");
    let done = Instant::now();
    assert!(
        out.status.success(),
        "scale failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The watch event may trail the command by a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ready_at.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    task.abort();
    let ready_at = *ready_at.lock().unwrap();
    let reaction = match ready_at {
        Some(r) if r <= done => ms(done - r),
        Some(r) => -ms(r - done),
        None => f64::NAN,
    };
    // Back to 1 for the next run (steps down one at a time).
    run_ok(
        Command::new(bin)
            .args(["scale", RELEASE, "queryNode=1", "-n", ns])
            .env("KUBECONFIG", bed.admin_kubeconfig()),
    );
    ScaleRun {
        total_ms: ms(done - t),
        reaction_ms: reaction,
        ready_at,
        done,
    }
}

/// Where a scale's reaction goes: one more run through the proxy, and the
/// requests it made from the moment all pods were ready to its exit
/// (milliseconds after that moment; the proxy adds a little to each).
fn scale_breakdown(bed: &'static TestBed, bin: &Path, proxy: &FaultProxy, ns: &str) -> Value {
    proxy.reset_counters();
    let run = scale_run(bed, bin, proxy.kubeconfig(), ns);
    let Some(ready) = run.ready_at else {
        return json!({"error": "the watch never saw 20 ready"});
    };
    let after: Vec<Value> = proxy
        .requests()
        .iter()
        .filter(|s| s.at >= ready && s.at <= run.done)
        .map(|s| json!({"ms": ms(s.at - ready), "request": format!("{} {}", s.method, s.path)}))
        .collect();
    json!({
        "reaction_ms": run.reaction_ms,
        "requests_after_ready": after,
    })
}

/// Server time (request to last byte, nothing decoded) and size of the
/// namespace's pod list in each form a client can ask for: what `status`
/// could read (consistent reads, like `status`). Medians of `runs` rounds.
fn pod_list_forms(bed: &'static TestBed, ns: &str, runs: usize) -> Value {
    const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let forms: [(&str, &str, &str); 6] = [
        ("json", "application/json", ""),
        ("protobuf", "application/vnd.kubernetes.protobuf", ""),
        ("table", TABLE, "includeObject=Metadata"),
        ("table_rows_only", TABLE, "includeObject=None"),
        (
            "metadata_json",
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
            "",
        ),
        (
            "metadata_protobuf",
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
            "",
        ),
    ];
    let ns = ns.to_string();
    bed.block_on(async move {
        use futures::AsyncReadExt;
        let client = TestBed::get().client().await?;
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); forms.len()];
        let mut sizes = vec![0usize; forms.len()];
        for round in 0..=runs {
            for k in 0..forms.len() {
                let i = (k + round) % forms.len();
                let (_, accept, query) = forms[i];
                let request = http::Request::get(format!("/api/v1/namespaces/{ns}/pods?{query}"))
                    .header(http::header::ACCEPT, accept)
                    .body(Vec::new())?;
                let t = Instant::now();
                let mut body = Vec::new();
                client
                    .request_stream(request)
                    .await?
                    .read_to_end(&mut body)
                    .await?;
                if round > 0 {
                    times[i].push(ms(t.elapsed()));
                }
                sizes[i] = body.len();
            }
        }
        let mut out = serde_json::Map::new();
        // The Table as protobuf: `metav1.Table` is JSON-only (`+protobuf=false`
        // in apimachinery's types.go), so the server is expected to refuse it.
        let request = http::Request::get(format!("/api/v1/namespaces/{ns}/pods?includeObject=None"))
            .header(
                http::header::ACCEPT,
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io",
            )
            .body(Vec::new())?;
        out.insert(
            "table_protobuf".to_string(),
            match client.request_text(request).await {
                Ok(body) => json!({"served": true, "bytes": body.len()}),
                Err(e) => json!({"served": false, "error": e.to_string()}),
            },
        );
        for (i, (name, accept, query)) in forms.iter().enumerate() {
            out.insert(
                name.to_string(),
                json!({
                    "accept": accept,
                    "query": query,
                    "ms": median(times[i].clone()),
                    "ms_runs": times[i],
                    "bytes": sizes[i],
                }),
            );
        }
        Ok::<_, anyhow::Error>(Value::Object(out))
    })
    .unwrap()
    .expect("pod list forms")
}

/// `n` Helm releases (Scenario::Defaults, 3 revisions each) and `n` `Milvus`
/// resources (the operator's minimum cluster sample, with the dependency
/// releases the operator installs) in one namespace; `status -n NS` lists
/// every instance.
fn measure_multi(bed: &'static TestBed, bins: &Bins, proxy: &FaultProxy, n: usize, runs: usize) -> Value {
    use testbed::operator::{self, OperatorSample, OperatorSeedOptions};
    let (ns, nsn) = namespace(bed, "bench-multi");
    let t = Instant::now();
    let n2 = nsn.clone();
    bed.block_on(async move {
        let bed = TestBed::get();
        for i in 0..n {
            let opts = SeedOptions {
                release: Some(format!("helm-{i}")),
                revisions: 3,
                ..Default::default()
            };
            seed::seed_release(bed, &n2, Scenario::Defaults, opts).await?;
            let opts = OperatorSeedOptions {
                name: Some(format!("op-{i}")),
                wait_ready: false,
                ..Default::default()
            };
            operator::seed_operator_cluster(bed, &n2, OperatorSample::ClusterMinimum, opts).await?;
        }
        for i in 0..n {
            operator::wait_milvus_healthy(&n2, &format!("op-{i}"), Duration::from_secs(900)).await?;
        }
        seed::wait_release_ready_timeout(&n2, Duration::from_secs(900)).await
    })
    .unwrap()
    .expect("seed the many-instance namespace");
    let pods = bed
        .block_on({
            let nsn = nsn.clone();
            async move {
                let api: kube::Api<Pod> = kube::Api::namespaced(TestBed::get().client().await?, &nsn);
                Ok::<_, anyhow::Error>(api.list(&ListParams::default()).await?.items.len())
            }
        })
        .unwrap()
        .expect("count pods");
    eprintln!(
        "seeded {nsn} ({n} Helm releases, {n} Milvus resources, {pods} pods) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let mut row = measure_status(bed, bins, proxy, &nsn, "", runs, false);
    row["helm_releases"] = json!(n);
    row["milvus_resources"] = json!(n);
    row["pods"] = json!(pods);
    eprintln!("multi: {row}");
    drop(ns);
    row
}

/// Requests a plugin run sends through the proxy: all, and those to Milvus
/// (the pod proxy subresource), with its wall time (through the proxy).
fn counted_milvus(proxy: &FaultProxy, bin: &Path, args: &[&str]) -> (f64, f64, f64) {
    proxy.reset_counters();
    let t = Instant::now();
    run_ok(Command::new(bin).args(args).env("KUBECONFIG", proxy.kubeconfig()));
    let took = ms(t.elapsed());
    let all = proxy.requests();
    let milvus = all.iter().filter(|r| r.path.contains("/proxy/")).count();
    (all.len() as f64, milvus as f64, took)
}

/// What asking Milvus costs (docs/milvus.md): `status`'s extra requests with
/// Milvus reachable and unreachable, and what a drain adds to a scale-in
/// step (12 sealed segments on 3 query nodes, one step 3 → 2, against the
/// same step with `--no-drain`).
fn milvus_costs(bed: &'static TestBed, bin: &Path, proxy: &FaultProxy, runs: usize) -> Value {
    use testbed::milvus::{self as standin, MilvusKnobs};
    let ns = bed
        .block_on(async { TestBed::get().namespace("bench-milvus").await })
        .unwrap()
        .unwrap();
    let nsn = ns.name().to_string();
    let knobs = |k: MilvusKnobs| {
        let n = nsn.clone();
        bed.block_on(async move { standin::set_knobs(&n, k).await })
            .unwrap()
            .unwrap();
    };
    let segments = || MilvusKnobs {
        segments: [("*".to_string(), 12)].into(),
        ..MilvusKnobs::default()
    };
    let settled = |what: &'static str| {
        let n = nsn.clone();
        bed.block_on(async move {
            standin::wait_until(&n, RELEASE, Duration::from_secs(120), what, |m| {
                !m.busy() && m.unplaced.is_empty()
            })
            .await
        })
        .unwrap()
        .unwrap();
    };
    knobs(segments());
    let n2 = nsn.clone();
    bed.block_on(async move {
        let opts = SeedOptions {
            wait_ready: true,
            ..Default::default()
        };
        seed::seed_release(TestBed::get(), &n2, Scenario::QueryNode3DataNode2, opts).await
    })
    .unwrap()
    .expect("seed milvus namespace");
    settled("loaded");
    let status = ["status", RELEASE, "-n", nsn.as_str()];
    let row = |label: &str| {
        let rows: Vec<(f64, f64, f64)> = (0..runs).map(|_| counted_milvus(proxy, bin, &status)).collect();
        let r = json!({
            "requests": median(rows.iter().map(|r| r.0).collect()),
            "milvus_requests": median(rows.iter().map(|r| r.1).collect()),
            "status_ms": bench_ms(runs, || {
                run_ok(Command::new(bin).args(status).env("KUBECONFIG", bed.admin_kubeconfig()));
            }),
        });
        eprintln!("milvus {label}: {r}");
        r
    };
    let reachable = row("reachable");
    knobs(MilvusKnobs {
        no_routes: true,
        ..segments()
    });
    let unreachable = row("unreachable (a Milvus without the routes)");
    knobs(segments());
    let mut drained = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..runs.clamp(1, 3) {
        for (no_drain, out) in [(false, &mut drained), (true, &mut plain)] {
            run_ok(
                Command::new(bin)
                    .args(["scale", RELEASE, "queryNode=3", "-n", nsn.as_str()])
                    .env("KUBECONFIG", bed.admin_kubeconfig()),
            );
            settled("balanced at 3");
            let mut args = vec!["scale", RELEASE, "queryNode=2", "-n", nsn.as_str()];
            if no_drain {
                args.push("--no-drain");
            }
            out.push(counted_milvus(proxy, bin, &args));
            settled("balanced at 2");
        }
    }
    let step = |v: &[(f64, f64, f64)]| {
        json!({
            "requests": median(v.iter().map(|r| r.0).collect()),
            "milvus_requests": median(v.iter().map(|r| r.1).collect()),
            "ms": median(v.iter().map(|r| r.2).collect()),
        })
    };
    let out = json!({
        "status_reachable": reachable,
        "status_unreachable": unreachable,
        "step_drained": step(&drained),
        "step_no_drain": step(&plain),
    });
    eprintln!("milvus drain: {out}");
    out
}

fn micro(runs: usize) -> Value {
    use kubectl_milvus::core::{pods::PodRow, release, values};
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/helm-release/release-v4-rev2-deployed-qn3-dn2.json");
    let base: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let json_len = serde_json::to_vec(&base).unwrap().len();
    let real = seed::encode_release(&base).unwrap();
    // Synthetic: pad the manifest with incompressible-ish text to ~1 MB encoded.
    let mut big = base.clone();
    let mut pad = String::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while pad.len() < 800_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pad.push_str(&format!("# {x:016x}\n"));
    }
    let manifest = format!("{}{}", big["manifest"].as_str().unwrap_or(""), pad);
    big["manifest"] = json!(manifest);
    let big_enc = seed::encode_release(&big).unwrap();
    let big_json_len = serde_json::to_vec(&big).unwrap().len();

    let reps = runs.max(20);
    let decode_real = bench_ms(reps, || {
        std::hint::black_box(release::decode(real.as_bytes()).unwrap());
    });
    let decode_big = bench_ms(reps, || {
        std::hint::black_box(release::decode(big_enc.as_bytes()).unwrap());
    });
    let rel = release::decode(real.as_bytes()).unwrap();
    let (cv, cfg) = (rel.chart_values().clone(), rel.config().clone());
    let coalesce = bench_ms(reps * 10, || {
        std::hint::black_box(values::coalesce(&cv, &cfg));
    });
    let rows: Vec<PodRow> = (0..1000)
        .map(|i| PodRow {
            name: format!("my-release-milvus-querynode-6d5f7c9b8-{i:05x}"),
            ready: "1/1".into(),
            status: "Running".into(),
            restarts: if i % 7 == 0 {
                "2 (5m ago)".into()
            } else {
                "0".into()
            },
            age: "12m".into(),
            ip: format!("10.0.{}.{}", i / 250, i % 250),
            node: "node-1".into(),
            nominated_node: "<none>".into(),
            readiness_gates: "<none>".into(),
        })
        .collect();
    let render = bench_ms(reps, || {
        std::hint::black_box(kubectl_milvus::render::table::pod_table(&rows, false, None));
    });
    json!({
        "decode_real_ms": decode_real,
        "decode_real_encoded_bytes": real.len(),
        "decode_real_json_bytes": json_len,
        "decode_1mb_ms": decode_big,
        "decode_1mb_encoded_bytes": big_enc.len(),
        "decode_1mb_json_bytes": big_json_len,
        "coalesce_ms": coalesce,
        "render_1000_rows_ms": render,
    })
}

fn write_json(path: &Path, v: &Value) {
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).expect("write JSON");
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing
    // useful. Only run for real under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("status bench: run with `cargo bench --bench status`");
        return;
    }
    let runs = env_usize("BENCH_RUNS", 5);
    let scale_runs = env_usize("BENCH_SCALE_RUNS", 5);
    let levels: Vec<usize> = std::env::var("BENCH_POD_LEVELS")
        .unwrap_or_else(|_| "100,300,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let json_path = PathBuf::from(
        std::env::var("BENCH_JSON")
            .unwrap_or_else(|_| format!("{}/target/bench-status.json", env!("CARGO_MANIFEST_DIR"))),
    );
    let bins = Bins::from_env();
    let bin = bins.after.clone();
    eprintln!("plugin binary: {}", bin.display());
    let mut results = json!({ "binary": bin.display().to_string(), "runs": runs });
    if let Some(b) = &bins.before {
        eprintln!("before binary: {}", b.display());
        results["binary_before"] = json!(b.display().to_string());
    }

    // Micro-benchmarks first (no cluster needed); BENCH_MICRO=0 skips them
    // (a bench binary built without optimisation times only the cluster).
    if env_usize("BENCH_MICRO", 1) > 0 {
        results["micro"] = micro(runs);
        eprintln!("micro: {}", results["micro"]);
        write_json(&json_path, &results);
    }

    // Start-up time of --help.
    let help_ms = bench_ms(runs.max(20), || {
        run_ok(Command::new(&bin).arg("--help"));
    });
    results["help_ms"] = json!(help_ms);
    eprintln!("--help: {help_ms:.2} ms");

    let bed = TestBed::get();
    let proxy = FaultProxy::start(bed).expect("proxy");

    // What asking Milvus costs, on its own namespace.
    if std::env::var("BENCH_MILVUS").map_or(true, |v| v != "0") {
        results["milvus"] = milvus_costs(bed, &bin, &proxy, runs);
        write_json(&json_path, &results);
        if std::env::var("BENCH_ONLY_MILVUS").is_ok_and(|v| v == "1") {
            return;
        }
    }

    // Scale first, on its own small namespace (BENCH_SCALE_RUNS=0 skips it).
    if scale_runs > 0 {
        let (ns, nsn) = namespace(bed, "bench-scale");
        let t = Instant::now();
        let n2 = nsn.clone();
        bed.block_on(async move {
            let opts = SeedOptions {
                wait_ready: true,
                ..Default::default()
            };
            seed::seed_release(TestBed::get(), &n2, Scenario::Defaults, opts).await
        })
        .unwrap()
        .expect("seed scale namespace");
        eprintln!("seeded {nsn} in {:.1}s", t.elapsed().as_secs_f64());
        // Paired: the binaries alternate, run by run.
        let each = bins.each();
        let mut totals = vec![Vec::new(); each.len()];
        let mut reactions = vec![Vec::new(); each.len()];
        for i in 0..scale_runs {
            for (k, (label, bin)) in each.iter().enumerate() {
                let run = scale_run(bed, bin, bed.admin_kubeconfig(), &nsn);
                eprintln!(
                    "scale run {i} ({label}): total {:.0} ms, reaction {:.1} ms",
                    run.total_ms, run.reaction_ms
                );
                totals[k].push(run.total_ms);
                reactions[k].push(run.reaction_ms);
            }
        }
        let figures = |k: usize| {
            json!({
                "runs": scale_runs,
                "total_ms_runs": totals[k],
                "reaction_ms_runs": reactions[k],
                "total_ms": median(totals[k].clone()),
                "reaction_ms": median(reactions[k].clone()),
            })
        };
        results["scale"] = figures(0);
        if each.len() > 1 {
            results["scale"]["before"] = figures(1);
        }
        if scale_runs > 0 {
            results["scale"]["breakdown"] = scale_breakdown(bed, &bins.after, &proxy, &nsn);
            eprintln!("scale breakdown: {}", results["scale"]["breakdown"]);
        }
        write_json(&json_path, &results);
        drop(ns);
    }

    // Many instances in one namespace: `status -n NS` (every instance).
    let multi = env_usize("BENCH_MULTI", 10);
    if multi > 0 {
        results["multi"] = measure_multi(bed, &bins, &proxy, multi, runs);
        write_json(&json_path, &results);
    }

    // Status at scale: main release (100 revisions) + noise releases.
    let (ns, nsn) = namespace(bed, "bench-status");
    let t = Instant::now();
    for (release, revisions, wait) in [
        (RELEASE, 100u32, true),
        ("noise-r1", 1, false),
        ("noise-r10", 10, false),
    ] {
        let n2 = nsn.clone();
        bed.block_on(async move {
            let opts = SeedOptions {
                release: Some(release.into()),
                revisions,
                wait_ready: wait,
                ..Default::default()
            };
            seed::seed_release(TestBed::get(), &n2, Scenario::Defaults, opts).await
        })
        .unwrap()
        .expect("seed release");
    }
    eprintln!(
        "seeded {nsn} (3 releases, 111 revisions) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let mut rows = Vec::new();
    let mut rev_rows = Vec::new();
    // Revisions axis (1 / 10 / 100), at the baseline pod count.
    for (release, revs) in [("noise-r1", 1), ("noise-r10", 10), (RELEASE, 100)] {
        let mut r = measure_status(bed, &bins, &proxy, &nsn, release, runs, false);
        r["revisions"] = json!(revs);
        eprintln!("revisions {revs}: {r}");
        rev_rows.push(r);
    }
    results["revisions"] = json!(rev_rows);
    write_json(&json_path, &results);

    let (base_pods, _) = count_pods(bed, &nsn);
    let mut targets = vec![base_pods];
    targets.extend(levels.into_iter().filter(|&l| l > base_pods));
    for target in targets {
        if target > base_pods {
            // querynode/datanode/proxy start at 1 each; add 4:3:2.
            let extra = target - base_pods + 3;
            let qn = extra * 4 / 9;
            let dn = extra * 3 / 9;
            let px = extra - qn - dn;
            let t = Instant::now();
            scale_deployments(bed, &nsn, qn, dn, px);
            eprintln!("scaled to ~{target} pods in {:.1}s", t.elapsed().as_secs_f64());
        }
        let (pods, ready) = count_pods(bed, &nsn);
        let mut r = measure_status(bed, &bins, &proxy, &nsn, RELEASE, runs, true);
        r["pod_list_forms"] = pod_list_forms(bed, &nsn, runs);
        r["pods"] = json!(pods);
        r["pods_ready"] = json!(ready);
        r["revisions"] = json!(100);
        eprintln!("pods {pods}: {r}");
        rows.push(r);
        results["pods"] = json!(rows);
        write_json(&json_path, &results);
    }

    // The table.
    println!();
    println!(
        "| pods | revisions | status ms | trio ms | speed-up | API requests | bytes read | peak RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        for (label, m) in [("", r), (" (before)", &r["before"])] {
            if m.is_null() {
                continue;
            }
            println!(
                "| {}{label} | 100 | {:.0} | {:.0} | {:.1}× | {} | {:.0} | {:.1} |",
                r["pods"],
                m["status_ms"].as_f64().unwrap_or(f64::NAN),
                r["trio_ms"].as_f64().unwrap_or(f64::NAN),
                m["speedup"].as_f64().unwrap_or(f64::NAN),
                m["requests"],
                m["response_bytes"].as_f64().unwrap_or(f64::NAN),
                m["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
            );
        }
    }
    let multi = &results["multi"];
    for (label, m) in [("", multi), (" (before)", &multi["before"])] {
        if m.is_null() {
            continue;
        }
        println!(
            "| {} instances, {} pods{label} | – | {:.0} | – | – | {} | {:.0} | – |",
            multi["helm_releases"].as_u64().unwrap_or(0) + multi["milvus_resources"].as_u64().unwrap_or(0),
            multi["pods"],
            m["status_ms"].as_f64().unwrap_or(f64::NAN),
            m["requests"],
            m["response_bytes"].as_f64().unwrap_or(f64::NAN),
        );
    }
    for r in results["revisions"].as_array().unwrap() {
        println!(
            "| {} (base) | {} | {:.0} | – | – | {} | {:.0} | – |",
            base_pods,
            r["revisions"],
            r["status_ms"].as_f64().unwrap(),
            r["requests"],
            r["response_bytes"].as_f64().unwrap(),
        );
    }
    let m = &results["micro"];
    let s = &results["scale"];
    let micro_ms = |key: &str| m[key].as_f64().unwrap_or(f64::NAN);
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| `--help` start-up | {help_ms:.2} ms |");
    // BENCH_SCALE_RUNS=0 skips the scale figures.
    for (label, m) in [("", s), (" (before)", &s["before"])] {
        if let (Some(total), Some(reaction)) = (m["total_ms"].as_f64(), m["reaction_ms"].as_f64()) {
            println!("| scale 1→20 total{label} | {total:.0} ms |");
            println!("| scale reaction (ready → exit){label} | {reaction:.1} ms |");
        }
    }
    if !m.is_null() {
        println!(
            "| decode real record ({} B encoded) | {:.2} ms |",
            m["decode_real_encoded_bytes"],
            micro_ms("decode_real_ms")
        );
        println!(
            "| decode synthetic ({} B encoded) | {:.2} ms |",
            m["decode_1mb_encoded_bytes"],
            micro_ms("decode_1mb_ms")
        );
        println!("| coalesce values | {:.3} ms |", micro_ms("coalesce_ms"));
        println!(
            "| render 1,000 pod rows | {:.2} ms |",
            micro_ms("render_1000_rows_ms")
        );
    }
    println!();
    println!("JSON: {}", json_path.display());
    // BENCH_HOLD_SECS keeps the namespace (and the simulator playing its
    // pods and Milvus) for that long, to profile a binary against it.
    if let Some(secs) = std::env::var("BENCH_HOLD_SECS").ok().and_then(|v| v.parse().ok()) {
        eprintln!("holding {nsn} for {secs} s");
        std::thread::sleep(Duration::from_secs(secs));
    }
    drop(ns);
}
