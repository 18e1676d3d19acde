//! `kubectl milvus status [RELEASE] [-A] [-o table|wide|json|yaml]`.
//! Reads only: one concurrent round of list calls per namespace.

use anyhow::{Result, bail};
use futures::future::try_join_all;
use kube::api::ListParams;

use crate::cli::{StatusArgs, StatusOutput};
use crate::cluster::Cluster;
use crate::commands::releases::{self, CurrentRelease};
use crate::core::lock::PendingWork;
use crate::core::manifest;
use crate::core::status::{self, LiveState, ReleaseStatus, component_workloads};
use crate::error::InvalidInput;
use crate::render;

pub async fn run(cluster: &Cluster, args: &StatusArgs) -> Result<String> {
    let statuses = collect(cluster, args.release.as_deref(), args.all_namespaces).await?;
    let doc = render::document::Document {
        api_version: render::document::API_VERSION,
        kind: "MilvusStatusList",
        items: &statuses,
    };
    match args.output {
        StatusOutput::Table => Ok(render::status::table(&statuses, false, args.all_namespaces)),
        StatusOutput::Wide => Ok(render::status::table(&statuses, true, args.all_namespaces)),
        StatusOutput::Json => render::document::json(&doc),
        StatusOutput::Yaml => render::document::yaml(&doc),
    }
}

/// Gathers the status of the selected releases.
pub async fn collect(
    cluster: &Cluster,
    release: Option<&str>,
    all_namespaces: bool,
) -> Result<Vec<ReleaseStatus>> {
    let namespace = cluster.namespace().to_string();
    let (listing, prefetched) = if all_namespaces {
        (releases::current_records(cluster, None, release).await?, None)
    } else {
        // Records and live objects are independent: fetch them together.
        let (records, live) = tokio::join!(
            releases::current_records(cluster, Some(&namespace), release),
            fetch_live(cluster, &namespace)
        );
        (records?, Some(live))
    };
    if let Some(e) = release.and_then(|name| releases::unreadable_release(&listing, name)) {
        return Err(e);
    }
    releases::warn_unreadable(&listing);

    let grouped = releases::group(listing.records);
    if let Some(name) = release {
        if grouped.is_empty() {
            if all_namespaces {
                bail!(InvalidInput(format!(
                    "Helm release {name:?} not found in any namespace"
                )));
            }
            return Err(releases::not_found(cluster, &namespace, name).await);
        }
        for cur in grouped.values() {
            releases::check_milvus(cur)?;
        }
    }
    let milvus: Vec<CurrentRelease> = grouped
        .into_values()
        .filter(|c| c.record().is_some_and(|r| r.release.is_milvus()))
        .collect();
    if milvus.is_empty() {
        let scope = if all_namespaces {
            "any namespace".to_string()
        } else {
            format!("namespace {namespace:?}")
        };
        bail!(InvalidInput(format!(
            "no Milvus Helm releases found in {scope}; look elsewhere with -n NAMESPACE or -A (all namespaces)"
        )));
    }

    // One round of live lists per namespace that holds a release.
    let mut namespaces: Vec<String> = milvus
        .iter()
        .filter_map(|c| c.record().map(|r| r.namespace.clone()))
        .collect();
    namespaces.dedup();
    let live_sets = match prefetched {
        Some(live) => vec![(namespace.clone(), live?)],
        None => {
            try_join_all(namespaces.iter().map(|ns| async move {
                Ok::<_, anyhow::Error>((ns.clone(), fetch_live(cluster, ns).await?))
            }))
            .await?
        }
    };

    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for cur in &milvus {
        let Some(stored) = cur.record() else { continue };
        let Some((_, live)) = live_sets.iter().find(|(ns, _)| ns == &stored.namespace) else {
            continue;
        };
        let objects = manifest::parse(stored.release.manifest()).map_err(|e| {
            e.context(format!(
                "Helm release record {} {}/{} holds an unreadable manifest",
                stored.driver.as_str(),
                stored.namespace,
                stored.object_name
            ))
        })?;
        let mut workloads = live.workloads.clone();
        // Milvus StatefulSets (external woodpecker) are rare: list them only then.
        if component_workloads(&stored.release, &objects)
            .iter()
            .any(|c| c.object.kind == "StatefulSet")
        {
            workloads.extend(cluster.list_statefulsets(&stored.namespace).await?);
        }
        let state = LiveState {
            workloads: &workloads,
            hpas: &live.hpas,
            pods: &live.pods,
        };
        let pending = cur
            .pending
            .as_ref()
            .filter(|_| cur.deployed.is_some())
            .map(|p| &p.release);
        let mut built = status::build(
            &stored.release,
            &stored.namespace,
            stored.driver.as_str(),
            pending,
            &objects,
            &state,
            now,
        );
        if let (Some(shown), Some(record)) = (built.pending.as_mut(), cur.pending.as_ref())
            && let PendingWork::Scaling { holder } = releases::pending_work(cluster, record).await
        {
            shown.held_by = Some(holder);
        }
        out.push(built);
    }
    Ok(out)
}

/// The live objects of one namespace.
pub struct Live {
    pub workloads: Vec<status::LiveWorkload>,
    /// Each Deployment's pod `terminationGracePeriodSeconds`, where set.
    pub grace: std::collections::BTreeMap<String, i64>,
    pub hpas: Vec<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>,
    pub pods: Vec<k8s_openapi::api::core::v1::Pod>,
}

/// Deployments, HPAs and pods of a namespace, concurrently. Consistent
/// reads (no `resourceVersion=0`): what `kubectl get` shows at this moment,
/// never an older state a lagging watch cache still holds. (Servers from
/// v1.31 serve consistent lists from their cache anyway.)
pub async fn fetch_live(cluster: &Cluster, namespace: &str) -> Result<Live> {
    let params = ListParams::default();
    let params = &params;
    let (deployments, hpas, pods) = tokio::try_join!(
        cluster.list::<k8s_openapi::api::apps::v1::Deployment>(namespace, params),
        cluster.list_hpas(namespace, params),
        cluster.list_pods(namespace, params)
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
    Ok(Live {
        workloads: deployments
            .iter()
            .map(crate::cluster::api::live_deployment)
            .collect(),
        grace,
        hpas,
        pods,
    })
}
