//! # flextime-queues
//!
//! One Producer / Consumer API over message brokers, each behind a cargo
//! feature: `memory` (default, in-process, bounded with backpressure),
//! `redis` (Redis Streams with consumer groups), `rabbitmq` (lapin), `kafka`
//! (rdkafka with its bundled librdkafka) and `nats` (async-nats JetStream).
//!
//! - [`Message`]: payload bytes with typed encode/decode through a [`Codec`]
//!   (JSON by default), headers, a key (partition or routing key), an id, a
//!   timestamp and, on receipt, the attempt count. [`Message::from_envelope`]
//!   maps a CloudEvent to binary mode in the backend's headers.
//! - [`Producer`]: `send`, `send_batch`, `send_delayed`; every send is
//!   confirmed by the broker before it returns.
//! - [`Consumer`]: consumer-group semantics; [`Delivery`]s one at a time or in
//!   batches. A [`Delivery`] is acked, nacked (redelivered, optionally after a
//!   delay), dead-lettered with a reason, or has its deadline extended.
//!   Dropping an unsettled delivery nacks it, so a cancelled handler never
//!   loses a message.
//! - After [`ConsumerOptions::max_attempts`] a nacked message goes to the
//!   dead-letter topic ([`ConsumerOptions::dead_letter_topic`], by default
//!   `<topic>.dlq`) with the reason in the [`headers::DEAD_LETTER_REASON`]
//!   header.
//! - [`Broker`] builds producers and consumers; [`connect`] picks a backend
//!   from a URL (`memory://`, `redis://`, `amqp://`, `kafka://`, `nats://`).
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use flextime_queues::{connect, ConsumerOptions, Message};
//!
//! let broker = connect("memory://").await?;
//! let mut consumer = broker.consumer(ConsumerOptions::new("bookings", "billing")).await?;
//! let producer = broker.producer(Default::default()).await?;
//! producer.send("bookings", Message::json(&serde_json::json!({"id": 7}))?.with_key("room-1")).await?;
//!
//! let delivery = consumer.next().await?.expect("one delivery");
//! let value: serde_json::Value = delivery.decode()?;
//! assert_eq!(value["id"], 7);
//! assert_eq!(delivery.attempt(), 1);
//! delivery.ack().await?;
//! # Ok::<(), flextime_queues::Error>(())
//! # }).unwrap();
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
// Without any backend, the helpers they share go unused.
#![cfg_attr(
    not(any(
        feature = "memory",
        feature = "redis",
        feature = "rabbitmq",
        feature = "kafka",
        feature = "nats"
    )),
    allow(dead_code)
)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use flextime_core::{Envelope, Error, ErrorKind, Result};

mod any;
mod codec;
mod settle;
mod url_redact;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis")]
pub mod redis;

pub use any::{connect, supported_schemes};
pub use codec::{Codec, Json};
pub use url_redact::redact_url;

#[doc(hidden)]
pub use settle::{SettleOp, SettleRequest, Settler, channel_acker};

/// Names of the headers Flextime itself sets. All start with `x-flextime-`.
pub mod headers {
    /// The attempt number a redelivered copy carries (where the broker does
    /// not count attempts itself).
    pub const ATTEMPT: &str = "x-flextime-attempt";
    /// The reason a message was dead-lettered.
    pub const DEAD_LETTER_REASON: &str = "x-flextime-dead-letter-reason";
    /// The topic a dead-lettered message came from.
    pub const ORIGINAL_TOPIC: &str = "x-flextime-original-topic";
    /// The earliest delivery time (Unix milliseconds) of a delayed message,
    /// where delays are emulated.
    pub const NOT_BEFORE: &str = "x-flextime-not-before";
    /// The message id, where the broker has no id field of its own.
    pub const ID: &str = "x-flextime-id";
    /// The message timestamp (Unix milliseconds), where the broker has no
    /// timestamp field of its own.
    pub const TIMESTAMP: &str = "x-flextime-timestamp";
    /// The content type of the payload (`application/json` for [`crate::Json`]).
    pub const CONTENT_TYPE: &str = "content-type";
    /// Prefix of every header Flextime reserves.
    pub const PREFIX: &str = "x-flextime-";
}

