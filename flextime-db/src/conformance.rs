//! The conformance suite every backend passes (cargo feature `conformance`).
//!
//! Each case takes a fresh, isolated adapter and panics on a violation.
//! [`conformance_tests!`](crate::conformance_tests) turns the list of cases
//! into one `#[tokio::test]` per case for a backend:
//!
//! ```ignore
//! async fn make() -> Option<Arc<dyn Adapter>> { /* build it, or None to skip */ }
//! flextime_db::conformance_tests!(make());
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flextime_core::{Change, ChangeKey, ErrorKind, Sink, Source};
use futures::TryStreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::feed::CollectionFeed;
use crate::{Adapter, AdapterExt, Expect, WriteOp};

/// One `#[tokio::test]` per conformance case, each with a fresh adapter
/// from `$make` (an expression of type `impl Future<Output = Option<F>>`
/// where `F: Into<`[`Fixture`]`>`, such as `Arc<dyn Adapter>`; `None`
/// skips). A [`Fixture`]'s teardown runs after the case, also when it fails.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            crud, version_preconditions, batch_atomicity, tombstones,
            change_feed_order_and_resume, change_feed_every_version,
            change_feed_with_held_transaction, change_feed_concurrent_writers,
            change_feed_concurrent_versions, kv_basics, ttl_expiry, cas_race,
            large_record, unicode_ids, injection_lookalikes, invalid_input, source_and_sink,
            json_batch_round_trip, json_batch_like_upsert_batch, json_batch_odd_ids,
            json_batch_errors,
            store_idempotency, store_checkpoint, store_mapping, store_outbox, store_delivery_log);
    };
    (@cases $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(fixture) = $make.await else { return };
                let fixture: $crate::conformance::Fixture = fixture.into();
                fixture.run($crate::conformance::$name).await;
            }
        )*
    };
}

/// An adapter for one case, and what to do afterwards (drop the schema,
/// database, key prefix or file the case worked in).
pub struct Fixture {
    adapter: Arc<dyn Adapter>,
    teardown: Option<futures::future::BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

impl From<Arc<dyn Adapter>> for Fixture {
    fn from(adapter: Arc<dyn Adapter>) -> Self {
        Self {
            adapter,
            teardown: None,
        }
    }
}

impl Fixture {
    /// `adapter`, with `teardown` to run after the case.
    pub fn new(
        adapter: Arc<dyn Adapter>,
        teardown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self {
            adapter,
            teardown: Some(Box::pin(teardown)),
        }
    }

