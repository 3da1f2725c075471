//! A hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! Each timestamp is `(wall_ms, logical, node)`: the wall time in milliseconds,
//! a counter that orders events within the same millisecond (or while the
//! local clock lags a remote one), and the node id as a tie breaker. A clock
//! never issues the same or a smaller timestamp twice, even if the system
//! clock goes backwards, and [`HybridClock::observe`] folds in timestamps
//! received from other nodes so causally later events always sort later.
//!
//! ```
//! use flextime_core::hlc::HybridClock;
//! use flextime_core::ManualClock;
//! use std::sync::Arc;
//!
//! let wall = ManualClock::at_unix_millis(1_000);
//! let hlc = HybridClock::new(Arc::new(wall.clone()), 7);
//! let a = hlc.now();
//! let b = hlc.now(); // same millisecond: the logical counter moves
//! assert!(b > a);
//! assert_eq!((b.wall_ms, b.logical, b.node), (1_000, 1, 7));
//! // Timestamps have a sortable text form.
//! assert!(b.to_string() > a.to_string());
//! assert_eq!(b.to_string().parse::<flextime_core::hlc::HlcTimestamp>().unwrap(), b);
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::{SharedClock, SystemClock};
use crate::error::Error;

/// One hybrid-logical-clock timestamp. Ordered by wall time, then logical
/// counter, then node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HlcTimestamp {
    /// Milliseconds since the Unix epoch (the largest physical time seen).
    pub wall_ms: u64,
    /// Counter within `wall_ms`.
    pub logical: u32,
    /// Id of the node that issued it.
    pub node: u32,
}

impl HlcTimestamp {
    /// A timestamp from its parts.
    pub const fn new(wall_ms: u64, logical: u32, node: u32) -> Self {
        Self {
            wall_ms,
            logical,
            node,
        }
    }
}

impl fmt::Display for HlcTimestamp {
    /// `WWWWWWWWWWWWWWW-LLLLLLLLLL-NNNNNNNN`: zero-padded so that text order
    /// equals timestamp order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:015}-{:010}-{:08x}",
            self.wall_ms, self.logical, self.node
        )
    }
}

impl FromStr for HlcTimestamp {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            Error::invalid_input(format!(
                "malformed HLC timestamp {s:?}: expected WALL-LOGICAL-NODE"
            ))
        };
        let mut parts = s.splitn(3, '-');
        let wall_ms = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let logical = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let node = parts
            .next()
            .and_then(|p| u32::from_str_radix(p, 16).ok())
            .ok_or_else(bad)?;
        Ok(Self::new(wall_ms, logical, node))
    }
}

impl Serialize for HlcTimestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HlcTimestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A hybrid logical clock for one node. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct HybridClock {
    clock: SharedClock,
    node: u32,
    max_drift: Duration,
    last: Mutex<(u64, u32)>,
}

impl HybridClock {
    /// A clock for `node` reading physical time from `clock`. Remote
    /// timestamps more than 60 s ahead of local time are refused by
    /// [`HybridClock::observe`]; change that with [`HybridClock::with_max_drift`].
    pub fn new(clock: SharedClock, node: u32) -> Self {
        Self {
            clock,
            node,
            max_drift: Duration::from_secs(60),
            last: Mutex::new((0, 0)),
        }
    }

    /// A clock on the system time.
    pub fn system(node: u32) -> Self {
        Self::new(Arc::new(SystemClock), node)
    }

    /// Set how far ahead of local time a remote timestamp may be.
    #[must_use]
    pub fn with_max_drift(mut self, max_drift: Duration) -> Self {
        self.max_drift = max_drift;
        self
    }

    /// This clock's node id.
    pub fn node(&self) -> u32 {
        self.node
    }

    fn physical(&self) -> u64 {
        u64::try_from(self.clock.unix_millis()).unwrap_or(0)
    }

    /// A new timestamp, greater than every one this clock issued or observed.
    pub fn now(&self) -> HlcTimestamp {
        let pt = self.physical();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = if pt > last.0 { (pt, 0) } else { bump(*last) };
        *last = next;
        HlcTimestamp::new(next.0, next.1, self.node)
    }

