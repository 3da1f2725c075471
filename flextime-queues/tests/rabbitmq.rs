//! The conformance suite on RabbitMQ.
#![cfg(all(feature = "rabbitmq", feature = "conformance"))]

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::rabbitmq::{RabbitBroker, RabbitConfig};

async fn suite(url: &str) -> Suite {
    let broker = RabbitBroker::connect(RabbitConfig::from_url(url).unwrap())
        .await
        .unwrap();
    Suite::new(Arc::new(broker))
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let url = flextime_testkit::require_peer!(Amqp);
            suite(&url).await.$name().await.unwrap();
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
async fn url_picks_rabbitmq_and_hides_the_password() {
    let url = flextime_testkit::require_peer!(Amqp);
    let broker = flextime_queues::connect(&url).await.unwrap();
    assert_eq!(broker.backend(), "rabbitmq");
    let Err(err) = flextime_queues::connect("amqp://guest:hunter2@127.0.0.1:1/%2f").await else {
        panic!("connected to a closed port")
    };
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