/// One message: payload bytes plus metadata.
///
/// Outgoing, `attempt` is ignored; on receipt it is 1 for the first delivery
/// and grows by one with every redelivery.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// A unique id (a UUIDv7 by default); kept across redeliveries and dead
    /// letters.
    pub id: String,
    /// The partition key (Kafka), routing key (RabbitMQ) or ordering key.
    /// Messages with the same key are delivered in the order they were sent.
    pub key: Option<String>,
    /// Application headers. Names starting with `x-flextime-` are reserved.
    pub headers: BTreeMap<String, String>,
    /// The payload.
    pub payload: Bytes,
    /// When the message was first produced.
    pub timestamp: DateTime<Utc>,
    /// The delivery attempt (1-based) on receipt; 0 on a message being built.
    pub attempt: u32,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("headers", &self.headers)
            .field("payload_len", &self.payload.len())
            .field("timestamp", &self.timestamp)
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// A fresh message id: a UUIDv7 (time-ordered), hyphenated, lower case.
/// Written into a stack buffer and copied once (`to_string` goes through
/// the formatting machinery, on every message sent).
pub(crate) fn new_message_id() -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// The Unix millisecond a UUIDv7 id was made at (`None` for other ids).
/// Backends that store the time beside the id leave it out when the id
/// holds it (the ids of [`Message::new`]).
#[allow(dead_code)] // used by the broker backends
pub(crate) fn uuid_v7_millis(id: &str) -> Option<u64> {
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos / 1_000_000))
}

impl Message {
    /// A message with this payload, a fresh id and the current time.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            id: new_message_id(),
            key: None,
            headers: BTreeMap::new(),
            payload: payload.into(),
            timestamp: Utc::now(),
            attempt: 0,
        }
    }

    /// A message whose payload is `value` encoded as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        Self::encode::<Json, T>(value)
    }

    /// A message whose payload is `value` encoded with codec `C`; sets the
    /// `content-type` header.
    pub fn encode<C: Codec, T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let payload = C::encode(value)?;
        Ok(Self::new(payload).with_header(headers::CONTENT_TYPE, C::CONTENT_TYPE))
    }

    /// Decode the payload as JSON.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.decode_with::<Json, T>()
    }

    /// Decode the payload with codec `C`.
    pub fn decode_with<C: Codec, T: DeserializeOwned>(&self) -> Result<T> {
        C::decode(&self.payload)
    }

    /// A message carrying a CloudEvent in binary mode: the `ce_` attributes
    /// become headers, `datacontenttype` the `content-type` header, the data
    /// the payload, the `partitionkey` extension the key and the event id the
    /// message id. (The AMQP backend writes the `ce_` headers as
    /// `cloudEvents:` application properties on the wire.)
    pub fn from_envelope(envelope: &Envelope) -> Self {
        let record = envelope.to_kafka_binary();
        let mut message = Self::new(record.value);
        envelope.id().clone_into(&mut message.id);
        if let Some(time) = envelope.time_utc() {
            message.timestamp = time;
        }
        message.key = record.key.map(|k| String::from_utf8_lossy(&k).into_owned());
        for (name, value) in record.headers {
            message
                .headers
                .insert(name, String::from_utf8_lossy(&value).into_owned());
        }
        message
    }

    /// Read the CloudEvent a message carries in binary mode (or in structured
    /// mode, when `content-type` is `application/cloudevents+json`).
    pub fn to_envelope(&self) -> Result<Envelope> {
        let headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .filter(|(name, _)| !name.starts_with(headers::PREFIX))
            .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
            .collect();
        Envelope::from_kafka(
            self.key.as_deref().map(str::as_bytes),
            &headers,
            &self.payload,
        )
    }

    /// Set the key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Set the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Add (or replace) a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// The value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The headers without the reserved `x-flextime-` ones.
    pub fn user_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.starts_with(headers::PREFIX))
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The dead-letter reason, on a message read from a dead-letter topic.
    pub fn dead_letter_reason(&self) -> Option<&str> {
        self.header(headers::DEAD_LETTER_REASON)
    }
}

