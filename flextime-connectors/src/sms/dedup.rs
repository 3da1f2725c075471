//! Local de-duplication of sends: [`DedupStore`] and [`MemoryDedupStore`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::{Clock, Error, ErrorKind, Result, SystemClock};

use super::{SmsMessage, SmsReceipt};

/// What [`DedupStore::claim`] found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now held by the caller, who must
    /// [`complete`](DedupStore::complete) or [`release`](DedupStore::release) it.
    Claimed,
    /// A send with this key finished; this is the value it stored.
    Done(String),
    /// Another send holds the key (in flight, or its outcome is unknown).
    Pending,
}

/// Remembers which keyed sends happened, for a while.
///
/// A key moves from absent to claimed ([`claim`](Self::claim)) to done
/// ([`complete`](Self::complete), with the stored value, a JSON receipt), or
/// back to absent ([`release`](Self::release)); every state expires after the
/// TTL it was written with. Implement it over a shared database to
/// de-duplicate across processes.
#[async_trait::async_trait]
pub trait DedupStore: Send + Sync + fmt::Debug {
    /// Atomically claims `key` for `ttl` if it is absent or expired.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim>;

    /// Marks a claimed `key` done with `value`, kept for `ttl`.
    async fn complete(&self, key: &str, value: &str, ttl: Duration) -> Result<()>;

    /// Drops a claim (the send failed and was certainly not made).
    async fn release(&self, key: &str) -> Result<()>;
}

#[derive(Debug)]
enum Entry {
    Pending,
    Done(String),
}

/// An in-memory [`DedupStore`]: entries expire after their TTL (read from an
/// injectable [`Clock`]) and at most `capacity` are kept (the one closest to
/// expiry goes first when full).
pub struct MemoryDedupStore {
    entries: Mutex<HashMap<String, (Entry, DateTime<Utc>)>>,
    clock: Arc<dyn Clock>,
    capacity: usize,
}

impl fmt::Debug for MemoryDedupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDedupStore")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryDedupStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryDedupStore {
    /// A store on the system clock keeping up to 100 000 keys.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A store on `clock` (tests move a `ManualClock`).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            clock,
            capacity: 100_000,
        }
    }

    /// Keeps at most `capacity` keys (at least 1).
    #[must_use]
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Keys currently held (expired ones may still be counted).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expiry(&self, ttl: Duration) -> DateTime<Utc> {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        self.clock
            .now()
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[async_trait::async_trait]
impl DedupStore for MemoryDedupStore {
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim> {
        let now = self.clock.now();
        let expires = self.expiry(ttl);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((entry, until)) = entries.get(key) {
            if *until > now {
                return Ok(match entry {
                    Entry::Pending => Claim::Pending,
                    Entry::Done(value) => Claim::Done(value.clone()),
                });
            }
        }
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key.to_owned(), (Entry::Pending, expires));
        Ok(Claim::Claimed)
    }

    async fn complete(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        let expires = self.expiry(ttl);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), (Entry::Done(value.to_owned()), expires));
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<()> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(entries.get(key), Some((Entry::Pending, _))) {
            entries.remove(key);
        }
        Ok(())
    }
}

