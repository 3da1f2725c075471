//! The retry schedule: when each attempt is made, with jitter and the
//! Retry-After rule.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Delays before each attempt: the first entry is the delay before the first
/// attempt (normally 0), the next before the second, and so on; a delivery
/// whose every attempt failed is exhausted.
///
/// ```
/// use std::time::Duration;
/// use flextime_webhooks::dispatch::RetrySchedule;
/// let s = RetrySchedule::default();
/// assert_eq!(s.attempts(), 8);
/// assert_eq!(s.base_delay(1), Some(Duration::from_secs(5)));
/// assert_eq!(s.base_delay(8), None);
/// // Retry-After is clamped between the scheduled delay and twice it.
/// let d = Duration::from_secs(300);
/// assert_eq!(RetrySchedule::clamp_retry_after(d, Some(Duration::from_secs(1))), d);
/// assert_eq!(RetrySchedule::clamp_retry_after(d, Some(Duration::from_secs(400))), Duration::from_secs(400));
/// assert_eq!(RetrySchedule::clamp_retry_after(d, Some(Duration::from_secs(9999))), 2 * d);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrySchedule {
    /// The delays, first attempt first.
    pub delays: Vec<Duration>,
    /// Jitter as a fraction of each delay (0.2: +-20 %).
    pub jitter: f64,
}

impl Default for RetrySchedule {
    /// At once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, +-20 % jitter.
    fn default() -> Self {
        Self {
            delays: [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
        }
    }
}

impl RetrySchedule {
    /// A schedule of millisecond delays (first attempt first), with +-20 % jitter.
    pub fn from_millis(delays: &[u64]) -> Self {
        Self {
            delays: delays.iter().copied().map(Duration::from_millis).collect(),
            jitter: 0.2,
        }
    }

    /// Set the jitter fraction (clamped to 0..=1).
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> usize {
        self.delays.len().max(1)
    }

    /// The delay before attempt number `index` (0-based), without jitter;
    /// `None` when the schedule has no such attempt.
    pub fn base_delay(&self, index: usize) -> Option<Duration> {
        if self.delays.is_empty() && index == 0 {
            return Some(Duration::ZERO);
        }
        self.delays.get(index).copied()
    }

    /// The delay before attempt `index`, with jitter.
    pub fn delay(&self, index: usize) -> Option<Duration> {
        let base = self.base_delay(index)?;
        if self.jitter <= 0.0 || base.is_zero() {
            return Some(base);
        }
        let factor = rand::rng().random_range(1.0 - self.jitter..=1.0 + self.jitter);
        Some(base.mul_f64(factor))
    }

    /// Retry-After honoured within `[scheduled, 2 * scheduled]`.
    pub fn clamp_retry_after(scheduled: Duration, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(r) => r.clamp(scheduled, scheduled.saturating_mul(2)),
            None => scheduled,
        }
    }
}

/// Parse a `Retry-After` value: delta seconds or an HTTP date.
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now)
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let s = RetrySchedule::default();
        for _ in 0..200 {
            let d = s.delay(2).unwrap();
            assert!(
                d >= Duration::from_secs(240) && d <= Duration::from_secs(360),
                "{d:?}"
            );
        }
        assert_eq!(s.delay(0), Some(Duration::ZERO));
        assert_eq!(s.with_jitter(0.0).delay(3), Some(Duration::from_secs(1800)));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