/// How a [`Delivery`] is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Processed: never deliver again.
    Ack,
    /// Not processed: deliver again (with attempt + 1), after `delay` if given.
    /// After the consumer's maximum of attempts it is dead-lettered instead.
    Nack {
        /// Wait at least this long before the redelivery.
        delay: Option<Duration>,
    },
    /// Never deliver again: move to the dead-letter topic with this reason.
    DeadLetter {
        /// Why (stored in the [`headers::DEAD_LETTER_REASON`] header).
        reason: String,
    },
}

/// The backend half of a [`Delivery`]: settles one received message.
///
/// Implement it to write a backend. The contract that keeps ack handles
/// correct under cancellation: [`Acknowledger::settle`] must *commit to* the
/// operation before it returns (for example by enqueueing it to a task
/// owned by the consumer); the returned future only reports the outcome, and
/// dropping it must not cancel the operation. [`channel_acker`] builds such an
/// acknowledger over a channel.
pub trait Acknowledger: Send + Sync + 'static {
    /// Settle the message. `dropped` is true when the [`Delivery`] was dropped
    /// without being settled (the settlement is then a `Nack` without delay).
    fn settle(&self, settlement: Settlement, dropped: bool) -> BoxFuture<'static, Result<()>>;

    /// Ask the broker not to redeliver the message for another `by`
    /// (visibility timeout, ack wait, claim idle time).
    fn extend(&self, by: Duration) -> BoxFuture<'static, Result<()>>;
}

/// A received message with the means to settle it.
///
/// Settle it with [`ack`](Delivery::ack), [`nack`](Delivery::nack),
/// [`nack_after`](Delivery::nack_after) or
/// [`dead_letter`](Delivery::dead_letter). A delivery dropped unsettled is
/// nacked (redelivered with attempt + 1), so cancelling the future that holds
/// it never loses the message, and cancelling a settle call after it started
/// never loses the settlement.
pub struct Delivery {
    message: Arc<Message>,
    topic: Arc<str>,
    backend: &'static str,
    /// The consumer's registered outcome counters (the crate's own
    /// backends); without them the counter is looked up per settlement.
    counters: Option<Arc<ConsumedCounters>>,
    received_at: DateTime<Utc>,
    acker: Option<Box<dyn Acknowledger>>,
}

/// A consumer's [`QUEUE_CONSUMED`](flextime_core::telemetry::QUEUE_CONSUMED)
/// counters, registered once (backend and topic are fixed per consumer), so
/// settling a delivery builds no metric key.
pub(crate) struct ConsumedCounters {
    ack: metrics::Counter,
    nack: metrics::Counter,
    dead_letter: metrics::Counter,
}

impl ConsumedCounters {
    pub(crate) fn new(backend: &'static str, topic: &str) -> Arc<Self> {
        let counter = |outcome: &'static str| {
            metrics::counter!(
                flextime_core::telemetry::QUEUE_CONSUMED,
                "backend" => backend,
                "topic" => topic.to_owned(),
                "outcome" => outcome
            )
        };
        Arc::new(Self {
            ack: counter("ack"),
            nack: counter("nack"),
            dead_letter: counter("dead_letter"),
        })
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .field("backend", &self.backend)
            .field("message", &self.message)
            .field("received_at", &self.received_at)
            .field("settled", &self.acker.is_none())
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery of `message` from `topic`, settled through `acker`.
    pub fn new(topic: Arc<str>, message: Message, acker: Box<dyn Acknowledger>) -> Self {
        Self::shared(topic, Arc::new(message), acker)
    }

    /// A delivery of a message the backend's acknowledger also holds (for a
    /// nack's copy or a dead letter), without copying it.
    pub(crate) fn shared(
        topic: Arc<str>,
        message: Arc<Message>,
        acker: Box<dyn Acknowledger>,
    ) -> Self {
        Self::shared_at(topic, message, acker, Utc::now())
    }

    /// [`Delivery::shared`] received at `received_at` (one clock read for
    /// a whole fetched batch).
    pub(crate) fn shared_at(
        topic: Arc<str>,
        message: Arc<Message>,
        acker: Box<dyn Acknowledger>,
        received_at: DateTime<Utc>,
    ) -> Self {
        Self {
            message,
            topic,
            backend: "custom",
            counters: None,
            received_at,
            acker: Some(acker),
        }
    }

