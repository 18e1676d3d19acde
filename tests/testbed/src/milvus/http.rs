//! What a Milvus pod answers on its metrics port: `/healthz`,
//! `/management/check/ready` on every component, and on proxies (and
//! standalone) the QueryCoord management routes, with the status codes,
//! bodies and form handling of Milvus's handlers (`internal/proxy/management.go`,
//! `internal/http/healthz/healthz_handler.go`; lines in tests/testbed/README.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::model::{Item, ItemKind, Model, NodeState};
use super::{MilvusKnobs, NsEntry};
use crate::sim::selector_matches;

/// One pod's identity, as its handlers need it.
pub(crate) struct PodCtx {
    pub instance: String,
    pub component: String,
    pub labels: BTreeMap<String, String>,
    pub entry: Arc<NsEntry>,
    /// Set when the pod's graceful stop begins.
    pub stopping: std::sync::atomic::AtomicBool,
}

impl PodCtx {
    /// Proxies register the management routes (standalone runs a proxy too).
    fn serves_management(&self) -> bool {
        matches!(self.component.as_str(), "proxy" | "standalone")
    }
}

/// Accept connections until aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, ctx: Arc<PodCtx>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let ctx = ctx.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(ctx.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle(
    ctx: Arc<PodCtx>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, 1 << 20)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form = Form::parse(
        parts.method.as_str(),
        parts.uri.query().unwrap_or(""),
        content_type,
        &body,
    );
    let reply = respond(&ctx, parts.uri.path(), content_type, &form);
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = reply.status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(reply.content_type),
    );
    Ok(resp)
}

/// A response: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

/// Go sniffs `{"msg": …}` as text/plain (nothing sets a type).
const SNIFFED: &str = "text/plain; charset=utf-8";

fn reply(status: StatusCode, body: impl Into<String>) -> Reply {
    Reply {
        status,
        content_type: SNIFFED,
        body: body.into(),
    }
}

