//! The requests the plugin sends to Milvus and the answers it accepts, as
//! plain data. Shapes are Milvus's own (see the citations per item); every
//! way of not getting an answer is an [`Unreachable`] value, never an error
//! that fails the command.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The container port every Milvus component serves HTTP on (chart:
/// `containerPort` named `metrics`; the Operator names it the same).
pub const METRICS_PORT_NAME: &str = "metrics";
/// Its number when a pod does not name it (Milvus's `common.metricsPort`).
pub const DEFAULT_METRICS_PORT: u16 = 9091;

// internal/http/router.go [08cba1d] l.20 (`HealthzRouterPath`).
pub const HEALTHZ: &str = "/healthz";
// internal/http/router.go [08cba1d] l.59–69: the QueryCoord management routes.
pub const NODE_LIST: &str = "/management/querycoord/node/list";
pub const NODE_SUSPEND: &str = "/management/querycoord/node/suspend";
pub const NODE_RESUME: &str = "/management/querycoord/node/resume";
pub const DISTRIBUTION_GET: &str = "/management/querycoord/distribution/get";
pub const TRANSFER_SEGMENT: &str = "/management/querycoord/transfer/segment";
pub const TRANSFER_CHANNEL: &str = "/management/querycoord/transfer/channel";
pub const BALANCE_STATUS: &str = "/management/querycoord/balance/status";

/// GET for reads, POST (form body) for the management writes: the API
/// server maps them to the `get` and `create` verbs on `pods/proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request to one pod's metrics port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    pub path: &'static str,
    /// Form parameters. Milvus reads them with `req.FormValue`
    /// (management.go [8af3285] l.171, 287, 357…), which takes the query
    /// string and an `application/x-www-form-urlencoded` body alike; we send
    /// them in the body of a POST.
    pub form: Vec<(&'static str, String)>,
}

impl Call {
    fn get(path: &'static str) -> Call {
        Call {
            method: Method::Get,
            path,
            form: Vec::new(),
        }
    }

    fn post(path: &'static str, form: Vec<(&'static str, String)>) -> Call {
        Call {
            method: Method::Post,
            path,
            form,
        }
    }

    pub fn healthz() -> Call {
        Call::get(HEALTHZ)
    }

    /// `ListQueryNode` (management.go [8af3285] l.135–161): no parameters.
    pub fn node_list() -> Call {
        Call::get(NODE_LIST)
    }

    /// `CheckQueryCoordBalanceStatus` (management.go [8af3285] l.256–277).
    pub fn balance_status() -> Call {
        Call::get(BALANCE_STATUS)
    }

    /// `GetQueryNodeDistribution` (management.go [8af3285] l.163–216):
    /// `node_id`. It only reads, but its parameter is a form value, so it is
    /// a POST like the writes (one verb less to explain in RBAC: GET alone
    /// would need `get`, the form needs a body).
    pub fn distribution(node: i64) -> Call {
        Call::post(DISTRIBUTION_GET, vec![("node_id", node.to_string())])
    }

    /// `SuspendQueryNode` (management.go [8af3285] l.279–310): `node_id`.
    pub fn suspend(node: i64) -> Call {
        Call::post(NODE_SUSPEND, vec![("node_id", node.to_string())])
    }

    /// `ResumeQueryNode` (management.go [8af3285] l.312–343): `node_id`.
    pub fn resume(node: i64) -> Call {
        Call::post(NODE_RESUME, vec![("node_id", node.to_string())])
    }

    /// `TransferSegment` (management.go [8af3285] l.345–418): no
    /// `target_node_id` = to all other nodes of each replica, no `segment_id`
    /// = all. `copy_mode` defaults to **true** when absent (l.391–393), and
    /// copy mode only loads on the target without releasing the source
    /// (querycoordv2/handlers.go `balanceSegments`: `if !copyMode` adds the
    /// release action): a drain must send `false` or the node never empties.
    pub fn transfer_segments(node: i64) -> Call {
        Call::post(
            TRANSFER_SEGMENT,
            vec![
                ("source_node_id", node.to_string()),
                ("copy_mode", "false".into()),
            ],
        )
    }

    /// `TransferChannel` (management.go [8af3285] l.420–~480): same
    /// parameters with `channel_name`; `copy_mode` absent is already false
    /// (l.460–462), sent anyway so the intent does not hang on a default.
    pub fn transfer_channels(node: i64) -> Call {
        Call::post(
            TRANSFER_CHANNEL,
            vec![
                ("source_node_id", node.to_string()),
                ("copy_mode", "false".into()),
            ],
        )
    }

    /// The `application/x-www-form-urlencoded` body of a POST.
    pub fn form_body(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish()
    }
}

