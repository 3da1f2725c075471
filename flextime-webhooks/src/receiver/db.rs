//! Durable state in a database (the `db` feature): replay protection that
//! survives restarts and is shared by every replica, and a hand-off into a
//! transactional outbox that a relay publishes from.

use std::sync::Arc;
use std::time::Duration;

use flextime_core::Result;
use flextime_db::Adapter;
use flextime_db::stores::{Claim, IdempotencyStore as DbStore, OutboxMessage, OutboxStore};

use super::event::InboundEvent;
use super::handoff::HandOff;
use super::idempotency::{Begin, IdempotencyStore};

/// Replay protection in any flextime-db [`Adapter`] (SQLite, PostgreSQL,
/// MySQL, MongoDB, Redis): keys are remembered for `ttl` across restarts and
/// replicas; a reservation abandoned by a crashed request expires after
/// `claim_timeout`.
#[derive(Debug, Clone)]
pub struct DbIdempotencyStore {
    store: DbStore,
}

impl DbIdempotencyStore {
    /// Keys kept for `ttl`; reservations taken over after 60 s.
    pub fn new(adapter: Arc<dyn Adapter>, ttl: Duration) -> Self {
        Self {
            store: DbStore::new(adapter, ttl).with_claim_timeout(Duration::from_secs(60)),
        }
    }

    /// Change how long an unfinished reservation blocks a retry.
    #[must_use]
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.store = self.store.with_claim_timeout(timeout);
        self
    }

    fn key(source: &str, key: &str) -> String {
        format!("webhooks/{source}/{key}")
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for DbIdempotencyStore {
    async fn begin(&self, source: &str, key: &str, _lease: Duration) -> Result<Begin> {
        Ok(match self.store.claim(&Self::key(source, key)).await? {
            Claim::New => Begin::New,
            Claim::InProgress { .. } => Begin::InProgress,
            Claim::Done(_) => Begin::Done,
        })
    }

    async fn complete(&self, source: &str, key: &str, _ttl: Duration) -> Result<()> {
        self.store
            .complete(
                &Self::key(source, key),
                serde_json::json!({"accepted": true}),
            )
            .await
    }

    async fn release(&self, source: &str, key: &str) -> Result<()> {
        self.store.release(&Self::key(source, key)).await
    }
}

/// Hands accepted events to a database outbox: the event is committed to
/// the database before the provider gets its 2xx, and an [`OutboxStore`]
/// relay publishes it later (at least once, in order). The outbox message's
/// topic is `topic`, its key the source name, its payload the whole
/// [`InboundEvent`] as JSON.
#[derive(Debug, Clone)]
pub struct OutboxHandOff {
    outbox: OutboxStore,
    topic: String,
}

impl OutboxHandOff {
    /// Append to `outbox` under `topic`.
    pub fn new(outbox: OutboxStore, topic: impl Into<String>) -> Self {
        Self {
            outbox,
            topic: topic.into(),
        }
    }
}

/// The outbox message for an event.
pub fn to_outbox_message(topic: &str, event: &InboundEvent) -> Result<OutboxMessage> {
    Ok(OutboxMessage::new(topic, serde_json::to_value(event)?)
        .with_key(event.source.clone())
        .with_header("ce_id", event.envelope.id())
        .with_header("ce_source", event.envelope.source())
        .with_header("ce_type", event.envelope.event_type()))
}

#[async_trait::async_trait]
impl HandOff for OutboxHandOff {
    async fn hand_off(&self, event: InboundEvent) -> Result<()> {
        let message = to_outbox_message(&self.topic, &event)?;
        self.outbox.append(&message).await.map(|_| ())
    }
}
