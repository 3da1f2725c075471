//! Retry with exponential backoff and full jitter.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a computed backoff delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// "Full jitter" (AWS architecture blog): a uniformly random delay
    /// between zero and the exponential delay. Spreads retries of many
    /// clients best.
    #[default]
    Full,
    /// No randomisation (deterministic delays; mostly for tests).
    None,
}

/// Exponential backoff: attempt `n` (1-based, after the first failure)
/// waits up to `min(max_delay, initial_delay * factor^(n-1))`, randomised by
/// [`Jitter`]. Only errors whose [`Error::is_retryable`] is true are retried;
/// a rate-limited error's `retry_after` is honoured (the wait is at least
/// that, capped by `max_retry_after`).
///
/// ```
/// use flextime_core::resilience::RetryPolicy;
/// use flextime_core::Error;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let calls = AtomicU32::new(0);
/// let policy = RetryPolicy::default().with_max_attempts(5);
/// let value = policy
///     .run(|| async {
///         if calls.fetch_add(1, Ordering::SeqCst) < 2 {
///             Err(Error::unavailable("flaky"))
///         } else {
///             Ok(42)
///         }
///     })
///     .await
///     .unwrap();
/// assert_eq!((value, calls.load(Ordering::SeqCst)), (42, 3));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: usize,
    /// The delay before the first retry (before jitter).
    #[serde(with = "millis")]
    pub initial_delay: Duration,
    /// The largest delay between attempts (before jitter).
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// Growth factor per attempt.
    pub factor: f32,
    /// Randomisation.
    pub jitter: Jitter,
    /// The longest `retry_after` that is honoured; a peer asking for more is
    /// waited for this long.
    #[serde(with = "millis")]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            jitter: Jitter::Full,
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Set the total number of attempts (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, n: usize) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Set the initial and maximum delays.
    #[must_use]
    pub fn with_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// Set the jitter.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The un-jittered delay before retry number `retry` (1-based).
    pub fn base_delay(&self, retry: u32) -> Duration {
        let exp = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = f64::from(self.factor.max(1.0)).powi(exp);
        let secs = (self.initial_delay.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
    }

    /// Apply jitter, then raise the delay to the error's `retry_after` (capped).
    fn adjust(&self, err: &Error, computed: Duration) -> Duration {
        let jittered = match self.jitter {
            Jitter::None => computed,
            Jitter::Full => {
                let max = u64::try_from(computed.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(rand::rng().random_range(0..=max))
            }
        };
        match err.retry_after() {
            Some(asked) => jittered.max(asked.min(self.max_retry_after)),
            None => jittered,
        }
    }

    /// Run `op` until it succeeds, fails with a non-retryable error, or the
    /// attempts are used up (the last error is returned).
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor.max(1.0))
            .with_max_times(self.max_attempts.saturating_sub(1));
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Error::is_retryable)
            .adjust(|err, computed| computed.map(|d| self.adjust(err, d)))
            .notify(|err, wait| {
                metrics::counter!(crate::telemetry::RETRIES, "kind" => err.kind().as_str())
                    .increment(1);
                tracing::debug!(error = %err, wait_ms = wait.as_millis(), "retrying");
            })
            .await
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting<'a>(
        calls: &'a AtomicU32,
        fail_times: u32,
        err: impl Fn() -> Error + 'a,
    ) -> impl FnMut() -> std::future::Ready<Result<u32>> + 'a {
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if n < fail_times { Err(err()) } else { Ok(n) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let err = RetryPolicy::default()
            .run(counting(&calls, 10, || Error::invalid_input("bad")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_last_error() {
        let calls = AtomicU32::new(0);
        let err = RetryPolicy::default()
            .with_max_attempts(3)
            .run(counting(&calls, 10, || Error::timeout("slow")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Timeout);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_on_virtual_time() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let policy = RetryPolicy::default()
            .with_delays(Duration::from_millis(10), Duration::from_millis(10))
            .with_max_attempts(2);
        let n = policy
            .run(counting(&calls, 1, || {
                Error::rate_limited("slow down", Some(Duration::from_secs(7)))
            }))
            .await
            .unwrap();
        assert_eq!(n, 1);
        // Virtual (paused) time: the only sleep was the retry wait.
        assert!(
            start.elapsed() >= Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_capped() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let policy = RetryPolicy {
            max_retry_after: Duration::from_secs(2),
            jitter: Jitter::None,
            ..RetryPolicy::default()
                .with_delays(Duration::from_millis(10), Duration::from_millis(10))
                .with_max_attempts(2)
        };
        policy
            .run(counting(&calls, 1, || {
                Error::rate_limited("slow down", Some(Duration::from_secs(3_600)))
            }))
            .await
            .unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    #[test]
    fn base_delays_grow_and_cap() {
        let p =
            RetryPolicy::default().with_delays(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (1..=6).map(|n| p.base_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn full_jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        let err = Error::unavailable("x");
        let d = Duration::from_millis(500);
        let samples: Vec<_> = (0..200).map(|_| p.adjust(&err, d)).collect();
        assert!(samples.iter().all(|s| *s <= d));
        // 200 uniform draws in [0, 500] ms are not all equal.
        assert!(samples.iter().any(|s| *s != samples[0]));
    }

    #[test]
    fn serde_in_millis() {
        let p: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts": 3, "initial_delay": 50}"#).unwrap();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.initial_delay, Duration::from_millis(50));
        assert_eq!(p.max_delay, Duration::from_secs(30));
    }
}
