//! Which shape a name given to `plan`/`scale` is.

use anyhow::Result;

use crate::cli::ManagerFlag;
use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::cluster::operator as api;
use crate::core::operator::MilvusResource;
use crate::engine::releases;
use crate::error::InvalidInput;

/// What a name given to `plan`/`scale` means.
pub enum Resolved {
    Helm,
    Operator(Box<MilvusResource>),
}

/// The rule: a `Milvus` resource of that name in the namespace is the
/// instance, unless a Helm release of the `milvus` chart has the name too;
/// then `--managed-by` must say which (both would own the same Deployment
/// names, so one of them is broken, and guessing could scale the wrong one).
/// Without the CRD, or without the right to read it, the name is Helm's
/// (quietly: whatever the Helm path answers is the one line to print).
pub async fn resolve(cluster: &Cluster, name: &str, flag: Option<ManagerFlag>) -> Result<Resolved> {
    let namespace = cluster.namespace().to_string();
    if flag == Some(ManagerFlag::Helm) {
        return Ok(Resolved::Helm);
    }
    let cr = match api::get(cluster, &namespace, name).await {
        Ok(cr) => cr,
        Err(ApiError::Forbidden { .. }) if flag.is_none() => None,
        Err(e) => return Err(e.into()),
    };
    match (cr, flag) {
        (Some(cr), Some(ManagerFlag::MilvusOperator)) => Ok(Resolved::Operator(Box::new(cr))),
        (None, Some(ManagerFlag::MilvusOperator)) => Err(InvalidInput(format!(
            "no Milvus resource {name:?} in namespace {namespace:?} (kubectl get milvuses -n {namespace})"
        ))
        .into()),
        (None, _) => Ok(Resolved::Helm),
        (Some(cr), _) => {
            let records = releases::current_records(cluster, Some(&namespace), Some(name)).await?;
            if records.records.iter().any(|r| r.release.is_milvus()) {
                return Err(InvalidInput(format!(
                    "{name:?} in namespace {namespace:?} is both a Helm release of the milvus chart and a Milvus resource of the Milvus Operator; say which with --managed-by helm or --managed-by milvus-operator"
                ))
                .into());
            }
            Ok(Resolved::Operator(Box::new(cr)))
        }
    }
}
