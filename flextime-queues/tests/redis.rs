//! The conformance suite on Redis Streams.
#![cfg(all(feature = "redis", feature = "conformance"))]

mod support;

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::redis::{RedisBroker, RedisConfig};
use flextime_testkit::server::{free_port, require_binary};

async fn suite(url: &str) -> Suite {
    let broker = RedisBroker::connect(RedisConfig::from_url(url).unwrap())
        .await
        .unwrap();
    Suite::new(Arc::new(broker))
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let url = flextime_testkit::require_peer!(Redis);
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
async fn url_picks_redis_and_hides_the_password() {
    let url = flextime_testkit::require_peer!(Redis);
    let broker = flextime_queues::connect(&url).await.unwrap();
    assert_eq!(broker.backend(), "redis");
    let config = RedisConfig::from_url("redis://:hunter2@127.0.0.1:1/0").unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

/// A private redis-server (AOF, fsync always) killed and restarted
/// mid-stream: no confirmed message is lost, producer and consumer reconnect.
#[tokio::test]
async fn broker_restart_loses_nothing() {
    let _shared = flextime_testkit::require_peer!(Redis);
    let Some(bin) = require_binary("redis-server", "broker_restart_loses_nothing") else {
        return;
    };
    let port = free_port().unwrap();
    let server = support::start("redis", port, move |dir| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir);
        cmd
    })
    .await;
    let url = format!("redis://127.0.0.1:{port}");
    let broker = RedisBroker::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    support::restart_check(&Suite::new(Arc::new(broker)), server).await;
}
