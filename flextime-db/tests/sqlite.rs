//! The conformance suite against SQLite (a fresh temporary file per test).
#![cfg(all(feature = "sqlite", feature = "conformance"))]

use std::sync::{Arc, OnceLock};

use flextime_db::sqlite::SqliteAdapter;
use flextime_db::{Adapter, DbOptions};

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

async fn make() -> Option<Arc<dyn Adapter>> {
    let path = dir()
        .path()
        .join(format!("{}.db", flextime_testkit::unique_name("db")));
    let url = format!("sqlite://{}", path.display());
    Some(Arc::new(
        SqliteAdapter::connect(&url, DbOptions::default())
            .await
            .expect("connect"),
    ))
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
