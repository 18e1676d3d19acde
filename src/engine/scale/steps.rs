//! Stepping a component: scale-outs at once, scale-ins one replica at a
//! time, each step watched until ready and the removed pods are gone
//! (the watching is `cluster::rollout`'s), gated by `--check`/`--pause`.

use std::time::Duration;

use super::drain::{Drainer, QUERY_NODE};
use crate::cluster::Cluster;
use crate::cluster::rollout::{
    StepWatch, choose_leaving, pick_leaving, wait_step, wait_step_watched, write_deployment_replicas,
};
use crate::core::duration::human_std as humanize;
use crate::core::plan::{ComponentChange, Plan};
use crate::core::scale_in::ControllerRules;
use crate::render::progress::Progress;

/// How scale-in steps are taken and gated.
pub(super) struct StepOptions<'a> {
    pub release: &'a str,
    pub timeout: Duration,
    /// Waited after each settled scale-in step before the next.
    pub pause: Duration,
    /// Run after each settled scale-in step; a failure stops the run.
    pub check: Option<&'a str>,
    pub rules: ControllerRules,
    pub remove: &'a [String],
    /// Milvus's part: drains, the health gate (`None`: `--no-drain`).
    pub drainer: Option<&'a Drainer<'a>>,
}

/// Scale-outs first (all at once), then scale-ins one replica at a time.
/// When `repairing` a run that was killed, components already at their
/// target are waited for too: the killed run may have written the count
/// without seeing it ready.
pub(super) async fn execute(
    cluster: &Cluster,
    namespace: &str,
    plan: &Plan,
    opts: &StepOptions<'_>,
    progress: &Progress,
    repairing: bool,
) -> Result<(), String> {
    let timeout = opts.timeout;
    if repairing {
        for c in plan.changes.iter().filter(|c| c.target == c.current) {
            for d in &c.deployments {
                wait_step(cluster, namespace, d, c.target, timeout, progress).await?;
            }
        }
    }
    let outs: Vec<&ComponentChange> = plan.changes.iter().filter(|c| c.target > c.current).collect();
    for c in &outs {
        for d in &c.deployments {
            write_deployment_replicas(cluster, namespace, d, c.target).await?;
        }
        progress.line(&format!("{}: {} → {}", c.component, c.current, c.target));
    }
    for c in &outs {
        for d in &c.deployments {
            wait_step(cluster, namespace, d, c.target, timeout, progress).await?;
        }
    }
    let ins: Vec<&ComponentChange> = plan.changes.iter().filter(|c| c.target < c.current).collect();
    let total: u32 = ins.iter().map(|c| c.steps.len()).sum();
    let mut k = 0;
    for c in ins {
        let mut at = c.current;
        for step in c.steps.iter() {
            k += 1;
            let started = std::time::Instant::now();
            let mut leaving = Vec::new();
            let drainer = opts.drainer.filter(|_| c.component == QUERY_NODE);
            for d in &c.deployments {
                let mut l =
                    pick_leaving(cluster, namespace, d, opts.rules.deletion_cost, opts.remove).await?;
                // A drain needs to know the pod that leaves on every server.
                if drainer.is_some() && l.chosen.is_none() {
                    l.chosen = choose_leaving(cluster, namespace, d, opts.remove).await?;
                }
                leaving.push(l);
            }
            let names = leaving
                .iter()
                .filter_map(|l| l.chosen.clone())
                .collect::<Vec<_>>();
            progress.line(&format!(
                "{}: {at} → {step} (step {k} of {total}){}",
                c.component,
                if names.is_empty() {
                    String::new()
                } else {
                    format!(", removing {}", names.join(", "))
                }
            ));
            let mut drained = Vec::new();
            if let Some(dr) = drainer {
                for l in &mut leaving {
                    let Some(victim) = l.chosen.clone() else { continue };
                    match dr.before(&victim).await {
                        Ok(Some(p)) => drained.push(p),
                        // Not drained: where the run would delete it itself,
                        // the controller chooses again, as without a drain.
                        Ok(None) if !opts.rules.deletion_cost => l.chosen = None,
                        Ok(None) => {}
                        Err(stopped) => {
                            dr.after(drained, Some(&stopped)).await;
                            return Err(stopped);
                        }
                    }
                }
                for p in &drained {
                    if let Err(e) = dr.remove(p).await {
                        dr.after(drained, Some(&e)).await;
                        return Err(e);
                    }
                }
            }
            let settled = async {
                for d in &c.deployments {
                    write_deployment_replicas(cluster, namespace, d, step).await?;
                }
                let mut removed = Vec::new();
                for (d, l) in c.deployments.iter().zip(&leaving) {
                    let label = format!("{} step {k} of {total}", c.component);
                    let watch = StepWatch {
                        label: &label,
                        leaving: l.chosen.as_deref(),
                        started,
                    };
                    let after =
                        wait_step_watched(cluster, namespace, d, step, timeout, progress, &watch).await?;
                    removed.extend(l.before.iter().filter(|n| !after.contains(*n)).cloned());
                }
                Ok::<_, String>(removed)
            }
            .await;
            if let Some(dr) = drainer {
                dr.after(drained, settled.as_ref().err().map(String::as_str))
                    .await;
            }
            let removed = settled?;
            if let Some(dr) = opts.drainer {
                dr.gate(timeout).await?;
            }
            if !removed.is_empty() {
                progress.line(&format!(
                    "{}: {} gone after {}",
                    c.component,
                    removed.join(", "),
                    humanize(started.elapsed())
                ));
            }
            if let Some(command) = opts.check {
                let settled = Settled {
                    component: &c.component,
                    from: at,
                    replicas: step,
                    removed: &removed,
                    step: k,
                    steps: total,
                };
                run_check(command, opts.release, namespace, &settled, progress).await?;
            }
            if k < total && !opts.pause.is_zero() {
                progress.line(&format!("pausing {} before the next step", humanize(opts.pause)));
                tokio::time::sleep(opts.pause).await;
            }
            at = step;
        }
    }
    Ok(())
}

