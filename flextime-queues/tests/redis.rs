//! The conformance suite on Redis Streams.
#![cfg(all(feature = "redis", feature = "conformance"))]

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::redis::{RedisBroker, RedisConfig};

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
    let Ok(bin) = which("redis-server") else {
        eprintln!("SKIPPED broker_restart_loses_nothing: redis-server not found on PATH");
        return;
    };
    let dir = std::env::temp_dir().join(flextime_testkit::unique_name("redis-restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let start = {
        let bin = bin.clone();
        let dir = dir.clone();
        move || {
            tokio::process::Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                ])
                .arg("--dir")
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        }
    };
    let mut server = start();
    wait_for_port(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let broker = RedisBroker::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    let suite = Suite::new(Arc::new(broker));
    let server_slot = std::sync::Mutex::new(Some(server));
    suite
        .broker_restart_loses_nothing(|| {
            let old = server_slot.lock().unwrap().take();
            let start = start.clone();
            let slot = &server_slot;
            async move {
                if let Some(mut old) = old {
                    old.kill().await.unwrap();
                }
                let new = start();
                *slot.lock().unwrap() = Some(new);
                wait_for_port(port).await;
                Ok(())
            }
        })
        .await
        .unwrap();
    server = server_slot.lock().unwrap().take().unwrap();
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("redis-server did not listen on {port}");
}

#[tokio::test]
async fn pubsub_broadcast_reaches_every_subscriber() {
    use futures::StreamExt;
    let url = flextime_testkit::require_peer!(Redis);
    let broker = RedisBroker::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    let channel = flextime_testkit::unique_name("broadcast");
    let mut one = broker.subscribe(&channel).await.unwrap();
    let mut two = broker.subscribe(&channel).await.unwrap();
    let sent = flextime_queues::Message::new("hello all")
        .with_key("k")
        .with_header("h", "v");
    let receivers = broker.broadcast(&channel, &sent).await.unwrap();
    assert_eq!(receivers, 2);
    for stream in [&mut one, &mut two] {
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.id, sent.id);
        assert_eq!(got.payload, sent.payload);
        assert_eq!(got.header("h"), Some("v"));
        assert_eq!(got.key.as_deref(), Some("k"));
    }
}
