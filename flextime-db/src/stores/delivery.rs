//! [`DeliveryLog`]: the attempts of outbound webhook deliveries.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use flextime_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::{Adapter, Expect};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet delivered; more attempts may follow.
    Pending,
    /// The endpoint accepted it.
    Succeeded,
    /// Given up (retries exhausted, endpoint disabled, or dead-lettered).
    Failed,
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The HTTP status, if a response came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error, if it failed (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery id.
    pub id: String,
    /// The endpoint (its id or URL without credentials).
    pub endpoint: String,
    /// The event delivered.
    pub event_id: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// When the next attempt is due (pending deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The latest attempts, oldest first (at most [`DeliveryLog::MAX_ATTEMPTS_KEPT`]).
    pub attempts: Vec<DeliveryAttempt>,
}

/// Deliveries as records of one collection (default `_ft_deliveries`),
/// updated with version preconditions so concurrent recorders never lose an
/// attempt; [`DeliveryLog::since`] follows the collection's change feed.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flextime_db::{connect, stores::{DeliveryAttempt, DeliveryLog, DeliveryState}, DbOptions};
///
/// let log = DeliveryLog::new(connect("sqlite::memory:", DbOptions::default()).await.unwrap());
/// log.start("dlv_1", "ep_1", "evt_1").await.unwrap();
/// let attempt = DeliveryAttempt { attempt: 1, at: chrono::Utc::now(), status: Some(200), error: None, duration_ms: 12 };
/// let d = log.record("dlv_1", attempt, DeliveryState::Succeeded, None).await.unwrap();
/// assert_eq!(d.state, DeliveryState::Succeeded);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    adapter: Arc<dyn Adapter>,
    collection: String,
}

impl DeliveryLog {
    /// Attempts kept per delivery (older ones are dropped).
    pub const MAX_ATTEMPTS_KEPT: usize = 50;

    /// A log in collection `_ft_deliveries`.
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        Self {
            adapter,
            collection: "_ft_deliveries".into(),
        }
    }

    /// Use another collection.
    #[must_use]
    pub fn with_collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    /// Open a pending delivery (idempotent: an existing one is returned as is).
    pub async fn start(&self, id: &str, endpoint: &str, event_id: &str) -> Result<Delivery> {
        let delivery = Delivery {
            id: id.to_owned(),
            endpoint: endpoint.to_owned(),
            event_id: event_id.to_owned(),
            state: DeliveryState::Pending,
            next_attempt_at: None,
            attempts: Vec::new(),
        };
        match self
            .adapter
            .upsert(
                &self.collection,
                id,
                serde_json::to_value(&delivery)?,
                Expect::Absent,
            )
            .await
        {
            Ok(_) => Ok(delivery),
            Err(e) if e.kind() == ErrorKind::Conflict => self
                .get(id)
                .await?
                .ok_or_else(|| Error::conflict(format!("delivery {id:?} changed concurrently"))),
            Err(e) => Err(e),
        }
    }

    /// A delivery.
    pub async fn get(&self, id: &str) -> Result<Option<Delivery>> {
        match self.adapter.get(&self.collection, id).await? {
            Some(r) if !r.is_deleted() => r.data_as().map(Some),
            _ => Ok(None),
        }
    }

    /// Record an attempt and the resulting state. `NotFound` if the delivery
    /// was never started.
    pub async fn record(
        &self,
        id: &str,
        attempt: DeliveryAttempt,
        state: DeliveryState,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<Delivery> {
        for _ in 0..16 {
            let record = match self.adapter.get(&self.collection, id).await? {
                Some(r) if !r.is_deleted() => r,
                _ => {
                    return Err(Error::not_found(format!(
                        "delivery {id:?} was never started"
                    )));
                }
            };
            let mut delivery: Delivery = record.data_as()?;
            delivery.attempts.push(attempt.clone());
            let excess = delivery
                .attempts
                .len()
                .saturating_sub(Self::MAX_ATTEMPTS_KEPT);
            delivery.attempts.drain(..excess);
            delivery.state = state;
            delivery.next_attempt_at = next_attempt_at;
            match self
                .adapter
                .upsert(
                    &self.collection,
                    id,
                    serde_json::to_value(&delivery)?,
                    Expect::Version(record.version),
                )
                .await
            {
                Ok(_) => return Ok(delivery),
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::unavailable(format!(
            "delivery {id:?} is contended; retry"
        )))
    }

    /// Deliveries changed after cursor `after`, with the cursor of each.
    pub async fn since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Delivery)>> {
        self.adapter
            .changes(&self.collection, after, limit)
            .await?
            .into_iter()
            .filter(|r| !r.is_deleted())
            .map(|r| Ok((r.seq, r.data_as()?)))
            .collect()
    }
}
