//! The conformance suite against the MongoDB wire protocol (a fresh
//! database per test). On this machine the peer is secantusdb, a surrogate
//! for mongod.
#![cfg(all(feature = "mongodb", feature = "conformance"))]

mod support;

use std::sync::Arc;

use flextime_db::conformance::Fixture;
use flextime_db::mongodb::MongoAdapter;
use flextime_db::{Adapter, DbOptions};

fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("mongodb URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

/// Drop a test's database.
async fn drop_database(url: String, name: String) {
    let client = mongodb::Client::with_uri_str(&url)
        .await
        .expect("mongodb client");
    client.database(&name).drop().await.expect("drop database");
}

async fn make() -> Option<Fixture> {
    let url = flextime_testkit::require_peer!(Mongodb, None);
    let name = flextime_testkit::unique_name("ftdb");
    let db_url = with_database(&url, &name);
    let db = Arc::new(
        MongoAdapter::connect(&db_url, DbOptions::default())
            .await
            .expect("connect"),
    );
    Some(Fixture::new(db, drop_database(url, name)))
}

/// The connection is cut by a TCP proxy between the adapter and the
/// server (killing the server's side of a session can wedge the surrogate
/// server used here); cut while no transaction is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_is_retryable_and_the_pool_recovers() {
    let url = flextime_testkit::require_peer!(Mongodb);
    let parsed = url::Url::parse(&url).expect("mongodb URL");
    let target = tokio::net::lookup_host((
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(27017),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = support::TcpProxy::start(target).await;
    let name = flextime_testkit::unique_name("ftdb_lost");
    let via_proxy = format!("mongodb://{}/{name}?directConnection=true", proxy.addr());
    let options = DbOptions {
        pool: flextime_db::PoolOptions {
            acquire_timeout: std::time::Duration::from_secs(5),
            ..flextime_db::PoolOptions::default()
        },
        ..DbOptions::default()
    };
    let db: Arc<dyn Adapter> = Arc::new(MongoAdapter::connect(&via_proxy, options).await.unwrap());
    let kill = async {
        assert!(proxy.cut() > 0, "no connection of the adapter was open");
    };
    flextime_db::conformance::lost_connection_recovers(db, kill).await;
    drop(proxy);
    drop_database(url, name).await;
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
    let name = target.rsplit('/').next().unwrap_or_default().to_owned();
    drop_database(url, name).await;
}
