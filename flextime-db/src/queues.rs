//! The outbox relay's publisher over any flextime-queues [`Producer`]
//! (cargo feature `queues`).
//!
//! Each outbox row becomes one message: the row id is the message id (so
//! consumers can de-duplicate the redeliveries at-least-once allows), the
//! payload is the row's JSON payload, and the key and headers are carried
//! over. A row is marked sent only after the producer confirmed the send.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use flextime_db::queues::QueuePublisher;
//! use flextime_db::stores::{OutboxMessage, OutboxStore};
//! use flextime_queues::{ConsumerOptions, ProducerOptions};
//!
//! let db = flextime_db::connect("sqlite::memory:", Default::default()).await.unwrap();
//! let broker = flextime_queues::connect("memory://").await.unwrap();
//! let mut consumer = broker.consumer(ConsumerOptions::new("bookings", "mailer")).await.unwrap();
//! let publisher = QueuePublisher::new(broker.producer(ProducerOptions::default()).await.unwrap());
//!
//! let outbox = OutboxStore::new(db);
//! let id = outbox.append(&OutboxMessage::new("bookings", serde_json::json!({"n": 1}))).await.unwrap();
//! assert_eq!(outbox.relay_once(&publisher, 100).await.unwrap().published, 1);
//! let delivery = consumer.next().await.unwrap().unwrap();
//! assert_eq!(delivery.message().id, id);
//! delivery.ack().await.unwrap();
//! # });
//! ```

use flextime_core::Result;
use flextime_queues::{Message, Producer};

use crate::stores::{OutboxEntry, OutboxPublisher};

/// An [`OutboxPublisher`] sending each row with a flextime-queues
/// [`Producer`] to the row's topic.
pub struct QueuePublisher {
    producer: Box<dyn Producer>,
}

impl std::fmt::Debug for QueuePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePublisher").finish_non_exhaustive()
    }
}

impl QueuePublisher {
    /// Publish with `producer`.
    pub fn new(producer: Box<dyn Producer>) -> Self {
        Self { producer }
    }

    /// The message a row becomes.
    pub fn message(entry: &OutboxEntry) -> Result<Message> {
        let mut message = Message::json(&entry.message.payload)?;
        message.id.clone_from(&entry.id);
        message.key.clone_from(&entry.message.key);
        message.timestamp = entry.created_at;
        for (name, value) in &entry.message.headers {
            message = message.with_header(name, value);
        }
        Ok(message)
    }

    /// Wait for everything sent to be confirmed and release the producer.
    pub async fn close(&self) -> Result<()> {
        self.producer.close().await
    }
}

#[async_trait::async_trait]
impl OutboxPublisher for QueuePublisher {
    async fn publish(&self, entry: &OutboxEntry) -> Result<()> {
        let message = Self::message(entry)?;
        self.producer.send(&entry.message.topic, message).await
    }
}
