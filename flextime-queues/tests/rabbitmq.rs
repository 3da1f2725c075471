//! The conformance suite on RabbitMQ.
#![cfg(all(feature = "rabbitmq", feature = "conformance"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use flextime_queues::conformance::Suite;
use flextime_queues::rabbitmq::{RabbitBroker, RabbitConfig};
use flextime_testkit::server::{free_port, require_binary};

/// Queues the checks declare expire ten minutes after their last use, so
/// repeated runs do not pile quorum queues up on the shared server.
const TEST_QUEUE_EXPIRY: Duration = Duration::from_secs(600);

async fn suite(url: &str) -> Suite {
    let config = RabbitConfig::from_url(url)
        .unwrap()
        .with_queue_expires(TEST_QUEUE_EXPIRY);
    let broker = RabbitBroker::connect(config).await.unwrap();
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

/// A private RabbitMQ node (own node name, ports and data directory) killed
/// with SIGKILL and started again mid-stream: the quorum queue keeps every
/// confirmed message; producer and consumer reconnect by themselves.
#[tokio::test]
async fn broker_restart_loses_nothing() {
    let _shared = flextime_testkit::require_peer!(Amqp);
    let Some(bin) = require_binary(
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
        "broker_restart_loses_nothing",
    ) else {
        return;
    };
    let port = free_port().unwrap();
    let dist_port = free_port().unwrap();
    let node = format!("flextime-restart-{}-{port}@localhost", std::process::id());
    let server = support::start("rabbitmq", port, move |dir| {
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let mut cmd = std::process::Command::new(&bin);
        cmd.current_dir(dir)
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("node.pid"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("no-config"));
        cmd
    })
    .await;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let broker = RabbitBroker::connect(RabbitConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    support::restart_check(&Suite::new(Arc::new(broker)), server).await;
}
