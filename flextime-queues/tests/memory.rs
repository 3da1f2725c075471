//! The conformance suite on the memory backend.
#![cfg(all(feature = "memory", feature = "conformance"))]

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::memory::{MemoryBroker, MemoryConfig};
use flextime_queues::{Broker, ConsumerOptions, Message, ProducerOptions};

fn suite() -> Suite {
    Suite::new(Arc::new(MemoryBroker::default()))
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            suite().$name().await.unwrap();
        }
    )*};
}

checks!(
    headers_round_trip,
    order_per_key,
    batches,
    nack_redelivers_with_next_attempt,
    dead_letter_after_max_attempts,
    explicit_dead_letter_has_reason,
    delayed_message_not_delivered_early,
    dropped_delivery_reaches_another_consumer,
    dead_consumer_messages_are_redelivered,
    poison_message_is_dead_lettered,
    cancelled_ack_still_acks,
    shutdown_commits,
);

#[tokio::test]
async fn a_full_topic_pushes_back() {
    let broker = MemoryBroker::new(MemoryConfig::default().with_capacity(2));
    let mut consumer = broker
        .consumer(ConsumerOptions::new("t", "g"))
        .await
        .unwrap();
    let producer = broker.producer(ProducerOptions::default()).await.unwrap();
    producer.send("t", Message::new("1")).await.unwrap();
    producer.send("t", Message::new("2")).await.unwrap();
    let mut third = Box::pin(producer.send("t", Message::new("3")));
    assert!(
        futures::FutureExt::now_or_never(&mut third).is_none(),
        "a full topic accepted a send"
    );
    let d = consumer.next().await.unwrap().unwrap();
    d.ack().await.unwrap();
    third.await.unwrap();
}

#[tokio::test]
async fn url_picks_memory() {
    let broker = flextime_queues::connect("memory://?capacity=5")
        .await
        .unwrap();
    assert_eq!(broker.backend(), "memory");
    assert!(
        flextime_queues::connect("memory://?capacity=x")
            .await
            .is_err()
    );
    assert!(flextime_queues::connect("nope").await.is_err());
}
