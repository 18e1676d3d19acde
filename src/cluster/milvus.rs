//! Talking to Milvus the way kubectl reaches pods: through the API server's
//! proxy subresource (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`)
//! with the user's own client — no port-forward, no network path to pods,
//! nothing installed. RBAC: `get` (GET) and `create` (POST) on `pods/proxy`.
//!
//! Every request has its own short timeout and every failure becomes an
//! [`Unreachable`] value: a Milvus that cannot be asked never fails or
//! hangs `status` or `plan`. The decisions are in [`crate::core::milvus`].

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::Patch;
use tokio::time::Instant;

use super::Cluster;
use super::api::Op;
use super::fields::write_params;
use crate::core::milvus::api::{
    self, Balance, Call, Distribution, Health, Method, NodeInfo, Reply, Unreachable,
};
use crate::core::milvus::drain::{
    self, Drain, DrainOptions, DrainPlan, Event, Held, MarkedPod, Next, Outcome, Removal, Repair, StopCause,
};
use crate::core::milvus::nodes::{MilvusPod, map_nodes, milvus_pods, node_of};
use crate::core::milvus::view::{self, Budget, Gate, Gathered};

/// What a scale-in step does about Milvus for the pod leaving.
#[derive(Debug)]
pub enum Prepared {
    /// Drive it ([`Milvus::drive`]), then remove the pod.
    Drain(Box<Drain>),
    /// QueryCoord lists no node at the pod's IP: it holds nothing.
    NothingHeld,
    /// Milvus cannot be asked: the run warns (once) and removes the pod as
    /// without a drain.
    Unreachable(Unreachable),
}

/// How a drained scale-in step ended, for the engine.
#[derive(Debug)]
pub enum StepDrain {
    /// Emptied, then removed.
    Drained(Outcome),
    /// QueryCoord had no node at the pod's IP; removed as without a drain.
    NothingHeld,
    /// Milvus could not be asked; removed as without a drain (warn once).
    Unreachable(Unreachable),
    /// The drain stopped: the pod stays, its node resumed (see the outcome).
    Stopped(Outcome),
}

/// Requests to one instance's Milvus pods.
#[derive(Clone)]
pub struct Milvus {
    client: kube::Client,
    namespace: String,
    per_request: Duration,
    concurrency: usize,
}

impl Milvus {
    pub fn new(cluster: &Cluster, namespace: &str, budget: &Budget) -> Milvus {
        Milvus {
            client: cluster.client(),
            namespace: namespace.to_string(),
            per_request: budget.per_request,
            concurrency: budget.concurrency.max(1),
        }
    }

    /// The proxy URL of `call` on `pod`'s metrics port.
    pub fn url(&self, pod: &MilvusPod, call: &Call) -> String {
        format!(
            "/api/v1/namespaces/{}/pods/{}:{}/proxy{}",
            self.namespace, pod.name, pod.metrics_port, call.path
        )
    }

    /// One request, bounded by the per-request timeout. The answer is read
    /// raw (`Client::send`): kube's `request_text` would parse Milvus's
    /// `{"msg": …}` error bodies as a Kubernetes `Status` and lose both the
    /// HTTP code and the message.
    pub async fn send(&self, pod: &MilvusPod, call: &Call) -> Result<Reply, Unreachable> {
        if !pod.askable() {
            return Err(Unreachable::NoPod {
                component: pod.component.clone(),
            });
        }
        let builder = http::Request::builder().uri(self.url(pod, call));
        let request = match call.method {
            Method::Get => builder.method(http::Method::GET).body(Vec::new()),
            Method::Post => builder
                .method(http::Method::POST)
                .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(call.form_body().into_bytes()),
        }
        .map_err(|e| Unreachable::Transport {
            message: e.to_string(),
        })?;
        let exchange = async {
            let response = self
                .client
                .send(request.map(kube::client::Body::from))
                .await
                .map_err(|e| Unreachable::Transport {
                    message: innermost(&e),
                })?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(|e| Unreachable::Transport {
                    message: innermost(&e),
                })?;
            Ok(Reply {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            })
        };
        tokio::time::timeout(self.per_request, exchange)
            .await
            .unwrap_or_else(|_| Err(Unreachable::timeout(self.per_request)))
    }

    /// The body of a successful answer, or why there is none.
    pub async fn ask(&self, pod: &MilvusPod, call: &Call) -> Result<String, Unreachable> {
        let reply = self.send(pod, call).await?;
        api::check(call, &reply).map(str::to_string)
    }

