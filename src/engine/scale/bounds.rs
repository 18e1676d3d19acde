//! Stepping an HPA's bounds (`--min`/`--max`), for Helm releases and
//! Operator clusters alike: each step is a guarded write of the live HPA
//! (`cluster::hpa`), then the Deployment it manages is watched until the
//! HPA has brought it to the step's count — while the HPA itself is
//! watched: bounds someone else writes meanwhile stop the run at once, not
//! at the step's timeout.

use std::time::Duration;

use crate::cluster::Cluster;
use crate::cluster::hpa::{BoundsStop, bounds_changed, write};
use crate::cluster::rollout::wait_step;
use crate::core::bounds::step_bounds;
use crate::core::plan::ComponentChange;
use crate::render::progress::Progress;

/// Writes the change's bounds, a lowered max one replica at a time: each
/// step waits until the HPA has brought the Deployment to the step's count,
/// ready. A raised min is one step (a scale-out); bounds that leave what
/// runs alone are written without a wait.
pub async fn execute(
    cluster: &Cluster,
    namespace: &str,
    change: &ComponentChange,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), BoundsStop> {
    let Some(h) = &change.hpa else { return Ok(()) };
    let mut expected = h.current;
    if change.steps.is_empty() {
        progress.line(&format!(
            "{}: HorizontalPodAutoscaler {} {} → {}",
            change.component, h.name, h.current, h.target
        ));
        return write(cluster, namespace, &h.name, &mut expected, h.target).await;
    }
    let mut at = change.current;
    for step in change.steps.iter() {
        let bounds = step_bounds(h.target, step);
        progress.line(&format!(
            "{}: HorizontalPodAutoscaler {} {expected} → {bounds} (replicas {at} → {step})",
            change.component, h.name
        ));
        write(cluster, namespace, &h.name, &mut expected, bounds).await?;
        let settled = async {
            for d in &change.deployments {
                wait_step(cluster, namespace, d, step, timeout, progress).await?;
            }
            Ok::<(), String>(())
        };
        tokio::select! {
            r = settled => r.map_err(BoundsStop::Failed)?,
            why = bounds_changed(cluster, namespace, &h.name, expected) => {
                return Err(BoundsStop::OtherWriter(why));
            }
        }
        at = step;
    }
    Ok(())
}
