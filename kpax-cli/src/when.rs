//! Points in time given on the command line (`--from`, `--to`, rollback's
//! time): RFC 3339 timestamps, milliseconds since the epoch, relative
//! offsets from now (`-1h`, `-30m`), and `now`.

use crate::error::{CliError, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `s` into milliseconds since the Unix epoch, relative to `now`.
///
/// Accepted: `2026-11-22T07:40:00Z` (RFC 3339, any offset), `1763797200000`
/// (epoch milliseconds), `-1h` / `-90s` / `-1h30m` (before `now`), `now`.
///
/// # Errors
/// [`CliError::Usage`] naming the value and the accepted forms.
pub fn parse_time(s: &str, now: SystemTime) -> Result<i64> {
    let t = s.trim();
    let bad = |why: String| {
        CliError::Usage(format!(
            "bad time {s:?}: {why} (use RFC 3339 like 2026-11-22T07:40:00Z, epoch milliseconds, a relative time like -1h, or now)"
        ))
    };
    if t == "now" {
        return millis(now).map_err(bad);
    }
    if let Some(rel) = t.strip_prefix('-') {
        let d = humantime::parse_duration(rel).map_err(|e| bad(e.to_string()))?;
        let at = now
            .checked_sub(d)
            .ok_or_else(|| bad("before the epoch".into()))?;
        return millis(at).map_err(bad);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| bad("too large for epoch milliseconds".into()));
    }
    let at = humantime::parse_rfc3339_weak(t).map_err(|e| bad(e.to_string()))?;
    millis(at).map_err(bad)
}

fn millis(t: SystemTime) -> std::result::Result<i64, String> {
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "before the epoch".to_string())?;
    i64::try_from(d.as_millis()).map_err(|_| "too far in the future".to_string())
}

/// Parses a duration flag such as `--timeout 30s`.
///
/// # Errors
/// A message for clap naming the accepted form.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (use a duration like 500ms, 10s, 2m)"))
}

/// Formats epoch milliseconds as RFC 3339 (UTC, milliseconds), or `-` for
/// none (negative).
pub fn format_millis(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn parses_every_form() {
        let now = at(1_800_000_000_000);
        assert_eq!(parse_time("now", now).unwrap(), 1_800_000_000_000);
        assert_eq!(
            parse_time("-1h", now).unwrap(),
            1_800_000_000_000 - 3_600_000
        );
        assert_eq!(
            parse_time("-1h30m", now).unwrap(),
            1_800_000_000_000 - 5_400_000
        );
        assert_eq!(parse_time("1700000000123", now).unwrap(), 1_700_000_000_123);
        assert_eq!(
            parse_time("2026-11-22T07:40:00Z", now).unwrap(),
            1_795_333_200_000
        );
        assert_eq!(
            parse_time("2026-11-22T07:40:00.5Z", now).unwrap(),
            1_795_333_200_500
        );
    }

    #[test]
    fn rejects_nonsense_with_the_value() {
        let now = at(1_800_000_000_000);
        for bad in [
            "yesterday",
            "-1 fortnights",
            "",
            "2026-13-01T00:00:00Z",
            "99999999999999999999",
        ] {
            let e = parse_time(bad, now).unwrap_err();
            assert!(matches!(e, CliError::Usage(_)), "{bad}");
            assert!(e.to_string().contains("bad time"), "{e}");
        }
    }

    #[test]
    fn formats_millis() {
        assert_eq!(format_millis(1_795_333_200_500), "2026-11-22T07:40:00.500Z");
        assert_eq!(format_millis(-1), "-");
    }
}
