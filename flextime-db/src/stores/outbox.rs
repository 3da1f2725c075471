//! [`OutboxStore`]: the transactional outbox and its relay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::{Error, ErrorKind, Result, SharedClock, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Adapter, Expect, WriteOp};

/// A message to publish once the write it belongs to commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Where to publish (a topic, queue or subject).
    pub topic: String,
    /// The partition / routing key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The payload (for example a CloudEvent in structured JSON).
    pub payload: Value,
    /// Message headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl OutboxMessage {
    /// A message for `topic` with `payload`.
    pub fn new(topic: impl Into<String>, payload: Value) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            payload,
            headers: BTreeMap::new(),
        }
    }

    /// Set the routing key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Add a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// An unsent row, as handed to the publisher.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The row id (a UUIDv7; use it as the message id for de-duplication).
    pub id: String,
    /// Its position in the outbox.
    pub seq: u64,
    /// The message.
    pub message: OutboxMessage,
    /// When it was appended.
    pub created_at: DateTime<Utc>,
    /// Failed publish attempts so far.
    pub attempts: u32,
}

/// Publishes outbox rows. With the `queues` feature,
/// `flextime_db::queues::QueuePublisher` publishes to any flextime-queues
/// `Producer`.
#[async_trait::async_trait]
pub trait OutboxPublisher: Send + Sync {
    /// Publish one row; `Ok` means the broker has it.
    async fn publish(&self, entry: &OutboxEntry) -> Result<()>;
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Rows published and marked sent.
    pub published: usize,
    /// Whether the pass stopped at a row that failed to publish (it is
    /// retried first next time).
    pub failed: bool,
    /// Whether another relay held the lease, so this pass did nothing.
    pub busy: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Failure {
    attempts: u32,
    last_error: String,
}

/// The transactional outbox over any adapter: rows are records of one
/// collection (default `_ft_outbox`), appended with [`OutboxStore::append_op`]
/// inside the same [`Adapter::write`] (or [`crate::Transaction`]) as the
/// business change, so the message exists if and only if the change
/// committed.
///
/// The relay ([`OutboxStore::relay_once`]) takes a lease (compare-and-set
/// with a TTL) so one relay works at a time, reads the outbox's change feed
/// from its saved cursor, publishes rows in append order, and marks each
/// sent by replacing it with a tombstone. A failed row stops the pass (so
/// order holds) and its attempt count and last error are kept; it is
/// retried first on the next pass. Delivery is at least once: a crash
/// between publishing and marking sent publishes the row again.
#[derive(Debug, Clone)]
pub struct OutboxStore {
    adapter: Arc<dyn Adapter>,
    collection: String,
    owner: String,
    lease: Duration,
    clock: SharedClock,
}

impl OutboxStore {
    /// An outbox in collection `_ft_outbox`, with a 30 s relay lease.
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        Self {
            adapter,
            collection: "_ft_outbox".into(),
            owner: uuid::Uuid::new_v4().to_string(),
            lease: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }

    /// Use another collection (one per outbox).
    #[must_use]
    pub fn with_collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    /// Set the relay lease (how long a crashed relay blocks others).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Set the clock for `created_at`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The collection holding the rows.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    fn kv(&self, what: &str) -> String {
        format!("outbox/{}/{what}", super::part(&self.collection))
    }

    /// The write that appends `message`: put it in the same
    /// [`Adapter::write`] call or transaction as the business change.
    pub fn append_op(&self, message: &OutboxMessage) -> Result<WriteOp> {
        let mut data = serde_json::to_value(message)?;
        if let Value::Object(map) = &mut data {
            map.insert("created_at".into(), serde_json::to_value(self.clock.now())?);
        }
        Ok(
            WriteOp::upsert(&self.collection, uuid::Uuid::now_v7().to_string(), data)
                .expect(Expect::Absent),
        )
    }

    /// Append a message on its own; returns the row id.
    pub async fn append(&self, message: &OutboxMessage) -> Result<String> {
        let op = self.append_op(message)?;
        let id = op.id().to_owned();
        self.adapter.write(vec![op]).await?;
        Ok(id)
    }

    /// How many publish attempts of row `id` failed so far.
    pub async fn attempts(&self, id: &str) -> Result<u32> {
        Ok(self.failure(id).await?.map_or(0, |f| f.attempts))
    }

    async fn failure(&self, id: &str) -> Result<Option<Failure>> {
        match self.adapter.kv_get(&self.kv(&format!("fail/{id}"))).await? {
            Some(e) => Ok(serde_json::from_slice(&e.value).ok()),
            None => Ok(None),
        }
    }

    async fn cursor(&self) -> Result<u64> {
        Ok(match self.adapter.kv_get(&self.kv("cursor")).await? {
            Some(e) => String::from_utf8_lossy(&e.value).parse().unwrap_or(0),
            None => 0,
        })
    }

    async fn take_lease(&self) -> Result<Option<u64>> {
        let key = self.kv("lease");
        let owner = self.owner.as_bytes();
        if let Some(v) = self
            .adapter
            .kv_compare_and_set(&key, None, owner, Some(self.lease))
            .await?
        {
            return Ok(Some(v));
        }
        match self.adapter.kv_get(&key).await? {
            Some(e) if e.value == owner => Ok(self
                .adapter
                .kv_compare_and_set(&key, Some(e.version), owner, Some(self.lease))
                .await?),
            _ => Ok(None),
        }
    }