fn ok_msg() -> Reply {
    reply(StatusCode::OK, r#"{"msg": "OK"}"#)
}

fn fail(status: StatusCode, what: &str, reason: &str) -> Reply {
    reply(status, format!(r#"{{"msg": "{what}, {reason}"}}"#))
}

/// Go's ServeMux answer for an unregistered path.
fn not_found() -> Reply {
    reply(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// Form values: an urlencoded POST body first, then the query string (Go's
/// `ParseForm` + `FormValue`: first value wins).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(method: &str, query: &str, content_type: &str, body: &[u8]) -> Form {
        let mut v = Vec::new();
        let form_body = content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if matches!(method, "POST" | "PUT" | "PATCH") && form_body {
            v.extend(form_urlencoded::parse(body).into_owned());
        }
        v.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
        Form(v)
    }
    fn value(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`, with its error text.
fn parse_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.ParseInt: parsing {}: value out of range", go_quote(s)))
}

/// Go's `strconv.ParseBool`, with its error text.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            go_quote(s)
        )),
    }
}

/// `%q` for the strings a form can carry (close enough: Rust's escapes for
/// control characters differ only in rare cases).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub(crate) fn respond(ctx: &PodCtx, path: &str, content_type: &str, form: &Form) -> Reply {
    let state = ctx.entry.lock();
    let knobs = state.knobs.clone();
    drop(state);
    // commonpb.StateCode: Healthy = 1, Abnormal = 2, Stopping = 4; only
    // Healthy (and StandBy) count as healthy.
    let code = if ctx.stopping.load(std::sync::atomic::Ordering::Relaxed) {
        4
    } else if knobs
        .unhealthy
        .iter()
        .any(|sel| selector_matches(sel, &ctx.labels))
    {
        2
    } else {
        1
    };
    match path {
        "/healthz" => healthz(ctx, code, content_type),
        "/management/check/ready" => {
            if code == 1 {
                ok_msg()
            } else {
                let state = if code == 4 { "Stopping" } else { "Abnormal" };
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to to check component ready",
                    &format!("service not ready[{}: {state}]", ctx.component),
                )
            }
        }
        p if p.starts_with("/management/querycoord/") => {
            if !ctx.serves_management() || knobs.no_routes {
                return not_found();
            }
            management(ctx, &knobs, p, form)
        }
        _ => not_found(),
    }
}

fn healthz(ctx: &PodCtx, code: u8, content_type: &str) -> Reply {
    let healthy = code == 1;
    let state = if healthy {
        "OK".to_string()
    } else {
        "Not all components are healthy, 0/1".to_string()
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    if content_type != "application/json" {
        return Reply {
            status,
            content_type: "text/plain",
            body: state,
        };
    }
    let detail = serde_json::json!([{"name": ctx.component, "code": code}]);
    Reply {
        status,
        content_type: "application/json",
        body: serde_json::json!({"state": state, "detail": detail}).to_string(),
    }
}

/// The route's "failed to …" prefix for an RPC failure.
fn failure_prefix(route: &str) -> Option<&'static str> {
    Some(match route {
        "node/list" => "failed to list query node",
        "distribution/get" => "failed to get query node distribution",
        "balance/suspend" => "failed to suspend balance",
        "balance/resume" => "failed to resume balance",
        "balance/status" => "failed to check balance status",
        "node/suspend" => "failed to suspend node",
        "node/resume" => "failed to resume node",
        "transfer/segment" => "failed to transfer segment",
        "transfer/channel" => "failed to transfer channel",
        "distribution/check" => "failed to check whether query node has same distribution",
        _ => return None,
    })
}

/// Parsed parameters of a management call (after the 400 checks).
enum Call {
    List,
    Distribution(i64),
    SuspendBalance,
    ResumeBalance,
    BalanceStatus,
    SuspendNode(i64),
    ResumeNode(i64),
    Transfer {
        kind: ItemKind,
        source: i64,
        target: Option<i64>,
        only: Option<Item>,
    },
    Check(i64, i64),
}

const BAD: StatusCode = StatusCode::BAD_REQUEST;

/// Form checks in the order and with the texts of management.go, including
/// its quirks (a source-id error body that is not valid JSON).
fn parse_call(route: &str, form: &Form) -> Result<Call, Reply> {
    let bad = |what: &str, e: String| fail(BAD, what, &e);
    // `{"msg": failed to transfer segment", <err>"}`: sic.
    let bad_source = |what: &str, e: String| reply(BAD, format!(r#"{{"msg": {what}", {e}"}}"#));
    Ok(match route {
        "node/list" => Call::List,
        "balance/suspend" => Call::SuspendBalance,
        "balance/resume" => Call::ResumeBalance,
        "balance/status" => Call::BalanceStatus,
        "distribution/get" => Call::Distribution(
            parse_int(form.value("node_id")).map_err(|e| bad("failed to get query node distribution", e))?,
        ),
        "node/suspend" => {
            Call::SuspendNode(parse_int(form.value("node_id")).map_err(|e| bad("failed to suspend node", e))?)
        }
        "node/resume" => {
            Call::ResumeNode(parse_int(form.value("node_id")).map_err(|e| bad("failed to resume node", e))?)
        }
        "transfer/segment" | "transfer/channel" => {
            let segment = route == "transfer/segment";
            let what = if segment {
                "failed to transfer segment"
            } else {
                "failed to transfer channel"
            };
            let source = parse_int(form.value("source_node_id")).map_err(|e| bad_source(what, e))?;
            let target = match form.value("target_node_id") {
                "" => None,
                t => Some(parse_int(t).map_err(|e| bad(what, e))?),
            };
            let only = if segment {
                match form.value("segment_id") {
                    "" => None,
                    s => Some(Item::Segment(parse_int(s).map_err(|e| bad(what, e))?)),
                }
            } else {
                match form.value("channel_name") {
                    "" => None,
                    c => Some(Item::Channel(c.to_string())),
                }
            };
            // copy_mode: absent = true for segments, false for channels; the
            // model moves either way (the copy is not modelled).
            let copy_mode = form.value("copy_mode");
            if !copy_mode.is_empty() {
                parse_bool(copy_mode).map_err(|e| bad(what, e))?;
            }
            Call::Transfer {
                kind: if segment {
                    ItemKind::Segment
                } else {
                    ItemKind::Channel
                },
                source,
                target,
                only,
            }
        }
        "distribution/check" => {
            let what = "failed to check whether query node has same distribution";
            let source = parse_int(form.value("source_node_id")).map_err(|e| bad_source(what, e))?;
            let target = parse_int(form.value("target_node_id")).map_err(|e| bad(what, e))?;
            Call::Check(source, target)
        }
        _ => return Err(not_found()),
    })
}

fn management(ctx: &PodCtx, knobs: &MilvusKnobs, path: &str, form: &Form) -> Reply {
    let route = path.trim_start_matches("/management/querycoord/");
    let Some(what) = failure_prefix(route) else {
        return not_found();
    };
    let call = match parse_call(route, form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ise = StatusCode::INTERNAL_SERVER_ERROR;
    if knobs.routes_fail {
        return fail(ise, what, "service unavailable[querycoord: Abnormal]");
    }
    let mut guard = ctx.entry.lock();
    let model = guard.model(&ctx.instance, knobs);
    let result = run_call(model, call, knobs);
    drop(guard);
    ctx.entry.wake();
    match result {
        Ok(r) => r,
        Err(reason) => fail(ise, what, &reason),
    }
}

fn run_call(model: &mut Model, call: Call, knobs: &MilvusKnobs) -> Result<Reply, String> {
    let legacy = knobs.legacy_state_names;
    Ok(match call {
        Call::List => {
            // `json.Marshal` of ListQueryNodeResponse (status nil): nodeInfos
            // is omitempty, so no nodes is `{}`.
            let infos: Vec<serde_json::Value> = model
                .nodes
                .values()
                .map(|n| {
                    let state = match (n.state, n.suspended, legacy) {
                        (NodeState::Stopping, _, false) => "stopping",
                        (NodeState::Stopping, _, true) => "Stopping",
                        (_, true, false) => "suspended",
                        (_, true, true) => "Suspend",
                        (_, false, false) => "active",
                        (_, false, true) => "Normal",
                    };
                    serde_json::json!({"ID": n.id, "address": n.address, "state": state})
                })
                .collect();
            let body = if infos.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "nodeInfos": infos })
            };
            reply(StatusCode::OK, body.to_string())
        }
        Call::Distribution(id) if knobs.numeric_segment_ids => {
            // `json.Marshal(resp)` with omitempty fields: int64 IDs, and no
            // key at all for an empty list.
            let n = model.distribution(id)?;
            let mut body = serde_json::Map::new();
            if !n.channels.is_empty() {
                body.insert("channel_names".into(), serde_json::json!(n.channels));
            }
            if !n.segments.is_empty() {
                body.insert("sealed_segmentIDs".into(), serde_json::json!(n.segments));
            }
            reply(StatusCode::OK, serde_json::Value::Object(body).to_string())
        }
        Call::Distribution(id) => {
            let n = model.distribution(id)?;
            // Channels come through gRPC (an empty list decodes as nil:
            // null); segment IDs are re-mapped to strings (never null).
            let channels = if n.channels.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::json!(n.channels)
            };
            let segments: Vec<String> = n.segments.iter().map(|s| s.to_string()).collect();
            reply(
                StatusCode::OK,
                serde_json::json!({"channel_names": channels, "sealed_segmentIDs": segments}).to_string(),
            )
        }
        Call::SuspendBalance => {
            model.balance_suspended = true;
            ok_msg()
        }
        Call::ResumeBalance => {
            model.balance_suspended = false;
            ok_msg()
        }
        Call::BalanceStatus => {
            let status = if model.balance_suspended {
                "suspended"
            } else {
                "active"
            };
            reply(
                StatusCode::OK,
                format!(r#"{{"msg": "OK", "status": "{status}"}}"#),
            )
        }
        Call::SuspendNode(id) => {
            model.suspend_node(id)?;
            ok_msg()
        }
        Call::ResumeNode(id) => {
            model.resume_node(id)?;
            ok_msg()
        }
        Call::Transfer {
            kind,
            source,
            target,
            only,
        } => {
            model.transfer(kind, source, target, only)?;
            ok_msg()
        }
        Call::Check(source, target) => {
            model.check_distribution(source, target)?;
            ok_msg()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_number_and_bool_errors() {
        assert_eq!(parse_int("12"), Ok(12));
        assert_eq!(parse_int("+7"), Ok(7));
        assert_eq!(
            parse_int("").unwrap_err(),
            r#"strconv.ParseInt: parsing "": invalid syntax"#
        );
        assert_eq!(
            parse_int("99999999999999999999").unwrap_err(),
            r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#
        );
        assert_eq!(parse_bool("T"), Ok(true));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn body_values_win_over_the_query_string() {
        let f = Form::parse(
            "POST",
            "node_id=1",
            "application/x-www-form-urlencoded",
            b"node_id=2",
        );
        assert_eq!(f.value("node_id"), "2");
        let f = Form::parse(
            "GET",
            "node_id=1",
            "application/x-www-form-urlencoded",
            b"node_id=2",
        );
        assert_eq!(f.value("node_id"), "1");
    }

    #[test]
    fn a_bad_source_id_gets_milvus_own_broken_json() {
        let f = Form::parse("POST", "source_node_id=x", "", b"");
        let Err(r) = parse_call("transfer/segment", &f) else {
            panic!("accepted")
        };
        assert_eq!(r.status, BAD);
        assert_eq!(
            r.body,
            r#"{"msg": failed to transfer segment", strconv.ParseInt: parsing "x": invalid syntax"}"#
        );
    }
}
