//! The conformance suite against Redis (a fresh key prefix per test).
#![cfg(all(feature = "redis", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::redis::RedisAdapter;
use flextime_db::{Adapter, DbOptions};

async fn connect(url: &str) -> RedisAdapter {
    let options = DbOptions {
        key_prefix: Some(format!("{}:", flextime_testkit::unique_name("ftdb"))),
        ..DbOptions::default()
    };
    RedisAdapter::connect(url, options).await.expect("connect")
}

async fn make() -> Option<Arc<dyn Adapter>> {
    let url = flextime_testkit::require_peer!(Redis, None);
    Some(Arc::new(connect(&url).await))
}

flextime_db::conformance_tests!(make());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_is_retryable_and_the_connection_recovers() {
    let url = flextime_testkit::require_peer!(Redis);
    let adapter = connect(&url).await;
    let id = adapter.client_id().await.unwrap();
    let killer = connect(&url).await;
    let db: Arc<dyn Adapter> = Arc::new(adapter);
    let kill = async move {
        let client = redis::Client::open(url.as_str()).unwrap();
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
