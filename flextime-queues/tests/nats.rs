//! The conformance suite on NATS JetStream.
#![cfg(all(feature = "nats", feature = "conformance"))]

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::nats::{NatsBroker, NatsConfig};

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
    let Ok(bin) = which("nats-server") else {
        eprintln!("SKIPPED broker_restart_loses_nothing: nats-server not found on PATH");
        return;
    };
    let dir = std::env::temp_dir().join(flextime_testkit::unique_name("nats-restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let start = {
        let bin = bin.clone();
        let dir = dir.clone();
        move || {
            tokio::process::Command::new(&bin)
                .args(["-p", &port.to_string(), "-a", "127.0.0.1", "-js"])
                .arg("-sd")
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
    let url = format!("nats://127.0.0.1:{port}");
    let broker = NatsBroker::connect(NatsConfig::from_url(&url).unwrap())
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
    panic!("nats-server did not listen on {port}");
}
