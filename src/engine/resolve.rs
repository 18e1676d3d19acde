//! Which shape a name given to `plan`/`scale` is: the one place that
//! decides, and the one type that carries the answer through the run.

use anyhow::Result;

use crate::cli::ManagerFlag;
use crate::cluster::Cluster;
use crate::cluster::api::ApiError;
use crate::cluster::live::fetch_live;
use crate::cluster::operator as api;
use crate::core::operator::MilvusResource;
use crate::engine::releases;
use crate::engine::rendered::{self, RenderedInstance};
use crate::error::InvalidInput;

/// The three shapes a Milvus instance reaches the plugin in.
pub enum Instance {
    /// A Helm release of that name (its records are read by the run itself,
    /// under the lock; a release that is not there is said by that path).
    Helm(String),
    /// A Milvus Operator `Milvus` resource, as read.
    Milvus(Box<MilvusResource>),
    /// The chart rendered by Argo CD: no Helm record, only live objects.
    Rendered(Box<RenderedInstance>),
}

/// The rule: a `Milvus` resource of that name in the namespace is the
/// instance, unless a Helm release of the `milvus` chart has the name too;
/// then `--managed-by` must say which (both would own the same Deployment
/// names, so one of them is broken, and guessing could scale the wrong one).
/// Without the CRD, or without the right to read it, the name is Helm's
/// (quietly: whatever the Helm path answers is the one line to print). A
/// name with no Helm record may be an Argo CD-rendered instance.
pub async fn resolve(cluster: &Cluster, name: &str, flag: Option<ManagerFlag>) -> Result<Instance> {
    let namespace = cluster.namespace().to_string();
    let cr = match flag {
        Some(ManagerFlag::Helm) => None,
        _ => match api::get(cluster, &namespace, name).await {
            Ok(cr) => cr,
            Err(ApiError::Forbidden { .. }) if flag.is_none() => None,
            Err(e) => return Err(e.into()),
        },
    };
    match (cr, flag) {
        (Some(cr), Some(ManagerFlag::MilvusOperator)) => Ok(Instance::Milvus(Box::new(cr))),
        (None, Some(ManagerFlag::MilvusOperator)) => Err(InvalidInput(format!(
            "no Milvus resource {name:?} in namespace {namespace:?} (kubectl get milvuses -n {namespace})"
        ))
        .into()),
        (None, _) => helm_or_rendered(cluster, &namespace, name).await,
        (Some(cr), _) => {
            let records = releases::current_records(cluster, Some(&namespace), Some(name)).await?;
            if records.records.iter().any(|r| r.release.is_milvus()) {
                return Err(InvalidInput(format!(
                    "{name:?} in namespace {namespace:?} is both a Helm release of the milvus chart and a Milvus resource of the Milvus Operator; say which with --managed-by helm or --managed-by milvus-operator"
                ))
                .into());
            }
            Ok(Instance::Milvus(Box::new(cr)))
        }
    }
}

/// A name with Helm records is a Helm release; without, an Argo
/// CD-rendered instance of that name, if there is one. Whatever cannot be
/// read here is left to the Helm path to say.
async fn helm_or_rendered(cluster: &Cluster, namespace: &str, name: &str) -> Result<Instance> {
    let helm = || Ok(Instance::Helm(name.to_string()));
    if let Ok(listing) = releases::current_records(cluster, Some(namespace), Some(name)).await
        && (!listing.records.is_empty() || !listing.unreadable.is_empty())
    {
        return helm();
    }
    let Ok(live) = fetch_live(cluster, namespace).await else {
        return helm();
    };
    match rendered::named(cluster, namespace, name, live).await {
        Some(found) => Ok(Instance::Rendered(Box::new(found))),
        None => helm(),
    }
}
