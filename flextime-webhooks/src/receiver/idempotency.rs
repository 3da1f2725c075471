//! Replay protection: have we accepted this delivery before?

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use flextime_core::{Result, SharedClock, SystemClock};

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// First sighting: the key is now reserved for this request.
    New,
    /// Already accepted: answer 2xx and do not hand off again.
    Done,
    /// Another request with this key is being processed right now.
    InProgress,
}

/// Remembers idempotency keys for at least as long as providers retry.
///
/// The protocol is reserve -> complete or release, so a request whose
/// hand-off fails does not mark its key as seen (the provider's retry must
/// go through), and two concurrent deliveries of one event hand off once.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync + fmt::Debug {
    /// Reserve `key` (scoped by `source`) for `lease`, or report it seen.
    async fn begin(&self, source: &str, key: &str, lease: Duration) -> Result<Begin>;
    /// The event is in durable hands: remember `key` for `ttl`.
    async fn complete(&self, source: &str, key: &str, ttl: Duration) -> Result<()>;
    /// The hand-off failed: forget the reservation.
    async fn release(&self, source: &str, key: &str) -> Result<()>;
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Reserved { until_ms: i64 },
    Done { until_ms: i64 },
}

/// An in-memory [`IdempotencyStore`] with a bounded number of keys (the
/// oldest-expiring are evicted first when full). It forgets everything on
/// restart; use the `db` feature's store for durable replay protection.
pub struct MemoryIdempotencyStore {
    clock: SharedClock,
    capacity: usize,
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl fmt::Debug for MemoryIdempotencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryIdempotencyStore")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl MemoryIdempotencyStore {
    /// A store remembering at most `capacity` keys, on the system clock.
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, std::sync::Arc::new(SystemClock))
    }

    /// A store on a given clock.
    pub fn with_clock(capacity: usize, clock: SharedClock) -> Self {
        Self {
            clock,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys are held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(&self, source: &str, key: &str, lease: Duration) -> Result<Begin> {
        let now = self.clock.unix_millis();
        let mut entries = self.lock();
        let k = (source.to_owned(), key.to_owned());
        match entries.get(&k) {
            Some(Entry::Done { until_ms }) if *until_ms > now => return Ok(Begin::Done),
            Some(Entry::Reserved { until_ms }) if *until_ms > now => return Ok(Begin::InProgress),
            _ => {}
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, e| match e {
                Entry::Reserved { until_ms } | Entry::Done { until_ms } => *until_ms > now,
            });
            if entries.len() >= self.capacity {
                // Still full of live keys: evict the one expiring soonest.
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| match e {
                        Entry::Reserved { until_ms } | Entry::Done { until_ms } => *until_ms,
                    })
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            k,
            Entry::Reserved {
                until_ms: now.saturating_add(millis(lease)),
            },
        );
        Ok(Begin::New)
    }

    async fn complete(&self, source: &str, key: &str, ttl: Duration) -> Result<()> {
        let now = self.clock.unix_millis();
        self.lock().insert(
            (source.to_owned(), key.to_owned()),
            Entry::Done {
                until_ms: now.saturating_add(millis(ttl)),
            },
        );
        Ok(())
    }

    async fn release(&self, source: &str, key: &str) -> Result<()> {
        let mut entries = self.lock();
        let k = (source.to_owned(), key.to_owned());
        if matches!(entries.get(&k), Some(Entry::Reserved { .. })) {
            entries.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flextime_core::ManualClock;
    use std::sync::Arc;

    #[tokio::test]
    async fn reserve_complete_release_and_expiry() {
        let clock = ManualClock::at_unix_millis(0);
        let store = MemoryIdempotencyStore::with_clock(10, Arc::new(clock.clone()));
        let lease = Duration::from_secs(30);
        assert_eq!(store.begin("s", "k", lease).await.unwrap(), Begin::New);
        assert_eq!(
            store.begin("s", "k", lease).await.unwrap(),
            Begin::InProgress
        );
        assert_eq!(store.begin("other", "k", lease).await.unwrap(), Begin::New);
        store.release("s", "k").await.unwrap();
        assert_eq!(store.begin("s", "k", lease).await.unwrap(), Begin::New);
        store
            .complete("s", "k", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.begin("s", "k", lease).await.unwrap(), Begin::Done);
        // Release after completion does not forget the key.
        store.release("s", "k").await.unwrap();
        assert_eq!(store.begin("s", "k", lease).await.unwrap(), Begin::Done);
        clock.advance(Duration::from_secs(61));
        assert_eq!(store.begin("s", "k", lease).await.unwrap(), Begin::New);
    }

    #[tokio::test]
    async fn an_abandoned_reservation_expires() {
        let clock = ManualClock::at_unix_millis(0);
        let store = MemoryIdempotencyStore::with_clock(10, Arc::new(clock.clone()));
        store.begin("s", "k", Duration::from_secs(5)).await.unwrap();
        clock.advance(Duration::from_secs(6));
        assert_eq!(
            store.begin("s", "k", Duration::from_secs(5)).await.unwrap(),
            Begin::New
        );
    }

    #[tokio::test]
    async fn bounded() {
        let clock = ManualClock::at_unix_millis(0);
        let store = MemoryIdempotencyStore::with_clock(3, Arc::new(clock.clone()));
        for i in 0..10 {
            store
                .begin("s", &i.to_string(), Duration::from_secs(60))
                .await
                .unwrap();
            store
                .complete("s", &i.to_string(), Duration::from_secs(60 + i))
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 3);
        // The newest keys (longest-lived) survive.
        assert_eq!(
            store.begin("s", "9", Duration::from_secs(1)).await.unwrap(),
            Begin::Done
        );
    }
}
