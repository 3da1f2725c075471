//! The conformance suite: one set of checks written against [`Broker`],
//! run by every backend's test file (and usable on your own backend).
//!
//! Each check creates its own topic (`conf-<check>-<random>`) so checks can
//! run in parallel on one broker; it returns `Err` with what went wrong.
//! Waiting is always bounded by [`Suite::wait`].
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use flextime_queues::{conformance::Suite, memory::MemoryBroker};
//! let suite = Suite::new(std::sync::Arc::new(MemoryBroker::default()));
//! suite.headers_round_trip().await.unwrap();
//! # });
//! ```

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::{
    Broker, Consumer, ConsumerOptions, Delivery, Error, Message, Outcome, ProducerOptions, Result,
};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Error::internal(format!("conformance: {}", format_args!($($fmt)+))));
        }
    };
}

/// The suite, bound to one broker.
#[derive(Clone)]
pub struct Suite {
    broker: Arc<dyn Broker>,
    /// The longest wait for any one expected delivery.
    pub wait: Duration,
    /// Ack deadline given to consumers in checks that need a dead consumer's
    /// messages redelivered.
    pub short_deadline: Duration,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("backend", &self.broker.backend())
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Item {
    key: String,
    seq: u32,
}

/// A group name of its own for each check (Kafka groups span topics, so a
/// shared name would make unrelated checks rebalance each other).
fn group(topic: &str, name: &str) -> String {
    format!("{topic}-{name}")
}

/// A unique topic name for a check.
pub fn topic_name(check: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("conf-{check}-{}", &id[..12])
}

impl Suite {
    /// The suite for `broker`, waiting at most 20 s for any one delivery.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Self {
            broker,
            wait: Duration::from_secs(20),
            short_deadline: Duration::from_secs(2),
        }
    }

    /// Run every check except [`Suite::broker_restart_loses_nothing`].
    pub async fn run_all(&self) -> Result<()> {
        self.headers_round_trip().await?;
        self.order_per_key().await?;
        self.batches().await?;
        self.nack_redelivers_with_next_attempt().await?;
        self.dead_letter_after_max_attempts().await?;
        self.explicit_dead_letter_has_reason().await?;
        self.delayed_message_not_delivered_early().await?;
        self.dropped_delivery_reaches_another_consumer().await?;
        self.dead_consumer_messages_are_redelivered().await?;
        self.poison_message_is_dead_lettered().await?;
        self.cancelled_ack_still_acks().await?;
        self.shutdown_commits().await?;
        Ok(())
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        self.broker.consumer(options).await
    }

    async fn expect(&self, consumer: &mut dyn Consumer, what: &str) -> Result<Delivery> {
        match tokio::time::timeout(self.wait, consumer.next()).await {
            Ok(Ok(Some(d))) => Ok(d),
            Ok(Ok(None)) => Err(Error::internal(format!(
                "conformance: consumer ended while waiting for {what}"
            ))),
            Ok(Err(e)) => Err(e.context(format!("conformance: waiting for {what}"))),
            Err(_) => Err(Error::internal(format!(
                "conformance: no delivery within {:?} while waiting for {what}",
                self.wait
            ))),
        }
    }

    /// Wait for the delivery of message `id`, acking any other delivery.
    async fn expect_id(&self, consumer: &mut dyn Consumer, id: &str) -> Result<Delivery> {
        loop {
            let d = self.expect(consumer, &format!("message {id}")).await?;
            if d.message().id == id {
                return Ok(d);
            }
            d.ack().await?;
        }
    }

    /// Id, key, headers, payload, timestamp and a CloudEvent survive the
    /// trip; the first delivery has attempt 1.
    pub async fn headers_round_trip(&self) -> Result<()> {
        let topic = topic_name("headers");
        let mut consumer = self
            .consumer(ConsumerOptions::new(&topic, group(&topic, "g")))
            .await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        let sent = Message::json(&serde_json::json!({"room": "A-12", "seats": 4}))?
            .with_id("msg-1")
            .with_key("room-A-12")
            .with_header("trace-id", "4bf92f3577b34da6")
            .with_header("tenant", "acme é");
        producer.send(&topic, sent.clone()).await?;
        let envelope = flextime_core::Envelope::new("/bookings", "booking.created")
            .with_id("evt-9")
            .with_data_json(serde_json::json!({"booking": 9}))
            .with_extension("partitionkey", "room-9")?;
        producer
            .send(&topic, Message::from_envelope(&envelope))
            .await?;
        // A message with the id `Message::new` made (a backend may store its
        // time in that id rather than beside it).
        let fresh = Message::new("fresh");
        producer.send(&topic, fresh.clone()).await?;

        // The keys may land on different partitions (Kafka): there is no
        // order between them, so each delivery is checked for what it is.
        let mut seen_plain = false;
        let mut seen_fresh = false;
        let mut seen_event = false;
        for what in [
            "the first of three messages",
            "the second of three messages",
            "the third of three messages",
        ] {
            let got = self.expect(consumer.as_mut(), what).await?;
            ensure!(got.topic() == topic, "topic {} != {topic}", got.topic());
            let m = got.message().clone();
            if m.id == fresh.id {
                ensure!(!seen_fresh, "{} delivered twice", fresh.id);
                seen_fresh = true;
                ensure!(m.payload == fresh.payload, "payload changed");
                ensure!(
                    m.timestamp.timestamp_millis() == fresh.timestamp.timestamp_millis(),
                    "timestamp {} != {}",
                    m.timestamp,
                    fresh.timestamp
                );
            } else if m.id == sent.id {
                ensure!(!seen_plain, "{} delivered twice", sent.id);
                seen_plain = true;
                ensure!(m.key == sent.key, "key {:?} != {:?}", m.key, sent.key);
                ensure!(m.payload == sent.payload, "payload changed");
                ensure!(m.attempt == 1, "first delivery has attempt {}", m.attempt);
                ensure!(
                    m.timestamp.timestamp_millis() == sent.timestamp.timestamp_millis(),
                    "timestamp {} != {}",
                    m.timestamp,
                    sent.timestamp
                );
                let user: BTreeMap<&str, &str> = m.user_headers().collect();
                for (name, value) in sent.user_headers() {
                    ensure!(
                        user.get(name) == Some(&value),
                        "header {name}: {:?} != {value:?} (got {user:?})",
                        user.get(name)
                    );
                }
            } else {
                ensure!(!seen_event, "the CloudEvent delivered twice");
                seen_event = true;
                let back = m.to_envelope()?;
                ensure!(back.id() == "evt-9", "unexpected message {}", back.id());
                ensure!(back.event_type() == "booking.created", "event type");
                ensure!(
                    back.extension("partitionkey").and_then(|v| v.as_str()) == Some("room-9"),
                    "partition key"
                );
                ensure!(
                    back.data_as::<serde_json::Value>()?["booking"] == 9,
                    "event data"
                );
            }
            got.ack().await?;
        }
        consumer.shutdown().await
    }

    /// Messages with the same key arrive in the order they were sent.
    pub async fn order_per_key(&self) -> Result<()> {
        let topic = topic_name("order");
        let mut consumer = self
            .consumer(ConsumerOptions::new(&topic, group(&topic, "g")))
            .await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        let keys = ["k1", "k2", "k3"];
        let per_key = 20u32;
        let mut batch = Vec::new();
        for seq in 0..per_key {
            for key in keys {
                batch.push(
                    Message::json(&Item {
                        key: key.into(),
                        seq,
                    })?
                    .with_key(key),
                );
            }
        }
        producer.send_batch(&topic, batch).await?;
        let mut last: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..(per_key * 3) {
            let d = self
                .expect(consumer.as_mut(), "the next keyed message")
                .await?;
            let item: Item = d.decode()?;
            if let Some(prev) = last.get(&item.key) {
                ensure!(
                    item.seq == prev + 1,
                    "key {}: {} after {prev}",
                    item.key,
                    item.seq
                );
            } else {
                ensure!(item.seq == 0, "key {} starts at {}", item.key, item.seq);
            }
            last.insert(item.key.clone(), item.seq);
            d.ack().await?;
        }
        consumer.shutdown().await
    }

    /// `next_batch` never returns more than asked and gathers everything.
    pub async fn batches(&self) -> Result<()> {
        let topic = topic_name("batches");
        let mut consumer = self
            .consumer(ConsumerOptions::new(&topic, group(&topic, "g")))
            .await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        let empty = consumer.next_batch(4, Duration::from_millis(200)).await?;
        ensure!(empty.is_empty(), "a batch from an empty topic");
        let messages: Vec<Message> = (0..10)
            .map(|i| Message::new(format!("m{i}")).with_id(format!("b{i}")))
            .collect();
        producer.send_batch(&topic, messages).await?;
        let mut seen = HashSet::new();
        let deadline = tokio::time::Instant::now() + self.wait;
        while seen.len() < 10 {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "only {} of 10 messages arrived",
                seen.len()
            );
            let batch = consumer.next_batch(4, Duration::from_secs(2)).await?;
            ensure!(batch.len() <= 4, "a batch of {} > 4", batch.len());
            for d in batch {
                seen.insert(d.message().id.clone());
                d.ack().await?;
            }
        }
        consumer.shutdown().await
    }

    /// A nack redelivers with attempt + 1; a nack with a delay redelivers
    /// not before the delay.
    pub async fn nack_redelivers_with_next_attempt(&self) -> Result<()> {
        let topic = topic_name("nack");
        let mut consumer = self
            .consumer(ConsumerOptions::new(&topic, group(&topic, "g")))
            .await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        producer
            .send(&topic, Message::new("again").with_id("n1").with_key("k"))
            .await?;
        let d = self.expect_id(consumer.as_mut(), "n1").await?;
        ensure!(d.attempt() == 1, "attempt {}", d.attempt());
        d.nack().await?;
        let d = self.expect_id(consumer.as_mut(), "n1").await?;
        ensure!(d.attempt() == 2, "after one nack: attempt {}", d.attempt());
        ensure!(
            d.message().key.as_deref() == Some("k"),
            "key lost on redelivery"
        );
        let delay = Duration::from_millis(1500);
        let nacked_at = Utc::now();
        d.nack_after(delay).await?;
        let d = self.expect_id(consumer.as_mut(), "n1").await?;
        ensure!(d.attempt() == 3, "after two nacks: attempt {}", d.attempt());
        let due = nacked_at + chrono::Duration::from_std(delay).unwrap_or_default();
        ensure!(
            d.received_at() >= due,
            "redelivered at {} before its due time {due}",
            d.received_at()
        );
        d.ack().await?;
        consumer.shutdown().await
    }

    /// After the maximum of attempts, a nack dead-letters the message with
    /// the reason; the dead letter keeps id and payload.
    pub async fn dead_letter_after_max_attempts(&self) -> Result<()> {
        let topic = topic_name("maxatt");
        let options = ConsumerOptions::new(&topic, group(&topic, "g")).with_max_attempts(2);
        let mut dlq = self
            .consumer(ConsumerOptions::new(
                &options.dead_letter_topic,
                group(&topic, "dlq-reader"),
            ))
            .await?;
        let mut consumer = self.consumer(options).await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        producer
            .send(
                &topic,
                Message::new("doomed").with_id("d1").with_header("h", "v"),
            )
            .await?;
        for attempt in 1..=2 {
            let d = self.expect_id(consumer.as_mut(), "d1").await?;
            ensure!(
                d.attempt() == attempt,
                "attempt {} != {attempt}",
                d.attempt()
            );
            d.nack().await?;
        }
        let dead = self.expect_id(dlq.as_mut(), "d1").await?;
        let m = dead.message();
        ensure!(&m.payload[..] == b"doomed", "dead letter payload changed");
        ensure!(m.header("h") == Some("v"), "dead letter lost a header");
        let reason = m.dead_letter_reason().unwrap_or_default();
        ensure!(
            reason.contains("maximum of 2 attempts"),
            "reason {reason:?}"
        );
        ensure!(
            m.header(crate::headers::ORIGINAL_TOPIC) == Some(topic.as_str()),
            "original topic header"
        );
        dead.ack().await?;
        consumer.shutdown().await?;
        dlq.shutdown().await
    }

    /// `dead_letter(reason)` moves the message at once with the reason.
    pub async fn explicit_dead_letter_has_reason(&self) -> Result<()> {
        let topic = topic_name("dead");
        let options = ConsumerOptions::new(&topic, group(&topic, "g"));
        let mut dlq = self
            .consumer(ConsumerOptions::new(
                &options.dead_letter_topic,
                group(&topic, "dlq-reader"),
            ))
            .await?;
        let mut consumer = self.consumer(options).await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        producer
            .send(&topic, Message::new("bad").with_id("x1"))
            .await?;
        let d = self.expect_id(consumer.as_mut(), "x1").await?;
        d.dead_letter("room does not exist").await?;
        let dead = self.expect_id(dlq.as_mut(), "x1").await?;
        ensure!(
            dead.message().dead_letter_reason() == Some("room does not exist"),
            "reason {:?}",
            dead.message().dead_letter_reason()
        );
        dead.ack().await?;
        consumer.shutdown().await?;
        dlq.shutdown().await
    }

    /// `send_delayed` is not delivered before its due time.
    pub async fn delayed_message_not_delivered_early(&self) -> Result<()> {
        let topic = topic_name("delay");
        let mut consumer = self
            .consumer(ConsumerOptions::new(&topic, group(&topic, "g")))
            .await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        let delay = Duration::from_secs(2);
        let sent_at = Utc::now();
        producer
            .send_delayed(&topic, Message::new("later").with_id("l1"), delay)
            .await?;
        let d = self.expect_id(consumer.as_mut(), "l1").await?;
        let due = sent_at + chrono::Duration::from_std(delay).unwrap_or_default();
        ensure!(
            d.received_at() >= due,
            "delivered at {} before its due time {due}",
            d.received_at()
        );
        ensure!(
            d.attempt() == 1,
            "delayed message has attempt {}",
            d.attempt()
        );
        d.ack().await?;
        consumer.shutdown().await
    }

    /// A delivery dropped without settling reaches another consumer of the
    /// group (at-least-once).
    pub async fn dropped_delivery_reaches_another_consumer(&self) -> Result<()> {
        let topic = topic_name("dropped");
        let options =
            ConsumerOptions::new(&topic, group(&topic, "g")).with_ack_deadline(self.short_deadline);
        let mut a = self.consumer(options.clone().with_name("a")).await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        producer
            .send(&topic, Message::new("hot potato").with_id("p1"))
            .await?;
        let d = self.expect_id(a.as_mut(), "p1").await?;
        drop(d);
        drop(a);
        let mut b = self.consumer(options.with_name("b")).await?;
        let d = self.expect_id(b.as_mut(), "p1").await?;
        // The attempt count is not checked here: NATS Server 2.9 reports
        // one redelivery to a new pull consumer member as delivery 1 (the
        // nack check covers attempt + 1).
        ensure!(d.attempt() >= 1, "redelivery has attempt {}", d.attempt());
        d.ack().await?;
        b.shutdown().await
    }

    /// Messages held by a consumer that died (no settlement at all, as
    /// after a crash) are redelivered to a live consumer.
    pub async fn dead_consumer_messages_are_redelivered(&self) -> Result<()> {
        let topic = topic_name("crash");
        let options =
            ConsumerOptions::new(&topic, group(&topic, "g")).with_ack_deadline(self.short_deadline);
        let mut a = self.consumer(options.clone().with_name("a")).await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        producer
            .send(&topic, Message::new("orphan").with_id("o1"))
            .await?;
        let d = self.expect_id(a.as_mut(), "o1").await?;
        // A crash: the delivery is never settled, not even by its Drop.
        std::mem::forget(d);
        drop(a);
        let mut b = self.consumer(options.with_name("b")).await?;
        let d = self.expect_id(b.as_mut(), "o1").await?;
        d.ack().await?;
        b.shutdown().await
    }

    /// A payload that does not decode goes to the dead letters and the
    /// consumer goes on with the next message.
    pub async fn poison_message_is_dead_lettered(&self) -> Result<()> {
        let topic = topic_name("poison");
        let options = ConsumerOptions::new(&topic, group(&topic, "g"));
        let mut dlq = self
            .consumer(ConsumerOptions::new(
                &options.dead_letter_topic,
                group(&topic, "dlq-reader"),
            ))
            .await?;
        let mut consumer = self.consumer(options).await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        producer
            .send_batch(
                &topic,
                vec![
                    Message::json(&Item {
                        key: "a".into(),
                        seq: 1,
                    })?
                    .with_key("a"),
                    Message::new("{not json").with_id("poison").with_key("a"),
                    Message::json(&Item {
                        key: "a".into(),
                        seq: 2,
                    })?
                    .with_key("a"),
                ],
            )
            .await?;
        let mut handled = Vec::new();
        let settled = tokio::time::timeout(
            self.wait,
            crate::run_handler::<Item, _, _>(consumer.as_mut(), Some(3), |item, _| {
                handled.push(item.seq);
                async { Ok(Outcome::Done) }
            }),
        )
        .await
        .map_err(|_| Error::internal("conformance: the handler loop stalled"))??;
        ensure!(settled == 3, "settled {settled}");
        ensure!(handled == [1, 2], "handled {handled:?}");
        let dead = self.expect_id(dlq.as_mut(), "poison").await?;
        let reason = dead.message().dead_letter_reason().unwrap_or_default();
        ensure!(reason.contains("decode"), "reason {reason:?}");
        dead.ack().await?;
        consumer.shutdown().await?;
        dlq.shutdown().await
    }

    /// An ack whose future is dropped, before its first poll or after it
    /// (mid-flight), still takes effect (the ack is committed when `ack` is called): after
    /// shutdown, a new consumer of the group does not get the message again.
    pub async fn cancelled_ack_still_acks(&self) -> Result<()> {
        let topic = topic_name("cancel");
        let options =
            ConsumerOptions::new(&topic, group(&topic, "g")).with_ack_deadline(self.short_deadline);
        let mut a = self.consumer(options.clone()).await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        producer
            .send(&topic, Message::new("once").with_id("c1"))
            .await?;
        let d = self.expect_id(a.as_mut(), "c1").await?;
        // Never polled.
        drop(d.ack());
        // Likewise a batch acked with `Delivery::ack_all`.
        for id in ["c1a", "c1b"] {
            producer
                .send(&topic, Message::new("once").with_id(id))
                .await?;
        }
        let (mut batch, mut seen) = (Vec::new(), HashSet::new());
        while seen.len() < 2 {
            let d = self.expect(a.as_mut(), "c1a and c1b").await?;
            ensure!(
                d.message().id == "c1a" || d.message().id == "c1b",
                "got {} again after its ack",
                d.message().id
            );
            seen.insert(d.message().id.clone());
            batch.push(d);
        }
        drop(Delivery::ack_all(batch));
        // And an ack future cancelled after its first poll (mid-flight).
        producer
            .send(&topic, Message::new("once").with_id("c1c"))
            .await?;
        let d = self.expect_id(a.as_mut(), "c1c").await?;
        let mut polled_once = Box::pin(d.ack());
        let _ = futures::FutureExt::now_or_never(&mut polled_once);
        drop(polled_once);
        a.shutdown().await?;
        drop(a);
        producer
            .send(&topic, Message::new("marker").with_id("c2"))
            .await?;
        let mut b = self.consumer(options).await?;
        let d = self.expect(b.as_mut(), "the marker").await?;
        ensure!(
            d.message().id == "c2",
            "got {} again after its ack",
            d.message().id
        );
        d.ack().await?;
        // Nothing else: give a redelivery twice the ack deadline to show up.
        let more = b.next_batch(1, self.short_deadline * 2).await?;
        ensure!(more.is_empty(), "an acked message was redelivered");
        b.shutdown().await
    }

    /// Shutdown waits for in-flight deliveries and commits: a new consumer
    /// of the group starts after them.
    pub async fn shutdown_commits(&self) -> Result<()> {
        let topic = topic_name("shutdown");
        let options = ConsumerOptions::new(&topic, group(&topic, "g"));
        let mut a = self.consumer(options.clone()).await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        let first: Vec<Message> = (0..5)
            .map(|i| Message::new("x").with_id(format!("s{i}")))
            .collect();
        producer.send_batch(&topic, first).await?;
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(self.expect(a.as_mut(), "the first five").await?);
        }
        // Settled while shutdown is waiting for them.
        let settle = tokio::spawn(async move {
            for d in held {
                d.ack().await?;
            }
            Ok::<_, Error>(())
        });
        a.shutdown().await?;
        settle
            .await
            .map_err(|e| Error::internal(format!("conformance: ack task: {e}")))??;
        drop(a);
        producer
            .send(&topic, Message::new("y").with_id("s5"))
            .await?;
        let mut b = self.consumer(options).await?;
        let d = self
            .expect(b.as_mut(), "the message after shutdown")
            .await?;
        ensure!(
            d.message().id == "s5",
            "got {} after the group committed it",
            d.message().id
        );
        d.ack().await?;
        b.shutdown().await
    }

    /// With `restart` stopping and starting the broker mid-stream, every
    /// message whose send was confirmed is delivered, and clients reconnect
    /// by themselves.
    ///
    /// Nothing of the checked topic is fetched before the restart (its
    /// group is declared by a consumer that leaves at once), so the messages
    /// sent before it can only come from the broker's storage: a broker that
    /// loses them fails the check. A second consumer, on another topic,
    /// stays connected through the restart and must receive a message sent
    /// after it.
    pub async fn broker_restart_loses_nothing<F, Fut>(&self, mut restart: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let topic = topic_name("restart");
        let live_topic = topic_name("restart-live");
        let options = ConsumerOptions::new(&topic, group(&topic, "g"));
        // declare the group (RabbitMQ refuses messages no queue takes), then
        // leave before anything is sent
        let mut declare = self.consumer(options.clone()).await?;
        declare.shutdown().await?;
        drop(declare);
        let mut live = self
            .consumer(ConsumerOptions::new(&live_topic, group(&live_topic, "g")))
            .await?;
        let producer = self.broker.producer(ProducerOptions::default()).await?;
        let mut confirmed = HashSet::new();
        for i in 0..40 {
            if i == 20 {
                restart().await?;
            }
            let id = format!("r{i}");
            self.send_until_confirmed(producer.as_ref(), &topic, &id)
                .await?;
            confirmed.insert(id);
        }
        self.send_until_confirmed(producer.as_ref(), &live_topic, "live")
            .await?;
        // errors while the consumer reconnects may surface: keep asking
        let deadline = tokio::time::Instant::now() + self.wait * 2;
        loop {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "the consumer that lived through the restart never got the message sent after it"
            );
            if let Ok(Ok(Some(d))) = tokio::time::timeout(Duration::from_secs(2), live.next()).await
            {
                ensure!(
                    d.message().id == "live",
                    "the live consumer got {}",
                    d.message().id
                );
                d.ack().await?;
                break;
            }
        }
        live.shutdown().await?;
        let mut consumer = self.consumer(options).await?;
        let deadline = tokio::time::Instant::now() + self.wait * 2;
        while !confirmed.is_empty() {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{} confirmed messages never arrived: {:?}",
                confirmed.len(),
                confirmed
            );
            match tokio::time::timeout(Duration::from_secs(2), consumer.next()).await {
                Ok(Ok(Some(d))) => {
                    confirmed.remove(&d.message().id);
                    d.ack().await?;
                }
                Ok(Ok(None)) => return Err(Error::internal("conformance: consumer ended")),
                Ok(Err(_)) | Err(_) => {}
            }
        }
        consumer.shutdown().await
    }

    /// Sends `id` to `topic`, retrying while the broker is away (for at
    /// most [`Suite::wait`]).
    async fn send_until_confirmed(
        &self,
        producer: &dyn crate::Producer,
        topic: &str,
        id: &str,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            match producer
                .send(topic, Message::new("durable").with_id(id))
                .await
            {
                Ok(()) => return Ok(()),
                Err(err) => {
                    ensure!(
                        tokio::time::Instant::now() < deadline,
                        "send {id} failed for {:?}: {err}",
                        self.wait
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
