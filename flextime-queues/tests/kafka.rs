//! The conformance suite on Kafka (tansu).
#![cfg(all(feature = "kafka", feature = "conformance"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use flextime_queues::conformance::Suite;
use flextime_queues::kafka::{KafkaBroker, KafkaConfig};
use flextime_testkit::server::free_port;

fn suite(url: &str) -> Suite {
    let broker = KafkaBroker::new(KafkaConfig::from_url(url).unwrap()).unwrap();
    let mut suite = Suite::new(Arc::new(broker));
    // A partition held by a consumer that went away reaches another member
    // only after a rebalance, which can wait out the old member's session
    // (10 s) first; on a loaded 2-core machine 20 s was not always enough.
    suite.wait = std::time::Duration::from_secs(45);
    suite
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
    let config = KafkaConfig::from_url("kafka://a:1").unwrap();
    assert_eq!(config.commit_interval, Duration::from_millis(100));
    let config = KafkaConfig::from_url("kafka://a:1?commit_interval_ms=0").unwrap();
    assert_eq!(config.commit_interval, Duration::ZERO);
    let err = KafkaConfig::from_url("kafka://a:1?commit_interval_ms=soon").unwrap_err();
    assert!(err.to_string().contains("commit_interval_ms"), "{err}");
}

/// A private tansu broker storing into an SQLite file of its own (the
/// shared peer keeps everything in memory, which a restart loses), killed
/// with SIGKILL and started again mid-stream: every confirmed message is
/// consumed; producer and consumer reconnect by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing() {
    let _shared = flextime_testkit::require_peer!(Kafka);
    let Some(tansu) = flextime_testkit::tansu_bin() else {
        panic!("FLEXTIME_TEST_TANSU_BIN is not set (run scripts/services)");
    };
    let port = free_port().unwrap();
    let server = support::start("tansu", port, move |dir| {
        let listener = format!("tcp://127.0.0.1:{port}");
        let mut cmd = std::process::Command::new(&tansu);
        // sqlite://tansu.db is relative to the working directory
        cmd.current_dir(dir)
            .args(["broker", "--storage-engine", "sqlite://tansu.db"])
            .args(["--listener-url", &listener])
            .args(["--advertised-listener-url", &listener]);
        cmd
    })
    .await;
    let url = format!("kafka://127.0.0.1:{port}?partitions=1");
    let broker = KafkaBroker::new(KafkaConfig::from_url(&url).unwrap()).unwrap();
    support::restart_check(&Suite::new(Arc::new(broker)), server).await;
}
