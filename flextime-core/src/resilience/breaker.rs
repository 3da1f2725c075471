//! A circuit breaker: stop calling a peer that keeps failing, probe it now and
//! then, and close again when it recovers.
//!
//! No well-kept crate in the ecosystem offers a breaker with a failure-ratio
//! window and an injectable clock that fits tower-less call sites, so this
//! one is small and written here.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};
use crate::error::{Error, Result};

/// When a [`CircuitBreaker`] opens and how it recovers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakerConfig {
    /// Open after this many failures in a row.
    pub consecutive_failures: u32,
    /// Or open when the failure ratio in the window reaches this (0.0-1.0)...
    pub failure_ratio: f64,
    /// ...provided the window holds at least this many calls.
    pub min_calls: u32,
    /// The sliding window for the ratio, in milliseconds when serialized.
    #[serde(with = "ms")]
    pub window: Duration,
    /// How long to stay open before letting a probe through.
    #[serde(with = "ms")]
    pub open_for: Duration,
    /// Probes allowed at once while half-open.
    pub half_open_probes: u32,
    /// Successful probes needed to close again.
    pub probes_to_close: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_calls: 20,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
            probes_to_close: 1,
        }
    }
}

mod ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused until `until`.
    Open {
        /// When a probe will be let through.
        until: DateTime<Utc>,
    },
    /// A limited number of probe calls go through.
    HalfOpen,
}

/// Most outcomes the window keeps, whatever the call rate (bounded memory).
const MAX_WINDOW_ENTRIES: usize = 4_096;

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    consecutive: u32,
    window: VecDeque<(DateTime<Utc>, bool)>,
    /// Failures in `window`, kept as calls enter and leave it.
    window_failures: usize,
    probes_in_flight: u32,
    probe_successes: u32,
}

/// A circuit breaker. Cheap to clone; clones share state.
///
/// ```
/// use flextime_core::resilience::{BreakerConfig, CircuitBreaker, CircuitState};
/// use flextime_core::{Error, ManualClock};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let clock = ManualClock::at_unix_millis(0);
/// let breaker = CircuitBreaker::with_clock(
///     "endpoint-1",
///     BreakerConfig { consecutive_failures: 2, open_for: Duration::from_secs(10), ..Default::default() },
///     Arc::new(clock.clone()),
/// );
/// breaker.try_acquire().unwrap().failure();
/// breaker.try_acquire().unwrap().failure();
/// assert!(matches!(breaker.state(), CircuitState::Open { .. }));
/// assert_eq!(breaker.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(10)));
/// clock.advance(Duration::from_secs(10));
/// breaker.try_acquire().unwrap().success(); // the probe
/// assert_eq!(breaker.state(), CircuitState::Closed);
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    /// One allocation: a clone (each permit holds one) is a single
    /// reference count, which callers on several threads share.
    shared: Arc<Shared>,
}