    /// Fold in a timestamp received from another node and return a new local
    /// timestamp greater than both it and everything issued before.
    ///
    /// Refuses (invalid input) a remote timestamp further ahead of the local
    /// physical time than the configured maximum drift, so a node with a wild
    /// clock cannot drag every other clock into the future.
    pub fn observe(&self, remote: HlcTimestamp) -> Result<HlcTimestamp, Error> {
        let pt = self.physical();
        let drift = remote.wall_ms.saturating_sub(pt);
        if u128::from(drift) > self.max_drift.as_millis() {
            return Err(Error::invalid_input(format!(
                "remote HLC timestamp {remote} is {drift} ms ahead of local time (max {} ms)",
                self.max_drift.as_millis()
            )));
        }
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wall = pt.max(last.0).max(remote.wall_ms);
        let next = if wall == last.0 && wall == remote.wall_ms {
            bump((wall, last.1.max(remote.logical)))
        } else if wall == last.0 {
            bump(*last)
        } else if wall == remote.wall_ms {
            bump((wall, remote.logical))
        } else {
            (wall, 0)
        };
        *last = next;
        Ok(HlcTimestamp::new(next.0, next.1, self.node))
    }
}

/// The next (wall, logical) pair after `at`, carrying into the wall time when
/// the counter is exhausted.
fn bump((wall, logical): (u64, u32)) -> (u64, u32) {
    match logical.checked_add(1) {
        Some(l) => (wall, l),
        None => (wall + 1, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock};
    use proptest::prelude::*;

    #[test]
    fn clock_going_backwards_still_moves_forward() {
        let wall = ManualClock::at_unix_millis(5_000);
        let hlc = HybridClock::new(Arc::new(wall.clone()), 1);
        let a = hlc.now();
        wall.set(chrono::DateTime::from_timestamp_millis(1_000).unwrap());
        let b = hlc.now();
        assert!(b > a);
        assert_eq!(b.wall_ms, 5_000);
    }

    #[test]
    fn observe_refuses_far_future() {
        let hlc = HybridClock::new(Arc::new(ManualClock::at_unix_millis(1_000)), 1)
            .with_max_drift(Duration::from_secs(1));
        let err = hlc.observe(HlcTimestamp::new(10_000, 0, 2)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(hlc.observe(HlcTimestamp::new(1_900, 3, 2)).is_ok());
    }

    #[test]
    fn counter_overflow_carries() {
        assert_eq!(bump((5, u32::MAX)), (6, 0));
    }

    #[test]
    fn malformed_text_is_an_error() {
        for bad in ["", "1", "1-2", "x-1-1", "1-2-zz"] {
            assert!(bad.parse::<HlcTimestamp>().is_err(), "{bad}");
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Advance(u64),
        Rewind(u64),
        Now,
        Observe(u64, u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u64..50).prop_map(Step::Advance),
            (0u64..50).prop_map(Step::Rewind),
            Just(Step::Now),
            ((0u64..2_100), any::<u32>()).prop_map(|(w, l)| Step::Observe(w, l)),
        ]
    }

    proptest! {
        /// Every timestamp issued is strictly greater than the previous one and
        /// than every remote timestamp observed, whatever the wall clock does.
        #[test]
        fn monotonic(steps in proptest::collection::vec(step(), 1..200)) {
            let wall = ManualClock::at_unix_millis(1_000);
            let hlc = HybridClock::new(Arc::new(wall.clone()), 3)
                .with_max_drift(Duration::from_secs(3_600));
            let mut last: Option<HlcTimestamp> = None;
            for s in steps {
                let issued = match s {
                    Step::Advance(ms) => { wall.advance(Duration::from_millis(ms)); None }
                    Step::Rewind(ms) => {
                        let now = wall.now() - chrono::Duration::milliseconds(i64::try_from(ms).unwrap());
                        wall.set(now);
                        None
                    }
                    Step::Now => Some(hlc.now()),
                    Step::Observe(w, l) => {
                        let remote = HlcTimestamp::new(w, l, 9);
                        let ts = hlc.observe(remote).unwrap();
                        prop_assert!(ts > remote, "{ts} not after remote {remote}");
                        Some(ts)
                    }
                };
                if let Some(ts) = issued {
                    if let Some(prev) = last {
                        prop_assert!(ts > prev, "{ts} not after {prev}");
                    }
                    let text_prev = last.map(|p| p.to_string());
                    if let Some(tp) = text_prev {
                        prop_assert!(ts.to_string() > tp);
                    }
                    last = Some(ts);
                }
            }
        }

        #[test]
        fn text_round_trip(w in 0u64..999_999_999_999_999, l in any::<u32>(), n in any::<u32>()) {
            let ts = HlcTimestamp::new(w, l, n);
            prop_assert_eq!(ts.to_string().parse::<HlcTimestamp>().unwrap(), ts);
            let json = serde_json::to_string(&ts).unwrap();
            prop_assert_eq!(serde_json::from_str::<HlcTimestamp>(&json).unwrap(), ts);
        }
    }
}
