//! Failures the CLI maps to distinct exit codes. Everything else is an
//! `anyhow` error with context, printed on one line with exit code 1.

use thiserror::Error;

use crate::core::plan::Rejection;

/// Input the user can fix: exit code 2 (as clap uses for usage errors).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// A request refused by a safety rule (coordinator, HPA, pending Helm
/// operation …): exit code 3. Nothing was changed.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A planning rule's verdict as the error the CLI maps to its exit code.
pub fn rejection(r: Rejection) -> anyhow::Error {
    match r {
        Rejection::Invalid(m) => InvalidInput(m).into(),
        Rejection::Refused(m) => Refused(m).into(),
    }
}

/// Exit code for an error chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<InvalidInput>().is_some() {
        2
    } else if err.downcast_ref::<Refused>().is_some() {
        3
    } else {
        1
    }
}

/// The whole chain on one line: `outer: inner: root`, without repeats
/// (kube errors often embed their source's text already).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}