    /// A management route, asked of the first management pod that answers
    /// (at most two: a second proxy covers one that is stopping). Milvus's
    /// own refusals (`{"msg"}` errors, a missing route) are answers, not a
    /// reason to ask another proxy: every proxy forwards to the same
    /// coordinator.
    pub async fn manage(&self, pods: &[MilvusPod], call: &Call) -> Result<String, Unreachable> {
        let targets = view::management_pods(pods);
        let mut last = Unreachable::NoPod {
            component: "proxy".into(),
        };
        for pod in targets.iter().take(2) {
            match self.ask(pod, call).await {
                Ok(body) => return Ok(body),
                Err(
                    e @ (Unreachable::Milvus { .. }
                    | Unreachable::NoRoute { .. }
                    | Unreachable::Forbidden { .. }),
                ) => {
                    return Err(e);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub async fn node_list(&self, pods: &[MilvusPod]) -> Result<Vec<NodeInfo>, Unreachable> {
        let body = self.manage(pods, &Call::node_list()).await?;
        api::parse_node_list(&body)
    }

    pub async fn distribution(&self, pods: &[MilvusPod], node: i64) -> Result<Distribution, Unreachable> {
        let body = self.manage(pods, &Call::distribution(node)).await?;
        api::parse_distribution(&body)
    }

    pub async fn balance(&self, pods: &[MilvusPod]) -> Result<Balance, Unreachable> {
        let body = self.manage(pods, &Call::balance_status()).await?;
        api::parse_balance(&body)
    }

    /// `/healthz` of every pod in `pods`, `concurrency` at a time; those
    /// not answered by `deadline` are left out.
    pub async fn health(&self, pods: Vec<MilvusPod>, deadline: Instant) -> Vec<(MilvusPod, Health)> {
        futures::stream::iter(pods)
            .map(|pod| async move {
                let h = api::health(self.send(&pod, &Call::healthz()).await);
                (pod, h)
            })
            .buffer_unordered(self.concurrency)
            .take_until(tokio::time::sleep_until(deadline))
            .collect()
            .await
    }

    /// Everything `status` shows of Milvus for one instance, within
    /// `budget`: health and QueryCoord's view asked concurrently.
    pub async fn gather(
        &self,
        pods: Vec<MilvusPod>,
        marked: Vec<MarkedPod>,
        live_run: Option<String>,
        budget: &Budget,
    ) -> Gathered {
        let deadline = Instant::now() + budget.overall;
        let health_targets = view::health_targets(&pods, budget);
        let asked_health = health_targets.len();
        let all = pods.as_slice();
        let querycoord = async {
            let mut requests = 0;
            let nodes = self.node_list(all).await;
            requests += 1;
            let Ok(list) = &nodes else {
                return (Some(nodes), Default::default(), None, requests);
            };
            let mapped = map_nodes(list, all);
            let ids = view::distribution_targets(&mapped, budget);
            requests += ids.len() + 1;
            let counts = futures::stream::iter(ids)
                .map(|id| async move { (id, self.distribution(all, id).await.map(|d| Held::of(&d))) })
                .buffer_unordered(self.concurrency)
                .take_until(tokio::time::sleep_until(deadline));
            let balance = async { tokio::time::timeout_at(deadline, self.balance(all)).await.ok() };
            let (held, balance) = join(counts.collect::<Vec<_>>(), balance).await;
            (Some(nodes), held.into_iter().collect(), balance, requests)
        };
        let (health, (nodes, held, balance, requests)) =
            join(self.health(health_targets, deadline), querycoord).await;
        let requests = requests + asked_health;
        Gathered {
            pods,
            health,
            nodes,
            held,
            balance,
            marked,
            live_run,
            requests,
        }
    }

    /// Milvus's own health gate between scale-in steps (see `view::gate`).
    pub async fn gate(&self, pods: &[MilvusPod]) -> Gate {
        let targets = view::gate_targets(pods);
        let deadline = Instant::now() + self.per_request;
        view::gate(&self.health(targets, deadline + Duration::from_millis(100)).await)
    }

    /// Repairs what runs that did not finish left behind: each marked pod's
    /// node resumed when that run had suspended it and it still is, then
    /// the mark taken off. Without marks, no request is made. Milvus
    /// unreachable: nothing is touched (the marks stay for a run that can
    /// see), and the reason is returned. One line per repair.
    /// `run` is this run: its own marks (on a drained pod still leaving)
    /// are said as such, not as another run's leftovers.
    pub async fn repair(
        &self,
        cluster: &Cluster,
        pods: &[MilvusPod],
        marked: &[MarkedPod],
        run: &str,
    ) -> Result<Vec<String>, Unreachable> {
        if marked.is_empty() {
            return Ok(Vec::new());
        }
        let list = self.node_list(pods).await?;
        let mapped = map_nodes(&list, pods);
        let mut said = Vec::new();
        for r in drain::repairs(marked, Some(&mapped)) {
            match r {
                Repair::Resume { node, pod } => match self.manage(pods, &Call::resume(node)).await {
                    Ok(_) => {
                        patch_pod(cluster, &self.namespace, &pod, drain::unmark_patch()).await;
                        said.push(format!(
                            "resumed query node {node} (pod {pod}), left suspended by a run that did not finish"
                        ));
                    }
                    Err(e) => said.push(format!(
                        "query node {node} (pod {pod}) stays suspended, left so by a run that did not finish: resume failed ({e}); its mark stays for the next run"
                    )),
                },
                Repair::Unmark { pod } => {
                    if patch_pod(cluster, &self.namespace, &pod, drain::unmark_patch()).await == Event::Ok {
                        let ours = marked.iter().any(|m| m.pod == pod && m.mark.run == run);
                        said.push(if ours {
                            format!("took this run's drain mark off pod {pod} (its node is drained; the pod is leaving)")
                        } else {
                            format!("took a drain mark off pod {pod}, left by a run that did not finish (nothing of it is suspended)")
                        });
                    }
                }
            }
        }
        Ok(said)
    }

    /// Sets up the drain of the pod leaving in a scale-in step: its node,
    /// what it holds now.
    pub async fn prepare(&self, pods: &[MilvusPod], victim: &str, run: &str, opts: DrainOptions) -> Prepared {
        let list = match self.node_list(pods).await {
            Ok(l) => l,
            Err(e) => return Prepared::Unreachable(e),
        };
        let mapped = map_nodes(&list, pods);
        let Some(node) = node_of(&mapped, victim) else {
            return Prepared::NothingHeld;
        };
        let held = match self.distribution(pods, node.id).await {
            Ok(d) => Held::of(&d),
            Err(e) => return Prepared::Unreachable(e),
        };
        let since = jiff::Timestamp::now().to_string();
        Prepared::Drain(Box::new(Drain::new(victim, node, held, run, &since, opts)))
    }

    /// One scale-in step with a drain: prepare, drive until empty, make the
    /// drained pod the one that leaves (`removal`), then `lower` — the
    /// engine's own step: write the count and wait until the pod is gone.
    /// `lower` returns `Err(cause)` when the step failed; with the pod still
    /// there, its node is then resumed. The second value is `lower`'s error,
    /// for the engine to stop the run with.
    #[allow(clippy::too_many_arguments)]
    pub async fn drained_step<F, Fut>(
        &self,
        cluster: &Cluster,
        pods: &[MilvusPod],
        victim: &str,
        removal: Removal,
        run: &str,
        opts: DrainOptions,
        stop: impl Future<Output = StopCause>,
        progress: impl FnMut(&str),
        lower: F,
    ) -> (StepDrain, Option<String>)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut d = match self.prepare(pods, victim, run, opts).await {
            Prepared::Drain(d) => d,
            Prepared::NothingHeld => return (StepDrain::NothingHeld, lower().await.err()),
            Prepared::Unreachable(e) => return (StepDrain::Unreachable(e), lower().await.err()),
        };
        if let Err(outcome) = self.drive(cluster, pods, &mut d, stop, progress).await {
            return (StepDrain::Stopped(outcome), None);
        }
        if removal == Removal::DeleteThenLower
            && let Err(e) = delete_pod(cluster, &self.namespace, victim).await
        {
            let cause = StopCause::Api {
                detail: e.to_string(),
            };
            let outcome = self.finish_drain(cluster, pods, &mut d, Some(cause)).await;
            return (StepDrain::Stopped(outcome), Some(e.to_string()));
        }
        match lower().await {
            Ok(()) => (
                StepDrain::Drained(self.finish_drain(cluster, pods, &mut d, None).await),
                None,
            ),
            // The drained pod was deleted: it is leaving whatever became of
            // the count, and its node with it.
            Err(e) if removal == Removal::DeleteThenLower => (
                StepDrain::Drained(self.finish_drain(cluster, pods, &mut d, None).await),
                Some(e),
            ),
            Err(e) => {
                let cause = StopCause::Api { detail: e.clone() };
                let outcome = self.finish_drain(cluster, pods, &mut d, Some(cause)).await;
                (StepDrain::Stopped(outcome), Some(e))
            }
        }
    }

    /// Carries `drain` out until it is drained (the pod may now be removed)
    /// or stopped. `stop` resolves when the run must stop from outside
    /// (Ctrl-C, the lease, another writer); `progress` gets each change.
    /// Returns `Ok(())` at [`Next::Drained`]; afterwards the engine calls
    /// [`Milvus::finish_drain`] with what became of the pod.
    pub async fn drive(
        &self,
        cluster: &Cluster,
        pods: &[MilvusPod],
        drain: &mut Drain,
        stop: impl Future<Output = StopCause>,
        mut progress: impl FnMut(&str),
    ) -> Result<(), Outcome> {
        let started = Instant::now();
        tokio::pin!(stop);
        let mut next = drain.start();
        let mut last_line = String::new();
        loop {
            let event = match next {
                Next::Drained { .. } => return Ok(()),
                Next::Done(Outcome::Drained { .. }) => return Ok(()),
                Next::Done(outcome) => return Err(outcome),
                Next::Poll { node, after } => {
                    tokio::select! {
                        cause = &mut stop => Event::Stop(cause),
                        polled = async {
                            tokio::time::sleep(after).await;
                            self.distribution(pods, node).await
                        } => match polled {
                            Ok(d) => Event::Polled(d),
                            Err(u) => Event::PollFailed(u),
                        },
                    }
                }
                // Every other step is short (bounded by the per-request or
                // API timeout) and finished before a stop is taken, so the
                // machine always knows what Milvus was told.
                ref step => {
                    let event = self.perform(cluster, pods, drain.pod(), step).await;
                    match futures::FutureExt::now_or_never(&mut stop) {
                        Some(cause) => {
                            // Feed the step's result first, then the stop.
                            drain.on(event, started.elapsed());
                            Event::Stop(cause)
                        }
                        None => event,
                    }
                }
            };
            next = drain.on(event, started.elapsed());
            let line = drain.progress();
            if line != last_line {
                progress(&line);
                last_line = line;
            }
        }
    }

    /// After [`Milvus::drive`] returned `Ok`: the pod left (`None`) — done —
    /// or it could not be removed (`Some(cause)`) — the node is resumed and
    /// the mark taken off.
    pub async fn finish_drain(
        &self,
        cluster: &Cluster,
        pods: &[MilvusPod],
        drain: &mut Drain,
        stopped: Option<StopCause>,
    ) -> Outcome {
        let event = match stopped {
            None => Event::PodLeft,
            Some(cause) => Event::Stop(cause),
        };
        let mut next = drain.on(event, Duration::ZERO);
        loop {
            match next {
                Next::Done(outcome) => return outcome,
                ref step => {
                    let event = self.perform(cluster, pods, drain.pod(), step).await;
                    next = drain.on(event, Duration::ZERO);
                }
            }
        }
    }

    async fn perform(&self, cluster: &Cluster, pods: &[MilvusPod], pod: &str, step: &Next) -> Event {
        let milvus = |call: Call| async move {
            match self.manage(pods, &call).await {
                Ok(_) => Event::Ok,
                Err(e) => Event::Failed(e.to_string()),
            }
        };
        match step {
            Next::Mark(mark) => patch_pod(cluster, &self.namespace, pod, drain::mark_patch(mark)).await,
            Next::Unmark => patch_pod(cluster, &self.namespace, pod, drain::unmark_patch()).await,
            Next::Suspend(node) => milvus(Call::suspend(*node)).await,
            Next::Resume(node) => milvus(Call::resume(*node)).await,
            Next::Transfer(node) => {
                let (segments, channels) = join(
                    milvus(Call::transfer_segments(*node)),
                    milvus(Call::transfer_channels(*node)),
                )
                .await;
                match (segments, channels) {
                    (Event::Failed(e), _) | (_, Event::Failed(e)) => Event::Failed(e),
                    _ => Event::Ok,
                }
            }
            Next::Locate => match self.node_list(pods).await {
                Ok(list) => {
                    let mapped = map_nodes(&list, pods);
                    Event::Located(
                        mapped
                            .into_iter()
                            .find(|n| n.pod.as_deref() == Some(pod))
                            .map(|n| (n.id, n.state)),
                    )
                }
                Err(e) => Event::Failed(e.to_string()),
            },
            Next::Poll { node, .. } => match self.distribution(pods, *node).await {
                Ok(d) => Event::Polled(d),
                Err(u) => Event::PollFailed(u),
            },
            Next::Drained { .. } => Event::Ok,
            Next::Done(_) => Event::Ok,
        }
    }
}

/// Milvus's view of one instance for `status`, from its Milvus pods, the
/// pods carrying a drain mark and the run holding its Lease, if any.
/// Bounded by `budget`; never fails.
pub async fn instance_view(
    cluster: &Cluster,
    namespace: &str,
    pods: Vec<MilvusPod>,
    marked: Vec<drain::MarkedPod>,
    live_run: Option<String>,
    budget: &Budget,
) -> view::MilvusView {
    let m = Milvus::new(cluster, namespace, budget);
    let g = m.gather(pods, marked, live_run, budget).await;
    view::view(&g)
}

/// The drain part of `plan` for the query-node pods leaving, in step
/// order: their nodes and what they hold (one `node/list`, one
/// `distribution/get` per leaving pod), or why Milvus cannot be asked.
pub async fn drain_plan(
    cluster: &Cluster,
    namespace: &str,
    pods: &[&Pod],
    victims: &[String],
    removal: Removal,
    timeout: Duration,
) -> DrainPlan {
    let budget = Budget::default();
    let m = Milvus::new(cluster, namespace, &budget);
    let mpods = milvus_pods(pods);
    let (mapped, unreachable) = match m.node_list(&mpods).await {
        Ok(list) => (Some(map_nodes(&list, &mpods)), None),
        Err(e) => (None, Some(e)),
    };
    let ids: Vec<i64> = mapped
        .iter()
        .flatten()
        .filter(|n| n.pod.as_ref().is_some_and(|p| victims.contains(p)))
        .map(|n| n.id)
        .collect();
    let held: std::collections::BTreeMap<i64, Result<Held, Unreachable>> = futures::stream::iter(ids)
        .map(|id| {
            let (m, mpods) = (&m, &mpods);
            async move { (id, m.distribution(mpods, id).await.map(|d| Held::of(&d))) }
        })
        .buffer_unordered(budget.concurrency)
        .collect()
        .await;
    DrainPlan {
        component: "queryNode".into(),
        enabled: true,
        removal,
        timeout_secs: timeout.as_secs(),
        leaving: drain::leaving_nodes(victims, mapped.as_deref(), &held),
        unreachable,
    }
}

/// Deletes a drained pod (servers before v1.22, see `drain::Removal`). A
/// pod already gone is what was wanted.
pub async fn delete_pod(cluster: &Cluster, namespace: &str, pod: &str) -> Result<(), super::ApiError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let op = Op {
        verb: "delete",
        resource: "pods",
        namespace: Some(namespace),
        name: Some(pod),
    };
    match cluster.call(op, pods.delete(pod, &Default::default())).await {
        Ok(_) | Err(super::ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The innermost cause of a transport error: what a user can act on.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Patches one pod with a merge patch (a drain mark on or off). A pod gone
/// meanwhile has nothing left to mark.
async fn patch_pod(cluster: &Cluster, namespace: &str, pod: &str, patch: serde_json::Value) -> Event {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let op = Op {
        verb: "patch",
        resource: "pods",
        namespace: Some(namespace),
        name: Some(pod),
    };
    match cluster
        .call(op, pods.patch(pod, &write_params(), &Patch::Merge(patch)))
        .await
    {
        Ok(_) | Err(super::ApiError::NotFound { .. }) => Event::Ok,
        Err(e) => Event::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_go_through_the_pod_proxy_on_the_metrics_port() {
        // A client that is never used: building one needs no server.
        let config = kube::Config::new("https://127.0.0.1:1".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let m = Milvus {
            client,
            namespace: "ns".into(),
            per_request: Duration::from_millis(200),
            concurrency: 2,
        };
        let pod = MilvusPod {
            name: "r-milvus-proxy-0".into(),
            component: "proxy".into(),
            ip: "10.0.0.2".into(),
            metrics_port: 9091,
            running: true,
            ready: true,
        };
        assert_eq!(
            m.url(&pod, &Call::node_list()),
            "/api/v1/namespaces/ns/pods/r-milvus-proxy-0:9091/proxy/management/querycoord/node/list"
        );
        // Nothing listens there: an Unreachable value, within the timeout.
        let started = std::time::Instant::now();
        let r = m.ask(&pod, &Call::healthz()).await;
        assert!(
            matches!(
                r,
                Err(Unreachable::Transport { .. } | Unreachable::Timeout { .. })
            ),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let idle = MilvusPod {
            running: false,
            ..pod
        };
        assert_eq!(
            m.ask(&idle, &Call::healthz()).await,
            Err(Unreachable::NoPod {
                component: "proxy".into()
            })
        );
    }
}