    /// Publish up to `limit` unsent rows in order; see the type docs.
    pub async fn relay_once(
        &self,
        publisher: &dyn OutboxPublisher,
        limit: usize,
    ) -> Result<RelayReport> {
        let mut report = RelayReport::default();
        let Some(lease_version) = self.take_lease().await? else {
            report.busy = true;
            return Ok(report);
        };
        let result = self.relay_pass(publisher, limit, &mut report).await;
        let key = self.kv("lease");
        // Release only our own lease.
        if let Some(e) = self.adapter.kv_get(&key).await?
            && e.version == lease_version
            && e.value == self.owner.as_bytes()
        {
            self.adapter.kv_delete(&key).await?;
        }
        result.map(|()| report)
    }

    async fn relay_pass(
        &self,
        publisher: &dyn OutboxPublisher,
        limit: usize,
        report: &mut RelayReport,
    ) -> Result<()> {
        let mut cursor = self.cursor().await?;
        let start = cursor;
        // The feed has one entry per change: a row's append (an upsert) and,
        // once sent, its tombstone. Only rows still live at the version
        // appended are due (a row whose append is re-read after a crash may
        // already have been sent).
        let page = self
            .adapter
            .changes(&self.collection, cursor, limit)
            .await?;
        let appended: Vec<String> = page
            .iter()
            .filter(|r| !r.is_deleted())
            .map(|r| r.id.clone())
            .collect();
        let current: std::collections::HashMap<String, crate::Record> = self
            .adapter
            .get_many(&self.collection, &appended)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        for record in page {
            let due = !record.is_deleted()
                && current
                    .get(&record.id)
                    .is_some_and(|c| !c.is_deleted() && c.version == record.version);
            if !due {
                cursor = record.seq;
                continue;
            }
            let data = record.data.clone().unwrap_or(Value::Null);
            let created_at = data
                .get("created_at")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or(record.updated_at);
            let message: OutboxMessage = serde_json::from_value(data)
                .map_err(|e| Error::internal(format!("outbox row {}: {e}", record.id)))?;
            let previous = self.failure(&record.id).await?;
            let entry = OutboxEntry {
                id: record.id.clone(),
                seq: record.seq,
                message,
                created_at,
                attempts: previous.as_ref().map_or(0, |f| f.attempts),
            };
            match publisher.publish(&entry).await {
                Ok(()) => {
                    match self
                        .adapter
                        .delete(
                            &self.collection,
                            &record.id,
                            Expect::Version(record.version),
                        )
                        .await
                    {
                        Ok(_) => {}
                        // Changed under us (another relay after our lease expired): rescan next time.
                        Err(e) if e.kind() == ErrorKind::Conflict => break,
                        Err(e) => return Err(e),
                    }
                    if previous.is_some() {
                        self.adapter
                            .kv_delete(&self.kv(&format!("fail/{}", record.id)))
                            .await?;
                    }
                    report.published += 1;
                    cursor = record.seq;
                }
                Err(e) => {
                    let failure = Failure {
                        attempts: entry.attempts + 1,
                        last_error: e.to_string(),
                    };
                    self.adapter
                        .kv_set(
                            &self.kv(&format!("fail/{}", record.id)),
                            &serde_json::to_vec(&failure)?,
                            None,
                        )
                        .await?;
                    tracing::warn!(outbox = %self.collection, row = %record.id, error = %e, "outbox publish failed");
                    report.failed = true;
                    break;
                }
            }
        }
        if cursor != start {
            self.adapter
                .kv_set(&self.kv("cursor"), cursor.to_string().as_bytes(), None)
                .await?;
            // Retention: sent rows and their log entries behind the cursor go.
            self.adapter
                .purge_tombstones(&self.collection, cursor)
                .await?;
            self.adapter.prune_changes(&self.collection, cursor).await?;
        }
        Ok(())
    }

    /// Relay until `shutdown` resolves: a pass, then (when nothing was
    /// published) a pause of `idle`.
    pub async fn run(
        &self,
        publisher: &dyn OutboxPublisher,
        idle: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.run_with_wakeup(publisher, idle, &mut NoWakeup, shutdown)
            .await
    }

    /// Like [`OutboxStore::run`], but an idle relay also wakes as soon as
    /// `wakeup` says rows may be waiting (for example a PostgreSQL
    /// `LISTEN`, see `flextime_db::postgres::ChangeListener`), so `idle` can
    /// be long: it only bounds how late a missed wake-up is noticed.
    pub async fn run_with_wakeup(
        &self,
        publisher: &dyn OutboxPublisher,
        idle: Duration,
        wakeup: &mut dyn Wakeup,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let report = match self.relay_once(publisher, 500).await {
                Ok(r) => r,
                Err(e) if e.is_retryable() => RelayReport {
                    failed: true,
                    ..RelayReport::default()
                },
                Err(e) => return Err(e),
            };
            if report.published == 0 || report.failed {
                let waited = tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(idle) => Ok(()),
                    woken = wakeup.wait(), if !report.failed => woken,
                };
                if let Err(e) = waited {
                    // A broken wake-up source: fall back to polling for this round.
                    tracing::debug!(outbox = %self.collection, error = %e, "outbox wake-up failed");
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(idle.min(Duration::from_secs(1))) => {}
                    }
                }
            }
        }
    }
}

/// Wakes an idle relay (or a feed reader) when new changes may be there.
#[async_trait::async_trait]
pub trait Wakeup: Send {
    /// Wait until changes may be waiting. Spurious wake-ups are fine; an
    /// error makes the caller fall back to polling for a while.
    async fn wait(&mut self) -> Result<()>;
}

/// Never wakes: plain polling.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWakeup;

#[async_trait::async_trait]
impl Wakeup for NoWakeup {
    async fn wait(&mut self) -> Result<()> {
        std::future::pending().await
    }
}
