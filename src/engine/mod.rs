//! The service layer between the commands and the cluster: which shape a
//! name is (`resolve`), what `status` shows (`status`), plans (`plan`),
//! the scale run (`scale`), and the services every shape asks: Helm
//! records (`releases`), GitOps owners (`owner`), Argo CD-rendered
//! instances (`rendered`), Milvus Operator resources (`operator`).
//! Talks to the API server only through `cluster`; decides through `core`.

pub mod operator;
pub mod operator_guard;
pub mod owner;
pub mod plan;
pub mod releases;
pub mod rendered;
pub mod resolve;
pub mod scale;
pub mod signals;
pub mod status;
