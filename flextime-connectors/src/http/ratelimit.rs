//! Reading a peer's rate-limit headers: `Retry-After` (seconds or HTTP date),
//! `X-RateLimit-Remaining` / `X-RateLimit-Reset` and the IETF
//! `RateLimit-Remaining` / `RateLimit-Reset`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::header::{HeaderMap, RETRY_AFTER};

/// The longest wait a header may ask for before it is treated as nonsense.
const MAX_SANE_WAIT: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as a wait from now: delta seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after_value(value, Utc::now())
}

/// Parses one `Retry-After` value relative to `now`.
pub fn parse_retry_after_value(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Duration::try_from_secs_f64(secs)
                .ok()
                .map(|d| d.min(MAX_SANE_WAIT));
        }
        return None;
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some(
        (at - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_SANE_WAIT),
    )
}

/// The rate-limit state a response announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Time until the window resets.
    pub reset: Option<Duration>,
}

impl RateLimitHeaders {
    /// Reads `X-RateLimit-*` or `RateLimit-*` (the stricter of the two when
    /// both are present).
    pub fn read(headers: &HeaderMap) -> Self {
        Self::read_at(headers, Utc::now())
    }

    /// [`read`](Self::read) relative to `now`.
    pub fn read_at(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
        let num = |name: &str| -> Option<f64> {
            headers
                .get(name)?
                .to_str()
                .ok()?
                // `RateLimit-Remaining: 0, 10;w=1` style lists: the first item.
                .split([',', ';'])
                .next()?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        let remaining = [num("x-ratelimit-remaining"), num("ratelimit-remaining")]
            .into_iter()
            .flatten()
            .reduce(f64::min)
            .map(|n| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n = n as u64;
                n
            });
        let x_reset = num("x-ratelimit-reset").map(|n| reset_value(n, now));
        let ietf_reset = num("ratelimit-reset").and_then(|n| Duration::try_from_secs_f64(n).ok());
        let reset = [x_reset.flatten(), ietf_reset]
            .into_iter()
            .flatten()
            .max()
            .map(|d| d.min(MAX_SANE_WAIT));
        Self { remaining, reset }
    }

    /// How long to pause when the window is used up (remaining 0).
    pub fn exhausted_wait(&self) -> Option<Duration> {
        match (self.remaining, self.reset) {
            (Some(0), Some(reset)) => Some(reset),
            (Some(0), None) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// `X-RateLimit-Reset` is epoch seconds at some vendors (GitHub, Twitter),
/// epoch milliseconds at a few, and delta seconds at others: tell them apart
/// by size.
fn reset_value(n: f64, now: DateTime<Utc>) -> Option<Duration> {
    #[allow(clippy::cast_precision_loss)]
    let now_secs = now.timestamp_millis() as f64 / 1000.0;
    let delta = if n > 1e12 {
        n / 1000.0 - now_secs
    } else if n > 1e9 {
        n - now_secs
    } else {
        n
    };
    Duration::try_from_secs_f64(delta.max(0.0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retry_after_in_seconds_and_as_http_date() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after_value("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after_value("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after_value("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after_value("soon", now), None);
        assert_eq!(parse_retry_after_value("-5", now), None);
    }

    #[test]
    fn reset_as_epoch_seconds_millis_or_delta() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let epoch = (now.timestamp() + 40).to_string();
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &epoch),
        ]);
        assert_eq!(
            RateLimitHeaders::read_at(&h, now).exhausted_wait(),
            Some(Duration::from_secs(40))
        );
        let millis = (now.timestamp_millis() + 5000).to_string();
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &millis),
        ]);
        assert_eq!(
            RateLimitHeaders::read_at(&h, now).exhausted_wait(),
            Some(Duration::from_secs(5))
        );
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "7")]);
        assert_eq!(
            RateLimitHeaders::read_at(&h, now).exhausted_wait(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn the_strictest_of_both_header_families_wins() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let h = headers(&[
            ("x-ratelimit-remaining", "3"),
            ("x-ratelimit-reset", "2"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "9"),
        ]);
        let read = RateLimitHeaders::read_at(&h, now);
        assert_eq!(read.remaining, Some(0));
        assert_eq!(read.exhausted_wait(), Some(Duration::from_secs(9)));
        let h = headers(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "2")]);
        assert_eq!(RateLimitHeaders::read_at(&h, now).exhausted_wait(), None);
    }
}