/// What came back through the API server: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Why Milvus could not be asked, or did not answer as Milvus does. Every
/// failure of a request to Milvus ends here, so `status` and `plan` can say
/// one line and carry on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Unreachable {
    /// The API server refused the proxy subresource (RBAC).
    #[serde(rename_all = "camelCase")]
    Forbidden { message: String },
    /// The pod answered 404: a Milvus without this route (management routes
    /// came with 2.3/2.4; balance status later).
    #[serde(rename_all = "camelCase")]
    NoRoute { path: String },
    /// Milvus answered an error (`{"msg": "failed to …, <reason>"}`).
    #[serde(rename_all = "camelCase")]
    Milvus { code: u16, message: String },
    /// The API server could not reach the pod (not running, refused, a
    /// network policy) or could not find it.
    #[serde(rename_all = "camelCase")]
    NotReached { code: u16, message: String },
    /// No pod of the component to ask (none running with an IP).
    #[serde(rename_all = "camelCase")]
    NoPod { component: String },
    /// No answer within the per-request timeout.
    #[serde(rename_all = "camelCase")]
    Timeout { after_ms: u64 },
    /// The request to the API server itself failed.
    #[serde(rename_all = "camelCase")]
    Transport { message: String },
    /// A 200 whose body is not the shape Milvus's handler writes.
    #[serde(rename_all = "camelCase")]
    Malformed { path: String, message: String },
}

impl Unreachable {
    pub fn timeout(after: Duration) -> Unreachable {
        Unreachable::Timeout {
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// QueryCoord no longer knows the node (its session ended): Milvus wraps
    /// `merr.WrapErrNodeNotFound`, whose text is "node not found".
    pub fn is_node_not_found(&self) -> bool {
        matches!(self, Unreachable::Milvus { message, .. } if message.to_ascii_lowercase().contains("node not found"))
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreachable::Forbidden { message } => write!(
                f,
                "you may not use pods/proxy here ({message}); add get and create on pods/proxy to your Role (README, RBAC)"
            ),
            Unreachable::NoRoute { path } => {
                write!(
                    f,
                    "Milvus does not serve {path} (a release older than this route)"
                )
            }
            Unreachable::Milvus { code, message } => write!(f, "Milvus answered HTTP {code}: {message}"),
            Unreachable::NotReached { code, message } => {
                write!(
                    f,
                    "the API server could not reach the pod (HTTP {code}: {message})"
                )
            }
            Unreachable::NoPod { component } => write!(f, "no running {component} pod to ask"),
            Unreachable::Timeout { after_ms } => write!(f, "no answer within {}", millis(*after_ms)),
            Unreachable::Transport { message } => {
                write!(f, "the request to the API server failed: {message}")
            }
            Unreachable::Malformed { path, message } => {
                write!(f, "{path} answered something Milvus does not write: {message}")
            }
        }
    }
}

fn millis(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// An error answer written by the API server rather than by the pod: a
/// `Status` object. The proxy passes the pod's own answers through as they
/// are, and Milvus never writes `"kind": "Status"`.
fn api_server_status(body: &str) -> Option<(u16, String)> {
    let v: Value = serde_json::from_str(body).ok()?;
    if v.get("kind")?.as_str()? != "Status" {
        return None;
    }
    let code = v.get("code").and_then(Value::as_u64).unwrap_or(0);
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some((u16::try_from(code).unwrap_or(0), message))
}

/// The `msg` of a Milvus error body. Milvus writes these with
/// `fmt.Sprintf`, and two of them are not even JSON (management.go
/// [8af3285] l.360: `{"msg": failed to transfer segment", …}`), so when
/// JSON fails the text after `"msg":` is taken as it is.
pub fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body)
        && let Some(m) = v.get("msg").and_then(Value::as_str)
    {
        return m.to_string();
    }
    let text = body.trim();
    let rest = text
        .split_once("\"msg\":")
        .map_or(text, |(_, r)| r)
        .trim()
        .trim_end_matches('}')
        .trim()
        .trim_matches('"');
    if rest.is_empty() {
        "(no message)".to_string()
    } else {
        rest.chars().take(300).collect()
    }
}

