//! Server-side-apply ownership of a Deployment's `spec.replicas` (and of an
//! HPA's `spec.minReplicas`/`spec.maxReplicas`, which a bounds change writes).
//!
//! Helm 4 applies manifests server-side: its field manager owns every field
//! the chart renders, `spec.replicas` included. When `scale` changes the
//! replicas with an update, the API server moves that field's ownership to
//! us, and Helm's next server-side apply of another count (`helm upgrade
//! --set queryNode.replicas=5`, `helm rollback`) is refused with a conflict
//! with "kubectl-milvus". `scale` records its change as a Helm revision, so
//! it hands the field back to the manifest's applier: the ownership the
//! equivalent `helm upgrade` would have left.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::{Map, Value};

/// The `spec` fields a run writes on one kind of object, and the field only
/// the manifest's applier owns (how its entry is told from others').
pub struct Written {
    /// A field pointer the applier's entry owns: `/f:spec/f:template`.
    pub applier_owns: &'static str,
    /// The `f:spec` keys written: `f:replicas`.
    pub fields: &'static [&'static str],
}

/// A Deployment's `spec.replicas`.
pub const DEPLOYMENT_REPLICAS: Written = Written {
    applier_owns: "/f:spec/f:template",
    fields: &["f:replicas"],
};

/// An HPA's bounds.
pub const HPA_BOUNDS: Written = Written {
    applier_owns: "/f:spec/f:scaleTargetRef",
    fields: &["f:minReplicas", "f:maxReplicas"],
};

/// The managed fields with the `written` fields (`spec.replicas`) moved from
/// `our_manager`'s entries to the entry that applied the manifest; `None`
/// when there is nothing to hand back (we hold no claim, or no one applied
/// the object server-side, as client-side Helm does, whose patches never
/// conflict).
pub fn hand_back(
    entries: &[ManagedFieldsEntry],
    our_manager: &str,
    written: &Written,
) -> Option<Vec<ManagedFieldsEntry>> {
    let applier = manifest_applier(entries, our_manager, written.applier_owns)?;
    let mut handed = entries.to_vec();
    let mut held = Vec::new();
    for entry in handed
        .iter_mut()
        .filter(|e| e.manager.as_deref() == Some(our_manager))
    {
        if let Some(FieldsV1(Value::Object(fields))) = entry.fields_v1.as_mut() {
            held.extend(remove_spec_fields(fields, written.fields));
        }
    }
    if held.is_empty() {
        return None;
    }
    // The applier owns `written.applier_owns` under `f:spec`, so its `f:spec` exists.
    let spec = handed[applier]
        .fields_v1
        .as_mut()?
        .0
        .pointer_mut("/f:spec")?
        .as_object_mut()?;
    for field in held {
        spec.insert(field.to_string(), Value::Object(Map::new()));
    }
    // An entry of ours left owning nothing goes.
    handed.retain(|e| {
        let emptied = matches!(&e.fields_v1, Some(FieldsV1(Value::Object(o))) if o.is_empty());
        !(emptied && e.manager.as_deref() == Some(our_manager))
    });
    Some(handed)
}

/// The index of the one entry that applied the Deployment's manifest
/// server-side: an `Apply` of the main resource that owns the pod template.
/// Several such appliers: Helm's own manager (`helm`) if it is one of them.
fn manifest_applier(entries: &[ManagedFieldsEntry], our_manager: &str, owns: &str) -> Option<usize> {
    let appliers: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.operation.as_deref() == Some("Apply")
                && e.subresource.as_deref().unwrap_or("").is_empty()
                && e.manager.as_deref() != Some(our_manager)
                && e.fields_v1.as_ref().is_some_and(|f| f.0.pointer(owns).is_some())
        })
        .map(|(i, _)| i)
        .collect();
    match appliers.as_slice() {
        [one] => Some(*one),
        many => many
            .iter()
            .copied()
            .find(|&i| entries[i].manager.as_deref() == Some("helm")),
    }
}

