//! [`IdempotencyStore`]: remember which keys were seen and what they produced.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::{Error, Result, SharedClock, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Adapter;

/// What is stored per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// When the key was first seen.
    pub first_seen: DateTime<Utc>,
    /// When the current claim was taken (for in-progress keys).
    pub claimed_at: DateTime<Utc>,
    /// The stored result, once the work is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// The outcome of [`IdempotencyStore::claim`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First time (or a stale claim taken over): do the work, then
    /// [`IdempotencyStore::complete`] (or [`IdempotencyStore::release`] on failure).
    New,
    /// Someone else is working on it right now.
    InProgress {
        /// When the key was first seen.
        first_seen: DateTime<Utc>,
    },
    /// Done before: here is the stored result.
    Done(IdempotencyRecord),
}

/// Idempotency keys in the adapter's key-value space (`idem/<key>`), with a
/// TTL; claims use compare-and-set, so of N concurrent claimants exactly one
/// gets [`Claim::New`]. A claim older than the claim timeout (its holder
/// crashed) can be taken over.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flextime_db::{connect, stores::{Claim, IdempotencyStore}, DbOptions};
/// use std::time::Duration;
///
/// let store = IdempotencyStore::new(connect("sqlite::memory:", DbOptions::default()).await.unwrap(), Duration::from_secs(86_400));
/// assert_eq!(store.claim("evt_1").await.unwrap(), Claim::New);
/// store.complete("evt_1", serde_json::json!({"status": 202})).await.unwrap();
/// let Claim::Done(record) = store.claim("evt_1").await.unwrap() else { panic!() };
/// assert_eq!(record.result.unwrap()["status"], 202);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    adapter: Arc<dyn Adapter>,
    ttl: Duration,
    claim_timeout: Duration,
    clock: SharedClock,
}

impl IdempotencyStore {
    /// Keys live for `ttl` after their last write; claims time out after 5 minutes.
    pub fn new(adapter: Arc<dyn Adapter>, ttl: Duration) -> Self {
        Self {
            adapter,
            ttl,
            claim_timeout: Duration::from_secs(300),
            clock: Arc::new(SystemClock),
        }
    }

    /// Set how long an unfinished claim blocks others.
    #[must_use]
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }

    /// Set the clock used for claim ages.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn key(key: &str) -> String {
        format!("idem/{key}")
    }

    fn encode(record: &IdempotencyRecord) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(record)?)
    }

    fn decode(bytes: &[u8]) -> Result<IdempotencyRecord> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::internal(format!("stored idempotency record: {e}")))
    }

    /// Claim `key`: see [`Claim`].
    pub async fn claim(&self, key: &str) -> Result<Claim> {
        let k = Self::key(key);
        for _ in 0..8 {
            let now = self.clock.now();
            match self.adapter.kv_get(&k).await? {
                None => {
                    let record = IdempotencyRecord {
                        first_seen: now,
                        claimed_at: now,
                        result: None,
                    };
                    let bytes = Self::encode(&record)?;
                    if self
                        .adapter
                        .kv_compare_and_set(&k, None, &bytes, Some(self.ttl))
                        .await?
                        .is_some()
                    {
                        return Ok(Claim::New);
                    }
                }
                Some(entry) => {
                    let record = Self::decode(&entry.value)?;
                    if record.result.is_some() {
                        return Ok(Claim::Done(record));
                    }
                    let age = (now - record.claimed_at).to_std().unwrap_or_default();
                    if age < self.claim_timeout {
                        return Ok(Claim::InProgress {
                            first_seen: record.first_seen,
                        });
                    }
                    let taken = IdempotencyRecord {
                        claimed_at: now,
                        ..record
                    };
                    let bytes = Self::encode(&taken)?;
                    if self
                        .adapter
                        .kv_compare_and_set(&k, Some(entry.version), &bytes, Some(self.ttl))
                        .await?
                        .is_some()
                    {
                        return Ok(Claim::New);
                    }
                }
            }
        }
        Err(Error::unavailable(format!(
            "idempotency key {key:?} is contended; retry"
        )))
    }

    /// Store the result of the work for `key` (keeping when it was first seen).
    pub async fn complete(&self, key: &str, result: Value) -> Result<()> {
        let k = Self::key(key);
        let now = self.clock.now();
        let first_seen = match self.adapter.kv_get(&k).await? {
            Some(entry) => Self::decode(&entry.value)?.first_seen,
            None => now,
        };
        let record = IdempotencyRecord {
            first_seen,
            claimed_at: now,
            result: Some(result),
        };
        self.adapter
            .kv_set(&k, &Self::encode(&record)?, Some(self.ttl))
            .await
            .map(drop)
    }

    /// Give up a claim (the work failed and may be retried).
    pub async fn release(&self, key: &str) -> Result<()> {
        self.adapter.kv_delete(&Self::key(key)).await.map(drop)
    }

    /// What is stored for `key`, if anything.
    pub async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        self.adapter
            .kv_get(&Self::key(key))
            .await?
            .map(|e| Self::decode(&e.value))
            .transpose()
    }
}
