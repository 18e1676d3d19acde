//! The live objects of one namespace, read once and shared by every shape
//! (Helm releases, `Milvus` resources, Argo-rendered instances).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;

use super::Cluster;
use super::api::{ApiError, Op, live_deployment};
use super::gitops::deployment_object;
use super::helm_records::{self, Listing, Revisions};
use super::operator::operator_deployment;
use crate::core::gitops::LiveObject;
use crate::core::manifest::MILVUS_CONFIG_FILES;
use crate::core::milvus::nodes::named_metrics_port;
use crate::core::operator::{MANAGED_BY_LABEL, MANAGER, OperatorDeployment};
use crate::core::pods::LivePods;
use crate::core::status::LiveWorkload;

/// The live objects of one namespace.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub workloads: Vec<LiveWorkload>,
    /// The Deployments' identity and metadata (GitOps markers).
    pub objects: Vec<LiveObject>,
    /// The Milvus Operator's Deployments (by its `managed-by` label), as
    /// its lookups need them: from the same list, not a second one.
    pub operator: Vec<OperatorDeployment>,
    /// Each Deployment's pod `terminationGracePeriodSeconds`, where set.
    pub grace: BTreeMap<String, i64>,
    /// Each Deployment's pod-template container port named `metrics`,
    /// where one is: Milvus's view asks printed pods there (a printed row
    /// carries the pod's IP, not its ports).
    pub metrics_ports: BTreeMap<String, u16>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub pods: LivePods,
}

/// How a read wants the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodRead {
    /// As the server prints them for `kubectl get pods`, with their
    /// metadata: all `status` shows, and a fraction of the bytes.
    Printed,
    /// Whole objects: what plan and scale rank for scale-in.
    Objects,
}

/// Deployments, HPAs and pods of a namespace, concurrently. Consistent
/// reads (no `resourceVersion=0`): what `kubectl get` shows at this moment,
/// never an older state a lagging watch cache still holds. (Servers from
/// v1.31 serve consistent lists from their cache anyway.)
pub async fn fetch_live(cluster: &Cluster, namespace: &str) -> Result<Live> {
    fetch_live_as(cluster, namespace, PodRead::Objects).await
}

/// [`fetch_live`] with the pods in the form `read` asks for.
pub async fn fetch_live_as(cluster: &Cluster, namespace: &str, read: PodRead) -> Result<Live> {
    let params = ListParams::default();
    let params = &params;
    let pods = async {
        match read {
            PodRead::Printed => cluster
                .list_printed_pods(namespace, params)
                .await
                .map(LivePods::Printed),
            PodRead::Objects => cluster.list_pods(namespace, params).await.map(LivePods::Objects),
        }
    };
    let (deployments, hpas, pods) = tokio::try_join!(
        cluster.list::<Deployment>(namespace, params),
        cluster.list_hpas(namespace, params),
        pods
    )?;
    let grace = deployments
        .iter()
        .filter_map(|d| {
            let seconds = d
                .spec
                .as_ref()?
                .template
                .spec
                .as_ref()?
                .termination_grace_period_seconds?;
            Some((d.metadata.name.clone()?, seconds))
        })
        .collect();
    let operator = deployments
        .iter()
        .filter(|d| {
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .is_some_and(|m| m == MANAGER)
        })
        .map(operator_deployment)
        .collect();
    let metrics_ports = deployments
        .iter()
        .filter_map(|d| {
            let port = named_metrics_port(d.spec.as_ref()?.template.spec.as_ref()?)?;
            Some((d.metadata.name.clone()?, port))
        })
        .collect();
    Ok(Live {
        workloads: deployments.iter().map(live_deployment).collect(),
        objects: deployments.iter().map(deployment_object).collect(),
        operator,
        grace,
        metrics_ports,
        hpas,
        pods,
    })
}

/// The Milvus configuration files (only those keys: the ConfigMap holds
/// credentials next to them) of a live ConfigMap; none when it is not
/// there.
pub async fn milvus_config(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), namespace);
    let op = Op {
        verb: "get",
        resource: "configmaps",
        namespace: Some(namespace),
        name: Some(name),
    };
    match cluster.call(op, api.get(name)).await {
        Ok(cm) => Ok(Some(
            cm.data
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| MILVUS_CONFIG_FILES.contains(&k.as_str()))
                .collect(),
        )),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The live objects of each namespace and the current Helm records of a
/// scope, each read once for a whole command: the Helm, Operator and
/// Argo-rendered halves of `status` all ask here, and whoever asks first
/// starts the read the others then share. Every read of one `LiveReads`
/// takes the pods as printed ([`PodRead::Printed`]): `status`, `status -w`
/// and a run's closing table show them.
pub struct LiveReads<'a> {
    cluster: &'a Cluster,
    live: ReadOnce<'a, String, Live>,
    records: ReadOnce<'a, Option<String>, Listing>,
}

impl<'a> LiveReads<'a> {
    pub fn new(cluster: &'a Cluster) -> Self {
        LiveReads {
            cluster,
            live: ReadOnce::default(),
            records: ReadOnce::default(),
        }
    }

    /// The live objects of `namespace`, read at the first ask.
    pub async fn get(&self, namespace: &str) -> Result<Arc<Live>> {
        let (cluster, ns) = (self.cluster, namespace.to_string());
        self.live
            .get(
                namespace.to_string(),
                async move { fetch_live_as(cluster, &ns, PodRead::Printed).await }.boxed(),
            )
            .await
    }

    /// The current records of every release in `namespace` (`None`:
    /// everywhere), read at the first ask.
    pub async fn records(&self, namespace: Option<&str>) -> Result<Arc<Listing>> {
        let (cluster, ns) = (self.cluster, namespace.map(str::to_string));
        let read = async move {
            Ok(helm_records::list_both(cluster, ns.as_deref(), None, Revisions::Current).await?)
        };
        self.records
            .get(namespace.map(str::to_string), read.boxed())
            .await
    }
}

type SharedRead<'a, T> = Shared<BoxFuture<'a, Result<Arc<T>, Arc<anyhow::Error>>>>;

/// One read per key, shared by whoever asks.
struct ReadOnce<'a, K, T> {
    reads: Mutex<HashMap<K, SharedRead<'a, T>>>,
}

impl<K, T> Default for ReadOnce<'_, K, T> {
    fn default() -> Self {
        ReadOnce {
            reads: Mutex::new(HashMap::new()),
        }
    }
}

impl<'a, K: std::hash::Hash + Eq, T: Send + Sync + 'a> ReadOnce<'a, K, T> {
    async fn get(&self, key: K, read: BoxFuture<'a, Result<T>>) -> Result<Arc<T>> {
        let shared = {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            reads
                .entry(key)
                .or_insert_with(|| read.map(|r| r.map(Arc::new).map_err(Arc::new)).boxed().shared())
                .clone()
        };
        shared
            .await
            .map_err(|e| anyhow::anyhow!("{}", crate::error::one_line(&e)))
    }
}

/// Every pod of a namespace as the server prints them for `kubectl get
/// pods` (its Table view, with each pod's metadata), one consistent list:
/// the closing table of a scale run.
pub async fn printed_pods(cluster: &Cluster, namespace: &str) -> Result<LivePods> {
    let pods = cluster
        .list_printed_pods(namespace, &ListParams::default())
        .await?;
    Ok(LivePods::Printed(pods))
}
