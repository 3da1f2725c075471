//! The conformance suite against the MongoDB wire protocol (a fresh
//! database per test). On this machine the peer is secantusdb, a surrogate
//! for mongod.
#![cfg(all(feature = "mongodb", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::mongodb::MongoAdapter;
use flextime_db::{Adapter, DbOptions};

fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("mongodb URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

async fn make() -> Option<Arc<dyn Adapter>> {
    let url = flextime_testkit::require_peer!(Mongodb, None);
    let db_url = with_database(&url, &flextime_testkit::unique_name("ftdb"));
    Some(Arc::new(
        MongoAdapter::connect(&db_url, DbOptions::default())
            .await
            .expect("connect"),
    ))
}

flextime_db::conformance_tests!(make());

#[tokio::test]
async fn debug_and_errors_hide_the_password() {
    let config =
        flextime_db::mongodb::MongoConfig::from_url("mongodb://u:s3cr3tpw@127.0.0.1:1/x").unwrap();
    assert!(!format!("{config:?}").contains("s3cr3tpw"));
    let options = DbOptions {
        pool: flextime_db::PoolOptions {
            acquire_timeout: std::time::Duration::from_millis(500),
            ..flextime_db::PoolOptions::default()
        },
        ..DbOptions::default()
    };
    let err = MongoAdapter::connect("mongodb://u:s3cr3tpw@127.0.0.1:1/x", options)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cr3tpw"));
}

#[tokio::test]
async fn connect_dispatches_on_the_scheme() {
    let url = flextime_testkit::require_peer!(Mongodb);
    let target = with_database(&url, &flextime_testkit::unique_name("ftdb_connect"));
    let db = flextime_db::connect(&target, DbOptions::default())
        .await
        .unwrap();
    assert_eq!(db.backend(), "mongodb");
    db.ping().await.unwrap();
}
