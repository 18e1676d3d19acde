//! Gathering what `status` shows: Helm releases, `Milvus` resources and
//! Argo CD-rendered instances, read at once.

use anyhow::Result;
use std::collections::BTreeSet;

use futures::future::{join_all, try_join_all};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster::Cluster;
use crate::cluster::lease;
use crate::cluster::live::LiveReads;
use crate::cluster::milvus::instance_view;
use crate::core::chart::Chart;
use crate::core::lock::PendingWork;
use crate::core::manifest;
use crate::core::milvus::drain::marked;
use crate::core::milvus::nodes::live_milvus_pods;
use crate::core::milvus::view::Budget;
use crate::core::operator::Instance;
use crate::core::status::{self, LiveState, ReleaseStatus, component_workloads};
use crate::engine::releases::{self, CurrentRelease};
use crate::engine::{operator, owner, rendered};
use crate::error::InvalidInput;

/// Helm releases and `Milvus` resources, read at once, in one list by
/// namespace and name (a Helm release first where both share a name).
pub async fn instances(cluster: &Cluster, name: Option<&str>, all_namespaces: bool) -> Result<Vec<Instance>> {
    instances_with(cluster, &LiveReads::new(cluster), name, all_namespaces).await
}

/// [`instances`] through the caller's reads (which then hold each
/// namespace's pods for [`add_milvus_views`]).
pub async fn instances_with(
    cluster: &Cluster,
    reads: &LiveReads<'_>,
    name: Option<&str>,
    all_namespaces: bool,
) -> Result<Vec<Instance>> {
    let scope = (!all_namespaces).then(|| cluster.namespace().to_string());
    // Both halves read each namespace's objects through one shared read.
    let (helm, operator) = tokio::join!(
        helm_statuses(cluster, reads, name, all_namespaces),
        operator::statuses(cluster, reads, scope.as_deref(), name)
    );
    let operator = operator?;
    let mut items: Vec<Instance> = helm?
        .into_iter()
        .map(|r| Instance::Helm(Box::new(r)))
        .chain(
            operator
                .items
                .into_iter()
                .map(|o| Instance::Operator(Box::new(o))),
        )
        .collect();
    items.sort_by(|a, b| a.key().cmp(&b.key()));
    if items.is_empty() {
        return Err(nothing_found(cluster, name, all_namespaces).await);
    }
    if let Some(warning) = operator.warning {
        eprintln!("warning: {warning}");
    }
    Ok(items)
}

/// What `status` shows, Milvus's own view included: [`instances`], then
/// [`add_milvus_views`] with the same reads.
pub async fn instances_with_milvus(
    cluster: &Cluster,
    name: Option<&str>,
    all_namespaces: bool,
) -> Result<Vec<Instance>> {
    let reads = LiveReads::new(cluster);
    let mut items = instances_with(cluster, &reads, name, all_namespaces).await?;
    add_milvus_views(cluster, &reads, &mut items).await;
    Ok(items)
}

/// Milvus's own view of each instance (docs/milvus.md), all instances at
/// once, each bounded by `view::Budget` (never an error: what cannot be
/// asked is said in the view). The pods come from `reads`, already read.
pub async fn add_milvus_views(cluster: &Cluster, reads: &LiveReads<'_>, items: &mut [Instance]) {
    let budget = Budget::default();
    let views = join_all(items.iter().map(|item| {
        let (namespace, name) = item.key();
        let ours: BTreeSet<String> = match item {
            Instance::Helm(r) => r.pods.iter().map(|p| p.row.name.clone()).collect(),
            Instance::Operator(o) => o.pods.iter().map(|p| p.row.name.clone()).collect(),
        };
        let (namespace, name) = (namespace.to_string(), name.to_string());
        let budget = &budget;
        async move {
            let live = reads.get(&namespace).await.ok()?;
            let is_ours = |m: &ObjectMeta| m.name.as_ref().is_some_and(|n| ours.contains(n));
            let pods = live_milvus_pods(&live.pods, is_ours, &live.metrics_ports);
            let marked = marked(live.pods.metadata().into_iter().filter(|m| is_ours(m)));
            // Which run is draining right now, only worth a read when a
            // pod carries a drain mark.
            let live_run = if marked.is_empty() {
                None
            } else {
                lease::seen(cluster, &namespace, &name)
                    .await
                    .ok()
                    .flatten()
                    // One read cannot tell a live holder from a dead one
                    // (its renewTime is by its own clock): a held Lease
                    // counts as a run at work.
                    .map(|s| s.holder)
            };
            Some(instance_view(cluster, &namespace, pods, marked, live_run, budget).await)
        }
    }))
    .await;
    for (item, view) in items.iter_mut().zip(views) {
        match item {
            Instance::Helm(r) => r.milvus = view,
            Instance::Operator(o) => o.milvus = view,
        }
    }
}

