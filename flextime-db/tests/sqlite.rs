//! The conformance suite against SQLite (a fresh temporary file per test).
#![cfg(all(feature = "sqlite", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::conformance::Fixture;
use flextime_db::sqlite::SqliteAdapter;
use flextime_db::{Adapter, DbOptions};

/// A database file in a directory of its own, removed after the case.
async fn make() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("conformance.db");
    let url = format!("sqlite://{}", path.display());
    let db = Arc::new(
        SqliteAdapter::connect(&url, DbOptions::default())
            .await
            .expect("connect"),
    );
    Some(Fixture::new(db, async move { drop(dir) }))
}

flextime_db::conformance_tests!(make());

#[tokio::test]
async fn memory_database_works_and_migrations_are_idempotent() {
    let db = SqliteAdapter::connect("sqlite::memory:", DbOptions::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.upsert("c", "a", serde_json::json!(1), flextime_db::Expect::Any)
        .await
        .unwrap();
    assert_eq!(db.get("c", "a").await.unwrap().unwrap().version, 1);
    assert!(format!("{db:?}").contains("memory"));
}

#[tokio::test]
async fn bad_urls_are_typed_errors() {
    let err = flextime_db::connect("nosuch://x", DbOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
    let err = flextime_db::connect("sqlite:///nonexistent-dir/x/y.db", DbOptions::default())
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable() || err.kind() == flextime_core::ErrorKind::Unavailable,
        "{err}"
    );
}
