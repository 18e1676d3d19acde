//! `testbed demo`: a Helm-installed and an Operator-managed Milvus in
//! namespace `milvus-demo`, kept alive by a detached background process
//! (`testbed demo-serve`) that plays the kubelet (simulator) and the Milvus
//! Operator (stand-in). `testbed down` stops it with the plane.
//!
//! Files in the state dir: `pids/demo.pid` (`<pid> <pid namespace>`, like
//! the plane's), `logs/demo.log`, `demo.ready` (written once seeded).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::operator::{OperatorSample, OperatorSeedOptions, seed_operator_cluster};
use crate::plane::{Layout, live_cmdline, pid_namespace};
use crate::seed::{Scenario, SeedOptions, seed_release};
use crate::{TestBed, plane};

/// Namespace of the demo.
pub const NAMESPACE: &str = "milvus-demo";
/// Helm release (seed scenario `Defaults`).
pub const HELM_RELEASE: &str = "my-release";
/// Milvus CR (operator sample `ClusterDefault`).
pub const OPERATOR_CR: &str = "my-milvus";
/// Subcommand of the background process.
pub const SERVE_ARG: &str = "demo-serve";

fn pid_file(layout: &Layout) -> PathBuf {
    layout.state_dir.join("pids").join("demo.pid")
}
fn ready_file(layout: &Layout) -> PathBuf {
    layout.state_dir.join("demo.ready")
}
/// The background process's log.
pub fn log_file(layout: &Layout) -> PathBuf {
    layout.state_dir.join("logs").join("demo.log")
}

/// Pid of the running demo process of this state dir, if any (verified
/// through `/proc`: alive, ours, `demo-serve` for this state dir).
pub fn running(layout: &Layout) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file(layout)).ok()?;
    let (pid, ns) = text.trim().split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let cmdline = live_cmdline(pid, ns)?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    let ours =
        cmdline.split('\0').any(|a| a == SERVE_ARG) && cmdline.contains(&*layout.state_dir.to_string_lossy());
    ours.then_some(pid)
}

/// Stop the demo process (SIGTERM, SIGKILL after 10 s). Returns whether one ran.
pub fn stop(layout: &Layout) -> bool {
    let Some(pid) = running(layout) else {
        let _ = std::fs::remove_file(pid_file(layout));
        let _ = std::fs::remove_file(ready_file(layout));
        return false;
    };
    // SAFETY: plain syscall on a pid verified to be our demo process.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(layout).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if running(layout).is_some() {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let _ = std::fs::remove_file(pid_file(layout));
    let _ = std::fs::remove_file(ready_file(layout));
    true
}

/// Start the plane if needed and the demo process detached (own session,
/// output to `logs/demo.log`); wait until it has seeded. Returns its pid
/// and whether it was already running.
pub async fn start(layout: &Layout, timeout: Duration) -> Result<(u32, bool)> {
    if let Some(pid) = running(layout)
        && ready_file(layout).exists()
    {
        return Ok((pid, true));
    }
    stop(layout);
    plane::ensure_up(layout).await?;
    let exe = std::env::current_exe().context("path of the testbed binary")?;
    std::fs::create_dir_all(layout.state_dir.join("logs"))?;
    std::fs::create_dir_all(layout.state_dir.join("pids"))?;
    let log = std::fs::File::create(log_file(layout)).context("create demo log")?;
    let mut cmd = Command::new(exe);
    cmd.arg(SERVE_ARG)
        .arg(format!("--state-dir={}", layout.state_dir.display()))
        .env("TESTBED_STATE_DIR", &layout.state_dir)
        // Attach to the local plane through its own kubeconfig.
        .env(crate::KUBECONFIG_ENV, layout.admin_kubeconfig())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; it detaches the child from
        // the caller's session so it outlives the terminal.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        };
    }
    let mut child = cmd.spawn().context("spawn demo process")?;
    let pid = child.id();
    std::fs::write(pid_file(layout), format!("{pid} {}\n", pid_namespace()))
        .context("write demo pid file")?;
    let deadline = Instant::now() + timeout;
    loop {
        if ready_file(layout).exists() {
            return Ok((pid, false));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log_file(layout)).unwrap_or_default();
            bail!("demo process exited ({status}):\n{log}");
        }
        if Instant::now() > deadline {
            stop(layout);
            bail!(
                "demo not seeded after {timeout:?}; see {}",
                log_file(layout).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Body of `testbed demo-serve`: seed, mark ready, then keep the simulator
/// and the stand-in running until SIGTERM/SIGINT. Blocks.
pub fn serve(layout: &Layout) -> Result<()> {
    let bed = TestBed::try_get().map_err(|e| anyhow::anyhow!(e))?;
    bed.block_on(async move {
        bed.owned_namespace(NAMESPACE).await?;
        let helm = seed_release(bed, NAMESPACE, Scenario::Defaults, SeedOptions::default());
        let op = seed_operator_cluster(
            bed,
            NAMESPACE,
            OperatorSample::ClusterDefault,
            OperatorSeedOptions {
                name: Some(OPERATOR_CR.into()),
                wait_ready: false,
                ..OperatorSeedOptions::default()
            },
        );
        let (helm, op) = futures::join!(helm, op);
        helm.context("seed the Helm release")?;
        let op = op.context("seed the Operator cluster")?;
        crate::operator::wait_milvus_healthy(NAMESPACE, &op.name, Duration::from_secs(300)).await?;
        crate::seed::wait_release_ready_timeout(NAMESPACE, Duration::from_secs(300)).await?;
        Ok::<_, anyhow::Error>(())
    })??;
    std::fs::write(ready_file(layout), b"ready\n").context("write demo ready file")?;
    eprintln!(
        "testbed demo: seeded {NAMESPACE}; serving (pid {})",
        std::process::id()
    );
    bed.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            // Without signal handlers, sleep until killed.
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })?;
    eprintln!("testbed demo: stopping");
    let _ = std::fs::remove_file(ready_file(layout));
    Ok(())
}
