//! Shared helpers for the plugin's end-to-end tests: run the real binary
//! against the test bed (a real API server), seed releases, compare with
//! real kubectl.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use testbed::seed::{self, Scenario, SeedOptions, SeededRelease};
use testbed::{TestBed, TestNamespace};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-milvus");

pub fn bed() -> &'static TestBed {
    TestBed::get()
}

/// The plugin with the admin kubeconfig.
pub fn plugin() -> Command {
    let mut c = Command::new(PLUGIN);
    c.env("KUBECONFIG", bed().admin_kubeconfig())
        .env_remove("HELM_DRIVER")
        .env_remove("HELM_MAX_HISTORY");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("spawn the command");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs the plugin and asserts success.
pub fn ok(args: &[&str]) -> String {
    let r = run(plugin().args(args));
    assert_eq!(
        r.code, 0,
        "kubectl milvus {args:?} failed:\n{}{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// Runs the plugin and asserts a one-line error with the given exit code.
pub fn fails(args: &[&str], code: i32) -> String {
    let r = run(plugin().args(args));
    assert_eq!(
        r.code, code,
        "kubectl milvus {args:?}: expected exit {code}\n{}{}",
        r.stdout, r.stderr
    );
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "error must be one line: {:?}",
        r.stderr
    );
    assert!(r.stderr.starts_with("error: "), "{:?}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{:?}", r.stderr);
    r.stderr
}

pub fn namespace(prefix: &str) -> TestNamespace {
    let prefix = prefix.to_string();
    bed()
        .block_on(async move { bed().namespace(&prefix).await })
        .expect("runtime")
        .expect("namespace")
}

pub fn seed(ns: &str, scenario: Scenario, mut opts: SeedOptions) -> SeededRelease {
    // v1.20's server-side apply rejects some chart objects (ports without
    // protocol); Helm 4 users there run --server-side=false as well.
    opts.apply_method = seed::ApplyMethod::ClientSide;
    let ns = ns.to_string();
    bed()
        .block_on(async move { seed::seed_release(bed(), &ns, scenario, opts).await })
        .expect("runtime")
        .expect("seed release")
}

pub fn seed_ready(ns: &str, scenario: Scenario) -> SeededRelease {
    seed(
        ns,
        scenario,
        SeedOptions {
            wait_ready: true,
            ..Default::default()
        },
    )
}

pub fn wait_ready(ns: &str) {
    let ns = ns.to_string();
    bed()
        .block_on(async move { seed::wait_release_ready(&ns).await })
        .expect("runtime")
        .expect("release ready");
}

pub fn kubectl(args: &[&str]) -> String {
    testbed::clients::run(bed().kubectl().args(args)).expect("kubectl")
}

pub fn helm(args: &[&str]) -> String {
    testbed::clients::run(bed().helm().args(args)).expect("helm")
}

/// The pod table part of `status` output (from the `NAME` header on).
pub fn pod_table(status_output: &str) -> String {
    let start = status_output
        .find("\nNAME ")
        .map(|i| i + 1)
        .expect("pod table in output");
    status_output[start..].to_string()
}

/// Compares two pod tables read at slightly different instants (the
/// plugin's, then kubectl's). Equal text is the aim, and is retried a few
/// times; on a loaded machine the two reads can be seconds apart, so what
/// finally counts is: the same rows and every column the same, except AGE,
/// which may be at most the time between the two reads (+1 s) older on
/// the later side. Nothing here depends on how fast the machine is.
pub fn eventually_equal(mut sides: impl FnMut() -> (String, String)) {
    let mut last = (String::new(), String::new());
    for _ in 0..5 {
        let started = std::time::Instant::now();
        last = sides();
        if last.0 == last.1 {
            return;
        }
        if same_but_age(&last.0, &last.1, started.elapsed() + Duration::from_secs(1)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    pretty_assertions::assert_eq!(last.0, last.1);
}

/// kubectl's AGE (`45s`, `2m3s`, `5h`, `3d4h`, `2y`) in seconds.
fn age_secs(text: &str) -> Option<u64> {
    let mut total = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = std::mem::take(&mut digits).parse().ok()?;
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'y' => 365 * 86_400,
            _ => return None,
        };
    }
    digits.is_empty().then_some(total)
}

/// Rows and columns equal but AGE, which the later table may show up to
/// `gap` older (kubectl rounds ages down to its unit: compare generously
/// at coarse units).
fn same_but_age(first: &str, later: &str, gap: Duration) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (first.lines().collect(), later.lines().collect());
    if a.len() != b.len() || a.first() != b.first() {
        return false;
    }
    // AGE is the last column, or the fifth from the end in the wide layout.
    let from_end = if a.first().is_some_and(|h| h.contains(" IP ")) {
        4
    } else {
        0
    };
    a.iter().zip(&b).skip(1).all(|(x, y)| {
        let (x, y): (Vec<&str>, Vec<&str>) = (x.split_whitespace().collect(), y.split_whitespace().collect());
        if x.len() != y.len() || x.len() <= from_end {
            return false;
        }
        let age = x.len() - 1 - from_end;
        let others_equal = x.iter().zip(&y).enumerate().all(|(i, (p, q))| i == age || p == q);
        let ages = (age_secs(x[age]), age_secs(y[age]));
        let age_ok = match ages {
            (Some(p), Some(q)) => {
                let unit = if q >= 600 { 60 } else { 1 };
                q + unit >= p && q <= p + gap.as_secs() + unit
            }
            _ => x[age] == y[age],
        };
        others_equal && age_ok
    })
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// Sets the pod simulator's fault rules for a namespace.
pub fn faults(ns: &str, rules: Vec<testbed::sim::FaultRule>) {
    let ns = ns.to_string();
    bed()
        .block_on(async move { testbed::sim::set_pod_faults(&ns, rules).await })
        .expect("runtime")
        .expect("set pod faults");
}

/// A kubeconfig for a ServiceAccount bound to a Role with `rules` in `ns`.
pub fn restricted(
    ns: &str,
    name: &str,
    rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
) -> std::path::PathBuf {
    let (ns, name) = (ns.to_string(), name.to_string());
    bed()
        .block_on(async move { bed().restricted_kubeconfig(&ns, &name, rules).await })
        .expect("runtime")
        .expect("restricted kubeconfig")
}

/// The README's RBAC: the `status` Role's rules, and those plus `scale`'s.
pub fn readme_rules() -> (
    Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
    Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
) {
    use k8s_openapi::api::rbac::v1::PolicyRule;
    let readme = include_str!("../../README.md");
    let blocks: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let role: serde_json::Value = serde_saphyr::from_str(blocks[0]).unwrap();
    let extra: Vec<PolicyRule> = serde_saphyr::from_str(blocks[1]).unwrap();
    let status_rules: Vec<PolicyRule> = serde_json::from_value(role["rules"].clone()).unwrap();
    let mut scale_rules = status_rules.clone();
    scale_rules.extend(extra);
    (status_rules, scale_rules)
}

/// A Deployment's `spec.replicas`, as kubectl reads it.
pub fn replicas(ns: &str, deployment: &str) -> String {
    kubectl(&[
        "get",
        "deployment",
        deployment,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

/// Every distinct value one number of one object takes, recorded through a
/// watch that is established before [`watch_replicas`] and
/// [`watch_cr_replicas`] return (its first listing done), so nothing the
/// test does next is missed. A watch that breaks is not a silent stop: the
/// values it may have missed make [`Watched::values`] fail.
pub struct Watched {
    state: std::sync::Arc<std::sync::Mutex<WatchedState>>,
}

#[derive(Default)]
struct WatchedState {
    values: Vec<i64>,
    broken: Option<String>,
}

impl Watched {
    /// The values seen so far, in order; fails if the watch broke.
    pub fn values(&self) -> Vec<i64> {
        let state = self.state.lock().unwrap();
        if let Some(why) = &state.broken {
            panic!(
                "the watch broke ({why}); values seen until then: {:?}",
                state.values
            );
        }
        state.values.clone()
    }
}

/// Records every distinct `spec.replicas` a Deployment takes, through a watch.
pub fn watch_replicas(ns: &str, deployment: &str) -> Watched {
    use k8s_openapi::api::apps::v1::Deployment;
    watch_number(
        ns,
        kube::discovery::ApiResource::erase::<Deployment>(&()),
        deployment,
        "/spec/replicas",
    )
}

/// Records every distinct `spec.components.<component>.replicas` a `Milvus`
/// resource takes, through a watch (independent of what the plugin says).
pub fn watch_cr_replicas(ns: &str, name: &str, component: &str) -> Watched {
    let milvus = kube::discovery::ApiResource {
        group: "milvus.io".into(),
        version: "v1beta1".into(),
        api_version: "milvus.io/v1beta1".into(),
        kind: "Milvus".into(),
        plural: "milvuses".into(),
    };
    watch_number(
        ns,
        milvus,
        name,
        &format!("/spec/components/{component}/replicas"),
    )
}

fn watch_number(ns: &str, resource: kube::discovery::ApiResource, name: &str, pointer: &str) -> Watched {
    use futures::StreamExt;
    use kube::api::DynamicObject;
    use kube::runtime::watcher::{self, Event};
    let state = std::sync::Arc::new(std::sync::Mutex::new(WatchedState::default()));
    let (established, is_established) = std::sync::mpsc::channel::<Result<(), String>>();
    let (ns, name, pointer, out) = (
        ns.to_string(),
        name.to_string(),
        pointer.to_string(),
        state.clone(),
    );
    bed().spawn(async move {
        let client = match bed().client().await {
            Ok(c) => c,
            Err(e) => return drop(established.send(Err(e.to_string()))),
        };
        let api: kube::Api<DynamicObject> = kube::Api::namespaced_with(client, &ns, &resource);
        let stream = watcher::watcher(
            api,
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        );
        futures::pin_mut!(stream);
        let mut told = false;
        while let Some(event) = stream.next().await {
            let object = match event {
                Ok(Event::InitApply(o) | Event::Apply(o)) => o,
                Ok(Event::InitDone) => {
                    if !told {
                        told = true;
                        let _ = established.send(Ok(()));
                    }
                    continue;
                }
                Ok(Event::Init | Event::Delete(_)) => continue,
                Err(e) => {
                    let why = e.to_string();
                    if !told {
                        let _ = established.send(Err(why.clone()));
                    }
                    out.lock().unwrap().broken = Some(why);
                    return;
                }
            };
            let n = object
                .data
                .pointer(&pointer)
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(-1);
            let mut state = out.lock().unwrap();
            if state.values.last() != Some(&n) {
                state.values.push(n);
            }
        }
        out.lock().unwrap().broken = Some("the watch stream ended".to_string());
    });
    match is_established.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(())) => Watched { state },
        Ok(Err(why)) => panic!("the watch could not be established: {why}"),
        Err(e) => panic!("the watch was not established within 120 s: {e}"),
    }
}

/// Installs the test chart as `my-release` with Helm 4's default,
/// server-side apply (Helm's field manager then owns what the chart
/// renders); returns the chart's path for later upgrades.
pub fn helm_install_server_side(ns: &str, sets: &[&str]) -> String {
    let chart = testbed::seed::test_chart_dir().to_string_lossy().into_owned();
    let mut args = vec![
        "install",
        "my-release",
        chart.as_str(),
        "-n",
        ns,
        "--server-side=true",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    args.push("--wait");
    helm(&args);
    chart
}

/// The field managers of an object (`kubectl get` omits managedFields
/// unless asked).
pub fn managers(ns: &str, resource: &str, name: &str) -> String {
    kubectl(&[
        "get",
        resource,
        name,
        "-n",
        ns,
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ])
}

/// A running `status -w`, its stdout gathered as it comes.
pub struct Watching {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watching {
    pub fn start(args: &[&str], kubeconfig: &std::path::Path) -> Watching {
        let mut child = std::process::Command::new(PLUGIN)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn status -w");
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut pipe, sink) = (child.stdout.take().expect("stdout"), stdout.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watching { child, stdout }
    }

    pub fn text(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits (generously: a loaded machine) until the output so far satisfies `f`.
    pub fn wait_for(&self, what: &str, mut f: impl FnMut(&str) -> bool) {
        let start = std::time::Instant::now();
        while !f(&self.text()) {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, as Ctrl-C sends it: exit code and stderr.
    pub fn interrupt(self) -> (i32, String) {
        self.signal("-INT")
    }

    /// `kill SIGNAL` (e.g. `-TERM`): exit code and stderr.
    pub fn signal(mut self, signal: &str) -> (i32, String) {
        std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        let mut pipe = self.child.stderr.take().unwrap();
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

/// The scale Lease of `my-release`, held by `holder`, last renewed at
/// `renew_time` (see [`micro`]).
pub fn lease_yaml(ns: &str, holder: &str, renew_time: &str) -> String {
    format!(
        "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: kubectl-milvus.scale.my-release
  namespace: {ns}
spec:
  holderIdentity: {holder}
  leaseDurationSeconds: 15
  acquireTime: \"{renew_time}\"
  renewTime: \"{renew_time}\"
  leaseTransitions: 0
"
    )
}

/// A Lease time as the API server takes it (RFC 3339, microseconds).
pub fn micro(t: jiff::Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_microsecond()
    )
}

/// `kubectl apply` of one manifest.
pub fn apply(yaml: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lease.yaml");
    write_file(&path, yaml);
    kubectl(&["apply", "-f", path.to_str().expect("path")]);
}

/// The plugin started in the background with `kubeconfig`, its stdout and
/// stderr piped.
pub fn spawn_plugin(args: &[&str], kubeconfig: &Path) -> std::process::Child {
    Command::new(PLUGIN)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the plugin")
}

/// Reads a spawned plugin's stderr until a line holds `needle`; returns
/// the reader (for the rest) and what was read. Fails if the run ends first.
pub fn stderr_until(
    child: &mut std::process::Child,
    needle: &str,
) -> (std::io::BufReader<std::process::ChildStderr>, String) {
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    while !seen.contains(needle) {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).expect("read stderr");
        assert!(n > 0, "the run ended before saying {needle:?}: {seen}");
        seen.push_str(&line);
    }
    (stderr, seen)
}

/// Pods matching `selector` take `grace_ms` to go once deleted (a graceful
/// stop), so a run can be caught mid-step.
pub fn slow_terminations(ns: &str, selector: &str, grace_ms: u64) {
    faults(
        ns,
        vec![testbed::sim::FaultRule::new(
            selector,
            testbed::sim::Fault::TerminatingGrace { grace_ms },
        )],
    );
}

/// A Milvus Operator cluster seeded from one of the operator's samples.
pub fn seed_operator(
    ns: &str,
    sample: testbed::operator::OperatorSample,
    opts: testbed::operator::OperatorSeedOptions,
) -> testbed::operator::SeededOperatorCluster {
    let ns = ns.to_string();
    bed()
        .block_on(async move { testbed::operator::seed_operator_cluster(bed(), &ns, sample, opts).await })
        .expect("runtime")
        .expect("seed operator cluster")
}

/// Waits for a run that another writer should stop at once (while its step
/// is still under way, not after it), failing with exit code 1; its stderr.
/// Generous in time (a loaded machine may take many seconds to notice),
/// strict in what it asserts: right after the run ended, `step_under_way`
/// must still hold (e.g. the step's pod is still terminating, which the
/// caller makes last far longer than any reaction could take).
pub fn stopped_at_once(child: std::process::Child, step_under_way: impl Fn() -> bool) -> String {
    let (code, _, stderr) = exits_within(child, Duration::from_secs(120));
    assert!(
        step_under_way(),
        "when it stopped, its step was not under way as expected (it had finished, or other pods were leaving too): {stderr}"
    );
    assert_eq!(code, 1, "{stderr}");
    stderr
}

/// `kubectl get pods -l SELECTOR -o jsonpath=PATH` in `ns`.
pub fn pods_jsonpath(ns: &str, selector: &str, path: &str) -> String {
    let output = format!("jsonpath={path}");
    kubectl(&["get", "pods", "-n", ns, "-l", selector, "-o", &output])
}

/// How many pods matching `selector` are terminating (deleted, not gone).
pub fn terminating_pods(ns: &str, selector: &str) -> usize {
    pods_jsonpath(
        ns,
        selector,
        "{range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name}{\"\\n\"}{end}",
    )
    .lines()
    .count()
}

/// Rewrites the description of revision `rev` of `my-release` (Secret
/// driver), as another writer of the record would: e.g. to the one a
/// `scale` run writes on the revision it works on.
pub fn describe_revision(ns: &str, rev: u32, description: &str) {
    let description = description.to_string();
    edit_revision(ns, rev, move |release| {
        release["info"]["description"] = description.into()
    });
}

/// Rewrites revision `rev` of `my-release` (Secret driver) through `edit`
/// on the decoded release, as Helm stores it; the record's `status` label
/// follows `info.status`, as Helm keeps them.
pub fn edit_revision(ns: &str, rev: u32, edit: impl FnOnce(&mut serde_json::Value) + Send + 'static) {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let ns = ns.to_string();
    bed()
        .block_on(async move {
            let api: kube::Api<Secret> = kube::Api::namespaced(bed().client().await?, &ns);
            let name = format!("sh.helm.release.v1.my-release.v{rev}");
            let mut secret = api.get(&name).await?;
            let data = secret.data.as_mut().expect("record data");
            let payload = String::from_utf8(data["release"].0.clone())?;
            let mut release = testbed::seed::decode_release(&payload)?;
            edit(&mut release);
            data.insert(
                "release".into(),
                ByteString(testbed::seed::encode_release(&release)?.into_bytes()),
            );
            if let Some(status) = release["info"]["status"].as_str() {
                secret
                    .metadata
                    .labels
                    .get_or_insert_default()
                    .insert("status".into(), status.to_string());
            }
            api.replace(&name, &Default::default(), &secret).await?;
            anyhow::Ok(())
        })
        .expect("runtime")
        .expect("rewrite the record");
}

/// Waits for a background run to end on its own within `limit` (killed and
/// failed if it does not): its exit code, stdout and stderr.
pub fn exits_within(mut child: std::process::Child, limit: Duration) -> (i32, String, String) {
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "still running after {limit:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Says which version branch a test took (or what it skipped for a
/// missing capability) where CI keeps it: written straight to the
/// process's stderr, which the test harness does not capture (it captures
/// only the print macros), as one `branch: TEST: WHAT` line; `.ci/run`
/// counts them in its closing line. A test never passes a branch in silence.
pub fn branch(what: &str) {
    use std::io::Write;
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let line = format!("branch: {test}: {what}");
    // Once per test and branch, however often the test asks.
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.contains(&line) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        said.push(line);
    }
}

/// `-o json|yaml` output made comparable across runs for a snapshot: the
/// namespace becomes `NS`, generated name suffixes (ReplicaSet and pod
/// hashes, Job pods) `HASH`, times and ages `[time]`/`[age]`, addresses
/// `[ip]`, the node's name `[node]`.
/// Everything else — every field, its name and value — stays as printed.
pub fn redacted(doc: &serde_json::Value, ns: &str) -> serde_json::Value {
    use serde_json::Value;
    fn is_time(s: &str) -> bool {
        s.len() >= 20 && s.parse::<jiff::Timestamp>().is_ok()
    }
    /// Kubernetes makes name suffixes (pod-template hashes, the 5 random
    /// characters of a generated pod name) from an alphabet without vowels
    /// (apimachinery's `rand.String`, `SafeEncodeString`), so no word of a
    /// chart's names is taken for one.
    fn is_generated(part: &str) -> bool {
        matches!(part.len(), 5 | 8..=10) && part.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    }
    /// `deploy-<hash>-<suffix>` → `deploy-HASH-HASH`, `job-<suffix>` → `job-HASH`.
    fn unsuffixed(s: &str) -> String {
        s.split('-')
            .map(|part| if is_generated(part) { "HASH" } else { part })
            .collect::<Vec<_>>()
            .join("-")
    }
    fn walk(v: &Value, key: &str, ns: &str) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), walk(v, k, ns))).collect()),
            Value::Array(a) => Value::Array(a.iter().map(|v| walk(v, key, ns)).collect()),
            Value::String(s) => Value::String(match key {
                "age" => "[age]".to_string(),
                // The simulator's node name carries the machine's.
                "node" => "[node]".to_string(),
                k if k.to_ascii_lowercase().ends_with("ip") => "[ip]".to_string(),
                // A Milvus node's address is its pod's IP (the test bed's
                // pod network hands them out) and the port it registers.
                "address" => match s.rsplit_once(':') {
                    Some((_, port)) => format!("[ip]:{port}"),
                    None => "[ip]".to_string(),
                },
                _ if is_time(s) => "[time]".to_string(),
                _ => unsuffixed(&s.replace(ns, "NS")),
            }),
            // Milvus's node IDs follow the order its pods registered in.
            Value::Number(_) if key == "id" => Value::String("[id]".to_string()),
            other => other.clone(),
        }
    }
    let mut doc = walk(doc, "", ns);
    // With their IDs redacted, Milvus's nodes in an order of their own.
    for item in doc["items"].as_array_mut().into_iter().flatten() {
        if let Some(nodes) = item
            .get_mut("milvus")
            .and_then(|m| m.get_mut("queryNodes"))
            .and_then(|n| n.as_array_mut())
        {
            nodes.sort_by_key(|n| n.to_string());
        }
    }
    doc
}

/// A plan document [`redacted`], its pods in a stable order: with their
/// names redacted, which pod of a component is removed first is theirs to
/// say, not the snapshot's (the fate and step of each stay).
pub fn plan_redacted(plan: &serde_json::Value, ns: &str) -> serde_json::Value {
    let mut doc = redacted(plan, ns);
    for item in doc["items"].as_array_mut().into_iter().flatten() {
        if let Some(pods) = item["pods"].as_array_mut() {
            pods.sort_by_key(|p| p.to_string());
        }
        // How the drained pod is made the one that leaves follows the
        // server's version (deletion cost from v1.22; tests/milvus.rs
        // checks each), and Milvus's node IDs its registration order.
        if let Some(drain) = item.get_mut("drain").and_then(|d| d.as_object_mut()) {
            if drain.contains_key("removal") {
                drain.insert("removal".into(), "[by server version]".into());
            }
            for leaving in drain
                .get_mut("leaving")
                .and_then(|l| l.as_array_mut())
                .into_iter()
                .flatten()
            {
                if leaving.get("node").is_some_and(|n| n.is_number()) {
                    leaving["node"] = "[id]".into();
                }
            }
        }
    }
    doc
}

/// `plan my-release CHANGE -n NS -o json`, parsed.
pub fn plan_json(ns: &str, change: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&["plan", "my-release", change, "-n", ns, "-o", "json"]))
        .expect("plan -o json is JSON")
}