/// The body of a 2xx answer to `call`, or why there is none.
pub fn check<'a>(call: &Call, reply: &'a Reply) -> Result<&'a str, Unreachable> {
    if (200..300).contains(&reply.status) {
        return Ok(&reply.body);
    }
    if let Some((code, message)) = api_server_status(&reply.body) {
        let code = if code == 0 { reply.status } else { code };
        return Err(match code {
            403 => Unreachable::Forbidden { message },
            _ => Unreachable::NotReached { code, message },
        });
    }
    // The pod's own answer. Go's mux answers an unknown path with 404
    // "404 page not found".
    if reply.status == 404 {
        return Err(Unreachable::NoRoute {
            path: call.path.to_string(),
        });
    }
    Err(Unreachable::Milvus {
        code: reply.status,
        message: error_message(&reply.body),
    })
}

/// A component pod's `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "health", rename_all = "camelCase")]
pub enum Health {
    Healthy,
    /// 500 with the handler's reason ("Not all components are healthy, 1/2").
    Unhealthy {
        reason: String,
    },
    Unknown {
        why: Unreachable,
    },
}

/// `HealthHandler.ServeHTTP` (healthz_handler.go [061993b] l.103–134):
/// state "OK" → 200, anything else → 500 with the state as plain text.
pub fn health(reply: Result<Reply, Unreachable>) -> Health {
    let reply = match reply {
        Ok(r) => r,
        Err(why) => return Health::Unknown { why },
    };
    match check(&Call::healthz(), &reply) {
        Ok(_) => Health::Healthy,
        Err(Unreachable::Milvus { code: 500, .. }) => Health::Unhealthy {
            reason: reply.body.trim().chars().take(200).collect(),
        },
        Err(why) => Health::Unknown { why },
    }
}

/// A query node's state in `node/list`. QueryCoord writes
/// `nodeInfo.GetState().String()` and, for suspended nodes,
/// `session.SuspendStateName` (querycoordv2/ops_services.go [1881706] `ListQueryNode` l.134–144):
/// `active`, `stopping`, `suspended` today; releases before that said
/// `Normal`, `Stopping`, `Suspend`. Both are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeState {
    Active,
    Stopping,
    Suspended,
    Other(String),
}

impl NodeState {
    pub fn parse(s: &str) -> NodeState {
        match s.to_ascii_lowercase().as_str() {
            "active" | "normal" => NodeState::Active,
            "stopping" => NodeState::Stopping,
            "suspended" | "suspend" => NodeState::Suspended,
            _ => NodeState::Other(s.to_string()),
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeState::Active => "active",
            NodeState::Stopping => "stopping",
            NodeState::Suspended => "suspended",
            NodeState::Other(s) => s,
        })
    }
}

/// One entry of `node/list`. The handler marshals the protobuf response
/// (management.go [8af3285] l.151–160), whose Go fields carry
/// `json:"ID,omitempty"`, `json:"address,omitempty"`, `json:"state,omitempty"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeInfo {
    #[serde(rename = "ID", default, deserialize_with = "int64")]
    pub id: i64,
    #[serde(default)]
    pub address: String,
    #[serde(default, deserialize_with = "state")]
    pub state: NodeState,
}

impl Default for NodeState {
    fn default() -> Self {
        NodeState::Other(String::new())
    }
}

#[derive(Deserialize)]
struct NodeListBody {
    // omitempty: no nodes, no field.
    #[serde(rename = "nodeInfos", default)]
    node_infos: Option<Vec<NodeInfo>>,
}

pub fn parse_node_list(body: &str) -> Result<Vec<NodeInfo>, Unreachable> {
    serde_json::from_str::<NodeListBody>(body)
        .map(|b| b.node_infos.unwrap_or_default())
        .map_err(|e| malformed(NODE_LIST, e))
}

/// What QueryCoord says a query node holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    pub channels: Vec<String>,
    pub sealed_segments: Vec<i64>,
}

