//! The NATS JetStream producer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{Shared, delayed_subject, nats_error, to_headers};
use crate::{
    Error, Message, Producer, ProducerOptions, Result, headers, record_published, unix_millis_due,
};

/// Publishes with JetStream publish acks.
pub struct NatsProducer {
    shared: Arc<Shared>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
}

impl std::fmt::Debug for NatsProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsProducer")
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl NatsProducer {
    pub(super) fn new(shared: Arc<Shared>, options: &ProducerOptions) -> Self {
        Self {
            shared,
            in_flight: Arc::new(Semaphore::new(options.max_in_flight)),
            max_in_flight: options.max_in_flight,
        }
    }
}

#[async_trait]
impl Producer for NatsProducer {
    async fn send(&self, topic: &str, message: Message) -> Result<()> {
        self.send_batch(topic, vec![message]).await
    }

    async fn send_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        self.shared.ensure_stream(topic).await?;
        for chunk in messages.chunks(self.max_in_flight.max(1)) {
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            let _permits = self
                .in_flight
                .acquire_many(n)
                .await
                .map_err(|_| Error::unavailable("producer closed"))?;
            // Publish everything, then await the acks.
            let mut acks = Vec::with_capacity(chunk.len());
            for message in chunk {
                let ack = self
                    .shared
                    .js
                    .publish_with_headers(
                        topic.to_owned(),
                        to_headers(message, &[]),
                        message.payload.clone(),
                    )
                    .await
                    .map_err(|e| nats_error(&e, "publishing"))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await
                    .map_err(|e| nats_error(&e, "awaiting a publish ack"))?;
            }
            record_published("nats", topic, chunk.len() as u64);
        }
        Ok(())
    }

    async fn send_delayed(&self, topic: &str, message: Message, delay: Duration) -> Result<()> {
        let subject = delayed_subject(topic);
        self.shared.ensure_stream(topic).await?;
        self.shared.ensure_stream(&subject).await?;
        let due = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        self.shared
            .publish(
                &subject,
                &message,
                &[(headers::NOT_BEFORE, unix_millis_due(due).to_string())],
            )
            .await?;
        record_published("nats", topic, 1);
        Ok(())
    }
}
