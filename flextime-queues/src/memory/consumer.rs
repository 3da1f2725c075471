//! The memory consumer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::{MemoryBroker, MemoryProducer, Topic, lock};
use crate::{
    Acknowledger, ConsumedCounters, Consumer, ConsumerOptions, Delivery, Error, Result, Settlement,
    dead_letter_copy, max_attempts_reason,
};

/// A member of a consumer group on a [`MemoryBroker`] topic.
pub struct MemoryConsumer {
    shared: Arc<Shared>,
    closed: bool,
}

impl std::fmt::Debug for MemoryConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryConsumer")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

struct Shared {
    broker: MemoryBroker,
    topic: Arc<Topic>,
    options: ConsumerOptions,
    counters: Arc<ConsumedCounters>,
}

impl MemoryConsumer {
    pub(super) fn new(broker: MemoryBroker, options: ConsumerOptions) -> Self {
        let topic = broker.topic(&options.topic);
        lock(&topic.state).group(&options.group);
        Self {
            shared: Arc::new(Shared {
                broker,
                topic,
                counters: ConsumedCounters::new("memory", &options.topic),
                options,
            }),
            closed: false,
        }
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        let shared = &self.shared;
        loop {
            if self.closed {
                return Ok(None);
            }
            let changed = shared.topic.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake = {
                let mut state = lock(&shared.topic.state);
                let group = state.group(&shared.options.group);
                let now = Instant::now();
                let wake = group.promote(now);
                if let Some(mut message) = group.ready.pop_front() {
                    message.attempt = message.attempt.saturating_add(1);
                    let token = group.token();
                    group
                        .in_flight
                        .insert(token, (message.clone(), now + shared.options.ack_deadline));
                    drop(state);
                    if message.attempt > shared.options.max_attempts {
                        // Redelivered after its deadline too often.
                        MemoryAcker::new(shared.clone(), token)
                            .apply(
                                Settlement::DeadLetter {
                                    reason: max_attempts_reason(shared.options.max_attempts),
                                },
                                false,
                            )
                            .ok();
                        continue;
                    }
                    return Ok(Some(
                        Delivery::new(
                            shared.topic.name.clone(),
                            message,
                            Box::new(MemoryAcker::new(shared.clone(), token)),
                        )
                        .with_backend("memory")
                        .with_counters(&shared.counters),
                    ));
                }
                wake
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        () = &mut changed => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.closed = true;
        // Outstanding deliveries settle synchronously; nothing to drain.
        Ok(())
    }
}

struct MemoryAcker {
    shared: Arc<Shared>,
    token: u64,
}

impl MemoryAcker {
    fn new(shared: Arc<Shared>, token: u64) -> Self {
        Self { shared, token }
    }

    fn apply(&self, settlement: Settlement, dropped: bool) -> Result<()> {
        let options = &self.shared.options;
        let topic = &self.shared.topic;
        let mut state = lock(&topic.state);
        let group = state.group(&options.group);
        let Some((message, _)) = group.in_flight.remove(&self.token) else {
            return Err(Error::conflict(
                "the delivery's ack deadline passed and it was redelivered",
            ));
        };
        let settlement = match settlement {
            Settlement::Nack { .. } if !options.may_retry(message.attempt) => {
                Settlement::DeadLetter {
                    reason: max_attempts_reason(options.max_attempts),
                }
            }
            other => other,
        };
        match settlement {
            Settlement::Ack => {}
            Settlement::Nack { delay: None } => {
                if dropped {
                    tracing::debug!(id = %message.id, "memory: delivery dropped unsettled, redelivering");
                }
                group.ready.push_front(message);
            }
            Settlement::Nack { delay: Some(d) } => group.push_delayed(Instant::now() + d, message),
            Settlement::DeadLetter { reason } => {
                drop(state);
                let copy = dead_letter_copy(&message, &options.topic, &reason);
                MemoryProducer::new(self.shared.broker.clone())
                    .put_now(&options.dead_letter_topic, &copy);
                topic.space.notify_waiters();
                return Ok(());
            }
        }
        drop(state);
        topic.changed.notify_waiters();
        topic.space.notify_waiters();
        Ok(())
    }
}

impl Acknowledger for MemoryAcker {
    fn settle(&self, settlement: Settlement, dropped: bool) -> BoxFuture<'static, Result<()>> {
        let outcome = self.apply(settlement, dropped);
        Box::pin(std::future::ready(outcome))
    }

    fn extend(&self, by: Duration) -> BoxFuture<'static, Result<()>> {
        let mut state = lock(&self.shared.topic.state);
        let group = state.group(&self.shared.options.group);
        let outcome = match group.in_flight.get_mut(&self.token) {
            Some((_, deadline)) => {
                *deadline = Instant::now() + by;
                Ok(())
            }
            None => Err(Error::conflict(
                "the delivery's ack deadline passed and it was redelivered",
            )),
        };
        Box::pin(std::future::ready(outcome))
    }
}
