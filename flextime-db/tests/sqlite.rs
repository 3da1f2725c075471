//! The conformance suite against SQLite (a fresh temporary file per test).
#![cfg(all(feature = "sqlite", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::conformance::Fixture;
use flextime_db::sqlite::SqliteAdapter;
use flextime_db::{Adapter, DbOptions};

/// A database file in a directory of its own.
async fn open() -> (SqliteAdapter, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("conformance.db");
    let url = format!("sqlite://{}", path.display());
    let db = SqliteAdapter::connect(&url, DbOptions::default())
        .await
        .expect("connect");
    (db, dir)
}

/// A database file in a directory of its own, removed after the case.
async fn make() -> Option<Fixture> {
    let (db, dir) = open().await;
    Some(Fixture::new(Arc::new(db), async move { drop(dir) }))
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

/// The JSON-batch cases through the `Adapter` trait's provided
/// `upsert_batch_json` (what a backend that does not override it runs):
/// SQLite behind an adapter that forwards only the required methods.
mod provided_methods {
    use std::sync::Arc;
    use std::time::Duration;

    use flextime_core::Result;
    use flextime_db::conformance::Fixture;
    use flextime_db::{Adapter, KvEntry, Record, Transaction, WriteOp, Written};

    #[derive(Debug)]
    struct RequiredOnly(Arc<dyn Adapter>);

    #[async_trait::async_trait]
    impl Adapter for RequiredOnly {
        fn backend(&self) -> &'static str {
            self.0.backend()
        }
        fn supports_transactions(&self) -> bool {
            self.0.supports_transactions()
        }
        async fn migrate(&self) -> Result<()> {
            self.0.migrate().await
        }
        async fn ping(&self) -> Result<()> {
            self.0.ping().await
        }
        async fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
            self.0.get(collection, id).await
        }
        async fn get_many(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>> {
            self.0.get_many(collection, ids).await
        }
        async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Written>> {
            self.0.write(ops).await
        }
        async fn changes(&self, collection: &str, after: u64, limit: usize) -> Result<Vec<Record>> {
            self.0.changes(collection, after, limit).await
        }
        async fn prune_changes(&self, collection: &str, up_to: u64) -> Result<u64> {
            self.0.prune_changes(collection, up_to).await
        }
        async fn begin(&self) -> Result<Box<dyn Transaction>> {
            self.0.begin().await
        }
        async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>> {
            self.0.kv_get(key).await
        }
        async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64> {
            self.0.kv_set(key, value, ttl).await
        }
        async fn kv_compare_and_set(
            &self,
            key: &str,
            expected: Option<u64>,
            value: &[u8],
            ttl: Option<Duration>,
        ) -> Result<Option<u64>> {
            self.0.kv_compare_and_set(key, expected, value, ttl).await
        }
        async fn kv_delete(&self, key: &str) -> Result<bool> {
            self.0.kv_delete(key).await
        }
        async fn purge_tombstones(&self, collection: &str, up_to: u64) -> Result<u64> {
            self.0.purge_tombstones(collection, up_to).await
        }
    }

    async fn make() -> Option<Fixture> {
        let (db, dir) = super::open().await;
        let db = Arc::new(RequiredOnly(Arc::new(db)));
        Some(Fixture::new(db, async move { drop(dir) }))
    }

    flextime_db::conformance_tests!(@cases make();
        json_batch_round_trip, json_batch_like_upsert_batch, json_batch_odd_ids,
        json_batch_errors);
}
