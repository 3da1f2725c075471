//! The `queues` feature: accepted webhooks go through a real broker (the
//! in-process memory broker, Redis Streams and RabbitMQ), and handlers run
//! from the queue.
#![cfg(feature = "queues")]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use flextime_core::Error;
use flextime_queues::{Broker, ConsumerOptions, ProducerOptions};
use flextime_webhooks::receiver::{
    Handlers, QueueHandOff, Receiver, SourceConfig, from_message, run_queue_handlers,
};
use flextime_webhooks::verify::{StandardWebhooks, Tolerance};
use http::{Request, StatusCode};
use tower::ServiceExt;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn round_trip(broker: Arc<dyn Broker>) {
    let topic = flextime_testkit::unique_name("webhooks");
    let producer: Arc<dyn flextime_queues::Producer> =
        Arc::from(broker.producer(ProducerOptions::default()).await.unwrap());
    let mut consumer = broker
        .consumer(ConsumerOptions::new(topic.clone(), "handlers").with_max_attempts(2))
        .await
        .unwrap();
    let sw = StandardWebhooks::new([SECRET.into()], Tolerance::DISABLED).unwrap();
    let app = Receiver::builder(QueueHandOff::new(producer, topic.clone()))
        .source(SourceConfig::new("billing", "/hooks", Arc::new(sw.clone())))
        .build()
        .unwrap()
        .router();
    let post = |id: &str, body: &str| {
        Request::post("/hooks")
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", "1700000000")
            .header(
                "webhook-signature",
                sw.sign(id, 1_700_000_000, body.as_bytes()),
            )
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    for (id, body) in [
        ("msg_ok", r#"{"type":"booking.created","n":1}"#),
        ("msg_bad", r#"{"type":"booking.cancelled","n":2}"#),
    ] {
        let response = app.clone().oneshot(post(id, body)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // A replay is not published twice.
    let again = app
        .clone()
        .oneshot(post("msg_ok", r#"{"type":"booking.created","n":1}"#))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);

    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let handlers = Handlers::new()
        .on("booking.created", move |data: serde_json::Value, raw| {
            let tx = seen_tx.clone();
            async move {
                tx.send((
                    raw.envelope.id().to_owned(),
                    data["n"].clone(),
                    raw.raw_body.len(),
                ))
                .unwrap();
                Ok(())
            }
        })
        .on(
            "booking.cancelled",
            |_data: serde_json::Value, _raw| async { Err(Error::permanent("cannot cancel")) },
        );
    let settled = tokio::time::timeout(
        Duration::from_secs(60),
        run_queue_handlers(consumer.as_mut(), &handlers, Some(2)),
    )
    .await
    .expect("two messages settled within 60 s")
    .unwrap();
    assert_eq!(settled, 2);
    let (id, n, raw_len) = seen_rx.recv().await.unwrap();
    assert_eq!((id.as_str(), n), ("msg_ok", serde_json::json!(1)));
    assert_eq!(raw_len, r#"{"type":"booking.created","n":1}"#.len());
    consumer.shutdown().await.unwrap();

    // The permanent failure is in the dead letters, intact, with the reason
    // (RabbitMQ keeps them in the `dead-letters` group, declared up front).
    let mut dlq = broker
        .consumer(ConsumerOptions::new(format!("{topic}.dlq"), "dead-letters"))
        .await
        .unwrap();
    let letter = tokio::time::timeout(Duration::from_secs(60), dlq.next())
        .await
        .expect("a dead letter within 60 s")
        .unwrap()
        .expect("a dead letter");
    let event = from_message(letter.message()).unwrap();
    assert_eq!(event.envelope.id(), "msg_bad");
    assert!(
        letter
            .message()
            .dead_letter_reason()
            .unwrap_or_default()
            .contains("cannot cancel"),
        "{:?}",
        letter.message().dead_letter_reason()
    );
    letter.ack().await.unwrap();
    dlq.shutdown().await.unwrap();
}

#[tokio::test]
async fn through_the_memory_broker() {
    round_trip(flextime_queues::connect("memory://").await.unwrap()).await;
}

#[tokio::test]
async fn through_redis_streams() {
    let url = flextime_testkit::require_peer!(Redis);
    round_trip(flextime_queues::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn through_rabbitmq() {
    let url = flextime_testkit::require_peer!(Amqp);
    // the test's queues expire ten minutes after their last use
    let url = format!("{url}?queue_expires_ms=600000");
    round_trip(flextime_queues::connect(&url).await.unwrap()).await;
}