struct Shared {
    name: Box<str>,
    config: BreakerConfig,
    clock: SharedClock,
    inner: Mutex<Inner>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A breaker on the system clock.
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self::with_clock(name, config, Arc::new(SystemClock))
    }

    /// A breaker on a given clock.
    pub fn with_clock(name: impl Into<String>, config: BreakerConfig, clock: SharedClock) -> Self {
        let name: String = name.into();
        Self {
            shared: Arc::new(Shared {
                name: name.into_boxed_str(),
                config,
                clock,
                inner: Mutex::new(Inner {
                    state: CircuitState::Closed,
                    consecutive: 0,
                    window: VecDeque::new(),
                    window_failures: 0,
                    probes_in_flight: 0,
                    probe_successes: 0,
                }),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state (an expired open state reads as half-open).
    pub fn state(&self) -> CircuitState {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        inner.state
    }

    fn refresh(&self, inner: &mut Inner) {
        if let CircuitState::Open { until } = inner.state
            && self.shared.clock.now() >= until
        {
            self.transition(inner, CircuitState::HalfOpen);
        }
    }

    fn transition(&self, inner: &mut Inner, to: CircuitState) {
        let label = match to {
            CircuitState::Closed => "closed",
            CircuitState::Open { .. } => "open",
            CircuitState::HalfOpen => "half_open",
        };
        tracing::info!(breaker = %self.shared.name, state = label, "circuit breaker state change");
        metrics::counter!(crate::telemetry::BREAKER_TRANSITIONS, "breaker" => self.shared.name.to_string(), "to" => label)
            .increment(1);
        inner.state = to;
        inner.probes_in_flight = 0;
        inner.probe_successes = 0;
        if to == CircuitState::Closed {
            inner.consecutive = 0;
            inner.window.clear();
            inner.window_failures = 0;
        }
    }

    /// Ask to make a call. `Err` (unavailable, with `retry_after` when the
    /// breaker knows when it will probe again) means do not call the peer.
    /// Report the outcome on the permit; dropping it unreported counts as
    /// neither success nor failure.
    pub fn try_acquire(&self) -> Result<BreakerPermit> {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        match inner.state {
            CircuitState::Closed => Ok(BreakerPermit::new(self.clone(), false)),
            CircuitState::Open { until } => {
                let wait = (until - self.shared.clock.now())
                    .to_std()
                    .unwrap_or_default();
                Err(
                    Error::unavailable(format!("circuit breaker `{}` is open", self.shared.name))
                        .with_retry_after(Some(wait)),
                )
            }
            CircuitState::HalfOpen => {
                if inner.probes_in_flight >= self.shared.config.half_open_probes.max(1) {
                    return Err(Error::unavailable(format!(
                        "circuit breaker `{}` is half-open and its probe is in flight",
                        self.shared.name
                    )));
                }
                inner.probes_in_flight += 1;
                Ok(BreakerPermit::new(self.clone(), true))
            }
        }
    }

    /// Run `call` through the breaker. Errors for which `is_failure` is true
    /// count against the peer (by default: retryable errors, which mean the
    /// peer is struggling; a 4xx-style error says nothing about its health).
    pub async fn call<T, F>(&self, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let permit = self.try_acquire()?;
        let result = call.await;
        match &result {
            Err(e) if e.is_retryable() || e.kind() == crate::ErrorKind::Internal => {
                permit.failure();
            }
            _ => permit.success(),
        }
        result
    }

    fn record(&self, probe: bool, ok: bool) {
        let mut inner = self.lock();
        let now = self.shared.clock.now();
        if probe {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
        match inner.state {
            CircuitState::HalfOpen if probe => {
                if ok {
                    inner.probe_successes += 1;
                    if inner.probe_successes >= self.shared.config.probes_to_close.max(1) {
                        self.transition(&mut inner, CircuitState::Closed);
                    }
                } else {
                    self.open(&mut inner, now);
                }
            }
            CircuitState::Closed => {
                inner.consecutive = if ok { 0 } else { inner.consecutive + 1 };
                inner.window.push_back((now, ok));
                if !ok {
                    inner.window_failures += 1;
                }
                let horizon = now
                    - chrono::Duration::from_std(self.shared.config.window)
                        .unwrap_or(chrono::Duration::MAX);
                while inner.window.front().is_some_and(|(at, _)| *at < horizon)
                    || inner.window.len() > MAX_WINDOW_ENTRIES
                {
                    if inner.window.pop_front().is_some_and(|(_, ok)| !ok) {
                        inner.window_failures -= 1;
                    }
                }
                let calls = inner.window.len();
                let failures = inner.window_failures;
                debug_assert_eq!(failures, inner.window.iter().filter(|(_, ok)| !ok).count());
                #[allow(clippy::cast_precision_loss)]
                let ratio_tripped = calls >= self.shared.config.min_calls as usize
                    && calls > 0
                    && failures as f64 / calls as f64 >= self.shared.config.failure_ratio;
                if !ok
                    && (inner.consecutive >= self.shared.config.consecutive_failures.max(1)
                        || ratio_tripped)
                {
                    self.open(&mut inner, now);
                }
            }
            // Late outcomes of calls started before the breaker opened.
            _ => {}
        }
    }

    fn open(&self, inner: &mut Inner, now: DateTime<Utc>) {
        let until =
            now + chrono::Duration::from_std(self.shared.config.open_for).unwrap_or_default();
        self.transition(inner, CircuitState::Open { until });
    }

    /// Force the breaker closed (an operator's manual reset).
    pub fn reset(&self) {
        let mut inner = self.lock();
        self.transition(&mut inner, CircuitState::Closed);
    }
}

/// Permission for one call; report its outcome with [`BreakerPermit::success`]
/// or [`BreakerPermit::failure`].
#[must_use = "report the call's outcome on the permit"]
pub struct BreakerPermit {
    breaker: CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("breaker", &self.breaker.shared.name)
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

impl BreakerPermit {
    fn new(breaker: CircuitBreaker, probe: bool) -> Self {
        Self {
            breaker,
            probe,
            reported: false,
        }
    }

    /// The call succeeded.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, true);
    }

    /// The call failed in a way that says the peer is unwell.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            let mut inner = self.breaker.lock();
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn breaker(config: BreakerConfig) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::at_unix_millis(1_000_000);
        (
            CircuitBreaker::with_clock("t", config, Arc::new(clock.clone())),
            clock,
        )
    }

    #[test]
    fn opens_on_consecutive_failures_and_success_resets_the_count() {
        let (b, _) = breaker(BreakerConfig {
            consecutive_failures: 3,
            min_calls: 1_000,
            ..Default::default()
        });
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), CircuitState::Closed);
        b.try_acquire().unwrap().failure();
        assert!(matches!(b.state(), CircuitState::Open { .. }));
        let err = b.try_acquire().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable);
    }

    #[test]
    fn opens_on_failure_ratio_in_window() {
        let (b, clock) = breaker(BreakerConfig {
            consecutive_failures: 100,
            failure_ratio: 0.5,
            min_calls: 4,
            window: Duration::from_secs(10),
            ..Default::default()
        });
        // Old failures fall out of the window.
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(11));
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), CircuitState::Closed);
        b.try_acquire().unwrap().failure(); // 2 of 4 in the window
        assert!(matches!(b.state(), CircuitState::Open { .. }));
    }

    #[test]
    fn half_open_allows_one_probe_and_a_failed_probe_reopens() {
        let (b, clock) = breaker(BreakerConfig {
            consecutive_failures: 1,
            open_for: Duration::from_secs(5),
            ..Default::default()
        });
        b.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(5));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "second probe refused");
        probe.failure();
        assert!(matches!(b.state(), CircuitState::Open { .. }));
        clock.advance(Duration::from_secs(5));
        // A dropped, unreported probe frees its slot.
        drop(b.try_acquire().unwrap());
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn call_counts_only_peer_failures() {
        let (b, _) = breaker(BreakerConfig {
            consecutive_failures: 1,
            ..Default::default()
        });
        let r: Result<()> = b
            .call(async { Err(Error::invalid_input("bad request")) })
            .await;
        assert!(r.is_err());
        assert_eq!(b.state(), CircuitState::Closed);
        let r: Result<()> = b.call(async { Err(Error::unavailable("503")) }).await;
        assert!(r.is_err());
        assert!(matches!(b.state(), CircuitState::Open { .. }));
        let r: Result<()> = b.call(async { Ok(()) }).await;
        assert!(r.unwrap_err().to_string().contains("is open"));
        b.reset();
        assert_eq!(b.state(), CircuitState::Closed);
    }
}