/// Sends `message` with `send` at most once per `dedup_key` within `ttl`:
///
/// - no key: `send` runs;
/// - a key seen before: the stored receipt is returned with
///   [`deduplicated`](SmsReceipt::deduplicated) set, and `send` does not run;
/// - a key held by a send in flight (or one that timed out, whose outcome is
///   unknown): a `Conflict` error, so the caller retries later rather than
///   risk a second text;
/// - `send` failed: the claim is released so a retry can send, unless the
///   failure was a timeout (the provider may have sent it), which keeps the
///   key held until `ttl` passes.
pub async fn send_once<F, Fut>(
    store: &dyn DedupStore,
    ttl: Duration,
    message: &SmsMessage,
    send: F,
) -> Result<SmsReceipt>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<SmsReceipt>> + Send,
{
    let Some(key) = message.dedup_key.as_deref() else {
        return send().await;
    };
    match store.claim(key, ttl).await? {
        Claim::Done(stored) => {
            let mut receipt: SmsReceipt = serde_json::from_str(&stored).map_err(|e| {
                Error::internal(format!(
                    "sms: the stored receipt of dedup key {key:?} is unreadable: {e}"
                ))
            })?;
            receipt.deduplicated = true;
            Ok(receipt)
        }
        Claim::Pending => Err(Error::conflict(format!(
            "sms: a send with dedup key {key:?} is in flight or its outcome is unknown"
        ))),
        Claim::Claimed => match send().await {
            Ok(receipt) => {
                let stored = serde_json::to_string(&receipt)
                    .map_err(|e| Error::internal("sms: cannot store a receipt").with_source(e))?;
                store.complete(key, &stored, ttl).await?;
                Ok(receipt)
            }
            Err(e) => {
                if e.kind() != ErrorKind::Timeout {
                    store.release(key).await?;
                }
                Err(e)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::SmsStatus;
    use flextime_core::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn receipt(id: &str) -> SmsReceipt {
        SmsReceipt {
            id: id.into(),
            status: SmsStatus::Queued,
            to: "+14155552671".into(),
            deduplicated: false,
        }
    }

    fn message(key: Option<&str>) -> SmsMessage {
        let m = SmsMessage::new("+14155552671", "+14155550000", "hi");
        match key {
            Some(k) => m.with_dedup_key(k),
            None => m,
        }
    }

    const TTL: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_second_send_with_the_same_key_returns_the_first_receipt() {
        let store = MemoryDedupStore::new();
        let calls = AtomicUsize::new(0);
        let send = |id: &'static str| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(receipt(id))
            }
        };
        let first = send_once(&store, TTL, &message(Some("k")), send("SM1"))
            .await
            .unwrap();
        let second = send_once(&store, TTL, &message(Some("k")), send("SM2"))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!first.deduplicated);
        assert!(second.deduplicated);
        assert_eq!(second.id, "SM1");
        let other = send_once(&store, TTL, &message(Some("k2")), send("SM3"))
            .await
            .unwrap();
        assert_eq!(other.id, "SM3");
        let unkeyed = send_once(&store, TTL, &message(None), send("SM4"))
            .await
            .unwrap();
        assert_eq!(unkeyed.id, "SM4");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn keys_expire_after_their_ttl() {
        let clock = ManualClock::new(Utc::now());
        let store = MemoryDedupStore::with_clock(Arc::new(clock.clone()));
        store.claim("k", TTL).await.unwrap();
        store.complete("k", "{}", TTL).await.unwrap();
        assert!(matches!(
            store.claim("k", TTL).await.unwrap(),
            Claim::Done(_)
        ));
        clock.advance(TTL + Duration::from_secs(1));
        assert_eq!(store.claim("k", TTL).await.unwrap(), Claim::Claimed);
    }

    #[tokio::test]
    async fn a_failed_send_releases_the_key_but_a_timeout_keeps_it() {
        let store = MemoryDedupStore::new();
        let refused = send_once(&store, TTL, &message(Some("a")), || async {
            Err(Error::unauthorized("no"))
        })
        .await
        .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Unauthorized);
        let retried = send_once(&store, TTL, &message(Some("a")), || async {
            Ok(receipt("SM1"))
        })
        .await
        .unwrap();
        assert!(!retried.deduplicated);

        let timeout = send_once(&store, TTL, &message(Some("b")), || async {
            Err(Error::timeout("slow"))
        })
        .await
        .unwrap_err();
        assert_eq!(timeout.kind(), ErrorKind::Timeout);
        let held = send_once(&store, TTL, &message(Some("b")), || async {
            Ok(receipt("SM2"))
        })
        .await
        .unwrap_err();
        assert_eq!(held.kind(), ErrorKind::Conflict);
        assert!(held.to_string().contains("outcome is unknown"), "{held}");
    }

    #[tokio::test]
    async fn a_full_store_drops_the_key_closest_to_expiry() {
        let store = MemoryDedupStore::new().with_capacity(2);
        store.claim("short", Duration::from_secs(1)).await.unwrap();
        store.claim("long1", TTL).await.unwrap();
        store.claim("long2", TTL).await.unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.claim("long1", TTL).await.unwrap(), Claim::Pending);
        assert_eq!(store.claim("short", TTL).await.unwrap(), Claim::Claimed);
    }
}
