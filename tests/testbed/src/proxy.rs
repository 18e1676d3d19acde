//! Fault-injection proxy: plain HTTP on 127.0.0.1 in front of the API
//! server. Every request is forwarded through a `kube::Client` built from the
//! admin kubeconfig (it does TLS and authentication; `Impersonate-*` headers
//! pass through, so `kubectl --as` still works), responses are streamed
//! back. Faults are switched at runtime; counters record round trips and
//! response bytes (for benchmarks).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::TestBed;
use crate::kubeconfig::{self, Credentials};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the proxy does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Forward unchanged.
    PassThrough,
    /// Wait this long, then forward.
    Latency(Duration),
    /// Answer this HTTP status (e.g. 500, 429, 503) with a Kubernetes
    /// `Status` JSON body; 429/503 also carry `Retry-After: 1`.
    Status(u16),
    /// Forward, send the response headers and the first `after_bytes` bytes
    /// of the body, then close the connection.
    CutMidStream { after_bytes: usize },
    /// Stop listening: new connections are refused, open ones are closed.
    Refuse,
}

/// A fault for matching requests only, optionally for a limited number of hits.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Request path (with query) must contain this.
    pub path_contains: Option<String>,
    /// HTTP method (upper case) must equal this.
    pub method: Option<String>,
    pub mode: Mode,
    /// Applies to this many matching requests, then is dropped; `None` = forever.
    pub times: Option<u32>,
}

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    /// Path and query, e.g. `/api/v1/namespaces/x/pods?limit=500`.
    pub path: String,
    /// The HTTP status answered (forwarded or injected); `None` while the
    /// request is in flight, or if it was refused.
    pub status: Option<u16>,
    /// When the request reached the proxy (benchmarks line requests up
    /// against other events).
    pub at: std::time::Instant,
}

struct Inner {
    client: kube::Client,
    mode: Mutex<Mode>,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    response_bytes: AtomicU64,
    /// `true` = listening; flipping it makes the accept task drop or re-bind
    /// the listener and close open connections.
    listening: watch::Sender<bool>,
    /// Bumped by the accept task after it acted on `listening`.
    acked: watch::Sender<u64>,
}