    /// Count settlements on the consumer's registered counters.
    #[must_use]
    pub(crate) fn with_counters(mut self, counters: &Arc<ConsumedCounters>) -> Self {
        self.counters = Some(Arc::clone(counters));
        self
    }

    /// Name the backend in the [`QUEUE_CONSUMED`](flextime_core::telemetry::QUEUE_CONSUMED)
    /// metric's `backend` label (`custom` by default).
    #[must_use]
    pub fn with_backend(mut self, backend: &'static str) -> Self {
        self.backend = backend;
        self
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The topic it came from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The attempt number (1 for the first delivery).
    pub fn attempt(&self) -> u32 {
        self.message.attempt
    }

    /// When this process received it (wall clock).
    pub fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }

    /// Decode the payload as JSON.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.message.decode()
    }

    /// Commit to `settlement` now (the acknowledger's contract); the future
    /// only reports the outcome.
    fn settle(mut self, settlement: Settlement) -> BoxFuture<'static, Result<()>> {
        let Some(acker) = self.acker.take() else {
            return Box::pin(std::future::ready(Err(Error::conflict(
                "delivery already settled",
            ))));
        };
        match &self.counters {
            Some(c) => match &settlement {
                Settlement::Ack => &c.ack,
                Settlement::Nack { .. } => &c.nack,
                Settlement::DeadLetter { .. } => &c.dead_letter,
            }
            .increment(1),
            None => metrics::counter!(
                flextime_core::telemetry::QUEUE_CONSUMED,
                "backend" => self.backend,
                "topic" => self.topic.clone(),
                "outcome" => match &settlement {
                    Settlement::Ack => "ack",
                    Settlement::Nack { .. } => "nack",
                    Settlement::DeadLetter { .. } => "dead_letter",
                }
            )
            .increment(1),
        }
        acker.settle(settlement, false)
    }

    /// Acknowledge: processed, never deliver again.
    ///
    /// The ack is committed when this is called, not when the future is
    /// first polled: the future only reports the broker's outcome, and
    /// dropping it unpolled does not undo the ack. So acking a batch as
    /// `join_all(batch.into_iter().map(Delivery::ack))` hands every ack to
    /// the backend at once (Redis sends them as one `XACK`).
    pub fn ack(self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(Settlement::Ack)
    }

    /// Acknowledge every delivery of a batch: each ack is committed when
    /// this is called, as with [`ack`](Self::ack) (Redis sends them as one
    /// `XACK`); the future resolves once every outcome is in, with the first
    /// error if any. It awaits the outcomes one after the other, which costs
    /// no round trip more than `join_all` since every ack is already under
    /// way, and spares `join_all`'s bookkeeping per future.
    pub fn ack_all(
        deliveries: impl IntoIterator<Item = Delivery>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let pending: Vec<_> = deliveries.into_iter().map(Delivery::ack).collect();
        async move {
            let mut first = None;
            for outcome in pending {
                if let Err(e) = outcome.await {
                    first.get_or_insert(e);
                }
            }
            first.map_or(Ok(()), Err)
        }
    }

    /// Deliver again as soon as possible (attempt + 1), or dead-letter when the
    /// maximum of attempts is reached. Committed when called, like
    /// [`ack`](Self::ack).
    pub fn nack(self) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(Settlement::Nack { delay: None })
    }

    /// Deliver again not before `delay` has passed (attempt + 1), or
    /// dead-letter when the maximum of attempts is reached. Committed when
    /// called, like [`ack`](Self::ack).
    pub fn nack_after(self, delay: Duration) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(Settlement::Nack { delay: Some(delay) })
    }

    /// Move to the dead-letter topic with `reason`. Committed when called,
    /// like [`ack`](Self::ack).
    pub fn dead_letter(
        self,
        reason: impl Into<String>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.settle(Settlement::DeadLetter {
            reason: reason.into(),
        })
    }

    /// Keep the message from being redelivered to another consumer for
    /// another `by`.
    pub async fn extend(&self, by: Duration) -> Result<()> {
        match &self.acker {
            Some(acker) => acker.extend(by).await,
            None => Err(Error::conflict("delivery already settled")),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            // The acknowledger has committed to the nack before returning the
            // future; the outcome is not awaited.
            drop(acker.settle(Settlement::Nack { delay: None }, true));
        }
    }
}

