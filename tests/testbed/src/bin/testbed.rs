//! `testbed up|down|status|env|demo`: manage the shared local control plane (and the demo).

use std::process::ExitCode;

use testbed::plane::{self, Layout};

const USAGE: &str = "usage: testbed <up|down|status|env|demo>
  up      start the local control plane unless a healthy one runs (idempotent);
          prints `export KUBECTL_MILVUS_TEST_KUBECONFIG=...`
  down    stop the demo (if any) and exactly the processes `up` started, remove etcd data
          and the pod network (network namespace, veth, route)
  demo    seed namespace milvus-demo (Helm release my-release + Operator cluster my-milvus)
          and keep a background process playing kubelet and operator (idempotent)
  status  show ports, pids and API readiness (exit 1 when not ready)
  env     print the export line for a running plane (exit 1 when none)
environment: TESTBED_STATE_DIR (default /tmp/kubectl-milvus-testbed), TESTBED_CACHE,
             TESTBED_K8S_VERSION, TESTBED_K8S_BIN_DIR, TESTBED_ETCD";

fn main() -> ExitCode {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let layout = Layout::from_env();
    if cmd == testbed::demo::SERVE_ARG {
        // The background demo process: the test bed runs its own runtime.
        return match testbed::demo::serve(&layout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("testbed demo-serve: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("testbed: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(cli(cmd, layout))
}

async fn cli(cmd: String, layout: Layout) -> ExitCode {
    let layout = &layout;
    match run(&cmd, layout).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("testbed {cmd}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn export_line(layout: &Layout) -> String {
    format!(
        "export {}={}",
        testbed::KUBECONFIG_ENV,
        layout.admin_kubeconfig().display()
    )
}

async fn run(cmd: &str, layout: &Layout) -> anyhow::Result<ExitCode> {
    match cmd {
        "up" => {
            let p = plane::ensure_up(layout).await?;
            if p.started_now {
                eprintln!(
                    "testbed: started control plane in {:.1}s (API https://127.0.0.1:{}, state {})",
                    p.state.startup_millis as f64 / 1000.0,
                    p.state.apiserver_port,
                    layout.state_dir.display()
                );
            } else {
                eprintln!(
                    "testbed: control plane already running (API https://127.0.0.1:{})",
                    p.state.apiserver_port
                );
            }
            // The pod network the test bed's simulators put pods in (also
            // made on demand by every test process).
            match testbed::netns::ensure(layout) {
                Ok(net) => eprintln!(
                    "testbed: pod network {} in network namespace {} (veth {})",
                    net.pod_cidr, net.netns, net.veth
                ),
                Err(e) => eprintln!("testbed: no pod network (tests that need it will fail): {e:#}"),
            }
            println!("{}", export_line(layout));
            Ok(ExitCode::SUCCESS)
        }
        "down" => {
            if testbed::demo::stop(layout) {
                eprintln!("testbed: demo stopped");
            }
            plane::down(layout)?;
            eprintln!("testbed: control plane stopped");
            Ok(ExitCode::SUCCESS)
        }
        "status" => match plane::status(layout).await? {
            None => {
                println!("not running (no state in {})", layout.state_dir.display());
                Ok(ExitCode::FAILURE)
            }
            Some((state, procs, ready)) => {
                println!("state dir:   {}", layout.state_dir.display());
                println!("api server:  {} (ready: {ready})", state.server_url());
                println!("etcd:        http://127.0.0.1:{}", state.etcd_port);
                println!("startup:     {} ms", state.startup_millis);
                for (c, pid, alive) in procs {
                    println!("{c:<24} pid {pid:<8} {}", if alive { "running" } else { "DEAD" });
                }
                println!("admin:       {}", layout.admin_kubeconfig().display());
                println!("restricted:  {}", layout.restricted_kubeconfig().display());
                match testbed::netns::read_record(layout) {
                    Some(net) => println!(
                        "pod network: {} in network namespace {} (veth {})",
                        net.pod_cidr, net.netns, net.veth
                    ),
                    None => println!("pod network: none yet (made by `up` or the first test)"),
                }
                Ok(if ready {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        },
        "env" => {
            if plane::read_state(layout)?.is_some() {
                println!("{}", export_line(layout));
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("testbed: no plane running; run `testbed up`");
                Ok(ExitCode::FAILURE)
            }
        }
        "demo" => {
            let (pid, already) = testbed::demo::start(layout, std::time::Duration::from_secs(420)).await?;
            eprintln!(
                "testbed: demo {} (pid {pid}, log {}): namespace {}, Helm release {}, Milvus CR {}",
                if already { "already running" } else { "running" },
                testbed::demo::log_file(layout).display(),
                testbed::demo::NAMESPACE,
                testbed::demo::HELM_RELEASE,
                testbed::demo::OPERATOR_CR,
            );
            println!("export KUBECONFIG={}", layout.admin_kubeconfig().display());
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}
