//! The conformance suite on NATS JetStream.
#![cfg(all(feature = "nats", feature = "conformance"))]

mod support;

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::nats::{NatsBroker, NatsConfig};
use flextime_testkit::server::{free_port, require_binary};

async fn suite(url: &str) -> Suite {
    let broker = NatsBroker::connect(NatsConfig::from_url(url).unwrap())
        .await
        .unwrap();
    Suite::new(Arc::new(broker))
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let url = flextime_testkit::require_peer!(Nats);
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
async fn url_picks_nats_and_hides_the_password() {
    let url = flextime_testkit::require_peer!(Nats);
    let broker = flextime_queues::connect(&url).await.unwrap();
    assert_eq!(broker.backend(), "nats");
    let config = NatsConfig::from_url("nats://u:hunter2@127.0.0.1:1").unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

/// A private nats-server (JetStream, file storage) killed and restarted
/// mid-stream: no confirmed message is lost, producer and consumer reconnect.
#[tokio::test]
async fn broker_restart_loses_nothing() {
    let _shared = flextime_testkit::require_peer!(Nats);
    let Some(bin) = require_binary("nats-server", "broker_restart_loses_nothing") else {
        return;
    };
    let port = free_port().unwrap();
    let server = support::start("nats", port, move |dir| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["-p", &port.to_string(), "-a", "127.0.0.1", "-js", "-sd"])
            .arg(dir);
        cmd
    })
    .await;
    let url = format!("nats://127.0.0.1:{port}");
    let broker = NatsBroker::connect(NatsConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    support::restart_check(&Suite::new(Arc::new(broker)), server).await;
}
