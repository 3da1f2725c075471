//! The conformance suite against PostgreSQL (a fresh schema per test).
#![cfg(all(feature = "postgres", feature = "conformance"))]

use std::sync::Arc;

use flextime_db::conformance::Fixture;
use flextime_db::postgres::PostgresAdapter;
use flextime_db::stores::{OutboxEntry, OutboxMessage, OutboxPublisher, OutboxStore, Wakeup};
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

/// Drop a test's schema (its name comes from `unique_name`: `[a-z0-9_]`).
async fn drop_schema(url: String, schema: String) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .expect("admin connection");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut admin)
        .await
        .expect("drop schema");
}

async fn make() -> Option<Fixture> {
    let url = flextime_testkit::require_peer!(Postgres, None);
    let schema = flextime_testkit::unique_name("ftdb");
    let db = Arc::new(connect(&url, &schema).await);
    Some(Fixture::new(db, drop_schema(url, schema)))
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
    drop_schema(url, app).await;
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
    drop_schema(url.clone(), schema).await;
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
    let schema = options.schema.clone().unwrap();
    let db = flextime_db::connect(&url, options).await.unwrap();
    assert_eq!(db.backend(), "postgres");
    db.ping().await.unwrap();
    drop_schema(url, schema).await;
}

/// Hands each published row to the test.
struct Forward(tokio::sync::mpsc::UnboundedSender<OutboxEntry>);

#[async_trait::async_trait]
impl OutboxPublisher for Forward {
    async fn publish(&self, entry: &OutboxEntry) -> flextime_core::Result<()> {
        self.0
            .send(entry.clone())
            .map_err(|_| flextime_core::Error::unavailable("test receiver gone"))
    }
}

/// A wake-up source that tells the test each time the relay goes idle.
struct Observed<W> {
    inner: W,
    idle: tokio::sync::mpsc::UnboundedSender<()>,
}

#[async_trait::async_trait]
impl<W: Wakeup> Wakeup for Observed<W> {
    async fn wait(&mut self) -> flextime_core::Result<()> {
        let _ = self.idle.send(());
        self.inner.wait().await
    }
}

/// With a poll interval of an hour, only the NOTIFY of the committed write
/// can wake the relay: the message published proves it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_an_idle_relay() {
    let url = flextime_testkit::require_peer!(Postgres);
    let schema = flextime_testkit::unique_name("ftdb_wake");
    let db = Arc::new(connect(&url, &schema).await);
    let outbox = OutboxStore::new(db.clone()).with_collection("wake_outbox");
    let listener = db.listen_to("wake_outbox").await.unwrap();
    let (idle_tx, mut idle_rx) = tokio::sync::mpsc::unbounded_channel();
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let mut wakeup = Observed {
                inner: listener,
                idle: idle_tx,
            };
            outbox
                .run_with_wakeup(
                    &Forward(sent_tx),
                    std::time::Duration::from_secs(3600),
                    &mut wakeup,
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
        })
    };
    let bounded = std::time::Duration::from_secs(60);
    for n in 0..3 {
        // the relay has done its pass and waits (it cannot poll for an hour)
        tokio::time::timeout(bounded, idle_rx.recv())
            .await
            .expect("the relay never went idle")
            .unwrap();
        let id = outbox
            .append(&OutboxMessage::new("t", serde_json::json!({"n": n})))
            .await
            .unwrap();
        let sent = tokio::time::timeout(bounded, sent_rx.recv())
            .await
            .expect("the NOTIFY did not wake the relay")
            .unwrap();
        assert_eq!(
            (sent.id, sent.message.payload["n"].clone()),
            (id, serde_json::json!(n))
        );
    }
    stop_tx.send(()).unwrap();
    relay.await.unwrap().unwrap();
    drop_schema(url, schema).await;
}

