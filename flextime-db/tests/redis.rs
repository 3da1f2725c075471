//! The conformance suite against Redis (a fresh key prefix per test).
#![cfg(all(feature = "redis", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::conformance::Fixture;
use flextime_db::redis::RedisAdapter;
use flextime_db::{Adapter, DbOptions};

async fn connect_with(url: &str, prefix: &str) -> RedisAdapter {
    let options = DbOptions {
        key_prefix: Some(prefix.to_owned()),
        ..DbOptions::default()
    };
    RedisAdapter::connect(url, options).await.expect("connect")
}

async fn connect(url: &str) -> RedisAdapter {
    connect_with(url, &format!("{}:", flextime_testkit::unique_name("ftdb"))).await
}

/// Delete every key under a test's prefix (`unique_name`: no glob characters).
async fn drop_prefix(url: String, prefix: String) {
    let client = redis::Client::open(url.as_str()).expect("redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("del");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

async fn make() -> Option<Fixture> {
    let url = flextime_testkit::require_peer!(Redis, None);
    let prefix = format!("{}:", flextime_testkit::unique_name("ftdb"));
    let db = Arc::new(connect_with(&url, &prefix).await);
    Some(Fixture::new(db, drop_prefix(url, prefix)))
}

flextime_db::conformance_tests!(make());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_is_retryable_and_the_connection_recovers() {
    let url = flextime_testkit::require_peer!(Redis);
    let prefix = format!("{}:", flextime_testkit::unique_name("ftdb_lost"));
    let adapter = connect_with(&url, &prefix).await;
    let id = adapter.client_id().await.unwrap();
    let killer = connect(&url).await;
    let db: Arc<dyn Adapter> = Arc::new(adapter);
    let kill_url = url.clone();
    let kill = async move {
        let client = redis::Client::open(kill_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(killed, 1);
        drop(killer);
    };
    flextime_db::conformance::lost_connection_recovers(db, kill).await;
    drop_prefix(url, prefix).await;
}

#[tokio::test]
async fn debug_hides_the_password() {
    let config =
        flextime_db::redis::RedisConfig::from_url("redis://:s3cr3tpw@127.0.0.1:6379", None)
            .unwrap();
    assert!(!format!("{config:?}").contains("s3cr3tpw"));
    let err = RedisAdapter::connect("redis://:s3cr3tpw@127.0.0.1:1", DbOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cr3tpw"));
}

#[tokio::test]
async fn connect_dispatches_on_the_scheme() {
    let url = flextime_testkit::require_peer!(Redis);
    let target = url.clone();
    let db = flextime_db::connect(&target, DbOptions::default())
        .await
        .unwrap();
    assert_eq!(db.backend(), "redis");
    db.ping().await.unwrap();
}
