//! Token-bucket rate limiting on top of `governor` (GCRA).

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use governor::clock::{Clock as GovernorClock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A rate: `requests` per `per`, with bursts of up to `burst` (default:
/// `requests`).
///
/// ```
/// use flextime_core::resilience::RateLimit;
/// use std::time::Duration;
///
/// let notion = RateLimit::per_second(3);
/// assert_eq!(notion.interval(), Duration::from_nanos(333_333_333));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// How many requests per period.
    pub requests: NonZeroU32,
    /// The period, in milliseconds in serialized form.
    #[serde(rename = "per_ms", with = "per_ms")]
    pub per: Duration,
    /// The largest burst; `None` means `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<NonZeroU32>,
}

impl RateLimit {
    /// `n` requests per second (`n` of 0 is treated as 1).
    pub fn per_second(n: u32) -> Self {
        Self::new(n, Duration::from_secs(1))
    }

    /// `n` requests per `per` (`n` of 0 is treated as 1; a zero period as 1 ms).
    pub fn new(n: u32, per: Duration) -> Self {
        Self {
            requests: NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
            per: per.max(Duration::from_millis(1)),
            burst: None,
        }
    }

    /// Allow bursts of `burst` (0 is treated as 1).
    #[must_use]
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = Some(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        self
    }

    /// The steady-state interval between two requests.
    pub fn interval(&self) -> Duration {
        self.per / self.requests.get()
    }

    fn quota(&self) -> Quota {
        let interval = self.interval().max(Duration::from_nanos(1));
        Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(self.requests))
            .allow_burst(self.burst.unwrap_or(self.requests))
    }
}

mod per_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(|ms| Duration::from_millis(ms.max(1)))
    }
}

type Direct<C> = governor::RateLimiter<
    NotKeyed,
    InMemoryState,
    C,
    NoOpMiddleware<<C as GovernorClock>::Instant>,
>;

/// One token bucket. `try_acquire` refuses with a rate-limited error whose
/// `retry_after` says when a token frees up; `acquire` waits for one.
///
/// ```
/// use flextime_core::resilience::{RateLimit, RateLimiter};
///
/// let limiter = RateLimiter::new("demo", RateLimit::per_second(1).with_burst(2));
/// assert!(limiter.try_acquire().is_ok());
/// assert!(limiter.try_acquire().is_ok());
/// let err = limiter.try_acquire().unwrap_err();
/// assert!(err.retry_after().is_some());
/// ```
pub struct RateLimiter<C: GovernorClock = DefaultClock> {
    name: String,
    limit: RateLimit,
    clock: C,
    inner: Direct<C>,
}

impl<C: GovernorClock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter on the real clock. `name` appears in errors and metrics.
    pub fn new(name: impl Into<String>, limit: RateLimit) -> Self {
        Self::with_clock(name, limit, DefaultClock::default())
    }
}

impl<C: GovernorClock + Clone> RateLimiter<C> {
    /// A limiter on a given `governor` clock (`FakeRelativeClock` in tests).
    pub fn with_clock(name: impl Into<String>, limit: RateLimit, clock: C) -> Self {
        Self {
            name: name.into(),
            limit,
            inner: governor::RateLimiter::direct_with_clock(limit.quota(), clock.clone()),
            clock,
        }
    }

    /// The configured rate.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Take a token now, or say how long until one is free.
    pub fn try_acquire(&self) -> Result<()> {
        self.inner.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            metrics::counter!(crate::telemetry::RATE_LIMITED, "limiter" => self.name.clone())
                .increment(1);
            Error::rate_limited(
                format!("client-side rate limit `{}` reached", self.name),
                Some(wait),
            )
        })
    }

    /// Wait (on tokio's timer) until a token is free, then take it.
    pub async fn acquire(&self) {
        while let Err(e) = self.try_acquire() {
            let wait = e.retry_after().unwrap_or(Duration::from_millis(1));
            tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
        }
    }
}

type Keyed<K, C> = governor::RateLimiter<
    K,
    DefaultKeyedStateStore<K>,
    C,
    NoOpMiddleware<<C as GovernorClock>::Instant>,
>;

/// One token bucket per key (per webhook source, per endpoint, per tenant).
/// Call [`KeyedRateLimiter::retain_recent`] now and then to drop idle keys
/// and keep memory bounded.
pub struct KeyedRateLimiter<K: Hash + Eq + Clone, C: GovernorClock = DefaultClock> {
    name: String,
    limit: RateLimit,
    clock: C,
    inner: Keyed<K, C>,
}

impl<K: Hash + Eq + Clone, C: GovernorClock> fmt::Debug for KeyedRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// A keyed limiter on the real clock.
    pub fn new(name: impl Into<String>, limit: RateLimit) -> Self {
        Self::with_clock(name, limit, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: GovernorClock + Clone> KeyedRateLimiter<K, C> {
    /// A keyed limiter on a given `governor` clock.
    pub fn with_clock(name: impl Into<String>, limit: RateLimit, clock: C) -> Self {
        Self {
            name: name.into(),
            limit,
            inner: governor::RateLimiter::dashmap_with_clock(limit.quota(), clock.clone()),
            clock,
        }
    }

    /// Take a token for `key` now, or say how long until one is free.
    pub fn try_acquire(&self, key: &K) -> Result<()> {
        self.inner.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            metrics::counter!(crate::telemetry::RATE_LIMITED, "limiter" => self.name.clone())
                .increment(1);
            Error::rate_limited(
                format!("client-side rate limit `{}` reached", self.name),
                Some(wait),
            )
        })
    }

    /// Forget keys whose buckets are full again.
    pub fn retain_recent(&self) {
        self.inner.retain_recent();
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn burst_then_refill_on_fake_clock() {
        let clock = FakeRelativeClock::default();
        let limiter =
            RateLimiter::with_clock("t", RateLimit::per_second(2).with_burst(3), clock.clone());
        for _ in 0..3 {
            limiter.try_acquire().unwrap();
        }
        let err = limiter.try_acquire().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::RateLimited);
        assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(500));
        limiter.try_acquire().unwrap();
        assert!(limiter.try_acquire().is_err());
    }

    #[test]
    fn keys_are_independent() {
        let clock = FakeRelativeClock::default();
        let limiter = KeyedRateLimiter::with_clock("k", RateLimit::per_second(1), clock.clone());
        limiter.try_acquire(&"a").unwrap();
        assert!(limiter.try_acquire(&"a").is_err());
        limiter.try_acquire(&"b").unwrap();
        assert_eq!(limiter.len(), 2);
        clock.advance(Duration::from_secs(5));
        limiter.retain_recent();
        assert!(limiter.is_empty());
    }

    #[test]
    fn serde_shape() {
        let l: RateLimit = serde_json::from_str(r#"{"requests": 3, "per_ms": 1000}"#).unwrap();
        assert_eq!(l, RateLimit::per_second(3));
        assert!(serde_json::from_str::<RateLimit>(r#"{"requests": 0, "per_ms": 1000}"#).is_err());
    }
}
