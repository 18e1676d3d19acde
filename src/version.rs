//! Build identification for `kubectl milvus version`.

/// `0.1.0`, shown by `--version`.
pub const SHORT: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (`unknown` outside a checkout).
pub const COMMIT: &str = env!("KUBECTL_MILVUS_GIT_COMMIT");

/// The target triple the binary was built for.
pub const TARGET: &str = env!("KUBECTL_MILVUS_TARGET");

/// The `version` subcommand's text.
pub fn long() -> String {
    format!("kubectl-milvus v{SHORT}\ncommit: {COMMIT}\ntarget: {TARGET}\n")
}
