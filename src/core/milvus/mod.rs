//! Milvus's own view of an instance, read from its HTTP server on each pod's
//! metrics port: each component's health, QueryCoord's query nodes and what
//! they hold, and the drain of a query node before its pod leaves.
//!
//! Pure: `cluster::milvus` makes the requests (through the API server's
//! proxy subresource), these modules decide what the answers mean and what
//! to do next. Every route, parameter, JSON shape and state name is read
//! from Milvus's own handlers; each module cites the lines it relies on
//! (milvus-io/milvus, commit in brackets):
//!
//! * `internal/http/router.go` [08cba1d] — route constants: `/healthz` (l.20),
//!   the QueryCoord management routes (l.59–69);
//! * `internal/proxy/management.go` [8af3285] — the handlers: only the
//!   Proxy registers them (`RegisterMgrRoute`, l.39–90), form parameters
//!   read with `req.FormValue`, `{"msg": …}` errors;
//! * `internal/querycoordv2/ops_services.go` [1881706] — `ListQueryNode` (l.106–150),
//!   `SuspendNode`/`ResumeNode` (l.324–371), `TransferSegment` (l.376–450), `TransferChannel`;
//! * `internal/querycoordv2/handlers.go` — `balanceSegments`/`balanceChannels`
//!   (copy mode skips the release on the source);
//! * `internal/http/healthz/healthz_handler.go` [061993b] — `/healthz`.

pub mod api;
pub mod drain;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod nodes;
pub mod view;
