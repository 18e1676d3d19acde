//! Human-readable ages, byte-for-byte as kubectl prints them.
//!
//! Ports `k8s.io/apimachinery/pkg/util/duration.HumanDuration` and kubectl's
//! `translateTimestampSince` (pkg/printers/internalversion/printers.go).

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A run's elapsed time or a timeout, as kubectl would print it as an age.
pub fn human_std(d: std::time::Duration) -> String {
    human_duration(SignedDuration::try_from(d).unwrap_or_default())
}

/// `duration.HumanDuration`: a succinct duration with ~2-3 significant figures.
///
/// Go computes `int(d.Seconds())`, which truncates toward zero, so anything
/// above -2s (e.g. -1.9s) still counts as "almost now" and prints `0s`; only
/// `d <= -2s` is `<invalid>`. Every later step is integer division of a
/// positive duration, i.e. truncation.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs(); // truncates toward zero, like Go's int(float)
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }

    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }

    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }

    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }

    // Years are plain 365-day blocks; no leap-year handling upstream either.
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            dy => format!("{years}y{dy}d"),
        };
    }
    format!("{years}y")
}

/// kubectl's `translateTimestampSince`: `<unknown>` for an unset timestamp,
/// otherwise the human duration between `t` and `now`.
pub fn age_since(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        Some(Time(t)) => human_duration(now.duration_since(*t)),
        None => "<unknown>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hd(secs: i64) -> String {
        human_duration(SignedDuration::from_secs(secs))
    }

    const M: i64 = 60;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    const Y: i64 = 365 * D;

    #[test]
    fn negative_durations() {
        assert_eq!(hd(-2), "<invalid>");
        assert_eq!(hd(-3600), "<invalid>");
        assert_eq!(human_duration(SignedDuration::from_millis(-2001)), "<invalid>");
        // int(-1.9) == -1 in Go: still tolerated as clock skew.
        assert_eq!(human_duration(SignedDuration::from_millis(-1999)), "0s");
        assert_eq!(hd(-1), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(-500)), "0s");
    }

    #[test]
    fn seconds_up_to_two_minutes() {
        assert_eq!(hd(0), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(999)), "0s");
        assert_eq!(hd(1), "1s");
        assert_eq!(hd(59), "59s");
        assert_eq!(hd(60), "60s");
        assert_eq!(hd(119), "119s");
        assert_eq!(human_duration(SignedDuration::from_millis(119_999)), "119s");
    }

    #[test]
    fn minutes_with_seconds_below_ten_minutes() {
        assert_eq!(hd(2 * M), "2m");
        assert_eq!(hd(2 * M + 1), "2m1s");
        assert_eq!(hd(2 * M + 30), "2m30s");
        assert_eq!(hd(5 * M), "5m");
        assert_eq!(hd(10 * M - 1), "9m59s");
    }

    #[test]
    fn minutes_below_three_hours() {
        assert_eq!(hd(10 * M), "10m");
        assert_eq!(hd(10 * M + 59), "10m");
        assert_eq!(hd(90 * M), "90m");
        assert_eq!(hd(3 * H - 1), "179m");
    }

    #[test]
    fn hours_with_minutes_below_eight_hours() {
        assert_eq!(hd(3 * H), "3h");
        assert_eq!(hd(3 * H + 59), "3h");
        assert_eq!(hd(3 * H + M), "3h1m");
        assert_eq!(hd(8 * H - 1), "7h59m");
    }

    #[test]
    fn hours_below_two_days() {
        assert_eq!(hd(8 * H), "8h");
        assert_eq!(hd(8 * H + 59 * M), "8h");
        assert_eq!(hd(47 * H + 59 * M), "47h");
    }

    #[test]
    fn days_with_hours_below_eight_days() {
        assert_eq!(hd(2 * D), "2d");
        assert_eq!(hd(2 * D + H), "2d1h");
        assert_eq!(hd(2 * D + 59 * M), "2d");
        assert_eq!(hd(8 * D - 1), "7d23h");
    }

    #[test]
    fn days_below_two_years() {
        assert_eq!(hd(8 * D), "8d");
        assert_eq!(hd(8 * D + 23 * H), "8d");
        assert_eq!(hd(364 * D), "364d");
        assert_eq!(hd(2 * Y - 1), "729d");
    }

    #[test]
    fn years_with_days_below_eight_years() {
        assert_eq!(hd(2 * Y), "2y");
        assert_eq!(hd(2 * Y + D), "2y1d");
        assert_eq!(hd(2 * Y + 23 * H), "2y");
        assert_eq!(hd(8 * Y - 1), "7y364d");
    }

    #[test]
    fn plain_years_from_eight() {
        assert_eq!(hd(8 * Y), "8y");
        assert_eq!(hd(8 * Y + 364 * D), "8y");
        assert_eq!(hd(100 * Y), "100y");
    }

    #[test]
    fn age_since_timestamp() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        let created = Time("2024-05-01T11:57:30Z".parse().unwrap());
        assert_eq!(age_since(Some(&created), now), "2m30s");
        assert_eq!(age_since(None, now), "<unknown>");
        let future = Time("2024-05-01T12:00:05Z".parse().unwrap());
        assert_eq!(age_since(Some(&future), now), "<invalid>");
    }
}
