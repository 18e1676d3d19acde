//! The effect of the operator's mutating webhook (`Milvus.Default()` in
//! `apis/milvus.io/v1beta1/milvus_webhook.go`), which the bed does not run:
//! the seeding API applies these defaults to a CR before creating it, as
//! the real API server would have after calling the webhook. The stand-in
//! itself tolerates CRs without them (`topology` reads missing fields the
//! way the operator's getters do).
//!
//! Not reproduced: the merge of each dependency chart's full default values
//! into `spec.dependencies.*.inCluster.values` (the annotation saying it was
//! done is set), and validation.

use serde_json::{Map, Value, json};

use super::topology;

/// `milvus.io/operator-version` value the bed's webhook stamps (the operator
/// release the fixtures come from).
pub const OPERATOR_VERSION: &str = "1.3.8";
/// Default `spec.components.image` the bed uses (the real default is
/// `config.DefaultMilvusImage` of the operator build; the chart's
/// appVersion 2.6.15 is used here).
pub const DEFAULT_IMAGE: &str = "milvusdb/milvus:v2.6.15";

/// `v` as an object (replaced by `{}` when it is anything else).
fn as_map(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("replaced by an object above"),
    }
}

/// `m[key]` as an object (created, or replaced when not an object).
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    as_map(m.entry(key.to_string()).or_insert(Value::Null))
}

fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    child(as_map(v), key)
}

fn default_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if m.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
        m.insert(key.into(), json!(value));
    }
}

fn ensure_component(com: &mut Map<String, Value>, key: &str) {
    child(com, key);
}

fn default_replicas(com: &mut Map<String, Value>, key: &str, n: i64) {
    if let Some(c) = com.get_mut(key)
        && let Some(c) = c.as_object_mut()
        && c.get("replicas").is_none_or(Value::is_null)
    {
        c.insert("replicas".into(), json!(n));
    }
}