/// `status [ARGS] -n NS -o json`, [`redacted`], after checking that
/// `-o yaml` says the same (but the ages, which move between the reads).
pub fn status_doc_redacted(args: &[&str], ns: &str) -> serde_json::Value {
    let read = |format: &str| ok(&[&["status"], args, &["-n", ns, "-o", format]].concat());
    let json: serde_json::Value = serde_json::from_str(&read("json")).expect("status -o json is JSON");
    let yaml: serde_json::Value = serde_saphyr::from_str(&read("yaml")).expect("status -o yaml is YAML");
    let json = redacted(&json, ns);
    assert!(
        redacted(&yaml, ns) == json,
        "-o yaml says what -o json says (but the ages)"
    );
    json
}

/// Polls `f` every 100 ms until it holds; fails after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl scale deployment NAME --replicas=N`, as a user (or another
/// tool) changes a count by hand.
pub fn scale_deployment(ns: &str, name: &str, replicas: u32) {
    kubectl(&[
        "scale",
        "deployment",
        name,
        "-n",
        ns,
        &format!("--replicas={replicas}"),
    ]);
}

/// The pod a scale-in step is removing, told by the run's own drain mark
/// (`kubectl-milvus.io/drain`, written before the node is drained and left
/// on the pod as it goes), and the pods that were there when it was
/// deleted. Before v1.22 the run deletes the drained pod itself and the
/// ReplicaSet may start a replacement that is removed again beside it: a
/// pod created after that deletion is not one of `originals`.
pub struct Leaving {
    pub name: String,
    pub originals: Vec<String>,
}

