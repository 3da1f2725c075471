//! The conformance suite against PostgreSQL (a fresh schema per test).
#![cfg(all(feature = "postgres", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::postgres::PostgresAdapter;
use flextime_db::{Adapter, DbOptions, PoolOptions};

async fn connect(url: &str, schema: &str) -> PostgresAdapter {
    let options = DbOptions {
        schema: Some(schema.to_owned()),
        pool: PoolOptions {
            max_connections: 8,
            ..PoolOptions::default()
        },
        ..DbOptions::default()
    };
    PostgresAdapter::connect(url, options)
        .await
        .expect("connect")
}

async fn make() -> Option<Arc<dyn Adapter>> {
    let url = flextime_testkit::require_peer!(Postgres, None);
    let schema = flextime_testkit::unique_name("ftdb");
    Some(Arc::new(connect(&url, &schema).await))
}

flextime_db::conformance_tests!(make());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_is_retryable_and_the_pool_recovers() {
    let url = flextime_testkit::require_peer!(Postgres);
    let app = flextime_testkit::unique_name("ftdb_lost");
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = connect(&format!("{url}{sep}application_name={app}"), &app).await;
    let killer = PostgresAdapter::connect(
        &url,
        DbOptions {
            migrate_on_connect: false,
            ..DbOptions::default()
        },
    )
    .await
    .unwrap();
    let db: Arc<dyn Adapter> = Arc::new(db);
    let kill = async {
        let (killed,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
        )
        .bind(&app)
        .fetch_one(killer.pool())
        .await
        .unwrap();
        assert!(killed > 0, "no connection of the adapter was found");
    };
    flextime_db::conformance::lost_connection_recovers(db, kill).await;
}

#[tokio::test]
async fn listen_wakes_on_commit_and_debug_hides_the_password() {
    let url = flextime_testkit::require_peer!(Postgres);
    let schema = flextime_testkit::unique_name("ftdb_listen");
    let db = connect(&url, &schema).await;
    let mut listener = db.listen().await.unwrap();
    db.upsert("woken", "a", serde_json::json!(1), flextime_db::Expect::Any)
        .await
        .unwrap();
    loop {
        if listener.recv().await.unwrap() == "woken" {
            break;
        }
    }
    let with_password = url.replacen("://", "://user:s3cr3tpw@", 1);
    let err = PostgresAdapter::connect(
        &with_password
            .replace("127.0.0.1", "127.0.0.1:1")
            .replacen(":5432", "", 1),
        DbOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("s3cr3tpw"));
    let config = flextime_db::postgres::PostgresConfig::from_url(
        &with_password,
        &PoolOptions::default(),
        None,
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("s3cr3tpw"));
    let bad = PostgresAdapter::connect(
        &url,
        DbOptions {
            schema: Some("Bad-Name".into()),
            ..DbOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.kind(), flextime_core::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn connect_dispatches_on_the_scheme() {
    let url = flextime_testkit::require_peer!(Postgres);
    let options = DbOptions {
        schema: Some(flextime_testkit::unique_name("ftdb_connect")),
        ..DbOptions::default()
    };
    let db = flextime_db::connect(&url, options).await.unwrap();
    assert_eq!(db.backend(), "postgres");
    db.ping().await.unwrap();
}
