//! The conformance suite on Kafka (tansu).
#![cfg(all(feature = "kafka", feature = "conformance"))]

mod support;

use std::sync::Arc;

use flextime_queues::conformance::Suite;
use flextime_queues::kafka::{KafkaBroker, KafkaConfig};
use flextime_testkit::server::{free_port, require_binary};

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

/// Runs `psql` against the PostgreSQL peer's `test` database.
fn psql(psql: &std::path::Path, postgres_url: &str, sql: &str) {
    let out = std::process::Command::new(psql)
        .args([postgres_url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private tansu broker storing into a PostgreSQL database of its own
/// (the shared peer keeps everything in memory, which a restart loses),
/// killed with SIGKILL and started again mid-stream: every confirmed
/// message is consumed; producer and consumer reconnect by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing() {
    let _shared = flextime_testkit::require_peer!(Kafka);
    let postgres = flextime_testkit::require_peer!(Postgres);
    let Some(tansu) = flextime_testkit::tansu_bin() else {
        panic!("FLEXTIME_TEST_TANSU_BIN is not set (run scripts/services)");
    };
    let Some(psql_bin) = require_binary("psql", "broker_restart_loses_nothing") else {
        return;
    };
    let database = flextime_testkit::unique_name("tansu_restart");
    psql(&psql_bin, &postgres, &format!("CREATE DATABASE {database}"));
    let _drop_database = DropDatabase {
        psql: psql_bin.clone(),
        url: postgres.clone(),
        database: database.clone(),
    };
    let storage = url::Url::parse(&postgres)
        .map(|mut u| {
            u.set_path(&database);
            u.to_string()
        })
        .unwrap();
    let port = free_port().unwrap();
    let server = support::start("tansu", port, move |_dir| {
        let listener = format!("tcp://127.0.0.1:{port}");
        let mut cmd = std::process::Command::new(&tansu);
        cmd.args(["broker", "--storage-engine", &storage])
            .args(["--listener-url", &listener])
            .args(["--advertised-listener-url", &listener]);
        cmd
    })
    .await;
    let url = format!("kafka://127.0.0.1:{port}?partitions=1");
    let broker = KafkaBroker::new(KafkaConfig::from_url(&url).unwrap()).unwrap();
    support::restart_check(&Suite::new(Arc::new(broker)), server).await;
}

/// Drops the test's database however the test ends.
struct DropDatabase {
    psql: std::path::PathBuf,
    url: String,
    database: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.psql)
            .args([&self.url, "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .output();
    }
}
