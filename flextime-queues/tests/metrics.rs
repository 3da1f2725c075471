//! The consumed and published counters, read back from a debugging recorder
//! installed as the global recorder before the consumer starts (this test
//! binary holds only this test).
#![cfg(feature = "memory")]

use flextime_core::telemetry as metric;
use flextime_queues::memory::MemoryBroker;
use flextime_queues::{Broker, ConsumerOptions, Message, ProducerOptions};
use flextime_testkit::metrics::recorded;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test]
async fn settlements_are_counted_per_backend_topic_and_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();

    let broker = MemoryBroker::default();
    let mut consumer = broker
        .consumer(ConsumerOptions::new("bookings", "g"))
        .await
        .unwrap();
    let producer = broker.producer(ProducerOptions::default()).await.unwrap();
    producer
        .send_batch(
            "bookings",
            vec![Message::new("a"), Message::new("b"), Message::new("c")],
        )
        .await
        .unwrap();
    // a: acked; b: nacked, then acked when it comes again; c: dead-lettered.
    let mut settled = 0;
    while settled < 4 {
        let d = consumer.next().await.unwrap().expect("a delivery");
        match (&d.message().payload[..], d.message().attempt) {
            (b"b", 1) => d.nack().await.unwrap(),
            (b"c", _) => d.dead_letter("poison").await.unwrap(),
            _ => d.ack().await.unwrap(),
        }
        settled += 1;
    }
    consumer.shutdown().await.unwrap();

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| recorded(&snapshot, name, labels);
    let consumed = |outcome: &str| {
        find(
            metric::QUEUE_CONSUMED,
            &[
                ("backend", "memory"),
                ("topic", "bookings"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(consumed("ack"), Some(&DebugValue::Counter(2)));
    assert_eq!(consumed("nack"), Some(&DebugValue::Counter(1)));
    assert_eq!(consumed("dead_letter"), Some(&DebugValue::Counter(1)));
    assert_eq!(
        find(
            metric::QUEUE_PUBLISHED,
            &[("backend", "memory"), ("topic", "bookings")]
        ),
        Some(&DebugValue::Counter(3))
    );
}
