//! Noticing that anything `status` shows has changed, for `status --watch`:
//! metadata-only watches (no object bodies are held or sent) on what a
//! status is made of. They say *that* something changed; the redraw reads
//! the state itself, consistently, as `status` does.

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};

use super::Cluster;
use super::api::{ApiError, forbidden_watch_error};
use super::fields::resource_name;
use super::helm_records::{self as helm, Revisions};

/// One watch's news: something changed, or a refusal retrying cannot mend.
pub type Change = Result<(), ApiError>;

/// Every change to the Deployments, pods and HPAs of `namespace`, to the
/// Helm records (of `release`, or all), and with `milvuses` to the `Milvus`
/// resources. Watch errors other than a refusal are retried with backoff.
pub fn changes(
    cluster: &Cluster,
    namespace: &str,
    release: Option<&str>,
    milvuses: bool,
) -> impl Stream<Item = Change> + Send + use<> {
    let client = cluster.client();
    let records = watcher::Config::default().labels(&helm::selector(release, Revisions::All));
    let mut all: Vec<BoxStream<'static, Change>> = vec![
        watch::<Deployment>(
            Api::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            namespace,
        ),
        watch::<Pod>(
            Api::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            namespace,
        ),
        watch::<HorizontalPodAutoscaler>(
            Api::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            namespace,
        ),
        watch::<Secret>(
            Api::namespaced(client.clone(), namespace),
            records.clone(),
            namespace,
        ),
        watch::<ConfigMap>(Api::namespaced(client.clone(), namespace), records, namespace),
    ];
    if milvuses {
        let resource = super::operator::resource();
        let api = Api::<PartialObjectMeta<DynamicObject>>::namespaced_with(client, namespace, &resource);
        all.push(triggers(
            api,
            watcher::Config::default(),
            crate::core::operator::RESOURCE,
            namespace,
        ));
    }
    stream::select_all(all)
}

fn watch<K>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
    namespace: &str,
) -> BoxStream<'static, Change>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Clone + Send + Sync,
{
    triggers(api, config, &resource_name::<K>(), namespace)
}

/// A metadata watch as a stream of changes: every object applied or
/// deleted, and the end of every (re)listing, which may hide changes the
/// watch missed.
fn triggers<K>(
    api: Api<K>,
    config: watcher::Config,
    resource: &str,
    namespace: &str,
) -> BoxStream<'static, Change>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Clone + Send + Sync,
{
    let (resource, namespace) = (resource.to_string(), namespace.to_string());
    watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let change = match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                    Some(Ok(()))
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
                Err(e) => forbidden_watch_error(&e, &resource, &namespace).map(Err),
            };
            futures::future::ready(change)
        })
        .boxed()
}