fn pods_json(ns: &str, selector: &str) -> Vec<serde_json::Value> {
    let list: serde_json::Value =
        serde_json::from_str(&kubectl(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"]))
            .expect("pods json");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn timestamp(v: &serde_json::Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse().ok()
}

/// Waits (generously) until a terminating pod matching `selector` carries
/// a drain mark: that pod and the pods that existed when it was deleted.
pub fn leaving_pod(ns: &str, selector: &str) -> Leaving {
    let mut found = None;
    wait_until("a drained pod terminating", Duration::from_secs(120), || {
        let pods = pods_json(ns, selector);
        let marked: Vec<&serde_json::Value> = pods
            .iter()
            .filter(|p| {
                !p["metadata"]["deletionTimestamp"].is_null()
                    && p["metadata"]["annotations"]["kubectl-milvus.io/drain"].is_string()
            })
            .collect();
        assert!(marked.len() <= 1, "more than one drained pod leaving: {marked:?}");
        let Some(p) = marked.first() else { return false };
        // Deleted at deletionTimestamp − deletionGracePeriodSeconds.
        let grace = p["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
        let gone_at = timestamp(&p["metadata"]["deletionTimestamp"]).expect("deletionTimestamp");
        let deleted = gone_at - jiff::SignedDuration::from_secs(grace);
        let originals = pods
            .iter()
            .filter(|o| timestamp(&o["metadata"]["creationTimestamp"]).is_some_and(|c| c < deleted))
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
        found = Some(Leaving { name, originals });
        true
    });
    found.expect("found")
}

impl Leaving {
    /// Of the original pods, exactly this one is terminating now (the step
    /// is under way, and it is the only pod it removes).
    pub fn alone_terminating(&self, ns: &str, selector: &str) -> bool {
        let terminating: Vec<String> = pods_json(ns, selector)
            .iter()
            .filter(|p| !p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .filter(|n| self.originals.contains(n))
            .collect();
        terminating == [self.name.clone()]
    }
}