impl Distribution {
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.sealed_segments.is_empty()
    }
}

/// Today's handler writes `{"channel_names":[…],"sealed_segmentIDs":["…"]}`
/// with string IDs and no omitempty, so a nil list is `null`
/// (management.go [8af3285] l.195–207); older ones marshalled the protobuf
/// response: numeric IDs and absent empty lists. All of these are read.
#[derive(Deserialize)]
struct DistributionBody {
    #[serde(default)]
    channel_names: Option<Vec<String>>,
    #[serde(rename = "sealed_segmentIDs", default)]
    sealed_segment_ids: Option<Vec<IdValue>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Number(i64),
    Text(String),
}

pub fn parse_distribution(body: &str) -> Result<Distribution, Unreachable> {
    let b: DistributionBody = serde_json::from_str(body).map_err(|e| malformed(DISTRIBUTION_GET, e))?;
    let sealed_segments = b
        .sealed_segment_ids
        .unwrap_or_default()
        .into_iter()
        .map(|id| match id {
            IdValue::Number(n) => Ok(n),
            IdValue::Text(s) => s.trim().parse::<i64>().map_err(|_| Unreachable::Malformed {
                path: DISTRIBUTION_GET.into(),
                message: format!("segment ID {s:?} is not an int64"),
            }),
        })
        .collect::<Result<_, _>>()?;
    Ok(Distribution {
        channels: b.channel_names.unwrap_or_default(),
        sealed_segments,
    })
}

/// QueryCoord's automatic balance: `active` or `suspended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Balance {
    Active,
    Suspended,
}

/// `{"msg": "OK", "status": "active"|"suspended"}` (management.go
/// [8af3285] l.271–276: "suspended" unless `IsActive`).
pub fn parse_balance(body: &str) -> Result<Balance, Unreachable> {
    let v: Value = serde_json::from_str(body).map_err(|e| malformed(BALANCE_STATUS, e))?;
    match v.get("status").and_then(Value::as_str) {
        Some("active") => Ok(Balance::Active),
        Some("suspended") => Ok(Balance::Suspended),
        other => Err(Unreachable::Malformed {
            path: BALANCE_STATUS.into(),
            message: format!("status {other:?}"),
        }),
    }
}

