//! The Redis producer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tokio::sync::Semaphore;

use super::{DELAY_SCRIPT, delayed_key, redis_error, to_member, xadd};
use crate::{Error, Message, Producer, ProducerOptions, Result, duration_millis, record_published};

/// Sends with `XADD`; a send returns with the server's reply.
#[derive(Clone)]
pub struct RedisProducer {
    conn: ConnectionManager,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    delay_script: redis::Script,
}

impl std::fmt::Debug for RedisProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProducer")
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl RedisProducer {
    pub(super) fn new(conn: ConnectionManager, options: &ProducerOptions) -> Self {
        Self {
            conn,
            in_flight: Arc::new(Semaphore::new(options.max_in_flight)),
            max_in_flight: options.max_in_flight,
            delay_script: redis::Script::new(DELAY_SCRIPT),
        }
    }

    async fn permits(&self, n: usize) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let n = u32::try_from(n.clamp(1, self.max_in_flight)).unwrap_or(u32::MAX);
        self.in_flight
            .acquire_many(n)
            .await
            .map_err(|_| Error::unavailable("producer closed"))
    }
}

#[async_trait]
impl Producer for RedisProducer {
    async fn send(&self, topic: &str, message: Message) -> Result<()> {
        self.send_batch(topic, vec![message]).await
    }

    async fn send_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        for chunk in messages.chunks(self.max_in_flight.max(1)) {
            let _permit = self.permits(chunk.len()).await?;
            let mut pipe = redis::Pipeline::with_capacity(chunk.len());
            for message in chunk {
                xadd(&mut pipe, topic, message, 0);
            }
            let mut conn = self.conn.clone();
            let _: Vec<redis::Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error(&e, "XADD"))?;
            record_published("redis", topic, chunk.len() as u64);
        }
        Ok(())
    }

    async fn send_delayed(&self, topic: &str, message: Message, delay: Duration) -> Result<()> {
        let _permit = self.permits(1).await?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .delay_script
            .key(delayed_key(topic))
            .arg(duration_millis(delay))
            .arg(to_member(&message, 0))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e, "delaying a message"))?;
        record_published("redis", topic, 1);
        Ok(())
    }
}