/// A settled scale-in step, as `--check` sees it.
struct Settled<'a> {
    component: &'a str,
    from: u32,
    replicas: u32,
    removed: &'a [String],
    step: u32,
    steps: u32,
}

/// Lines of a failing check's output shown in the one-line error.
const CHECK_TAIL_LINES: usize = 3;

/// Runs `--check` through the shell with the step in its environment. A
/// non-zero exit (or a check that cannot start) stops the run with the
/// command's last lines.
async fn run_check(
    command: &str,
    release: &str,
    namespace: &str,
    s: &Settled<'_>,
    progress: &Progress,
) -> Result<(), String> {
    progress.set(&format!("{}: running --check", s.component));
    let mut cmd = shell(command);
    cmd.env("MILVUS_RELEASE", release)
        .env("MILVUS_NAMESPACE", namespace)
        .env("MILVUS_COMPONENT", s.component)
        .env("MILVUS_REPLICAS", s.replicas.to_string())
        .env("MILVUS_PREVIOUS_REPLICAS", s.from.to_string())
        .env("MILVUS_REMOVED_POD", s.removed.join(","))
        .env("MILVUS_STEP", s.step.to_string())
        .env("MILVUS_STEPS", s.steps.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = cmd
        .output()
        .await
        .map_err(|e| format!("--check could not be started ({e}): {command}"))?;
    if output.status.success() {
        progress.line(&format!(
            "{}: check passed at {} replicas",
            s.component, s.replicas
        ));
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(CHECK_TAIL_LINES)..].join(" | ");
    Err(format!(
        "--check failed after {} {} → {} ({}){}",
        s.component,
        s.from,
        s.replicas,
        output
            .status
            .code()
            .map_or("killed by a signal".to_string(), |c| format!("exit {c}")),
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    ))
}

#[cfg(unix)]
fn shell(command: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(not(unix))]
fn shell(command: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("cmd");
    c.arg("/C").arg(command);
    c
}