/// Removes `fields` from `f:spec` (and a `f:spec` left empty); returns
/// those that were there.
fn remove_spec_fields(fields: &mut Map<String, Value>, which: &[&'static str]) -> Vec<&'static str> {
    let Some(Value::Object(spec)) = fields.get_mut("f:spec") else {
        return Vec::new();
    };
    let removed: Vec<&'static str> = which
        .iter()
        .copied()
        .filter(|f| spec.remove(*f).is_some())
        .collect();
    if spec.is_empty() {
        fields.remove("f:spec");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    /// Read from the test bed: the test chart installed by Helm 4 with
    /// `--server-side=true`, then `spec.replicas` patched by "kubectl-milvus".
    fn after_scale() -> Vec<ManagedFieldsEntry> {
        let path = format!(
            "{}/tests/fixtures/managed-fields/helm-ssa-install-then-patch-by-kubectl-milvus.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    fn replicas_handed_back(entries: &[ManagedFieldsEntry], ours: &str) -> Option<Vec<ManagedFieldsEntry>> {
        hand_back(entries, ours, &DEPLOYMENT_REPLICAS)
    }

    fn owners_of_replicas(entries: &[ManagedFieldsEntry]) -> Vec<String> {
        entries
            .iter()
            .filter(|e| {
                e.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
            })
            .map(|e| e.manager.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn replicas_go_back_to_helm_and_our_entry_disappears() {
        let before = after_scale();
        assert_eq!(owners_of_replicas(&before), ["kubectl-milvus"]);
        let after = replicas_handed_back(&before, "kubectl-milvus").expect("a change");
        assert_eq!(owners_of_replicas(&after), ["helm"]);
        let managers: Vec<_> = after
            .iter()
            .map(|e| e.manager.clone().unwrap_or_default())
            .collect();
        assert_eq!(managers, ["helm", "kube-controller-manager"]);
        // Everything else Helm owned is untouched.
        let helm_before = before[0].fields_v1.as_ref().unwrap().0.clone();
        let mut helm_after = after[0].fields_v1.as_ref().unwrap().0.clone();
        helm_after["f:spec"].as_object_mut().unwrap().remove("f:replicas");
        assert_eq!(helm_after, helm_before);
        assert_eq!(after[1], before[1]);
        // Handing back twice changes nothing more.
        assert_eq!(replicas_handed_back(&after, "kubectl-milvus"), None);
    }

    #[test]
    fn a_scale_subresource_entry_with_other_fields_keeps_them() {
        // Servers from v1.22 record writes through /scale as subresource "scale".
        let mut entries = after_scale();
        entries[2].subresource = Some("scale".into());
        entries[2].fields_v1 = Some(FieldsV1(json!({
            "f:metadata": {"f:annotations": {"f:example.com/note": {}}},
            "f:spec": {"f:replicas": {}}
        })));
        let after = replicas_handed_back(&entries, "kubectl-milvus").expect("a change");
        assert_eq!(owners_of_replicas(&after), ["helm"]);
        assert_eq!(
            after[2].fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:annotations": {"f:example.com/note": {}}}})
        );
    }

    #[test]
    fn client_side_helm_or_no_claim_of_ours_changes_nothing() {
        // Client-side Helm (Helm 3, or --server-side=false) writes with Update.
        let mut client_side = after_scale();
        client_side[0].operation = Some("Update".into());
        assert_eq!(replicas_handed_back(&client_side, "kubectl-milvus"), None);
        // Someone else (kubectl scale) holds the field: not ours to move.
        let mut theirs = after_scale();
        theirs[2].manager = Some("kubectl".into());
        assert_eq!(replicas_handed_back(&theirs, "kubectl-milvus"), None);
        assert_eq!(replicas_handed_back(&[], "kubectl-milvus"), None);
    }

    #[test]
    fn hpa_bounds_go_back_to_the_applier() {
        let entries: Vec<ManagedFieldsEntry> = serde_json::from_value(json!([
            {"manager": "helm", "operation": "Apply", "fieldsV1": {"f:spec": {
                "f:scaleTargetRef": {}, "f:minReplicas": {}, "f:maxReplicas": {}, "f:metrics": {}}}},
            {"manager": "kubectl-milvus", "operation": "Update", "fieldsV1": {"f:spec": {
                "f:minReplicas": {}, "f:maxReplicas": {}}}}
        ]))
        .expect("entries");
        // The apply lost the fields to our update; they go back, our entry goes.
        let mut lost = entries.clone();
        let helm_spec = lost[0].fields_v1.as_mut().unwrap().0["f:spec"]
            .as_object_mut()
            .unwrap();
        helm_spec.remove("f:minReplicas");
        helm_spec.remove("f:maxReplicas");
        let after = hand_back(&lost, "kubectl-milvus", &HPA_BOUNDS).expect("a change");
        assert_eq!(after, entries[..1]);
        // A Deployment's rule finds no applier on an HPA: nothing moves.
        assert_eq!(hand_back(&lost, "kubectl-milvus", &DEPLOYMENT_REPLICAS), None);
    }

    #[test]
    fn two_appliers_prefer_helm_else_none() {
        let mut entries = after_scale();
        let mut argo = entries[0].clone();
        argo.manager = Some("argocd-controller".into());
        entries.insert(0, argo.clone());
        let after = replicas_handed_back(&entries, "kubectl-milvus").expect("a change");
        assert_eq!(owners_of_replicas(&after), ["helm"]);

        let mut no_helm = after_scale();
        no_helm[0].manager = Some("flux".into());
        no_helm.insert(0, argo);
        assert_eq!(replicas_handed_back(&no_helm, "kubectl-milvus"), None);
    }
}
