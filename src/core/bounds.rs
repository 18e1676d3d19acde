//! Changing the bounds of a HorizontalPodAutoscaler instead of a replica
//! count: `scale RELEASE queryNode --min 2 --max 10`. Pure: the rules, the
//! change as planned, and what it writes (values, manifest, live HPA).
//!
//! An HPA clamps the replicas it manages into its bounds at once: raising
//! `minReplicas` above what runs adds pods (a scale-out, fine in one step),
//! lowering `maxReplicas` below what runs would remove many pods at once.
//! So a lowered max is stepped one replica at a time, like every scale-in.

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use serde::Serialize;
use serde_json::Value;

use crate::core::request::{MAX_REPLICAS, Rejection, Target};
use crate::core::values;

/// An HPA's `minReplicas`-`maxReplicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

impl Bounds {
    /// The live bounds of an HPA (`minReplicas` defaults to 1).
    pub fn of(hpa: &HorizontalPodAutoscaler) -> Bounds {
        let spec = hpa.spec.as_ref();
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Bounds {
            min: count(spec.and_then(|s| s.min_replicas).unwrap_or(1)),
            max: count(spec.map_or(0, |s| s.max_replicas)),
        }
    }

    /// The bounds the chart renders from `<key>.hpa.{minReplicas,maxReplicas}`
    /// (`| default 1`, `| default 10`: a missing or zero value takes the
    /// default); `None` when a value is not a whole number.
    pub fn from_values(values: &Value, key: &str) -> Option<Bounds> {
        let read = |field: &str, default: u32| -> Option<u32> {
            match values::get(values, &format!("{key}.hpa.{field}")) {
                None | Some(Value::Null) => Some(default),
                Some(v) => match values::Replicas::parse(v) {
                    values::Replicas::Count(0) => Some(default),
                    values::Replicas::Count(n) => Some(n),
                    _ => None,
                },
            }
        };
        Some(Bounds {
            min: read("minReplicas", 1)?,
            max: read("maxReplicas", 10)?,
        })
    }

    /// Where a replica count lands under these bounds.
    pub fn clamp(&self, replicas: u32) -> u32 {
        replicas.max(self.min).min(self.max)
    }
}

/// One HPA's bounds change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaChange {
    /// The HorizontalPodAutoscaler's name.
    pub name: String,
    /// The live HPA's bounds now.
    pub current: Bounds,
    /// What Helm's values say (Helm only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Bounds>,
    pub target: Bounds,
    /// The fixed count Helm's values also hold for the component under
    /// the HPA (`queryNode.replicas: 1`): the change sets it to -1 in the
    /// same revision, so the next `helm upgrade` leaves the count to the
    /// HPA (Helm 4's server-side upgrade would otherwise fail on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsets_replicas: Option<u32>,
}

/// What a change sets, as planned or as reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Replicas(u32),
    Bounds(Bounds),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Replicas(n) => write!(f, "{n}"),
            Setting::Bounds(b) => write!(f, "HPA {b}"),
        }
    }
}

/// The HPA bounds a step of a bounds change writes: the target's min, and
/// a max no lower than the step, so the HPA removes at most the one replica
/// the step removes.
pub fn step_bounds(target: Bounds, step: u32) -> Bounds {
    Bounds {
        min: target.min,
        max: target.max.max(step),
    }
}

/// Parses `--min N` / `--max N` (either may be left out: that side stays as
/// the HPA has it). Bounds an HPA cannot hold are refused here.
pub fn parse_bounds(component: &str, min: Option<&str>, max: Option<&str>) -> Result<Target, Rejection> {
    let one = |flag: &str, text: Option<&str>| -> Result<Option<u32>, Rejection> {
        let Some(text) = text else { return Ok(None) };
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::Invalid(format!(
                "invalid {flag} {text:?} for {component}: use a whole number of replicas, at least 1"
            )));
        }
        match text
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=u64::from(MAX_REPLICAS)).contains(n))
        {
            Some(n) => Ok(Some(n as u32)),
            None => Err(Rejection::Invalid(format!(
                "{flag} {text} for {component} is out of range: an HPA's bounds are 1 to {MAX_REPLICAS}"
            ))),
        }
    };
    let (min, max) = (one("--min", min)?, one("--max", max)?);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(Rejection::Invalid(format!(
            "--min {lo} is above --max {hi} for {component}"
        )));
    }
    if min.is_none() && max.is_none() {
        return Err(Rejection::Invalid(format!(
            "give --min N and/or --max N for {component}"
        )));
    }
    Ok(Target::Bounds { min, max })
}

/// `kubectl patch hpa …` writing the target bounds at once.
pub fn kubectl_patch(namespace: &str, h: &HpaChange) -> String {
    format!(
        "kubectl patch hpa {} -n {namespace} --type merge -p '{{\"spec\":{{\"minReplicas\":{},\"maxReplicas\":{}}}}}'",
        h.name, h.target.min, h.target.max
    )
}

/// The Helm values a bounds setting writes.
pub fn values_paths(key: &str, b: Bounds) -> [(String, u32); 2] {
    [
        (format!("{key}.hpa.minReplicas"), b.min),
        (format!("{key}.hpa.maxReplicas"), b.max),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_validates_bounds() {
        let ok = |min, max| parse_bounds("queryNode", min, max);
        assert_eq!(
            ok(Some("2"), Some("10")),
            Ok(Target::Bounds {
                min: Some(2),
                max: Some(10)
            })
        );
        assert_eq!(
            ok(None, Some("4")),
            Ok(Target::Bounds {
                min: None,
                max: Some(4)
            })
        );
        let invalid = |r: Result<Target, Rejection>, text: &str| match r {
            Err(Rejection::Invalid(m)) => assert!(m.contains(text), "{m}"),
            other => panic!("{other:?}"),
        };
        invalid(ok(Some("0"), None), "1 to 2147483647");
        invalid(ok(None, Some("2147483648")), "out of range");
        invalid(ok(Some("-1"), None), "invalid --min");
        invalid(ok(Some("3"), Some("2")), "--min 3 is above --max 2");
        invalid(ok(None, None), "give --min");
    }

    #[test]
    fn bounds_from_values_follow_the_template_defaults() {
        let v = json!({"queryNode": {"hpa": {"minReplicas": "2", "maxReplicas": 0}}});
        assert_eq!(
            Bounds::from_values(&v, "queryNode"),
            Some(Bounds { min: 2, max: 10 })
        );
        assert_eq!(
            Bounds::from_values(&json!({}), "dataNode"),
            Some(Bounds { min: 1, max: 10 })
        );
        assert_eq!(
            Bounds::from_values(&json!({"proxy": {"hpa": {"minReplicas": "x"}}}), "proxy"),
            None
        );
    }

    #[test]
    fn a_lowered_max_steps_down_and_each_step_keeps_min() {
        let target = Bounds { min: 2, max: 3 };
        assert_eq!(target.clamp(6), 3);
        assert_eq!(target.clamp(1), 2);
        let s: Vec<Bounds> = (3..6).rev().map(|n| step_bounds(target, n)).collect();
        assert_eq!(
            s,
            [
                Bounds { min: 2, max: 5 },
                Bounds { min: 2, max: 4 },
                Bounds { min: 2, max: 3 }
            ]
        );
        // A raised min is one step, written at the target.
        assert_eq!(step_bounds(target, 2), target);
    }
}
