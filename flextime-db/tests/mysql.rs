//! The conformance suite against MySQL / MariaDB (a fresh database per test).
#![cfg(all(feature = "mysql", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::conformance::Fixture;
use flextime_db::mysql::MysqlAdapter;
use flextime_db::{Adapter, DbOptions, PoolOptions};
use sqlx::Connection;

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("mysql URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

async fn fresh_database(url: &str, prefix: &str) -> String {
    let name = flextime_testkit::unique_name(prefix);
    let mut admin = sqlx::MySqlConnection::connect(url)
        .await
        .expect("admin connection");
    // unique_name yields [a-z0-9_]: safe to put in the statement
    sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .execute(&mut admin)
        .await
        .expect("create database");
    with_database(url, &name)
}

/// Drop a test's database (named by `unique_name`: `[a-z0-9_]`).
async fn drop_database(url: String, db_url: String) {
    let name = db_url.rsplit('/').next().unwrap_or_default().to_owned();
    let mut admin = sqlx::MySqlConnection::connect(&url)
        .await
        .expect("admin connection");
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&mut admin)
        .await
        .expect("drop database");
}

async fn make() -> Option<Fixture> {
    let url = flextime_testkit::require_peer!(Mysql, None);
    let db_url = fresh_database(&url, "ftdb").await;
    let options = DbOptions {
        pool: PoolOptions {
            max_connections: 8,
            ..PoolOptions::default()
        },
        ..DbOptions::default()
    };
    let db = Arc::new(
        MysqlAdapter::connect(&db_url, options)
            .await
            .expect("connect"),
    );
    Some(Fixture::new(db, drop_database(url, db_url)))
}

flextime_db::conformance_tests!(make());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_is_retryable_and_the_pool_recovers() {
    let url = flextime_testkit::require_peer!(Mysql);
    let db_url = fresh_database(&url, "ftdb_lost").await;
    let database = db_url.rsplit('/').next().unwrap().to_owned();
    let db: Arc<dyn Adapter> = Arc::new(
        MysqlAdapter::connect(&db_url, DbOptions::default())
            .await
            .unwrap(),
    );
    let kill = async {
        let mut admin = sqlx::MySqlConnection::connect(&url).await.unwrap();
        let ids: Vec<(i64,)> =
            sqlx::query_as("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?")
                .bind(&database)
                .fetch_all(&mut admin)
                .await
                .unwrap();
        assert!(!ids.is_empty(), "no connection of the adapter was found");
        for (id,) in ids {
            let _ = sqlx::query(&format!("KILL {id}")).execute(&mut admin).await;
        }
    };
    flextime_db::conformance::lost_connection_recovers(db, kill).await;
    drop_database(url, db_url).await;
}

#[tokio::test]
async fn debug_and_errors_hide_the_password() {
    let config =
        flextime_db::mysql::MysqlConfig::from_url("mysql://u:s3cr3tpw@127.0.0.1:1/x").unwrap();
    assert!(!format!("{config:?}").contains("s3cr3tpw"));
    let err = MysqlAdapter::connect("mysql://u:s3cr3tpw@127.0.0.1:1/x", DbOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cr3tpw"));
}

#[tokio::test]
async fn connect_dispatches_on_the_scheme() {
    let url = flextime_testkit::require_peer!(Mysql);
    let target = fresh_database(&url, "ftdb_connect").await;
    let db = flextime_db::connect(&target, DbOptions::default())
        .await
        .unwrap();
    assert_eq!(db.backend(), "mysql");
    db.ping().await.unwrap();
    drop_database(url, target).await;
}