/// On the log-only layout a purge takes a record's whole history: the id
/// is gone from get, get_many and the feed, and a new record of it starts
/// at version 1 (through the checked path and the batch fast path). A
/// record deleted and written again, and a tombstone above `up_to`, stay;
/// pruning never takes an id's latest entry.
#[tokio::test]
async fn purge_takes_the_whole_history_and_the_id_starts_again() {
    use flextime_db::Expect;
    use serde_json::json;
    let url = flextime_testkit::require_peer!(Postgres);
    let schema = flextime_testkit::unique_name("ftdb_purge");
    let db = connect(&url, &schema).await;
    for v in 0..3 {
        db.upsert("p", "gone", json!(v), Expect::Any).await.unwrap();
    }
    db.delete("p", "gone", Expect::Version(3)).await.unwrap();
    db.upsert("p", "back", json!(1), Expect::Any).await.unwrap();
    db.delete("p", "back", Expect::Any).await.unwrap();
    let back = db.upsert("p", "back", json!(3), Expect::Any).await.unwrap();
    assert_eq!(back.version, 3);
    let up_to = back.seq;
    db.upsert("p", "late", json!(1), Expect::Any).await.unwrap();
    let late = db.delete("p", "late", Expect::Any).await.unwrap();
    assert!(late.seq > up_to);

    assert_eq!(db.purge_tombstones("p", up_to).await.unwrap(), 1);
    assert_eq!(db.purge_tombstones("p", up_to).await.unwrap(), 0);
    assert_eq!(db.get("p", "gone").await.unwrap(), None);
    let ids = ["gone".to_owned(), "back".to_owned(), "late".to_owned()];
    let left = db.get_many("p", &ids).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|r| (r.id.as_str(), r.version, r.is_deleted()))
            .collect::<Vec<_>>(),
        [("back", 3, false), ("late", 2, true)]
    );
    let feed = db.changes("p", 0, 100).await.unwrap();
    assert!(feed.iter().all(|r| r.id != "gone"));
    assert_eq!(feed.len(), 5);

    let again = db
        .upsert("p", "gone", json!("new"), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(again.version, 1);
    let batch = db
        .upsert_batch(
            "p",
            vec![("gone".into(), json!("newer")), ("back".into(), json!(4))],
        )
        .await
        .unwrap();
    assert_eq!(batch.iter().map(|w| w.version).collect::<Vec<_>>(), [2, 4]);

    // back's first three entries, late's and gone's first: every id keeps
    // its latest
    let top = batch[1].seq;
    assert_eq!(db.prune_changes("p", top).await.unwrap(), 5);
    let feed = db.changes("p", 0, 100).await.unwrap();
    assert_eq!(
        feed.iter()
            .map(|r| (r.id.as_str(), r.version))
            .collect::<Vec<_>>(),
        [("late", 2), ("gone", 2), ("back", 4)]
    );
    assert_eq!(
        db.get("p", "gone").await.unwrap().unwrap().data,
        Some(json!("newer"))
    );
    drop_schema(url, schema).await;
}

/// A purge waits for the collection's writers (it takes their counter
/// lock): a record deleted and written again in a transaction still open
/// when the purge starts is not taken for a tombstone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_waits_for_an_open_writer() {
    use flextime_db::{Expect, WriteOp};
    use serde_json::json;
    let url = flextime_testkit::require_peer!(Postgres);
    let schema = flextime_testkit::unique_name("ftdb_purgew");
    let db = Arc::new(connect(&url, &schema).await);
    db.upsert("w", "x", json!(1), Expect::Any).await.unwrap();
    let deleted = db.delete("w", "x", Expect::Any).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.write(vec![
        WriteOp::upsert("w", "x", json!(3)).expect(Expect::Version(2)),
    ])
    .await
    .unwrap();
    let purge = {
        let db = db.clone();
        tokio::spawn(async move { db.purge_tombstones("w", deleted.seq).await })
    };
    // the purge is queued behind the transaction's counter lock
    let waiting = async {
        loop {
            // a second locker of a row holds its tuple lock while it waits
            // (the relation resolves in this test's schema)
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_locks \
                 WHERE locktype = 'tuple' AND relation = 'ft_collections'::regclass",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            if n > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .expect("the purge never waited for the writer");
    tx.commit().await.unwrap();
    assert_eq!(purge.await.unwrap().unwrap(), 0);
    let x = db.get("w", "x").await.unwrap().unwrap();
    assert_eq!((x.version, x.data), (3, Some(json!(3))));
    assert_eq!(db.changes("w", 0, 10).await.unwrap().len(), 3);
    drop_schema(url, schema).await;
}

/// A feed page reads the primary key in order and stops at the limit, also
/// on a log without statistics (a bulk load before autovacuum's ANALYZE),
/// where the planner left alone picks a bitmap scan of every entry after
/// the cursor and a sort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_page_is_an_ordered_index_scan_without_statistics() {
    let url = flextime_testkit::require_peer!(Postgres);
    let schema = flextime_testkit::unique_name("ftdb_feedplan");
    let db = connect(&url, &schema).await;
    // No ANALYZE may run during the test: the log keeps no statistics.
    sqlx::query("ALTER TABLE ft_changes SET (autovacuum_enabled = false)")
        .execute(db.pool())
        .await
        .unwrap();
    let items: Vec<(String, serde_json::Value)> = (0..5_000)
        .map(|i| (format!("item-{i:05}"), serde_json::json!({ "n": i })))
        .collect();
    for chunk in items.chunks(1_000) {
        db.upsert_batch("c", chunk.to_vec()).await.unwrap();
    }
    // What the planner picks on its own here (the case being guarded).
    let plain: Vec<(String,)> = sqlx::query_as(
        "EXPLAIN SELECT id FROM ft_changes WHERE collection = 'c' AND seq > 100 ORDER BY seq LIMIT 1000",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let plain: Vec<String> = plain.into_iter().map(|(line,)| line).collect();
    assert!(
        plain
            .iter()
            .any(|l| l.contains("Sort") || l.contains("Bitmap")),
        "the test's premise: without statistics the planner sorts a bitmap scan, got {plain:?}"
    );
    let plan = db.explain_changes("c", 100, 1_000).await.unwrap();
    assert!(plan.contains("Index Scan using ft_changes_pkey"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
    assert!(!plan.contains("Bitmap"), "{plan}");
    // And the page itself is the next 1,000 entries in order.
    let page = db.changes("c", 100, 1_000).await.unwrap();
    assert_eq!(page.len(), 1_000);
    assert!(page.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(page[0].seq, 101);
    drop_schema(url, schema).await;
}