/// A running fault proxy (stopped on drop).
pub struct FaultProxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Start on a free loopback port, in pass-through mode. Runs on the bed's
    /// runtime, so it serves regardless of the caller's runtime.
    pub fn start(bed: &TestBed) -> Result<FaultProxy> {
        let admin = bed.admin_kubeconfig().to_path_buf();
        let (client, listener) = bed.block_on(async move {
            // No retries upstream: the proxy must show clients every answer.
            let client = kubeconfig::client_for_opts(&admin, false).await?;
            let listener = TcpListener::bind("127.0.0.1:0").await.context("bind proxy")?;
            Ok::<_, anyhow::Error>((client, listener))
        })??;
        let addr = listener.local_addr()?;
        let (listening, _) = watch::channel(true);
        let (acked, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            client,
            mode: Mutex::new(Mode::PassThrough),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            response_bytes: AtomicU64::new(0),
            listening,
            acked,
        });
        let task = bed.spawn(accept_loop(inner.clone(), listener, addr));
        let kubeconfig = bed
            .scratch_dir()
            .join("kubeconfigs")
            .join(format!("proxy-{}.kubeconfig", addr.port()));
        kubeconfig::write(
            &kubeconfig,
            &format!("http://{addr}"),
            None,
            Credentials::None,
            None,
        )?;
        Ok(FaultProxy {
            inner,
            addr,
            kubeconfig,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Kubeconfig pointing at the proxy (`http://127.0.0.1:PORT`, no credentials).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
    /// A kube client talking through the proxy (kube's default retries on).
    pub async fn client(&self) -> Result<kube::Client> {
        kubeconfig::client_for(&self.kubeconfig).await
    }

    /// A kube client through the proxy that does not retry 429/503/504.
    pub async fn client_without_retries(&self) -> Result<kube::Client> {
        kubeconfig::client_for_opts(&self.kubeconfig, false).await
    }

    /// Set the default mode (for requests no [`Rule`] matches). Switching to
    /// or from [`Mode::Refuse`] returns once the port is closed / listening.
    pub fn set_mode(&self, mode: Mode) {
        let refuse = mode == Mode::Refuse;
        *lock(&self.inner.mode) = mode;
        let want_listening = !refuse;
        if *self.inner.listening.borrow() != want_listening {
            let mut ack = self.inner.acked.subscribe();
            let before = *ack.borrow_and_update();
            self.inner.listening.send_replace(want_listening);
            // Wait (bounded) for the accept task to act; plain thread sleep
            // so this works from sync and async callers alike.
            for _ in 0..200 {
                if *ack.borrow() != before {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    pub fn mode(&self) -> Mode {
        lock(&self.inner.mode).clone()
    }

    /// Add a rule (checked in insertion order before the default mode).
    pub fn push_rule(&self, rule: Rule) {
        lock(&self.inner.rules).push(rule);
    }

    pub fn clear_rules(&self) {
        lock(&self.inner.rules).clear();
    }

    /// Requests seen since the last reset.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.inner.seen).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.inner.seen).len()
    }

    /// Response body bytes sent to clients since the last reset.
    pub fn response_bytes(&self) -> u64 {
        self.inner.response_bytes.load(Ordering::Relaxed)
    }

    pub fn reset_counters(&self) {
        lock(&self.inner.seen).clear();
        self.inner.response_bytes.store(0, Ordering::Relaxed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not wedge the proxy for other tests.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    let mut listening_rx = inner.listening.subscribe();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        match &listener {
            Some(l) => {
                tokio::select! {
                    accepted = l.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let inner = inner.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| handle(inner.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    changed = listening_rx.changed() => {
                        if changed.is_err() { return }
                        if !*listening_rx.borrow_and_update() {
                            listener = None;
                            conns.abort_all();
                        }
                        inner.acked.send_modify(|n| *n += 1);
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            None => {
                if listening_rx.changed().await.is_err() {
                    return;
                }
                if *listening_rx.borrow_and_update() {
                    // Same port again; retry briefly in case of TIME_WAIT quirks.
                    for _ in 0..50 {
                        if let Ok(l) = TcpListener::bind(addr).await {
                            listener = Some(l);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                inner.acked.send_modify(|n| *n += 1);
            }
        }
    }
}

fn pick_mode(inner: &Inner, method: &str, path: &str) -> Mode {
    let mut rules = lock(&inner.rules);
    let hit = rules.iter().position(|r| {
        r.path_contains.as_deref().is_none_or(|p| path.contains(p))
            && r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
    });
    if let Some(i) = hit {
        let mode = rules[i].mode.clone();
        if let Some(t) = rules[i].times.as_mut() {
            *t = t.saturating_sub(1);
            if *t == 0 {
                rules.remove(i);
            }
        }
        return mode;
    }
    drop(rules);
    lock(&inner.mode).clone()
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<ProxyBody>, BoxError> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let index = {
        let mut seen = lock(&inner.seen);
        seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            status: None,
            at: std::time::Instant::now(),
        });
        seen.len() - 1
    };
    let response = match pick_mode(&inner, &method, &path) {
        Mode::Refuse => Err("fault proxy: refusing".into()),
        Mode::Status(code) => Ok(status_response(&inner, code)),
        Mode::Latency(d) => {
            tokio::time::sleep(d).await;
            forward(&inner, req, &path, None).await
        }
        Mode::CutMidStream { after_bytes } => forward(&inner, req, &path, Some(after_bytes)).await,
        Mode::PassThrough => forward(&inner, req, &path, None).await,
    };
    if let Ok(r) = &response {
        // The same request unless the counters were reset meanwhile.
        if let Some(seen) = lock(&inner.seen)
            .get_mut(index)
            .filter(|s| s.method == method && s.path == path)
        {
            seen.status = Some(r.status().as_u16());
        }
    }
    response
}

fn status_response(inner: &Inner, code: u16) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = match code {
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        409 => "Conflict",
        404 => "NotFound",
        403 => "Forbidden",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure",
        "message": format!("injected by the kubectl-milvus testbed fault proxy ({code})"),
        "reason": reason,
        "details": {"retryAfterSeconds": 1},
        "code": code,
    })
    .to_string();
    inner
        .response_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if code == 429 || code == 503 {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    resp
}

async fn forward(
    inner: &Arc<Inner>,
    req: Request<Incoming>,
    path: &str,
    cut_after: Option<usize>,
) -> Result<Response<ProxyBody>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut out = Request::builder().method(parts.method).uri(path);
    for (k, v) in parts.headers.iter() {
        // Hop-by-hop and identity headers are the upstream client's business.
        if matches!(
            k.as_str(),
            "host"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "proxy-connection"
                | "authorization"
                | "content-length"
        ) {
            continue;
        }
        out = out.header(k, v);
    }
    let out = out.body(kube::client::Body::from(body))?;
    let resp = match inner.client.send(out).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = Response::new(
                Full::new(Bytes::from(format!("fault proxy upstream error: {e}")))
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove("connection");
    parts.headers.remove("transfer-encoding");
    if cut_after.is_some() {
        // Chunked framing: the client then always notices the missing end.
        parts.headers.remove("content-length");
    }
    let counter = inner.clone();
    let mut budget = cut_after;
    let stream = BodyStream::new(body).map(move |frame| -> Result<Frame<Bytes>, BoxError> {
        let frame = frame.map_err(|e| -> BoxError { Box::new(e) })?;
        match frame.into_data() {
            Ok(mut data) => {
                if let Some(left) = budget.as_mut() {
                    if *left == 0 {
                        // Budget spent: swallow the rest; the chained error
                        // below ends the connection.
                        return Ok(Frame::data(Bytes::new()));
                    }
                    if data.len() > *left {
                        data.truncate(*left);
                    }
                    *left -= data.len();
                }
                counter
                    .response_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(Frame::data(data))
            }
            Err(frame) => Ok(frame),
        }
    });
    let stream: futures::stream::BoxStream<'static, Result<Frame<Bytes>, BoxError>> = if cut_after.is_some() {
        // After the budget is spent, fail even if upstream ended cleanly,
        // so the client always sees a truncated response.
        stream
            .chain(futures::stream::once(async {
                // Pause first so hyper flushes the headers and the partial
                // body: the client must see a response start, then a cut.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<Frame<Bytes>, BoxError>("fault proxy: connection cut mid-stream".into())
            }))
            .boxed()
    } else {
        stream.boxed()
    };
    Ok(Response::from_parts(
        parts,
        BodyExt::boxed_unsync(StreamBody::new(stream)),
    ))
}
