//! The outbox relay publishing through flextime-queues producers: the
//! in-process memory broker and Redis Streams (a real broker), each with a
//! consumer receiving the messages.
#![cfg(all(feature = "queues", feature = "sqlite"))]

use std::sync::Arc;
use std::time::Duration;

use flextime_db::queues::QueuePublisher;
use flextime_db::sqlite::SqliteAdapter;
use flextime_db::stores::{OutboxMessage, OutboxStore};
use flextime_db::{Adapter, DbOptions, WriteOp};
use flextime_queues::{Broker, ConsumerOptions, ProducerOptions};
use serde_json::json;

/// Append five rows (three with their business change), relay them through
/// `broker`, consume them: each arrives once, in order, with the row id as
/// the message id and key and headers carried over; the outbox is empty.
async fn relay_through(broker: Arc<dyn Broker>, topic: &str) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let db: Arc<dyn Adapter> = Arc::new(
        SqliteAdapter::connect(&url, DbOptions::default())
            .await
            .unwrap(),
    );
    let outbox = OutboxStore::new(Arc::clone(&db));
    let mut consumer = broker
        .consumer(ConsumerOptions::new(topic, "relay-test"))
        .await
        .unwrap();
    let publisher = QueuePublisher::new(broker.producer(ProducerOptions::default()).await.unwrap());
    let mut ids = Vec::new();
    for n in 0..5 {
        let message = OutboxMessage::new(topic, json!({"n": n}))
            .with_key("booking-1")
            .with_header("x-app", "test");
        let op = outbox.append_op(&message).unwrap();
        ids.push(op.id().to_owned());
        let mut ops = vec![op];
        if n < 3 {
            ops.push(WriteOp::upsert(
                "bookings",
                format!("b{n}"),
                json!({"n": n}),
            ));
        }
        db.write(ops).await.unwrap();
    }
    let report = outbox.relay_once(&publisher, 100).await.unwrap();
    assert_eq!((report.published, report.failed), (5, false));
    assert_eq!(
        outbox.relay_once(&publisher, 100).await.unwrap().published,
        0
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        let batch = consumer
            .next_batch(5, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(
            !batch.is_empty(),
            "the broker did not deliver every message"
        );
        for delivery in batch {
            let m = delivery.message().clone();
            assert_eq!(m.key.as_deref(), Some("booking-1"));
            assert_eq!(m.headers.get("x-app").map(String::as_str), Some("test"));
            let payload: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            got.push((m.id.clone(), payload["n"].as_u64().unwrap()));
            delivery.ack().await.unwrap();
        }
    }
    let expected: Vec<(String, u64)> = ids.into_iter().zip(0..).collect();
    assert_eq!(got, expected);
    // every row was marked sent (and the log pruned behind the relay)
    outbox.relay_once(&publisher, 100).await.unwrap();
    assert!(
        db.changes(outbox.collection(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    publisher.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_to_the_memory_broker() {
    let broker = flextime_queues::connect("memory://").await.unwrap();
    relay_through(broker, "bookings").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_to_redis_streams() {
    let url = flextime_testkit::require_peer!(Redis);
    let topic = flextime_testkit::unique_name("ftdb_relay");
    let broker = flextime_queues::connect(&url).await.unwrap();
    relay_through(broker, &topic).await;
    // the stream and its companions are this test's only keys
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&topic)
        .arg(format!("{topic}:delayed"))
        .arg(format!("{topic}.dlq"))
        .query_async(&mut conn)
        .await
        .unwrap();
}