/// Options of a [`Producer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// The most messages awaiting the broker's confirmation at once; more
    /// sends wait. Default 1024.
    pub max_in_flight: usize,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
        }
    }
}

impl ProducerOptions {
    /// Set [`ProducerOptions::max_in_flight`] (at least 1).
    #[must_use]
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }
}

/// Options of a [`Consumer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// The topic (stream, exchange, subject) to consume.
    pub topic: String,
    /// The consumer group: each message goes to one consumer of each group.
    pub group: String,
    /// This consumer's name within the group (unique by default).
    pub name: String,
    /// Deliveries after which a nacked message is dead-lettered (at least 1).
    /// Default 5.
    pub max_attempts: u32,
    /// Where dead letters go. Default `<topic>.dlq`.
    pub dead_letter_topic: String,
    /// How many messages may be received ahead of processing. Default 64.
    pub prefetch: usize,
    /// How long a delivery may stay unsettled before the broker gives it to
    /// another consumer, where the broker supports it (Redis claim idle
    /// time, JetStream ack wait). Default 30 s.
    pub ack_deadline: Duration,
    /// How long [`Consumer::shutdown`] waits for outstanding deliveries to be
    /// settled. Default 30 s.
    pub shutdown_timeout: Duration,
}

impl ConsumerOptions {
    /// Options for consuming `topic` in `group`, with the defaults.
    pub fn new(topic: impl Into<String>, group: impl Into<String>) -> Self {
        let topic = topic.into();
        Self {
            dead_letter_topic: format!("{topic}.dlq"),
            topic,
            group: group.into(),
            name: format!("consumer-{}", uuid::Uuid::new_v4().simple()),
            max_attempts: 5,
            prefetch: 64,
            ack_deadline: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    /// Set the maximum of attempts (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Set the dead-letter topic.
    #[must_use]
    pub fn with_dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = topic.into();
        self
    }

    /// Set the prefetch (at least 1).
    #[must_use]
    pub fn with_prefetch(mut self, n: usize) -> Self {
        self.prefetch = n.max(1);
        self
    }

    /// Set the ack deadline.
    #[must_use]
    pub fn with_ack_deadline(mut self, deadline: Duration) -> Self {
        self.ack_deadline = deadline;
        self
    }

    /// Set this consumer's name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Set the shutdown timeout.
    #[must_use]
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether a message on its `attempt`-th delivery may be redelivered
    /// once more after a nack.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// Sends messages. Every send returns after the broker confirmed it.
#[async_trait]
pub trait Producer: Send + Sync {
    /// Send one message to `topic`; returns when the broker confirmed it.
    async fn send(&self, topic: &str, message: Message) -> Result<()>;

    /// Send messages to `topic`; returns when all are confirmed. Messages with
    /// the same key keep their order. The default sends them one by one.
    async fn send_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        for message in messages {
            self.send(topic, message).await?;
        }
        Ok(())
    }

    /// Send one message that must not be delivered before `delay` has passed.
    async fn send_delayed(&self, topic: &str, message: Message, delay: Duration) -> Result<()>;

    /// Wait for everything sent to be confirmed and release resources.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// Receives messages as a member of a consumer group.
#[async_trait]
pub trait Consumer: Send {
    /// The next delivery, waiting for one; `None` once the consumer is shut
    /// down. Cancel-safe: dropping the future loses no message.
    async fn next(&mut self) -> Result<Option<Delivery>>;

    /// Up to `max` deliveries: waits for the first until `deadline` has
    /// passed, then takes more until `max` or the deadline. Empty when none
    /// arrived in time.
    async fn next_batch(&mut self, max: usize, deadline: Duration) -> Result<Vec<Delivery>> {
        let until = tokio::time::Instant::now() + deadline;
        let mut batch = Vec::new();
        while batch.len() < max.max(1) {
            match tokio::time::timeout_at(until, self.next()).await {
                Ok(Ok(Some(delivery))) => batch.push(delivery),
                Ok(Err(err)) if batch.is_empty() => return Err(err),
                Ok(Ok(None) | Err(_)) | Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Stop receiving, wait (up to the shutdown timeout) for outstanding
    /// deliveries to be settled, commit, and release resources.
    async fn shutdown(&mut self) -> Result<()>;
}

/// A backend: builds producers and consumers. Implement it (with
/// [`Producer`] and [`Consumer`]) to add a broker; the traits are not sealed.
#[async_trait]
pub trait Broker: Send + Sync {
    /// The backend's name (`memory`, `redis`, `rabbitmq`, ...).
    fn backend(&self) -> &'static str;

    /// A producer.
    async fn producer(&self, options: ProducerOptions) -> Result<Box<dyn Producer>>;

    /// A consumer joined to `options.group` on `options.topic`. Messages
    /// sent after this returns are delivered to the group.
    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>>;
}

/// A consumer as a stream of deliveries (ends when the consumer is shut
/// down).
pub fn into_stream(consumer: Box<dyn Consumer>) -> BoxStream<'static, Result<Delivery>> {
    Box::pin(futures::stream::unfold(consumer, |mut c| async move {
        match c.next().await {
            Ok(Some(d)) => Some((Ok(d), c)),
            Ok(None) => None,
            Err(e) => Some((Err(e), c)),
        }
    }))
}

/// A consumer as a stream of batches of at most `max` deliveries, each
/// gathered for at most `deadline` (empty batches are skipped).
pub fn into_batch_stream(
    consumer: Box<dyn Consumer>,
    max: usize,
    deadline: Duration,
) -> BoxStream<'static, Result<Vec<Delivery>>> {
    Box::pin(futures::stream::unfold(consumer, move |mut c| async move {
        loop {
            match c.next_batch(max, deadline).await {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => return Some((Ok(batch), c)),
                Err(e) => return Some((Err(e), c)),
            }
        }
    }))
}

/// What a handler passed to [`run_handler`] wants done with a message.
#[derive(Debug)]
pub enum Outcome {
    /// Ack.
    Done,
    /// Nack, optionally after a delay.
    Retry(Option<Duration>),
    /// Dead-letter with this reason.
    Reject(String),
}

/// Run `handler` on each delivery of `consumer`, decoding payloads as JSON
/// into `T`, until `max` messages were settled (or forever with `None`) or
/// the consumer shuts down. A payload that does not decode (a poison
/// message) is dead-lettered with the decode error as reason and the loop
/// goes on; a handler error is a nack when retryable, a dead letter
/// otherwise. Returns the number of messages settled.
pub async fn run_handler<T, F, Fut>(
    consumer: &mut dyn Consumer,
    max: Option<usize>,
    mut handler: F,
) -> Result<usize>
where
    T: DeserializeOwned,
    F: FnMut(T, &Message) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome>>,
{
    let mut settled = 0;
    while max.is_none_or(|m| settled < m) {
        let Some(delivery) = consumer.next().await? else {
            break;
        };
        let value: T = match delivery.decode() {
            Ok(v) => v,
            Err(err) => {
                delivery
                    .dead_letter(format!("payload does not decode: {err}"))
                    .await?;
                settled += 1;
                continue;
            }
        };
        match handler(value, delivery.message()).await {
            Ok(Outcome::Done) => delivery.ack().await?,
            Ok(Outcome::Retry(None)) => delivery.nack().await?,
            Ok(Outcome::Retry(Some(d))) => delivery.nack_after(d).await?,
            Ok(Outcome::Reject(reason)) => delivery.dead_letter(reason).await?,
            Err(err) if err.is_retryable() => delivery.nack().await?,
            Err(err) => delivery.dead_letter(err.to_string()).await?,
        }
        settled += 1;
    }
    Ok(settled)
}

/// Lock a std mutex, ignoring poisoning (the data stays consistent: every
/// critical section is a single assignment or take).
#[allow(dead_code)] // used by the broker backends
pub(crate) fn memory_lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Unix milliseconds of a time (0 before the epoch).
#[allow(dead_code)] // used by the broker backends
pub(crate) fn unix_millis(time: DateTime<Utc>) -> u64 {
    u64::try_from(time.timestamp_millis()).unwrap_or(0)
}

/// A due time in Unix milliseconds, rounded up: a delayed message stamped
/// with it is never released before `time` (rounding down released it up to
/// a millisecond early).
#[allow(dead_code)] // used by the broker backends
pub(crate) fn unix_millis_due(time: DateTime<Utc>) -> u64 {
    let ms = unix_millis(time);
    if time.timestamp_subsec_nanos() % 1_000_000 == 0 {
        ms
    } else {
        ms + 1
    }
}

/// The time of Unix milliseconds (now when out of range).
#[allow(dead_code)] // used by the broker backends
pub(crate) fn from_unix_millis(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
}

/// A [`Duration`] as whole milliseconds, saturating.
#[allow(dead_code)] // used by the broker backends
pub(crate) fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Record a confirmed publish.
pub(crate) fn record_published(backend: &'static str, topic: &str, n: u64) {
    metrics::counter!(
        flextime_core::telemetry::QUEUE_PUBLISHED,
        "backend" => backend,
        "topic" => topic.to_owned()
    )
    .increment(n);
}

/// A message's dead-letter copy: reason and original topic headers set.
pub(crate) fn dead_letter_copy(message: &Message, topic: &str, reason: &str) -> Message {
    let mut copy = message.clone();
    copy.headers
        .insert(headers::DEAD_LETTER_REASON.to_owned(), reason.to_owned());
    copy.headers
        .insert(headers::ORIGINAL_TOPIC.to_owned(), topic.to_owned());
    copy.headers
        .insert(headers::ATTEMPT.to_owned(), message.attempt.to_string());
    copy
}

/// The reason given when the maximum of attempts is reached.
pub(crate) fn max_attempts_reason(max: u32) -> String {
    format!("maximum of {max} attempts reached")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_hyphenated_lower_case_time_ordered_uuid_v7s() {
        let (a, b) = (Message::new(Bytes::new()).id, new_message_id());
        for id in [&a, &b] {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
            // The same text as the Display form.
            assert_eq!(*id, parsed.to_string());
            assert_eq!(id.len(), 36);
        }
        assert_ne!(a, b);
        assert!(a < b, "v7 ids sort by creation: {a} then {b}");
    }

    #[test]
    fn due_times_round_up_to_the_next_millisecond() {
        let exact = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(unix_millis_due(exact), 1_700_000_000_123);
        let later = exact + chrono::Duration::microseconds(23);
        assert_eq!(unix_millis(later), 1_700_000_000_123);
        assert_eq!(unix_millis_due(later), 1_700_000_000_124);
        assert!(from_unix_millis(unix_millis_due(later)) >= later);
    }

    #[test]
    fn json_round_trip_and_headers() {
        let m = Message::json(&serde_json::json!({"a": 1}))
            .unwrap()
            .with_key("k")
            .with_header("h", "v");
        assert_eq!(m.header(headers::CONTENT_TYPE), Some("application/json"));
        let v: serde_json::Value = m.decode().unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(m.user_headers().count(), 2);
        assert!(m.decode::<u32>().is_err());
    }

    #[test]
    fn envelope_round_trip() {
        let env = Envelope::new("/rooms", "booking.created")
            .with_id("evt-1")
            .with_data_json(serde_json::json!({"room": 4}))
            .with_extension("partitionkey", "room-4")
            .unwrap();
        let m = Message::from_envelope(&env);
        assert_eq!(m.id, "evt-1");
        assert_eq!(m.key.as_deref(), Some("room-4"));
        assert_eq!(m.header("ce_type"), Some("booking.created"));
        let back = m.to_envelope().unwrap();
        assert_eq!(back.id(), "evt-1");
        assert_eq!(back.event_type(), "booking.created");
        assert_eq!(back.data_as::<serde_json::Value>().unwrap()["room"], 4);
    }

    #[test]
    fn options_clamp() {
        let o = ConsumerOptions::new("t", "g")
            .with_max_attempts(0)
            .with_prefetch(0);
        assert_eq!((o.max_attempts, o.prefetch), (1, 1));
        assert_eq!(o.dead_letter_topic, "t.dlq");
        assert!(!o.may_retry(1));
    }
}
