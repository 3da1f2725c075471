//! The memory producer.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{MemoryBroker, lock};
use crate::{Message, Producer, Result};

/// Sends to a [`MemoryBroker`]; a send returns once the message is stored,
/// waiting while the topic is full.
#[derive(Debug, Clone)]
pub struct MemoryProducer {
    broker: MemoryBroker,
}

impl MemoryProducer {
    pub(super) fn new(broker: MemoryBroker) -> Self {
        Self { broker }
    }

    pub(super) async fn put(&self, topic: &str, mut message: Message, due: Option<Instant>) {
        let topic = self.broker.topic(topic);
        let capacity = self.broker.inner.config.capacity;
        message.attempt = 0;
        loop {
            let space = topic.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut state = lock(&topic.state);
                if !state.is_full(capacity) {
                    store(&mut state, &message, due);
                    break;
                }
            }
            space.await;
        }
        topic.changed.notify_waiters();
        crate::record_published("memory", &topic.name, 1);
    }

    /// Store without waiting for space (dead letters, redeliveries).
    pub(super) fn put_now(&self, topic: &str, message: &Message) {
        let topic = self.broker.topic(topic);
        store(&mut lock(&topic.state), message, None);
        topic.changed.notify_waiters();
    }
}

fn store(state: &mut super::TopicState, message: &Message, due: Option<Instant>) {
    for group in state.each_group() {
        match due {
            Some(due) => group.push_delayed(due, message.clone()),
            None => group.ready.push_back(message.clone()),
        }
    }
}

#[async_trait]
impl Producer for MemoryProducer {
    async fn send(&self, topic: &str, message: Message) -> Result<()> {
        self.put(topic, message, None).await;
        Ok(())
    }

    async fn send_delayed(&self, topic: &str, message: Message, delay: Duration) -> Result<()> {
        self.put(topic, message, Some(Instant::now() + delay)).await;
        Ok(())
    }
}
