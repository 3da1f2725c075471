//! [`Clock`]: the time source, injectable so tests control time.
//!
//! ```
//! use flextime_core::{Clock, ManualClock};
//! use std::time::Duration;
//!
//! let clock = ManualClock::at_unix_millis(1_700_000_000_000);
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(clock.now().timestamp_millis(), 1_700_000_005_000);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Milliseconds since the Unix epoch.
    fn unix_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The real system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock set to `time`.
    pub fn new(time: DateTime<Utc>) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(time.timestamp_micros())),
        }
    }

    /// A clock set to `millis` after the Unix epoch.
    pub fn at_unix_millis(millis: i64) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(millis.saturating_mul(1000))),
        }
    }

    /// Move time forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Set the time (it may go backwards, to test clock skew).
    pub fn set(&self, time: DateTime<Utc>) {
        self.micros.store(time.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// A shared, dynamically chosen clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a [`SharedClock`].
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_unix_millis(1_000);
        let other = clock.clone();
        assert_eq!(clock.unix_millis(), 1_000);
        other.advance(Duration::from_millis(250));
        assert_eq!(clock.unix_millis(), 1_250);
        clock.set(DateTime::from_timestamp_millis(10).unwrap());
        assert_eq!(other.unix_millis(), 10);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.unix_millis() > 1_577_836_800_000);
    }
}
