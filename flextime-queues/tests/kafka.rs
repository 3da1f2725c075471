//! The conformance suite on Kafka (tansu).
#![cfg(all(feature = "kafka", feature = "conformance"))]

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::kafka::{KafkaBroker, KafkaConfig};

fn suite(url: &str) -> Suite {
    let broker = KafkaBroker::new(KafkaConfig::from_url(url).unwrap()).unwrap();
    Suite::new(Arc::new(broker))
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let url = flextime_testkit::require_peer!(Kafka);
            suite(&url).$name().await.unwrap();
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
async fn url_picks_kafka() {
    let url = flextime_testkit::require_peer!(Kafka);
    let broker = flextime_queues::connect(&url).await.unwrap();
    assert_eq!(broker.backend(), "kafka");
    assert!(KafkaConfig::from_url("kafka://u:p@h:1").is_err());
    assert_eq!(
        KafkaConfig::from_url("kafka://a:1,b:2?partitions=5")
            .unwrap()
            .partitions,
        5
    );
}
