//! The RabbitMQ producer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lapin::{Channel, Connection};
use tokio::sync::{Mutex, Semaphore};

use super::{RabbitConfig, confirm_channel, declare_topic, open, properties, publish};
use crate::{Error, Message, Producer, ProducerOptions, Result, record_published};

/// Publishes to a topic's exchange with publisher confirms; reconnects on
/// the next send after a failure.
pub struct RabbitProducer {
    config: RabbitConfig,
    state: Mutex<Option<State>>,
    in_flight: Arc<Semaphore>,
}

struct State {
    conn: Connection,
    channel: Channel,
    declared: HashSet<String>,
}

impl std::fmt::Debug for RabbitProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitProducer").finish_non_exhaustive()
    }
}

impl RabbitProducer {
    pub(super) async fn new(config: RabbitConfig, options: &ProducerOptions) -> Result<Self> {
        let producer = Self {
            config,
            state: Mutex::new(None),
            in_flight: Arc::new(Semaphore::new(options.max_in_flight)),
        };
        producer.channel_for(None).await?;
        Ok(producer)
    }

    /// The channel, (re)connecting when needed, with `topic` declared.
    async fn channel_for(&self, topic: Option<&str>) -> Result<Channel> {
        let mut state = self.state.lock().await;
        let healthy = state
            .as_ref()
            .is_some_and(|s| s.conn.status().connected() && s.channel.status().connected());
        if !healthy {
            let conn = open(&self.config.url).await?;
            let channel = confirm_channel(&conn).await?;
            *state = Some(State {
                conn,
                channel,
                declared: HashSet::new(),
            });
        }
        let Some(state) = state.as_mut() else {
            return Err(Error::internal(
                "RabbitMQ producer lost its connection state",
            ));
        };
        if let Some(topic) = topic
            && !state.declared.contains(topic)
        {
            declare_topic(&state.channel, topic, self.config.queue_expires).await?;
            state.declared.insert(topic.to_owned());
        }
        Ok(state.channel.clone())
    }

    async fn publish_one(
        &self,
        exchange: &str,
        routing_key: &str,
        topic: &str,
        message: &Message,
        expiration: Option<Duration>,
    ) -> Result<()> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| Error::unavailable("producer closed"))?;
        let channel = self.channel_for(Some(topic)).await?;
        let outcome = publish(
            &channel,
            exchange,
            routing_key,
            &message.payload,
            properties(message, 0, expiration),
        )
        .await;
        if outcome.as_ref().is_err_and(Error::is_retryable) {
            // Reconnect on the next send.
            *self.state.lock().await = None;
        }
        outcome?;
        record_published("rabbitmq", topic, 1);
        Ok(())
    }
}

#[async_trait]
impl Producer for RabbitProducer {
    async fn send(&self, topic: &str, message: Message) -> Result<()> {
        let key = message.key.clone().unwrap_or_default();
        self.publish_one(topic, &key, topic, &message, None).await
    }

    async fn send_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        // Publish all, then await the confirms: one round trip per window.
        let sends = messages.iter().map(|m| {
            let key = m.key.clone().unwrap_or_default();
            async move { self.publish_one(topic, &key, topic, m, None).await }
        });
        for outcome in futures::future::join_all(sends).await {
            outcome?;
        }
        Ok(())
    }

    async fn send_delayed(&self, topic: &str, message: Message, delay: Duration) -> Result<()> {
        let queue = format!("{topic}.delay");
        self.publish_one(
            "",
            &queue,
            topic,
            &message,
            Some(delay.max(Duration::from_millis(1))),
        )
        .await
    }

    async fn close(&self) -> Result<()> {
        if let Some(state) = self.state.lock().await.take() {
            let _ = state.conn.close(200, "closed").await;
        }
        Ok(())
    }
}