/// Why `status` has nothing to show, naming what is there instead.
async fn nothing_found(cluster: &Cluster, name: Option<&str>, all_namespaces: bool) -> anyhow::Error {
    let namespace = cluster.namespace();
    match (name, all_namespaces) {
        (Some(name), true) => InvalidInput(format!(
            "Helm release {name:?} not found in any namespace, nor a Milvus resource of that name; `kubectl milvus status -A` lists every Milvus instance you can see"
        ))
        .into(),
        (Some(name), false) => {
            let err = releases::not_found(cluster, namespace, name).await;
            match operator::names(cluster, namespace).await.as_slice() {
                [] => err,
                crs => InvalidInput(format!(
                    "{err}; Milvus resources (Milvus Operator) here: {}",
                    crs.join(", ")
                ))
                .into(),
            }
        }
        (None, _) => {
            let scope = if all_namespaces {
                "any namespace".to_string()
            } else {
                format!("namespace {namespace:?}")
            };
            InvalidInput(format!(
                "no Milvus Helm releases found in {scope} (and no Milvus Operator clusters); look elsewhere with -n NAMESPACE or -A (all namespaces)"
            ))
            .into()
        }
    }
}

/// The status of the selected Helm releases of the `milvus` chart; none
/// when there are none (a named non-Milvus release is an error).
async fn helm_statuses(
    cluster: &Cluster,
    reads: &LiveReads<'_>,
    release: Option<&str>,
    all_namespaces: bool,
) -> Result<Vec<ReleaseStatus>> {
    let namespace = cluster.namespace().to_string();
    let scope = (!all_namespaces).then_some(namespace.as_str());
    // Every release's records are the read the Operator half shares; one
    // release's are a narrower read of its own.
    let records = async {
        match release {
            Some(_) => releases::current_records(cluster, scope, release).await,
            None => reads.records(scope).await.map(|l| (*l).clone()),
        }
    };
    let (listing, prefetched) = if all_namespaces {
        (records.await?, None)
    } else {
        // Records and live objects are independent: fetch them together.
        let (records, live) = tokio::join!(records, reads.get(&namespace));
        (records?, Some(live))
    };
    if let Some(e) = release.and_then(|name| releases::unreadable_release(&listing, name)) {
        return Err(e);
    }
    releases::warn_unreadable(&listing);

    let grouped = releases::group(listing.records);
    // Instances Argo CD renders without a Helm record are shown too.
    let recorded = grouped.keys().cloned().collect();
    let scope = match &prefetched {
        Some(Ok(live)) => Some((namespace.as_str(), &**live)),
        _ => None,
    };
    let rendered = if all_namespaces || scope.is_some() {
        rendered::rendered_statuses(cluster, scope, &recorded, release).await
    } else {
        Vec::new()
    };
    if release.is_some() {
        for cur in grouped.values() {
            releases::check_milvus(cur)?;
        }
    }
    let milvus: Vec<CurrentRelease> = grouped
        .into_values()
        .filter(|c| c.record().is_some_and(|r| r.release.is_milvus()))
        .collect();
    if milvus.is_empty() {
        // With no Helm record, only the live objects could have shown an
        // instance: if they cannot be read, that is what to say, not
        // "nothing found".
        if let Some(Err(e)) = prefetched {
            return Err(e);
        }
        return Ok(rendered);
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
            try_join_all(
                namespaces
                    .iter()
                    .map(|ns| async move { Ok::<_, anyhow::Error>((ns.clone(), reads.get(ns).await?)) }),
            )
            .await?
        }
    };

    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    let mut apis = owner::Apis::default();
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
        if component_workloads(&Chart::of_record(&stored.release), &objects)
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
        if let (Some(shown), Some(record)) = (built.pending.as_mut(), cur.pending.as_ref()) {
            match releases::pending_work(cluster, record).await {
                PendingWork::Held { holder, renewed } => {
                    shown.held_by = Some(holder);
                    shown.held_renew_time = renewed.map(|t| t.to_string());
                }
                PendingWork::Unknown { why } => shown.lock_unknown = Some(why),
                PendingWork::Helm | PendingWork::Interrupted => {}
            }
        }
        built.owner = owner::release_owner(cluster, &mut apis, &stored.namespace, &objects, live).await;
        out.push(built);
    }
    out.extend(rendered);
    Ok(out)
}
