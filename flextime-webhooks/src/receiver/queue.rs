//! Hand-off to a message queue (the `queues` feature): every accepted event
//! is published, confirmed by the broker, before the provider gets its 2xx;
//! handlers then run from the queue, so a crash loses nothing.

use std::sync::Arc;

use flextime_core::{Error, Result};
use flextime_queues::{Consumer, Message, Outcome, Producer};

use super::event::InboundEvent;
use super::handlers::Handlers;
use super::handoff::HandOff;

/// The content type of a queued [`InboundEvent`] (JSON).
pub const INBOUND_EVENT_CONTENT_TYPE: &str = "application/vnd.flextime.inbound-event+json";

/// Publishes accepted events to `topic` through any flextime-queues
/// [`Producer`] (memory, Redis Streams, RabbitMQ, Kafka, NATS JetStream).
///
/// The message id is the event id (the provider's idempotency key where it
/// has one), its key the source name (events of one source stay in order),
/// its payload the whole [`InboundEvent`] as JSON (envelope, raw body,
/// headers), and its `ce_id` / `ce_source` / `ce_type` headers name the
/// event for routing and for tools that only read headers.
#[derive(Clone)]
pub struct QueueHandOff {
    producer: Arc<dyn Producer>,
    topic: String,
}

impl std::fmt::Debug for QueueHandOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandOff")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl QueueHandOff {
    /// Publish to `topic` with `producer`.
    pub fn new(producer: Arc<dyn Producer>, topic: impl Into<String>) -> Self {
        Self {
            producer,
            topic: topic.into(),
        }
    }
}

/// The queue message for an event.
pub fn to_message(event: &InboundEvent) -> Result<Message> {
    Ok(Message::json(event)?
        .with_id(event.envelope.id())
        .with_key(event.source.clone())
        .with_header("content-type", INBOUND_EVENT_CONTENT_TYPE)
        .with_header("ce_id", event.envelope.id())
        .with_header("ce_source", event.envelope.source())
        .with_header("ce_type", event.envelope.event_type()))
}

/// The event a queue message carries.
pub fn from_message(message: &Message) -> Result<InboundEvent> {
    message.decode::<InboundEvent>().map_err(|e| {
        e.context(format!(
            "message {} is not an inbound webhook event",
            message.id
        ))
    })
}

#[async_trait::async_trait]
impl HandOff for QueueHandOff {
    async fn hand_off(&self, event: InboundEvent) -> Result<()> {
        let message = to_message(&event)?;
        self.producer.send(&self.topic, message).await
    }
}

/// Run `handlers` on the events `consumer` receives, until `max` messages
/// were settled (or forever) or the consumer shuts down: ack after the
/// handler succeeded, nack (redelivery, then the queue's dead letters after
/// its maximum of attempts) on a retryable error, dead-letter at once on a
/// permanent one or on a message that is not an inbound event. Returns how
/// many messages were settled.
pub async fn run_queue_handlers(
    consumer: &mut dyn Consumer,
    handlers: &Handlers,
    max: Option<usize>,
) -> Result<usize> {
    flextime_queues::run_handler(consumer, max, |event: InboundEvent, _message| async move {
        match handlers.dispatch(event).await {
            Ok(()) => Ok(Outcome::Done),
            Err(e) if e.is_retryable() => Ok(Outcome::Retry(None)),
            Err(e) => Ok(Outcome::Reject(e.to_string())),
        }
    })
    .await
    .map_err(|e: Error| e.context("webhook handlers"))
}