/// Apply the webhook's defaults to `cr` (a `Milvus` object) for namespace `ns`.
pub fn apply_defaults(cr: &mut Value, ns: &str) {
    let name = cr
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // DefaultMeta
    let meta = obj(cr, "metadata");
    meta.insert("namespace".into(), json!(ns));
    child(meta, "labels")
        .entry("milvus.io/operator-version")
        .or_insert_with(|| json!(OPERATOR_VERSION));
    let ann = child(meta, "annotations");
    ann.insert("milvus.io/pod-service-label-added".into(), json!("true"));
    ann.insert("milvus.io/dependency-values-merged".into(), json!("true"));

    // DefaultMode
    let spec = obj(cr, "spec");
    default_str(spec, "mode", "standalone");
    let cluster = spec.get("mode").and_then(Value::as_str) == Some("cluster");

    // DefaultComponents
    let mut specv = Value::Object(spec.clone());
    let com = obj(&mut specv, "components");
    default_str(com, "image", DEFAULT_IMAGE);
    default_str(com, "imageUpdateMode", "rollingUpgrade");
    if com.get("rollingMode").and_then(Value::as_i64).unwrap_or(0) == 0 {
        com.insert("rollingMode".into(), json!(2));
    }
    if com.get("updateConfigMapOnly").is_none() {
        com.insert("updateConfigMapOnly".into(), json!(true));
    }
    ensure_component(com, "standalone");
    let probe =
        json!({"spec": {"mode": if cluster {"cluster"} else {"standalone"}, "components": com.clone()}});
    let new_topology = topology::version_at_least_2_6(&probe);
    if cluster {
        ensure_component(com, "proxy");
        let coords = ["rootCoord", "dataCoord", "indexCoord", "queryCoord"];
        let has_mix = com.get("mixCoord").is_some_and(|v| !v.is_null());
        if !has_mix {
            if coords.iter().all(|c| com.get(*c).is_none_or(Value::is_null)) {
                ensure_component(com, "mixCoord");
            } else {
                for c in coords {
                    ensure_component(com, c);
                }
            }
        }
        ensure_component(com, "dataNode");
        ensure_component(com, "queryNode");
        if new_topology {
            com.insert("streamingMode".into(), json!(true));
            ensure_component(com, "streamingNode");
        } else {
            ensure_component(com, "indexNode");
        }
        default_replicas(com, "standalone", 0);
        let probe = json!({"spec": {"mode": "cluster", "components": com.clone()}});
        if topology::uses_streaming_node(&probe) {
            ensure_component(com, "streamingNode");
            default_replicas(com, "streamingNode", 1);
        }
        for c in [
            "mixCoord",
            "rootCoord",
            "dataCoord",
            "indexCoord",
            "queryCoord",
            "proxy",
            "dataNode",
            "indexNode",
            "queryNode",
        ] {
            default_replicas(com, c, 1);
        }
    } else {
        default_replicas(com, "standalone", 1);
    }
    if com.get("cdc").is_some_and(Value::is_object) {
        default_replicas(com, "cdc", 1);
    }

    // DefaultDependencies
    let dep = obj(&mut specv, "dependencies");
    default_etcd(dep, &name, ns, cluster);
    default_msg_stream(dep, &name, ns, cluster, new_topology);
    default_storage(dep, &name, ns, cluster);

    // DefaultConf
    let msg = dep
        .get("msgStreamType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let com = obj(&mut specv, "components");
    if com.get("enableRollingUpdate").and_then(Value::as_bool).is_none() {
        com.insert("enableRollingUpdate".into(), json!(true));
    }
    if !cluster && matches!(msg.as_str(), "rocksmq" | "natsmq") {
        com.insert("enableRollingUpdate".into(), json!(false));
    }
    let rolling = com.get("enableRollingUpdate").and_then(Value::as_bool) == Some(true);
    let conf = obj(&mut specv, "config");
    if rolling {
        for c in ["rootCoord", "dataCoord", "indexCoord", "queryCoord"] {
            child(conf, c).insert("enableActiveStandby".into(), json!(true));
        }
    }
    cr["spec"] = specv;
}

fn in_cluster(dep: &mut Value) -> &mut Map<String, Value> {
    let ic = obj(dep, "inCluster");
    default_str(ic, "deletionPolicy", "Retain");
    if !ic.get("values").is_some_and(Value::is_object) {
        ic.insert("values".into(), json!({}));
    }
    ic
}

fn default_etcd(deps: &mut Map<String, Value>, name: &str, ns: &str, cluster: bool) {
    let etcd = deps.entry("etcd").or_insert_with(|| json!({}));
    as_map(etcd);
    if etcd.get("external").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let ic = in_cluster(etcd);
    default_str(ic, "chartVersion", "etcd-v8");
    let values = ic.get_mut("values").and_then(Value::as_object_mut);
    let replicas = match values {
        Some(v) => match v.get("replicaCount").and_then(Value::as_i64) {
            Some(n) => n,
            None => {
                let n = if cluster { 3 } else { 1 };
                v.insert("replicaCount".into(), json!(n));
                n
            }
        },
        None => 1,
    };
    if etcd
        .get("endpoints")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let eps: Vec<String> = (0..replicas)
            .map(|i| format!("{name}-etcd-{i}.{name}-etcd-headless.{ns}:2379"))
            .collect();
        etcd["endpoints"] = json!(eps);
    }
}