fn malformed(path: &str, e: serde_json::Error) -> Unreachable {
    Unreachable::Malformed {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// Go marshals int64 as a number; a string is accepted too (what the
/// distribution handler switched its IDs to).
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match IdValue::deserialize(d)? {
        IdValue::Number(n) => Ok(n),
        IdValue::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

fn state<'de, D: Deserializer<'de>>(d: D) -> Result<NodeState, D::Error> {
    Ok(NodeState::parse(&String::deserialize(d)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.into(),
        }
    }

    #[test]
    fn node_list_reads_todays_and_older_states() {
        // The shape ListQueryNode marshals: protobuf NodeInfo with omitempty.
        let body = r#"{"nodeInfos":[{"ID":7,"address":"10.1.2.3:21123","state":"active"},{"ID":12,"address":"10.1.2.4:21123","state":"Suspend"},{"ID":13,"address":"10.1.2.5:21123","state":"Stopping"},{"ID":14,"address":"10.1.2.6:21123","state":"Normal"}]}"#;
        let nodes = parse_node_list(body).expect("parse");
        assert_eq!(
            nodes.iter().map(|n| (n.id, n.state.clone())).collect::<Vec<_>>(),
            [
                (7, NodeState::Active),
                (12, NodeState::Suspended),
                (13, NodeState::Stopping),
                (14, NodeState::Active)
            ]
        );
        assert_eq!(nodes[0].address, "10.1.2.3:21123");
        // No nodes: omitempty drops the field.
        assert_eq!(parse_node_list("{}").expect("empty"), []);
        assert!(matches!(
            parse_node_list("<html>"),
            Err(Unreachable::Malformed { .. })
        ));
        assert_eq!(NodeState::parse("weird"), NodeState::Other("weird".into()));
    }

    #[test]
    fn distribution_reads_string_and_numeric_ids_and_nulls() {
        let today = r#"{"channel_names":["by-dev-rootcoord-dml_0_1v0"],"sealed_segmentIDs":["449871234567890123","5"]}"#;
        let d = parse_distribution(today).expect("today");
        // Beyond f64 precision: kept exact.
        assert_eq!(d.sealed_segments, [449_871_234_567_890_123, 5]);
        assert_eq!(d.channels.len(), 1);
        let older = r#"{"ID":12,"channel_names":["c"],"sealed_segmentIDs":[1,2,3]}"#;
        assert_eq!(
            parse_distribution(older).expect("older").sealed_segments,
            [1, 2, 3]
        );
        let empty_today = r#"{"channel_names":null,"sealed_segmentIDs":[]}"#;
        assert!(parse_distribution(empty_today).expect("null").is_empty());
        assert!(parse_distribution(r#"{"ID":12}"#).expect("omitted").is_empty());
        assert!(matches!(
            parse_distribution(r#"{"sealed_segmentIDs":["x"]}"#),
            Err(Unreachable::Malformed { .. })
        ));
    }

    #[test]
    fn balance_status_and_forms() {
        assert_eq!(
            parse_balance(r#"{"msg": "OK", "status": "suspended"}"#),
            Ok(Balance::Suspended)
        );
        assert_eq!(
            parse_balance(r#"{"msg": "OK", "status": "active"}"#),
            Ok(Balance::Active)
        );
        assert!(parse_balance(r#"{"msg": "OK"}"#).is_err());
        assert_eq!(
            Call::transfer_segments(12).form_body(),
            "source_node_id=12&copy_mode=false"
        );
        assert_eq!(Call::suspend(7).form_body(), "node_id=7");
        assert_eq!(Call::node_list().method, Method::Get);
        assert_eq!(Call::distribution(7).method, Method::Post);
    }

    #[test]
    fn answers_are_told_apart_by_who_wrote_them() {
        let call = Call::suspend(7);
        // The API server's own refusal is a Status.
        let forbidden = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"p\" is forbidden: User \"u\" cannot create resource \"pods/proxy\"","reason":"Forbidden","code":403}"#;
        assert!(matches!(
            check(&call, &reply(403, forbidden)),
            Err(Unreachable::Forbidden { .. })
        ));
        let dial = r#"{"kind":"Status","status":"Failure","message":"error trying to reach service: dial tcp 10.0.0.9:9091: connect: connection refused","reason":"ServiceUnavailable","code":503}"#;
        assert!(matches!(
            check(&call, &reply(503, dial)),
            Err(Unreachable::NotReached { code: 503, .. })
        ));
        // The pod's: Go's mux 404, a Milvus {"msg"} error, even a broken one.
        assert_eq!(
            check(&call, &reply(404, "404 page not found\n")),
            Err(Unreachable::NoRoute {
                path: NODE_SUSPEND.into()
            })
        );
        assert_eq!(
            check(
                &call,
                &reply(
                    500,
                    r#"{"msg": "failed to suspend node, node not found[node=7]"}"#
                )
            ),
            Err(Unreachable::Milvus {
                code: 500,
                message: "failed to suspend node, node not found[node=7]".into()
            })
        );
        let broken = r#"{"msg": failed to transfer segment", strconv.ParseInt: parsing "": invalid syntax"}"#;
        assert!(error_message(broken).starts_with("failed to transfer segment"));
        assert!(
            check(&call, &reply(500, r#"{"msg": "node not found[node=7]"}"#))
                .expect_err("error")
                .is_node_not_found()
        );
        assert_eq!(
            check(&call, &reply(200, r#"{"msg": "OK"}"#)),
            Ok(r#"{"msg": "OK"}"#)
        );
    }

    #[test]
    fn healthz_is_ok_or_a_reason() {
        assert_eq!(health(Ok(reply(200, "OK"))), Health::Healthy);
        assert_eq!(
            health(Ok(reply(500, "Not all components are healthy, 1/2"))),
            Health::Unhealthy {
                reason: "Not all components are healthy, 1/2".into()
            }
        );
        assert!(matches!(
            health(Err(Unreachable::timeout(Duration::from_secs(2)))),
            Health::Unknown { .. }
        ));
        assert_eq!(
            Unreachable::timeout(Duration::from_secs(2)).to_string(),
            "no answer within 2s"
        );
    }
}
