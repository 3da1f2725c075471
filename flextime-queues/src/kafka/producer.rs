//! The Kafka producer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureRecord, Producer as _};
use tokio::sync::Semaphore;

use super::{Shared, kafka_error, to_headers};
use crate::{
    Error, Message, Producer, ProducerOptions, Result, headers, record_published, unix_millis,
    unix_millis_due,
};

/// An idempotent producer (`acks=all`); a send returns with the delivery
/// report.
pub struct KafkaProducer {
    shared: Arc<Shared>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl KafkaProducer {
    pub(super) fn new(shared: Arc<Shared>, options: &ProducerOptions) -> Self {
        Self {
            shared,
            in_flight: Arc::new(Semaphore::new(options.max_in_flight)),
            max_in_flight: options.max_in_flight,
        }
    }

    async fn produce_all(
        &self,
        topic: &str,
        messages: &[Message],
        extra: &[(&str, String)],
    ) -> Result<()> {
        self.shared.ensure_topic(topic).await?;
        for chunk in messages.chunks(self.max_in_flight.max(1)) {
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            let _permits = self
                .in_flight
                .acquire_many(n)
                .await
                .map_err(|_| Error::unavailable("producer closed"))?;
            let mut reports = Vec::with_capacity(chunk.len());
            for message in chunk {
                let timestamp = i64::try_from(unix_millis(message.timestamp)).unwrap_or(0);
                let mut record = FutureRecord::to(topic)
                    .payload(message.payload.as_ref())
                    .headers(to_headers(message, 0, extra))
                    .timestamp(timestamp);
                if let Some(key) = &message.key {
                    record = record.key(key.as_bytes());
                }
                loop {
                    match self.shared.producer.send_result(record) {
                        Ok(report) => {
                            reports.push(report);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((e, _)) => return Err(kafka_error(&e, "producing")),
                    }
                }
            }
            for report in reports {
                report
                    .await
                    .map_err(|_| Error::unavailable("Kafka producer went away"))?
                    .map_err(|(e, _)| kafka_error(&e, "producing"))?;
            }
            record_published("kafka", topic, chunk.len() as u64);
        }
        Ok(())
    }
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send(&self, topic: &str, message: Message) -> Result<()> {
        self.produce_all(topic, std::slice::from_ref(&message), &[])
            .await
    }

    async fn send_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        self.produce_all(topic, &messages, &[]).await
    }

    async fn send_delayed(&self, topic: &str, message: Message, delay: Duration) -> Result<()> {
        let due = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        self.produce_all(
            topic,
            std::slice::from_ref(&message),
            &[(headers::NOT_BEFORE, unix_millis_due(due).to_string())],
        )
        .await
    }

    async fn close(&self) -> Result<()> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| Error::internal(format!("flush task: {e}")))?
            .map_err(|e| kafka_error(&e, "flushing"))
    }
}