fn default_msg_stream(
    deps: &mut Map<String, Value>,
    name: &str,
    ns: &str,
    cluster: bool,
    new_topology: bool,
) {
    let current = deps.get("msgStreamType").and_then(Value::as_str).unwrap_or("");
    if current.is_empty() {
        let t = match (cluster, new_topology) {
            (true, _) => "pulsar",
            (false, true) => "woodpecker",
            (false, false) => "rocksmq",
        };
        deps.insert("msgStreamType".into(), json!(t));
    }
    match deps.get("msgStreamType").and_then(Value::as_str) {
        Some("pulsar") => {
            let p = deps.entry("pulsar").or_insert_with(|| json!({}));
            as_map(p);
            if p.get("external").and_then(Value::as_bool) != Some(true) {
                p["endpoint"] = json!(format!("{name}-pulsar-proxy.{ns}:6650"));
                default_str(in_cluster(p), "chartVersion", "pulsar-v3");
            }
        }
        Some("kafka") => {
            let k = deps.entry("kafka").or_insert_with(|| json!({}));
            as_map(k);
            if k.get("external").and_then(Value::as_bool) != Some(true) {
                k["brokerList"] = json!([format!("{name}-kafka.{ns}:9092")]);
                in_cluster(k);
            }
        }
        _ => {}
    }
}

fn default_storage(deps: &mut Map<String, Value>, name: &str, ns: &str, cluster: bool) {
    let s = deps.entry("storage").or_insert_with(|| json!({}));
    as_map(s);
    if s.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        s["type"] = json!("MinIO");
    }
    if s.get("external").and_then(Value::as_bool) == Some(true) {
        return;
    }
    s["endpoint"] = json!(format!("{name}-minio.{ns}:9000"));
    let ic = in_cluster(s);
    if !cluster && let Some(v) = ic.get_mut("values").and_then(Value::as_object_mut) {
        v.entry("mode").or_insert_with(|| json!("standalone"));
    }
    s["secretRef"] = json!(format!("{name}-minio"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_defaults_like_the_webhook_test() {
        let mut cr = json!({"metadata": {"name": "mc"}, "spec": {"mode": "cluster"}});
        apply_defaults(&mut cr, "default");
        let com = &cr["spec"]["components"];
        for c in ["proxy", "mixCoord", "dataNode", "streamingNode", "queryNode"] {
            assert_eq!(com[c]["replicas"], 1, "{c}");
        }
        assert_eq!(com["standalone"]["replicas"], 0);
        assert!(com.get("indexNode").is_none());
        assert_eq!(com["streamingMode"], true);
        assert_eq!(com["rollingMode"], 2);
        let dep = &cr["spec"]["dependencies"];
        assert_eq!(dep["msgStreamType"], "pulsar");
        assert_eq!(
            dep["etcd"]["endpoints"][2],
            "mc-etcd-2.mc-etcd-headless.default:2379"
        );
        assert_eq!(dep["pulsar"]["inCluster"]["chartVersion"], "pulsar-v3");
        assert_eq!(dep["storage"]["secretRef"], "mc-minio");
        assert_eq!(
            cr["metadata"]["labels"]["milvus.io/operator-version"],
            OPERATOR_VERSION
        );
    }

    #[test]
    fn standalone_and_old_image_defaults() {
        let mut cr = json!({"metadata": {"name": "mc"}});
        apply_defaults(&mut cr, "ns");
        assert_eq!(cr["spec"]["mode"], "standalone");
        assert_eq!(cr["spec"]["components"]["standalone"]["replicas"], 1);
        assert_eq!(cr["spec"]["dependencies"]["msgStreamType"], "woodpecker");
        assert_eq!(
            cr["spec"]["dependencies"]["etcd"]["inCluster"]["values"]["replicaCount"],
            1
        );
        assert_eq!(
            cr["spec"]["dependencies"]["storage"]["inCluster"]["values"]["mode"],
            "standalone"
        );
        let mut old = json!({"metadata": {"name": "mc"}, "spec": {"mode": "cluster",
            "components": {"image": "milvusdb/milvus:v2.5.11", "enableRollingUpdate": false}}});
        apply_defaults(&mut old, "ns");
        assert_eq!(old["spec"]["components"]["indexNode"]["replicas"], 1);
        assert!(old["spec"]["components"].get("streamingNode").is_none());
        assert_eq!(old["spec"]["components"]["enableRollingUpdate"], false);
    }
}
