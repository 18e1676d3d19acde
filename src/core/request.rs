//! A change as typed: `COMPONENT=N`, `+N`/`-N`, or an HPA's new bounds,
//! and why one cannot be planned.

/// A target as typed: absolute or relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Absolute(u32),
    Relative(i64),
    /// New bounds for the HPA managing the component (`--min`/`--max`); a
    /// side left out stays as the HPA has it.
    Bounds {
        min: Option<u32>,
        max: Option<u32>,
    },
}

/// One `COMPONENT=N` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub component: String,
    pub target: Target,
}

/// Why a request cannot be planned. `Invalid` is the user's input;
/// `Refused` is a safety rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Invalid(String),
    Refused(String),
}

/// Parses `queryNode=3`, `querynode=+2`, `dataNode=-1`.
pub fn parse_request(text: &str) -> Result<Request, Rejection> {
    let Some((component, n)) = text.split_once('=') else {
        return Err(Rejection::Invalid(format!(
            "invalid change {text:?}: write COMPONENT=N, e.g. queryNode=3, queryNode=+1 or queryNode=-1"
        )));
    };
    let component = component.trim();
    if component.is_empty() {
        return Err(Rejection::Invalid(format!(
            "invalid change {text:?}: the component name is missing"
        )));
    }
    Ok(Request {
        component: component.to_string(),
        target: parse_target(component, n.trim())?,
    })
}

/// The most replicas a Deployment accepts (`spec.replicas` is an int32).
pub const MAX_REPLICAS: u32 = i32::MAX as u32;

/// Parses the replica part: `3`, `+2`, `-1`. Counts a Deployment could not
/// hold are refused here, before anything is read or planned.
pub fn parse_target(component: &str, n: &str) -> Result<Target, Rejection> {
    let bad = || {
        Rejection::Invalid(format!(
            "invalid replica count {n:?} for {component}: use a whole number (3) or a relative one (+1, -1)"
        ))
    };
    let (sign, digits) = match (n.strip_prefix('+'), n.strip_prefix('-')) {
        (Some(d), _) => (Some(1), d),
        (_, Some(d)) => (Some(-1), d),
        _ => (None, n),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value = digits
        .parse::<u64>()
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v <= MAX_REPLICAS)
        .ok_or_else(|| {
            Rejection::Invalid(format!(
                "replica count {n:?} for {component} is out of range: a Deployment holds at most {MAX_REPLICAS} replicas"
            ))
        })?;
    Ok(match sign {
        None => Target::Absolute(value),
        Some(s) => Target::Relative(s * i64::from(value)),
    })
}