    /// Run `case`, then the teardown (also when `case` panicked, whose
    /// panic is then resumed).
    pub async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Arc<dyn Adapter>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use futures::FutureExt;
        let Self { adapter, teardown } = self;
        let outcome = std::panic::AssertUnwindSafe(case(adapter))
            .catch_unwind()
            .await;
        if let Some(teardown) = teardown {
            teardown.await;
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Item {
    title: String,
    n: u32,
}

/// Get, get many, upsert, typed access.
pub async fn crud(db: Arc<dyn Adapter>) {
    assert!(db.get("events", "a").await.unwrap().is_none());
    let w = db
        .upsert("events", "a", json!({"n": 1}), Expect::Absent)
        .await
        .unwrap();
    assert_eq!((w.version, w.deleted), (1, false));
    let r = db.get("events", "a").await.unwrap().unwrap();
    assert_eq!(r.data, Some(json!({"n": 1})));
    assert_eq!((r.version, r.seq, r.is_deleted()), (1, w.seq, false));
    let w2 = db
        .upsert("events", "a", json!({"n": 2}), Expect::Any)
        .await
        .unwrap();
    assert_eq!(w2.version, 2);
    assert!(w2.seq > w.seq);
    assert!(w2.updated_at >= w.updated_at);
    db.upsert("events", "b", json!([1, "two", null]), Expect::Any)
        .await
        .unwrap();
    let many = db
        .get_many("events", &["b".into(), "missing".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(
        many.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(many[0].data, Some(json!([1, "two", null])));
    let item = Item {
        title: "Standup".into(),
        n: 3,
    };
    db.upsert_as("typed", "i", &item, Expect::Any)
        .await
        .unwrap();
    assert_eq!(db.get_as::<Item>("typed", "i").await.unwrap(), Some(item));
    // collections are separate namespaces
    assert!(db.get("other", "a").await.unwrap().is_none());
    db.ping().await.unwrap();
    db.migrate().await.unwrap(); // idempotent
}

/// Expected-version preconditions.
pub async fn version_preconditions(db: Arc<dyn Adapter>) {
    let c = "pre";
    let kind = |r: flextime_core::Result<crate::Written>| r.unwrap_err().kind();
    assert_eq!(
        kind(db.upsert(c, "x", json!(0), Expect::Version(1)).await),
        ErrorKind::Conflict
    );
    db.upsert(c, "x", json!(1), Expect::Absent).await.unwrap();
    assert_eq!(
        kind(db.upsert(c, "x", json!(2), Expect::Absent).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        db.upsert(c, "x", json!(2), Expect::Version(1))
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        kind(db.upsert(c, "x", json!(3), Expect::Version(1)).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(db.delete(c, "x", Expect::Version(9)).await),
        ErrorKind::Conflict
    );
    assert_eq!(db.get(c, "x").await.unwrap().unwrap().data, Some(json!(2)));
    let d = db.delete(c, "x", Expect::Version(2)).await.unwrap();
    assert!(d.deleted);
    // a tombstone counts as absent, and keeps counting versions
    let w = db.upsert(c, "x", json!(4), Expect::Absent).await.unwrap();
    assert_eq!(w.version, 4);
}

/// A batch is all or nothing.
pub async fn batch_atomicity(db: Arc<dyn Adapter>) {
    let items: Vec<(String, Value)> = (0..100)
        .map(|i| (format!("id{i:03}"), json!({"i": i})))
        .collect();
    let written = db.upsert_batch("batch", items).await.unwrap();
    assert_eq!(written.len(), 100);
    assert!(
        written.windows(2).all(|w| w[0].seq < w[1].seq),
        "seqs follow call order"
    );
    let before = db.changes("batch", 0, 1000).await.unwrap();
    let mut ops: Vec<WriteOp> = (0..50)
        .map(|i| WriteOp::upsert("batch", format!("new{i}"), json!(i)))
        .collect();
    ops.push(WriteOp::upsert("batch", "id000", json!("bad")).expect(Expect::Version(7)));
    ops.push(WriteOp::upsert("batch-other", "o", json!(1)));
    let err = db.write(ops).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(db.get("batch", "new0").await.unwrap().is_none());
    assert!(db.get("batch-other", "o").await.unwrap().is_none());
    assert_eq!(
        db.get("batch", "id000").await.unwrap().unwrap().data,
        Some(json!({"i": 0}))
    );
    assert_eq!(db.changes("batch", 0, 1000).await.unwrap(), before);
    // across collections, atomically
    let w = db
        .write(vec![
            WriteOp::upsert("batch", "id001", json!("x")).expect(Expect::Version(1)),
            WriteOp::upsert("batch-other", "o", json!(2)).expect(Expect::Absent),
            WriteOp::delete("batch", "id002"),
        ])
        .await
        .unwrap();
    assert_eq!(w.iter().map(|w| w.version).collect::<Vec<_>>(), [2, 1, 2]);
    assert!(
        db.get("batch", "id002")
            .await
            .unwrap()
            .unwrap()
            .is_deleted()
    );
}

/// Deletes leave tombstones that the feed carries.
pub async fn tombstones(db: Arc<dyn Adapter>) {
    db.upsert("t", "a", json!({"v": 1}), Expect::Any)
        .await
        .unwrap();
    let d = db.delete("t", "a", Expect::Any).await.unwrap();
    assert_eq!((d.version, d.deleted), (2, true));
    let r = db.get("t", "a").await.unwrap().unwrap();
    assert!(r.is_deleted() && r.data.is_none() && r.deleted_at.is_some());
    assert_eq!(db.get_as::<Value>("t", "a").await.unwrap(), None);
    let never = db.delete("t", "never-existed", Expect::Any).await.unwrap();
    assert_eq!(never.version, 1);
    let feed = db.changes("t", 0, 10).await.unwrap();
    assert_eq!(
        feed.iter()
            .map(|r| (r.id.as_str(), r.version, r.is_deleted()))
            .collect::<Vec<_>>(),
        [("a", 1, false), ("a", 2, true), ("never-existed", 1, true)]
    );
    assert_eq!(feed[0].data, Some(json!({"v": 1})));
    assert!(feed[1].data.is_none() && feed[1].to_change("s").is_delete());
    db.upsert("t", "live", json!(1), Expect::Any).await.unwrap();
    let top = db.changes("t", 0, 10).await.unwrap().last().unwrap().seq;
    assert_eq!(db.purge_tombstones("t", top).await.unwrap(), 2);
    assert_eq!(db.get("t", "a").await.unwrap(), None);
    // retention: every entry but the live record's current one goes (the
    // purged records' three entries, unless the purge took them already,
    // as a backend whose log is the record store does)
    let stale = db.changes("t", 0, 10).await.unwrap().len() - 1;
    assert!(stale == 3 || stale == 0, "{stale} stale entries");
    assert_eq!(db.prune_changes("t", top).await.unwrap(), stale as u64);
    assert_eq!(db.prune_changes("t", top).await.unwrap(), 0);
    let left = db.changes("t", 0, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["live"]
    );
    assert_eq!(
        db.get("t", "live").await.unwrap().unwrap().data,
        Some(json!(1))
    );
}

/// The feed is in seq order, pages resume exactly, a rewrite is a new entry.
pub async fn change_feed_order_and_resume(db: Arc<dyn Adapter>) {
    for i in 0..25 {
        db.upsert("feed", &format!("r{i}"), json!(i), Expect::Any)
            .await
            .unwrap();
    }
    db.upsert("feed", "r3", json!("again"), Expect::Any)
        .await
        .unwrap();
    let mut cursor = 0;
    let mut ids = Vec::new();
    loop {
        let page = db.changes("feed", cursor, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        for r in &page {
            assert!(r.seq > cursor);
            cursor = r.seq;
            ids.push(r.id.clone());
        }
    }
    let mut expected: Vec<String> = (0..25).map(|i| format!("r{i}")).collect();
    expected.push("r3".into());
    assert_eq!(ids, expected);
    assert!(db.changes("feed", cursor, 7).await.unwrap().is_empty());
    db.upsert("feed", "late", json!(1), Expect::Any)
        .await
        .unwrap();
    let tail = db.changes("feed", cursor, 7).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].id, "late");
}

/// Every intermediate version of a record is its own entry, in order, with
/// the data of that version; a reader resumes from any entry's seq.
pub async fn change_feed_every_version(db: Arc<dyn Adapter>) {
    let c = "versions";
    for v in 1..=5 {
        let expect = if v == 1 {
            Expect::Absent
        } else {
            Expect::Version(v - 1)
        };
        db.upsert(c, "x", json!({"v": v}), expect).await.unwrap();
    }
    db.delete(c, "x", Expect::Version(5)).await.unwrap();
    db.upsert(c, "x", json!({"v": 7}), Expect::Absent)
        .await
        .unwrap();
    // a batch writing one id three times: three entries
    db.write(vec![
        WriteOp::upsert(c, "y", json!(1)),
        WriteOp::upsert(c, "y", json!(2)).expect(Expect::Version(1)),
        WriteOp::delete(c, "y"),
    ])
    .await
    .unwrap();
    let feed = db.changes(c, 0, 100).await.unwrap();
    let seen: Vec<(&str, u64, Option<Value>)> = feed
        .iter()
        .map(|r| (r.id.as_str(), r.version, r.data.clone()))
        .collect();
    let mut expected: Vec<(&str, u64, Option<Value>)> =
        (1..=5).map(|v| ("x", v, Some(json!({"v": v})))).collect();
    expected.extend([
        ("x", 6, None),
        ("x", 7, Some(json!({"v": 7}))),
        ("y", 1, Some(json!(1))),
        ("y", 2, Some(json!(2))),
        ("y", 3, None),
    ]);
    assert_eq!(seen, expected);
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(feed[5].is_deleted() && feed[9].is_deleted());
    // the current state is the last entry
    let x = db.get(c, "x").await.unwrap().unwrap();
    assert_eq!(
        (x.version, x.seq, x.data),
        (7, feed[6].seq, Some(json!({"v": 7})))
    );
    // resume from the middle: exactly the rest
    let rest = db.changes(c, feed[3].seq, 100).await.unwrap();
    assert_eq!(rest, feed[4..].to_vec());
    let one = db.changes(c, feed[3].seq, 1).await.unwrap();
    assert_eq!(one, feed[4..5].to_vec());
}

/// Many writers updating the same records while a reader tails the feed:
/// the reader sees every change exactly once, each record's versions in
/// order with nothing missing.
pub async fn change_feed_concurrent_versions(db: Arc<dyn Adapter>) {
    const WRITERS: u64 = 4;
    const RECORDS: u64 = 3;
    const ROUNDS: u64 = 15;
    let c = "conc-versions";
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let db = Arc::clone(&db);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen: Vec<crate::Record> = Vec::new();
            let mut cursor = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = db.changes(c, cursor, 7).await.unwrap();
                for r in &page {
                    assert!(r.seq > cursor, "feed went backwards");
                    cursor = r.seq;
                }
                let empty = page.is_empty();
                seen.extend(page);
                if finished && empty {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // Each writer updates every shared record each round (unconditional
    // upserts: the server orders them), in batches of varying shape.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let ops: Vec<WriteOp> = if round % 2 == 0 {
                        (0..RECORDS)
                            .map(|k| {
                                WriteOp::upsert(c, format!("r{k}"), json!({"w": w, "round": round}))
                            })
                            .collect()
                    } else {
                        vec![WriteOp::upsert(
                            c,
                            format!("r{}", round % RECORDS),
                            json!({"w": w}),
                        )]
                    };
                    let mut attempt = 0;
                    loop {
                        match db.write(ops.clone()).await {
                            Ok(_) => break,
                            Err(e) if e.is_retryable() && attempt < 50 => attempt += 1,
                            Err(e) => panic!("writer {w}: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let expected_total = WRITERS * (ROUNDS.div_ceil(2) * RECORDS + ROUNDS / 2);
    assert_eq!(
        seen.len() as u64,
        expected_total,
        "changes missed or repeated"
    );
    let mut seqs: Vec<u64> = seen.iter().map(|r| r.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), seen.len(), "an entry was seen twice");
    for k in 0..RECORDS {
        let id = format!("r{k}");
        let versions: Vec<u64> = seen
            .iter()
            .filter(|r| r.id == id)
            .map(|r| r.version)
            .collect();
        let current = db.get(c, &id).await.unwrap().unwrap().version;
        assert_eq!(
            versions,
            (1..=current).collect::<Vec<_>>(),
            "{id}: every version, in order"
        );
    }
}

/// A transaction holding an early sequence number open while a later writer
/// waits: the reader never moves past the held change.
pub async fn change_feed_with_held_transaction(db: Arc<dyn Adapter>) {
    if !db.supports_transactions() {
        eprintln!(
            "{}: no interactive transactions; writes are atomic scripts",
            db.backend()
        );
        return;
    }
    db.upsert("held", "before", json!(0), Expect::Any)
        .await
        .unwrap();
    let cursor = db.changes("held", 0, 10).await.unwrap().last().unwrap().seq;
    let mut tx = db.begin().await.unwrap();
    tx.write(vec![WriteOp::upsert("held", "slow", json!(1))])
        .await
        .unwrap();
    let late = {
        let db = Arc::clone(&db);
        tokio::spawn(async move { db.upsert("held", "fast", json!(2), Expect::Any).await })
    };
    // Nothing committed after the cursor is visible while the slow one is open.
    assert!(db.changes("held", cursor, 10).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    let fast = late.await.unwrap().unwrap();
    let after: Vec<_> = db.changes("held", cursor, 10).await.unwrap();
    assert_eq!(
        after.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["slow", "fast"]
    );
    assert_eq!(after[1].seq, fast.seq);
    // a rolled back transaction leaves no change behind
    let mut tx = db.begin().await.unwrap();
    tx.write(vec![WriteOp::upsert("held", "ghost", json!(1))])
        .await
        .unwrap();
    assert!(tx.get("held", "ghost").await.unwrap().is_some());
    tx.rollback().await.unwrap();
    assert!(db.get("held", "ghost").await.unwrap().is_none());
}

/// Concurrent writers while a reader follows the feed: every record, each
/// written once, is seen, in increasing seq order.
pub async fn change_feed_concurrent_writers(db: Arc<dyn Adapter>) {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 25;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let db = Arc::clone(&db);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen: HashMap<String, u64> = HashMap::new();
            let mut cursor = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = db.changes("conc", cursor, 50).await.unwrap();
                for r in &page {
                    assert!(r.seq > cursor, "feed went backwards");
                    cursor = r.seq;
                    seen.insert(r.id.clone(), r.version);
                }
                if finished && page.is_empty() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let ops: Vec<WriteOp> = (0..=(round % 3))
                        .map(|k| {
                            WriteOp::upsert("conc", format!("w{w}-{round}-{k}"), json!({"w": w}))
                        })
                        .collect();
                    let mut attempt = 0;
                    loop {
                        match db.write(ops.clone()).await {
                            Ok(_) => break,
                            Err(e) if e.is_retryable() && attempt < 50 => attempt += 1,
                            Err(e) => panic!("writer {w}: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let expected: usize = (0..ROUNDS).map(|r| r % 3 + 1).sum::<usize>() * WRITERS;
    assert_eq!(seen.len(), expected, "the reader missed changes");
}

/// Key-value set, get, delete, compare-and-set.
pub async fn kv_basics(db: Arc<dyn Adapter>) {
    assert!(db.kv_get("k").await.unwrap().is_none());
    let v1 = db.kv_set("k", b"one", None).await.unwrap();
    let e = db.kv_get("k").await.unwrap().unwrap();
    assert_eq!(
        (e.value.as_slice(), e.version, e.expires_at),
        (&b"one"[..], v1, None)
    );
    assert_eq!(
        db.kv_compare_and_set("k", None, b"x", None).await.unwrap(),
        None
    );
    assert_eq!(
        db.kv_compare_and_set("k", Some(v1 + 5), b"x", None)
            .await
            .unwrap(),
        None
    );
    let v2 = db
        .kv_compare_and_set("k", Some(v1), b"two", None)
        .await
        .unwrap()
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(db.kv_get("k").await.unwrap().unwrap().value, b"two");
    assert!(db.kv_delete("k").await.unwrap());
    assert!(!db.kv_delete("k").await.unwrap());
    assert!(
        db.kv_compare_and_set("k", None, b"three", None)
            .await
            .unwrap()
            .is_some()
    );
    let binary: Vec<u8> = (0..=255).collect();
    db.kv_set("bin", &binary, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let e = db.kv_get("bin").await.unwrap().unwrap();
    assert_eq!(e.value, binary);
    assert!(e.expires_at.is_some());
}

/// Entries with a TTL disappear (bounded polling, no fixed sleep).
pub async fn ttl_expiry(db: Arc<dyn Adapter>) {
    db.kv_set("short", b"v", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    db.kv_set("long", b"v", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while db.kv_get("short").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(db.kv_get("long").await.unwrap().is_some());
    // an expired entry counts as absent for compare-and-set
    assert!(
        db.kv_compare_and_set("short", None, b"again", None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!db.kv_delete("never").await.unwrap());
}

/// N tasks incrementing one counter by compare-and-set end at exactly N.
pub async fn cas_race(db: Arc<dyn Adapter>) {
    const TASKS: u64 = 16;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                loop {
                    let current = db.kv_get("counter").await;
                    let current = match current {
                        Ok(c) => c,
                        Err(e) if e.is_retryable() => continue,
                        Err(e) => panic!("{e}"),
                    };
                    let (expected, n) = match &current {
                        None => (None, 0u64),
                        Some(e) => (
                            Some(e.version),
                            String::from_utf8_lossy(&e.value).parse().unwrap(),
                        ),
                    };
                    match db
                        .kv_compare_and_set(
                            "counter",
                            expected,
                            (n + 1).to_string().as_bytes(),
                            None,
                        )
                        .await
                    {
                        Ok(Some(_)) => return,
                        Ok(None) => {}
                        Err(e) if e.is_retryable() => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let e = db.kv_get("counter").await.unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&e.value), TASKS.to_string());
}

/// A 1 MiB record round-trips.
pub async fn large_record(db: Arc<dyn Adapter>) {
    let big = "x".repeat(1024 * 1024);
    let data = json!({"blob": big, "n": 1});
    db.upsert("large", "big", data.clone(), Expect::Any)
        .await
        .unwrap();
    assert_eq!(
        db.get("large", "big").await.unwrap().unwrap().data,
        Some(data.clone())
    );
    assert_eq!(
        db.changes("large", 0, 10).await.unwrap()[0].data,
        Some(data)
    );
}

/// Ids in other scripts, with emoji, whitespace, a combining accent.
const UNICODE_IDS: [&str; 7] = [
    "日本語の予定",
    "🎉-party-🎂",
    "ünïcödé",
    "שלום",
    "Ω≈ç√",
    "a b\tc\nd",
    "e\u{301}",
];

/// Ids that look like SQL, patterns or key syntax.
const LOOKALIKE_IDS: [&str; 10] = [
    "' OR '1'='1",
    "\"; DELETE FROM ft_kv; --",
    "%",
    "_",
    "\\",
    "$1",
    "?",
    "*",
    "a:b:c",
    "{}",
];

/// Unicode ids and collection names.
pub async fn unicode_ids(db: Arc<dyn Adapter>) {
    let ids = UNICODE_IDS;
    for (i, id) in ids.iter().enumerate() {
        db.upsert("календарь", id, json!({"i": i, "t": id}), Expect::Absent)
            .await
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let r = db.get("календарь", id).await.unwrap().unwrap();
        assert_eq!(r.id, *id);
        assert_eq!(r.data, Some(json!({"i": i, "t": id})));
    }
    // é (precomposed) and e + combining accent are different ids
    assert!(db.get("календарь", "\u{e9}").await.unwrap().is_none());
    let feed = db.changes("календарь", 0, 100).await.unwrap();
    assert_eq!(feed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ids);
    db.kv_set("ключ-🔑", "значение".as_bytes(), None)
        .await
        .unwrap();
    assert_eq!(
        db.kv_get("ключ-🔑").await.unwrap().unwrap().value,
        "значение".as_bytes()
    );
}

/// Ids and names that look like SQL or patterns are plain data.
pub async fn injection_lookalikes(db: Arc<dyn Adapter>) {
    let collection = "events'; DROP TABLE ft_records; --";
    let ids = LOOKALIKE_IDS;
    db.upsert("safe", "keep", json!(1), Expect::Any)
        .await
        .unwrap();
    for id in ids {
        db.upsert(collection, id, json!({"id": id}), Expect::Absent)
            .await
            .unwrap();
    }
    for id in ids {
        let r = db.get(collection, id).await.unwrap().unwrap();
        assert_eq!(r.data, Some(json!({"id": id})));
    }
    assert_eq!(
        db.changes(collection, 0, 100).await.unwrap().len(),
        ids.len()
    );
    assert!(db.get(collection, "anything").await.unwrap().is_none());
    assert!(db.get("safe", "%").await.unwrap().is_none());
    assert_eq!(
        db.get("safe", "keep").await.unwrap().unwrap().data,
        Some(json!(1))
    );
    db.kv_set("'; DROP TABLE ft_kv; --", b"v", None)
        .await
        .unwrap();
    assert!(db.kv_get("%").await.unwrap().is_none());
    assert!(
        db.kv_get("'; DROP TABLE ft_kv; --")
            .await
            .unwrap()
            .is_some()
    );
}

/// Bad input is a typed error, never a panic.
pub async fn invalid_input(db: Arc<dyn Adapter>) {
    let kind = |e: flextime_core::Error| e.kind();
    assert_eq!(
        kind(db.upsert("c", "", json!(1), Expect::Any).await.unwrap_err()),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(
            db.upsert("", "id", json!(1), Expect::Any)
                .await
                .unwrap_err()
        ),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(db.get("c", "a\0b").await.unwrap_err()),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(db.get("c", &"x".repeat(300)).await.unwrap_err()),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(db.kv_get("").await.unwrap_err()),
        ErrorKind::InvalidInput
    );
    let too_many = (0..=crate::MAX_BATCH)
        .map(|i| WriteOp::upsert("c", i.to_string(), json!(i)))
        .collect();
    assert_eq!(
        kind(db.write(too_many).await.unwrap_err()),
        ErrorKind::InvalidInput
    );
    let ids: Vec<String> = (0..=crate::MAX_PAGE).map(|i| i.to_string()).collect();
    assert_eq!(
        kind(db.get_many("c", &ids).await.unwrap_err()),
        ErrorKind::InvalidInput
    );
    assert!(
        db.get("c", "id").await.unwrap().is_none(),
        "nothing was written"
    );
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

/// `(id, version, seq, deleted)` of each write.
fn outcomes(written: &[crate::Written]) -> Vec<(String, u64, u64, bool)> {
    written
        .iter()
        .map(|w| (w.id.clone(), w.version, w.seq, w.deleted))
        .collect()
}

/// `(id, version, seq, data)` of each record or feed entry.
fn states(records: &[crate::Record]) -> Vec<(String, u64, u64, Option<Value>)> {
    records
        .iter()
        .map(|r| (r.id.clone(), r.version, r.seq, r.data.clone()))
        .collect()
}

/// Batches of JSON text and of typed items: written, read back one by
/// one, several at a time and through the feed; rewritten (version 2);
/// deleted and written again.
pub async fn json_batch_round_trip(db: Arc<dyn Adapter>) {
    let c = "json";
    let written = db
        .upsert_batch_json(
            c,
            vec![
                (
                    "a".into(),
                    raw(r#"{ "title" : "Standup", "n": 1, "tags": ["x", "y"] }"#),
                ),
                ("b".into(), raw("[1, \"two\", null, 2.5, true]")),
                ("c".into(), raw(r#""\u00e9 \/ \" \n""#)),
            ],
        )
        .await
        .unwrap();
    let first = [
        json!({"title": "Standup", "n": 1, "tags": ["x", "y"]}),
        json!([1, "two", null, 2.5, true]),
        json!("é / \" \n"),
    ];
    assert_eq!(
        written
            .iter()
            .map(|w| (w.id.as_str(), w.version, w.deleted))
            .collect::<Vec<_>>(),
        [("a", 1, false), ("b", 1, false), ("c", 1, false)]
    );
    assert!(written.windows(2).all(|w| w[0].seq < w[1].seq));
    for (w, data) in written.iter().zip(&first) {
        let r = db.get(c, &w.id).await.unwrap().unwrap();
        assert_eq!((r.version, r.seq, r.data.as_ref()), (1, w.seq, Some(data)));
    }
    let many = db
        .get_many(c, &["c".into(), "missing".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(
        states(&many),
        [
            ("c".into(), 1, written[2].seq, Some(first[2].clone())),
            ("a".into(), 1, written[0].seq, Some(first[0].clone())),
        ]
    );
    // typed, borrowed: an existing id (version 2) and a new one
    let items = [
        Item {
            title: "Standup".into(),
            n: 2,
        },
        Item {
            title: "Review".into(),
            n: 3,
        },
    ];
    let again = db
        .upsert_batch_as(c, [("a", &items[0]), ("d", &items[1])])
        .await
        .unwrap();
    assert_eq!(
        again
            .iter()
            .map(|w| (w.id.as_str(), w.version))
            .collect::<Vec<_>>(),
        [("a", 2), ("d", 1)]
    );
    assert!(again[0].seq > written[2].seq && again[1].seq > again[0].seq);
    assert_eq!(
        db.get_as::<Item>(c, "a").await.unwrap().as_ref(),
        Some(&items[0])
    );
    assert_eq!(
        db.get_as::<Item>(c, "d").await.unwrap().as_ref(),
        Some(&items[1])
    );
    // a tombstone, then the id written again by a batch
    let gone = db.delete(c, "b", Expect::Any).await.unwrap();
    assert_eq!(gone.version, 2);
    let back = db
        .upsert_batch_json(c, vec![("b".into(), raw(r#"{"back": true}"#))])
        .await
        .unwrap();
    assert_eq!((back[0].version, back[0].deleted), (3, false));
    let b = db.get(c, "b").await.unwrap().unwrap();
    assert!(!b.is_deleted());
    assert_eq!((b.version, b.data), (3, Some(json!({"back": true}))));
    let feed = db.changes(c, 0, 100).await.unwrap();
    let typed = |i: usize| Some(serde_json::to_value(&items[i]).unwrap());
    assert_eq!(
        states(&feed),
        [
            ("a".into(), 1, written[0].seq, Some(first[0].clone())),
            ("b".into(), 1, written[1].seq, Some(first[1].clone())),
            ("c".into(), 1, written[2].seq, Some(first[2].clone())),
            ("a".into(), 2, again[0].seq, typed(0)),
            ("d".into(), 1, again[1].seq, typed(1)),
            ("b".into(), 2, gone.seq, None),
            ("b".into(), 3, back[0].seq, Some(json!({"back": true}))),
        ]
    );
    assert!(feed[5].is_deleted());
    // empty batches write nothing
    assert!(
        db.upsert_batch_json(c, Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    let none: [(&str, &Item); 0] = [];
    assert!(db.upsert_batch_as(c, none).await.unwrap().is_empty());
    assert_eq!(db.changes(c, 0, 100).await.unwrap().len(), feed.len());
}

/// `upsert_batch_json` writes what `upsert_batch` writes for the same
/// records parsed into `Value`s: the same results, records and feed, for
/// new and existing ids, ids repeated within a batch, a tombstoned id, and
/// JSON text a database might store otherwise than its parsed `Value`
/// (whitespace, escapes, duplicate keys, numbers in exponent form, `-0`,
/// integers beyond 64 bits, long decimals).
pub async fn json_batch_like_upsert_batch(db: Arc<dyn Adapter>) {
    let rounds: [&[(&str, &str)]; 3] = [
        &[
            (
                "a",
                r#"{"e": 1e2, "E": [1.5E1, 2e-7, -3.0e+2], "z": -0, "big": 12345678901234567.0}"#,
            ),
            ("b", " [ 1 , -2 , 0.25 ] "),
            ("c", "-0"),
            (
                "f",
                r#"{"dup": 1, "dup": {"x": 2}, "t": "2026-01-05T08:00:00+01:00"}"#,
            ),
            (
                "g",
                r#"{"huge": 100000000000000000000, "long": 0.1234567890123456789, "s": "\ud83d\ude00 \u00e9"}"#,
            ),
        ],
        // existing and new ids, one of them three times
        &[
            ("a", "1"),
            ("d", "{}"),
            ("a", r#"{"again": 1.0}"#),
            ("b", "null"),
            ("a", "2"),
        ],
        // after a delete of c (below)
        &[("c", "true"), ("e", r#""x""#), ("c", "1e0")],
    ];
    let (by_value, by_json) = ("by-value", "by-json");
    for (round, items) in rounds.iter().enumerate() {
        if round == 2 {
            for c in [by_value, by_json] {
                db.delete(c, "c", Expect::Any).await.unwrap();
            }
        }
        let values: Vec<(String, Value)> = items
            .iter()
            .map(|(id, text)| ((*id).to_owned(), serde_json::from_str(text).unwrap()))
            .collect();
        let texts: Vec<(String, Box<RawValue>)> = items
            .iter()
            .map(|(id, text)| ((*id).to_owned(), raw(text)))
            .collect();
        let expected = db.upsert_batch(by_value, values).await.unwrap();
        let written = db.upsert_batch_json(by_json, texts).await.unwrap();
        assert_eq!(outcomes(&written), outcomes(&expected), "round {round}");
        assert!(written.iter().all(|w| w.collection == by_json));
    }
    let ids: Vec<String> = ["a", "b", "c", "d", "e", "f", "g"].map(String::from).into();
    assert_eq!(
        states(&db.get_many(by_json, &ids).await.unwrap()),
        states(&db.get_many(by_value, &ids).await.unwrap())
    );
    let feed = db.changes(by_json, 0, 100).await.unwrap();
    assert_eq!(feed.len(), 14);
    assert_eq!(
        states(&feed),
        states(&db.changes(by_value, 0, 100).await.unwrap())
    );
    for id in &ids {
        assert_eq!(
            db.get(by_json, id).await.unwrap().map(|r| r.data),
            db.get(by_value, id).await.unwrap().map(|r| r.data),
            "{id}"
        );
    }
}

/// Unicode and injection-looking ids through `upsert_batch_json` and
/// `upsert_batch_as`.
pub async fn json_batch_odd_ids(db: Arc<dyn Adapter>) {
    let c = "events'; DROP TABLE ft_changes; --";
    let ids: Vec<&str> = UNICODE_IDS.into_iter().chain(LOOKALIKE_IDS).collect();
    let texts = ids
        .iter()
        .map(|id| {
            (
                (*id).to_owned(),
                serde_json::value::to_raw_value(&json!({"id": id})).unwrap(),
            )
        })
        .collect();
    let first = db.upsert_batch_json(c, texts).await.unwrap();
    assert_eq!(first.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ids);
    let values: Vec<Value> = ids.iter().map(|id| json!({"id": id, "n": 2})).collect();
    let second = db
        .upsert_batch_as(c, ids.iter().copied().zip(&values))
        .await
        .unwrap();
    assert!(second.iter().all(|w| w.version == 2));
    for (id, value) in ids.iter().zip(&values) {
        let r = db.get(c, id).await.unwrap().unwrap();
        assert_eq!((r.id.as_str(), r.data.as_ref()), (*id, Some(value)));
    }
    assert!(db.get(c, "\u{e9}").await.unwrap().is_none());
    assert!(db.get(c, "anything").await.unwrap().is_none());
    let feed = db.changes(c, 0, 100).await.unwrap();
    let expected: Vec<(&str, u64)> = ids
        .iter()
        .map(|id| (*id, 1))
        .chain(ids.iter().map(|id| (*id, 2)))
        .collect();
    assert_eq!(
        feed.iter()
            .map(|r| (r.id.as_str(), r.version))
            .collect::<Vec<_>>(),
        expected
    );
}

/// What cannot be written is a typed error and writes nothing of its
/// batch: an item that does not serialize, JSON text that parses into no
/// `Value`, a bad id or collection, too many items.
pub async fn json_batch_errors(db: Arc<dyn Adapter>) {
    use std::collections::BTreeMap;
    let c = "json-errors";
    let invalid = |e: flextime_core::Error, record: &str| {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(record), "{e}");
    };
    // a map with non-string keys does not serialize to JSON
    let fine: BTreeMap<(u8, u8), u8> = BTreeMap::new();
    let bad: BTreeMap<(u8, u8), u8> = BTreeMap::from([((1, 2), 3)]);
    let err = db
        .upsert_batch_as(c, [("fine", &fine), ("bad", &bad)])
        .await
        .unwrap_err();
    invalid(err, "json-errors/bad");
    // JSON text that RawValue accepts but no Value holds
    for text in [
        "1e400",
        r#"{"n": [-1e400]}"#,
        r#""\udc00""#,
        r#"{"s": "\ud800"}"#,
    ] {
        let err = db
            .upsert_batch_json(
                c,
                vec![("fine".into(), raw("{}")), ("bad".into(), raw(text))],
            )
            .await
            .unwrap_err();
        invalid(err, "json-errors/bad");
    }
    for (collection, id) in [(c, ""), (c, "a\0b"), ("", "id")] {
        let err = db
            .upsert_batch_json(
                collection,
                vec![("fine".into(), raw("1")), (id.into(), raw("1"))],
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = db
            .upsert_batch_as(collection, [("fine", &1), (id, &2)])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    let too_many: Vec<String> = (0..=crate::MAX_BATCH).map(|i| i.to_string()).collect();
    let err = db
        .upsert_batch_as(c, too_many.iter().map(|id| (id, &0)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = db
        .upsert_batch_json(
            c,
            too_many.iter().map(|id| (id.clone(), raw("0"))).collect(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        db.get(c, "fine").await.unwrap().is_none(),
        "nothing was written"
    );
    assert!(db.changes(c, 0, 100).await.unwrap().is_empty());
    // and the collection takes good batches afterwards
    let w = db
        .upsert_batch_json(c, vec![("fine".into(), raw("1"))])
        .await
        .unwrap();
    assert_eq!(w[0].version, 1);
}

/// A collection as a core `Sink` and `Source`.
pub async fn source_and_sink(db: Arc<dyn Adapter>) {
    let feed = CollectionFeed::new(Arc::clone(&db), "local", "synced").with_batch_size(3);
    let changes: Vec<Change> = (0..5)
        .map(|i| {
            Change::upsert(
                ChangeKey::new("google", "cal", format!("e{i}")),
                json!({"i": i}),
            )
        })
        .chain([
            Change {
                data: None,
                ..Change::upsert(ChangeKey::new("google", "cal", "bad"), json!(null))
            },
            Change::delete(ChangeKey::new("google", "cal", "e1")),
        ])
        .collect();
    let results = feed.apply(&changes).await.unwrap();
    assert_eq!(results.len(), 7);
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, r)| (i == 5) != r.outcome.is_settled())
    );
    let batches: Vec<_> = feed
        .changes(None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let all: Vec<Change> = batches.iter().flat_map(|b| b.changes.clone()).collect();
    assert_eq!(all.len(), 6, "five upserts and the delete");
    assert_eq!(
        all.last().unwrap().key,
        ChangeKey::new("local", "synced", "e1")
    );
    assert!(all.last().unwrap().is_delete());
    let first = batches[0].checkpoint.clone();
    let rest: Vec<_> = feed
        .changes(Some(first))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|b| b.changes.len()).sum::<usize>(), 3);
    let bad = feed
        .changes(Some(flextime_core::Checkpoint::new("nope")))
        .await
        .err()
        .unwrap();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
}

/// After `kill` severs the adapter's connections, calls fail only with
/// retryable errors and the pool recovers within a few attempts.
pub async fn lost_connection_recovers<F>(db: Arc<dyn Adapter>, kill: F)
where
    F: std::future::Future<Output = ()>,
{
    db.upsert("lost", "a", json!(1), Expect::Any).await.unwrap();
    kill.await;
    let mut recovered = false;
    for _ in 0..20 {
        match db.get("lost", "a").await {
            Ok(r) => {
                assert_eq!(r.unwrap().data, Some(json!(1)));
                recovered = true;
                break;
            }
            Err(e) => {
                assert!(
                    e.is_retryable(),
                    "a lost connection must be retryable: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(recovered, "the pool did not recover");
    db.upsert("lost", "b", json!(2), Expect::Any).await.unwrap();
}

/// Idempotency: one claimant wins, results are stored, stale claims are taken over.
pub async fn store_idempotency(db: Arc<dyn Adapter>) {
    use crate::stores::{Claim, IdempotencyStore};
    let clock = flextime_core::ManualClock::new(chrono::Utc::now());
    let store = IdempotencyStore::new(Arc::clone(&db), Duration::from_secs(3600))
        .with_claim_timeout(Duration::from_secs(60))
        .with_clock(Arc::new(clock.clone()));
    let claims: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim("evt-1").await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for c in claims {
        if c.await.unwrap() == Claim::New {
            new += 1;
        }
    }
    assert_eq!(new, 1, "exactly one claimant does the work");
    assert!(matches!(
        store.claim("evt-1").await.unwrap(),
        Claim::InProgress { .. }
    ));
    store
        .complete("evt-1", json!({"status": 202}))
        .await
        .unwrap();
    let Claim::Done(record) = store.claim("evt-1").await.unwrap() else {
        panic!("not done")
    };
    assert_eq!(record.result, Some(json!({"status": 202})));
    // a failed attempt is released and may be retried
    assert_eq!(store.claim("evt-2").await.unwrap(), Claim::New);
    store.release("evt-2").await.unwrap();
    assert_eq!(store.claim("evt-2").await.unwrap(), Claim::New);
    // a crashed claimant's claim is taken over after the claim timeout
    assert!(matches!(
        store.claim("evt-2").await.unwrap(),
        Claim::InProgress { .. }
    ));
    clock.advance(Duration::from_secs(61));
    assert_eq!(store.claim("evt-2").await.unwrap(), Claim::New);
    assert!(store.get("evt-3").await.unwrap().is_none());
}

/// Checkpoints per pipeline and stream.
pub async fn store_checkpoint(db: Arc<dyn Adapter>) {
    use crate::stores::CheckpointStore;
    use flextime_core::Checkpoint;
    let store = CheckpointStore::new(db);
    assert_eq!(store.load("p", "s").await.unwrap(), None);
    store.save("p", "s", &Checkpoint::new("1")).await.unwrap();
    store.save("p", "s", &Checkpoint::new("2")).await.unwrap();
    store.save("a/b", "c", &Checkpoint::new("x")).await.unwrap();
    store.save("a", "b/c", &Checkpoint::new("y")).await.unwrap();
    assert_eq!(
        store.load("p", "s").await.unwrap(),
        Some(Checkpoint::new("2"))
    );
    assert_eq!(
        store.load("a/b", "c").await.unwrap(),
        Some(Checkpoint::new("x"))
    );
    assert_eq!(
        store.load("a", "b/c").await.unwrap(),
        Some(Checkpoint::new("y"))
    );
    assert!(store.reset("p", "s").await.unwrap());
    assert_eq!(store.load("p", "s").await.unwrap(), None);
}

/// Local <-> external id mappings.
pub async fn store_mapping(db: Arc<dyn Adapter>) {
    use crate::stores::MappingStore;
    let maps = MappingStore::new(db);
    let link = maps
        .link(
            "bk1",
            "google",
            "g1",
            Some("e1".into()),
            Some(json!({"t": "A"})),
        )
        .await
        .unwrap();
    assert_eq!(link.etag.as_deref(), Some("e1"));
    maps.link("bk1", "notion", "n1", None, None).await.unwrap();
    assert_eq!(
        maps.local_id("google", "g1").await.unwrap().as_deref(),
        Some("bk1")
    );
    assert_eq!(
        maps.local_id("notion", "n1").await.unwrap().as_deref(),
        Some("bk1")
    );
    assert_eq!(maps.local_id("notion", "g1").await.unwrap(), None);
    let m = maps.get("bk1").await.unwrap().unwrap();
    assert_eq!(m.links.len(), 2);
    assert_eq!(m.links["google"].base, Some(json!({"t": "A"})));
    // re-sync updates etag and base
    maps.link(
        "bk1",
        "google",
        "g1",
        Some("e2".into()),
        Some(json!({"t": "B"})),
    )
    .await
    .unwrap();
    assert_eq!(
        maps.link_of("bk1", "google")
            .await
            .unwrap()
            .unwrap()
            .etag
            .as_deref(),
        Some("e2")
    );
    // one external id cannot map to two local ids
    let err = maps
        .link("bk2", "google", "g1", None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // relinking to another external id drops the old reverse entry
    maps.link("bk1", "google", "g2", None, None).await.unwrap();
    assert_eq!(maps.local_id("google", "g1").await.unwrap(), None);
    assert_eq!(
        maps.local_id("google", "g2").await.unwrap().as_deref(),
        Some("bk1")
    );
    assert!(maps.unlink("bk1", "google").await.unwrap());
    assert!(!maps.unlink("bk1", "google").await.unwrap());
    assert_eq!(maps.local_id("google", "g2").await.unwrap(), None);
    // racing linkers of one external id: exactly one wins
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let maps = maps.clone();
            tokio::spawn(async move {
                maps.link(&format!("local{i}"), "stripe", "cus_1", None, None)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::Conflict | ErrorKind::Unavailable),
                "{e}"
            ),
        }
    }
    assert_eq!(won, 1);
}

struct Recorder {
    sent: std::sync::Mutex<Vec<String>>,
    fail_on: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl crate::stores::OutboxPublisher for Recorder {
    async fn publish(&self, entry: &crate::stores::OutboxEntry) -> flextime_core::Result<()> {
        let name = entry.message.payload["n"].to_string();
        let mut fail = self.fail_on.lock().unwrap();
        if fail.as_deref() == Some(name.as_str()) {
            *fail = None;
            return Err(flextime_core::Error::unavailable("broker down"));
        }
        self.sent.lock().unwrap().push(name);
        Ok(())
    }
}

/// A publisher that runs a second relay while the first holds the lease.
struct Nested(
    crate::stores::OutboxStore,
    std::sync::Mutex<Option<crate::stores::RelayReport>>,
);
#[async_trait::async_trait]
impl crate::stores::OutboxPublisher for Nested {
    async fn publish(&self, _: &crate::stores::OutboxEntry) -> flextime_core::Result<()> {
        let other = self
            .0
            .relay_once(
                &Recorder {
                    sent: std::sync::Mutex::new(Vec::new()),
                    fail_on: std::sync::Mutex::new(None),
                },
                10,
            )
            .await?;
        *self.1.lock().unwrap() = Some(other);
        Ok(())
    }
}

/// The outbox: appended atomically with the business change, relayed in
/// order at least once, failures retried first.
pub async fn store_outbox(db: Arc<dyn Adapter>) {
    use crate::stores::{OutboxMessage, OutboxStore};
    let outbox = OutboxStore::new(Arc::clone(&db));
    let msg = |n: u32| OutboxMessage::new("bookings", json!({"n": n})).with_key("bk");
    // with the business change, atomically
    for n in 0..3 {
        db.write(vec![
            WriteOp::upsert("bookings", format!("b{n}"), json!({"n": n})),
            outbox.append_op(&msg(n)).unwrap(),
        ])
        .await
        .unwrap();
    }
    let failed = db
        .write(vec![
            WriteOp::upsert("bookings", "b0", json!("x")).expect(Expect::Absent),
            outbox.append_op(&msg(99)).unwrap(),
        ])
        .await;
    assert_eq!(failed.unwrap_err().kind(), ErrorKind::Conflict);
    if db.supports_transactions() {
        let mut tx = db.begin().await.unwrap();
        tx.write(vec![outbox.append_op(&msg(98)).unwrap()])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    for n in 3..6 {
        outbox.append(&msg(n)).await.unwrap();
    }
    let recorder = Recorder {
        sent: std::sync::Mutex::new(Vec::new()),
        fail_on: std::sync::Mutex::new(Some("2".into())),
    };
    let first = outbox.relay_once(&recorder, 100).await.unwrap();
    assert_eq!(
        (first.published, first.failed, first.busy),
        (2, true, false)
    );
    let pending = db.changes(outbox.collection(), 0, 100).await.unwrap();
    let failed_row = pending
        .iter()
        .find(|r| {
            r.data
                .as_ref()
                .is_some_and(|d| d["payload"]["n"] == json!(2))
        })
        .unwrap();
    assert_eq!(outbox.attempts(&failed_row.id).await.unwrap(), 1);
    let second = outbox.relay_once(&recorder, 100).await.unwrap();
    assert_eq!((second.published, second.failed), (4, false));
    assert_eq!(
        *recorder.sent.lock().unwrap(),
        ["0", "1", "2", "3", "4", "5"]
    );
    assert_eq!(
        outbox.relay_once(&recorder, 100).await.unwrap().published,
        0
    );
    // sent rows, their tombstones and their log entries are all gone
    assert!(
        db.changes(outbox.collection(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // one relay at a time
    outbox.append(&msg(6)).await.unwrap();
    let nested = Nested(
        OutboxStore::new(Arc::clone(&db)),
        std::sync::Mutex::new(None),
    );
    assert_eq!(outbox.relay_once(&nested, 10).await.unwrap().published, 1);
    assert!(nested.1.lock().unwrap().unwrap().busy);
}

/// The delivery log keeps every attempt, also under concurrent recorders.
pub async fn store_delivery_log(db: Arc<dyn Adapter>) {
    use crate::stores::{DeliveryAttempt, DeliveryLog, DeliveryState};
    let log = DeliveryLog::new(db);
    log.start("d1", "ep", "evt").await.unwrap();
    assert_eq!(log.start("d1", "other", "x").await.unwrap().endpoint, "ep");
    let tasks: Vec<_> = (1..=10)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move {
                let attempt = DeliveryAttempt {
                    attempt: n,
                    at: chrono::Utc::now(),
                    status: Some(503),
                    error: Some("busy".into()),
                    duration_ms: 5,
                };
                log.record("d1", attempt, DeliveryState::Pending, None)
                    .await
            })
        })
        .collect();
    let mut recorded = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => recorded += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}"),
        }
    }
    let d = log.get("d1").await.unwrap().unwrap();
    assert!(recorded > 0);
    assert_eq!(d.attempts.len(), recorded, "every recorded attempt is kept");
    let mut numbers: Vec<u32> = d.attempts.iter().map(|a| a.attempt).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), d.attempts.len(), "no attempt recorded twice");
    let ok = DeliveryAttempt {
        attempt: 11,
        at: chrono::Utc::now(),
        status: Some(200),
        error: None,
        duration_ms: 3,
    };
    assert_eq!(
        log.record("d1", ok, DeliveryState::Succeeded, None)
            .await
            .unwrap()
            .state,
        DeliveryState::Succeeded
    );
    let missing = DeliveryAttempt {
        attempt: 1,
        at: chrono::Utc::now(),
        status: None,
        error: None,
        duration_ms: 0,
    };
    assert_eq!(
        log.record("nope", missing, DeliveryState::Failed, None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // the feed carries every change of the delivery; the last is the outcome
    let feed = log.since(0, 100).await.unwrap();
    assert_eq!(feed.len(), recorded + 2);
    assert!(feed.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(feed.last().unwrap().1.state, DeliveryState::Succeeded);
}
