//! Helm values: coalescing chart defaults with user config exactly as
//! `helm get values --all` does, and reading the few fields the plugin needs.

use serde_json::{Map, Value};

/// `helm get values --all`: chart defaults deep-merged under the user config
/// (Helm's `CoalesceValues`). User values win; maps merge recursively; a user
/// `null` deletes the key.
pub fn coalesce(chart_values: &Value, config: &Value) -> Value {
    let mut out = match config {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Value::Object(defaults) = chart_values {
        merge_defaults(&mut out, defaults);
    }
    Value::Object(out)
}

fn merge_defaults(dst: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, default) in defaults {
        match dst.get_mut(key) {
            None => {
                dst.insert(key.clone(), default.clone());
            }
            Some(Value::Null) => {
                // Helm: a user null removes the chart default.
                dst.remove(key);
            }
            Some(Value::Object(user)) => {
                if let Value::Object(d) = default {
                    merge_defaults(user, d);
                }
            }
            Some(_) => {}
        }
    }
    // Nulls the user set for keys the chart does not have are dropped too.
    dst.retain(|_, v| !v.is_null());
}

/// Reads a dotted path (`queryNode.replicas`).
pub fn get<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(values, |v, k| v.get(k))
}

/// Sets a dotted path, creating intermediate maps (replacing non-maps).
pub fn set(values: &mut Value, path: &str, new: Value) {
    let mut cur = values;
    for key in path.split('.') {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        // On an object, indexing inserts a missing key as null.
        cur = &mut cur[key];
    }
    *cur = new;
}

/// Helm's template truthiness for a flag (`cluster.enabled`): false, "false",
/// null, 0 and "" are false.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !(s.is_empty() || s == "false"),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(_) => true,
    }
}

/// A replica value as the chart's `{{ if ge (int .replicas) 0 }}` sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Replicas {
    /// A fixed count rendered into `spec.replicas`.
    Count(u32),
    /// Negative: the chart omits `spec.replicas` (left to an HPA).
    Unset,
    /// Not a number the chart can render.
    Invalid(String),
}

impl Replicas {
    /// Parses an int, an integral float, or a numeric string (`--set-string`).
    pub fn parse(v: &Value) -> Replicas {
        let n = match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n < 0 => Replicas::Unset,
            Some(n) => u32::try_from(n).map_or_else(|_| Replicas::Invalid(n.to_string()), Replicas::Count),
            None => Replicas::Invalid(v.to_string()),
        }
    }

    pub fn count(&self) -> Option<u32> {
        match self {
            Replicas::Count(n) => Some(*n),
            _ => None,
        }
    }
}

impl std::fmt::Display for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Replicas::Count(n) => write!(f, "{n}"),
            Replicas::Unset => f.write_str("-1 (unset)"),
            Replicas::Invalid(s) => write!(f, "invalid ({s})"),
        }
    }
}

/// Cluster or standalone, from `cluster.enabled`.
pub fn mode(values: &Value) -> &'static str {
    if truthy(get(values, "cluster.enabled")) {
        "cluster"
    } else {
        "standalone"
    }
}

/// The message queue the chart configures (`templates/config.tpl` order).
pub fn message_queue(values: &Value) -> String {
    let on = |p: &str| truthy(get(values, p));
    if mode(values) == "standalone" {
        return get(values, "standalone.messageQueue")
            .and_then(Value::as_str)
            .unwrap_or("rocksmq")
            .to_string();
    }
    let mq = if on("externalPulsar.enabled") {
        "pulsar (external)"
    } else if on("pulsar.enabled") {
        "pulsar (v2)"
    } else if on("woodpecker.enabled") {
        "woodpecker"
    } else if on("pulsarv3.enabled") {
        "pulsar"
    } else if on("externalKafka.enabled") {
        "kafka (external)"
    } else if on("kafka.enabled") {
        "kafka"
    } else if on("streaming.enabled") {
        "woodpecker (embedded)"
    } else {
        "unknown"
    };
    mq.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coalesce_user_wins_and_maps_merge() {
        let chart = json!({"queryNode": {"replicas": 1, "enabled": true}, "proxy": {"replicas": 1}});
        let user = json!({"queryNode": {"replicas": 3}});
        let all = coalesce(&chart, &user);
        assert_eq!(
            all,
            json!({"queryNode": {"replicas": 3, "enabled": true}, "proxy": {"replicas": 1}})
        );
    }

    #[test]
    fn coalesce_user_null_deletes() {
        let chart = json!({"a": {"b": 1, "c": 2}});
        let user = json!({"a": {"b": null}});
        assert_eq!(coalesce(&chart, &user), json!({"a": {"c": 2}}));
        assert_eq!(coalesce(&chart, &Value::Null), chart);
    }

    #[test]
    fn replicas_parse_every_shape() {
        assert_eq!(Replicas::parse(&json!(3)), Replicas::Count(3));
        assert_eq!(Replicas::parse(&json!(3.0)), Replicas::Count(3));
        assert_eq!(Replicas::parse(&json!("3")), Replicas::Count(3));
        assert_eq!(Replicas::parse(&json!(-1)), Replicas::Unset);
        assert_eq!(Replicas::parse(&json!("-1")), Replicas::Unset);
        assert!(matches!(Replicas::parse(&json!("three")), Replicas::Invalid(_)));
        assert!(matches!(Replicas::parse(&json!(2.5)), Replicas::Invalid(_)));
    }

    #[test]
    fn set_creates_paths() {
        let mut v = Value::Null;
        set(&mut v, "queryNode.replicas", json!(3));
        assert_eq!(v, json!({"queryNode": {"replicas": 3}}));
        set(&mut v, "queryNode.replicas", json!(4));
        assert_eq!(get(&v, "queryNode.replicas"), Some(&json!(4)));
    }

    #[test]
    fn mode_and_queue_from_chart_defaults() {
        let defaults: Value = serde_saphyr::from_str(include_str!(
            "../../tests/fixtures/rendered/chart-5.0.19-values.yaml"
        ))
        .expect("chart values parse");
        assert_eq!(mode(&defaults), "cluster");
        assert_eq!(message_queue(&defaults), "pulsar");
        let standalone = coalesce(&defaults, &json!({"cluster": {"enabled": false}}));
        assert_eq!(mode(&standalone), "standalone");
        assert_eq!(message_queue(&standalone), "woodpecker");
        let kafka = coalesce(
            &defaults,
            &json!({"pulsarv3": {"enabled": false}, "kafka": {"enabled": true}}),
        );
        assert_eq!(message_queue(&kafka), "kafka");
    }
}
