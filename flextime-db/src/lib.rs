//! # flextime-db
//!
//! One record-store [`Adapter`] over SQLite, PostgreSQL, MySQL/MariaDB,
//! MongoDB and Redis, and the library's own durable stores built once on top
//! of it ([`stores`]).
//!
//! | feature | backend | module |
//! |---|---|---|
//! | `sqlite` (default) | embedded SQLite, file or memory, WAL | `sqlite` |
//! | `postgres` | PostgreSQL (sqlx, JSONB, UNNEST batches, LISTEN/NOTIFY) | `postgres` |
//! | `mysql` | MySQL / MariaDB (sqlx) | `mysql` |
//! | `mongodb` | MongoDB (official driver; tested against a wire-protocol surrogate) | `mongodb` |
//! | `redis` | Redis (hashes, sorted-set change index, Lua scripts) | `redis` |
//! | `conformance` | the conformance suite, public | `conformance` |
//! | `queues` | an outbox relay publisher over any flextime-queues `Producer` | `queues` |
//!
//! An adapter keeps named collections of JSON records keyed by id. Every
//! record has a per-record `version` (1, 2, 3 ...), an `updated_at`, and a
//! change sequence number `seq` that orders the collection's change feed.
//! Deletes leave a tombstone (`deleted_at`, no data) that the feed carries.
//!
//! - [`Adapter::get`], [`Adapter::get_many`], [`Adapter::upsert`] (with an
//!   [`Expect`] precondition: a mismatch is an [`ErrorKind::Conflict`](flextime_core::ErrorKind::Conflict)
//!   error), [`Adapter::upsert_batch`] (one transaction or one atomic
//!   script), [`Adapter::delete`] (a tombstone), and [`Adapter::write`]
//!   for an atomic mix of writes across collections.
//! - Batches of JSON text or serde types: [`Adapter::upsert_batch_json`]
//!   takes each record as text already serialized ([`RawValue`]),
//!   and [`AdapterExt::upsert_batch_as`] serializes borrowed typed items
//!   straight into it, so no `Value` is built per record (the built-in
//!   backends store the text as given).
//! - [`Adapter::changes`]: every change after a cursor, in `seq` order: each
//!   upsert and each delete (a tombstone) is its own entry, with the
//!   record's version and data as of that change. The entries live in a
//!   change log written in the same transaction (or script) as the record
//!   (on PostgreSQL the log is the record store: a record is its latest
//!   entry).
//!   Writers to one collection take its change counter inside their
//!   transaction and hold it until they commit, so sequence numbers become
//!   visible in order and a reader never skips a change committed late.
//!   [`Adapter::prune_changes`] is the explicit retention call.
//!   [`feed::CollectionFeed`] makes a collection a core [`Source`](flextime_core::Source) and
//!   [`Sink`](flextime_core::Sink).
//! - Key-value entries with TTL and compare-and-set ([`Adapter::kv_get`],
//!   [`Adapter::kv_set`], [`Adapter::kv_compare_and_set`]).
//! - Interactive transactions where the backend has them ([`Adapter::begin`]).
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use flextime_db::{connect, Adapter, DbOptions, Expect};
//! use serde_json::json;
//!
//! let db = connect("sqlite::memory:", DbOptions::default()).await.unwrap();
//! let w = db.upsert("events", "evt-1", json!({"title": "Standup"}), Expect::Absent).await.unwrap();
//! assert_eq!(w.version, 1);
//! let err = db.upsert("events", "evt-1", json!({"title": "x"}), Expect::Version(7)).await.unwrap_err();
//! assert_eq!(err.kind(), flextime_core::ErrorKind::Conflict);
//! let page = db.changes("events", 0, 100).await.unwrap();
//! assert_eq!(page[0].data, Some(json!({"title": "Standup"})));
//! # });
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::{Change, ChangeKey, Error, Result, SharedClock, SystemClock, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis",
        feature = "mongodb"
    )),
    allow(dead_code)
)]
mod common;
pub mod feed;
pub mod stores;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;

#[cfg(feature = "mysql")]
pub mod mysql;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "mongodb")]
pub mod mongodb;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "conformance")]
pub mod conformance;

#[cfg(feature = "queues")]
pub mod queues;

pub use common::redact_url;

/// Most operations one [`Adapter::write`] call accepts.
pub const MAX_BATCH: usize = 10_000;
/// Largest serialized record (JSON bytes) or key-value value accepted.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Longest record id, in characters.
pub const MAX_ID_CHARS: usize = 255;
/// Longest collection name, in characters.
pub const MAX_COLLECTION_CHARS: usize = 128;
/// Longest key-value key, in characters.
pub const MAX_KEY_CHARS: usize = 512;
/// Most records one [`Adapter::changes`] or [`Adapter::get_many`] call returns.
pub const MAX_PAGE: usize = 10_000;

/// One stored record (or its tombstone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The collection it lives in.
    pub collection: String,
    /// Its id within the collection.
    pub id: String,
    /// The per-record version: 1 on creation, +1 on every write or delete.
    pub version: u64,
    /// The change sequence number within the collection: of the record's
    /// latest change (from [`Adapter::get`]) or of this change (from
    /// [`Adapter::changes`]).
    pub seq: u64,
    /// The data; `None` for a tombstone.
    pub data: Option<Value>,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (tombstones only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Record {
    /// Whether this is a tombstone.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The data deserialized into `T` (an `InvalidInput` error for a tombstone
    /// or data of another shape).
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let data = self.data.as_ref().ok_or_else(|| {
            Error::not_found(format!("{}/{} is deleted", self.collection, self.id))
        })?;
        T::deserialize(data).map_err(|e| {
            Error::invalid_input(format!("record {}/{}: {e}", self.collection, self.id))
                .with_source(e)
        })
    }

    /// This record as a core [`Change`] of `system`: an upsert with the data,
    /// or a delete for a tombstone; the version is `Sequence(version)`.
    pub fn to_change(&self, system: &str) -> Change {
        let key = ChangeKey::new(system, &self.collection, &self.id);
        let change = match &self.data {
            Some(data) if self.deleted_at.is_none() => Change::upsert(key, data.clone()),
            _ => Change::delete(key),
        };
        change
            .with_version(Version::Sequence(self.version))
            .with_changed_at(self.deleted_at.unwrap_or(self.updated_at))
            .with_metadata("seq", self.seq.to_string())
    }
}

/// A precondition on the stored version of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// No precondition.
    #[default]
    Any,
    /// The record must not exist (a tombstone counts as absent).
    Absent,
    /// The record's current version must be this one (a tombstone has a version too).
    Version(u64),
}

impl Expect {
    /// Whether a record in state `current` (`(version, deleted)`) satisfies this.
    pub fn admits(self, current: Option<(u64, bool)>) -> bool {
        match (self, current) {
            (Self::Any, _) | (Self::Absent, None | Some((_, true))) => true,
            (Self::Absent, Some((_, false))) | (Self::Version(_), None) => false,
            (Self::Version(v), Some((cur, _))) => v == cur,
        }
    }
}

/// One write of an atomic [`Adapter::write`].
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Create or replace a record.
    Upsert {
        /// The collection.
        collection: String,
        /// The record id.
        id: String,
        /// The new data.
        data: Value,
        /// The precondition.
        expect: Expect,
    },
    /// Replace a record by a tombstone.
    Delete {
        /// The collection.
        collection: String,
        /// The record id.
        id: String,
        /// The precondition.
        expect: Expect,
    },
}

impl WriteOp {
    /// An unconditional upsert.
    pub fn upsert(collection: impl Into<String>, id: impl Into<String>, data: Value) -> Self {
        Self::Upsert {
            collection: collection.into(),
            id: id.into(),
            data,
            expect: Expect::Any,
        }
    }

    /// An unconditional delete.
    pub fn delete(collection: impl Into<String>, id: impl Into<String>) -> Self {
        Self::Delete {
            collection: collection.into(),
            id: id.into(),
            expect: Expect::Any,
        }
    }

    /// Set the precondition.
    #[must_use]
    pub fn expect(mut self, expect: Expect) -> Self {
        match &mut self {
            Self::Upsert { expect: e, .. } | Self::Delete { expect: e, .. } => *e = expect,
        }
        self
    }

    /// The collection written.
    pub fn collection(&self) -> &str {
        match self {
            Self::Upsert { collection, .. } | Self::Delete { collection, .. } => collection,
        }
    }

    /// The record id written.
    pub fn id(&self) -> &str {
        match self {
            Self::Upsert { id, .. } | Self::Delete { id, .. } => id,
        }
    }

    /// The precondition.
    pub fn precondition(&self) -> Expect {
        match self {
            Self::Upsert { expect, .. } | Self::Delete { expect, .. } => *expect,
        }
    }
}

/// What one write produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The collection.
    pub collection: String,
    /// The record id.
    pub id: String,
    /// The record's new version.
    pub version: u64,
    /// The change sequence number of this write.
    pub seq: u64,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
    /// Whether the write was a delete.
    pub deleted: bool,
}

/// A key-value entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The value.
    pub value: Vec<u8>,
    /// The entry's version, +1 on every set; compare-and-set compares it.
    pub version: u64,
    /// When it expires, if it has a TTL.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Pool settings shared by the SQL backends (Redis uses the timeouts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a free connection before a `Timeout` error.
    pub acquire_timeout: Duration,
    /// Server-side statement timeout (PostgreSQL `statement_timeout`,
    /// MariaDB `max_statement_time`, MySQL `max_execution_time`; SQLite: busy timeout).
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// How to connect: pool settings, migrations and the clock.
#[derive(Clone)]
pub struct DbOptions {
    /// Pool settings.
    pub pool: PoolOptions,
    /// Apply pending migrations when connecting (default true).
    pub migrate_on_connect: bool,
    /// Allow migrations marked destructive (default false: they are refused).
    pub allow_destructive_migrations: bool,
    /// The clock for `updated_at`, `deleted_at` and key-value expiry.
    pub clock: SharedClock,
    /// PostgreSQL: the schema to work in (created if missing); must be
    /// `[a-z_][a-z0-9_]*`. Default: the connection's `search_path`.
    pub schema: Option<String>,
    /// Redis: the prefix of every key (default `flextime:`).
    pub key_prefix: Option<String>,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            pool: PoolOptions::default(),
            migrate_on_connect: true,
            allow_destructive_migrations: false,
            clock: Arc::new(SystemClock),
            schema: None,
            key_prefix: None,
        }
    }
}

impl fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbOptions")
            .field("pool", &self.pool)
            .field("migrate_on_connect", &self.migrate_on_connect)
            .field(
                "allow_destructive_migrations",
                &self.allow_destructive_migrations,
            )
            .field("schema", &self.schema)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// An interactive transaction (SQL backends).
///
/// Writes take the written collections' change counters, so hold a
/// transaction briefly: other writers to those collections wait for it.
/// Dropping it without [`Transaction::commit`] rolls it back.
#[async_trait::async_trait]
pub trait Transaction: Send {
    /// Read a record as this transaction sees it.
    async fn get(&mut self, collection: &str, id: &str) -> Result<Option<Record>>;
    /// Apply writes (all or none; a precondition failure leaves the
    /// transaction usable but writes nothing of this call).
    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<Written>>;
    /// Commit.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Roll back.
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// A record store. See the crate docs.
///
/// Every method validates its input (collection and id length, no NUL
/// characters, bounded batches and values) and returns typed errors: a
/// version mismatch is `Conflict`, a lost connection `Unavailable`
/// (retryable), an exhausted pool or statement timeout `Timeout`.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync + fmt::Debug {
    /// The backend's name (`sqlite`, `postgres`, `mysql`, `redis`).
    fn backend(&self) -> &'static str;

    /// Whether [`Adapter::begin`] is supported.
    fn supports_transactions(&self) -> bool {
        false
    }

    /// Apply pending migrations (idempotent; refuses destructive ones unless
    /// allowed in [`DbOptions`]).
    async fn migrate(&self) -> Result<()>;

    /// Check the backend answers.
    async fn ping(&self) -> Result<()>;

    /// One record, tombstones included.
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Record>>;

    /// The records among `ids` that exist (tombstones included), in the
    /// order of `ids`; at most [`MAX_PAGE`] ids.
    async fn get_many(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>>;

    /// Apply writes atomically, in order (a later write to the same id sees
    /// the earlier one). Any failed precondition fails the whole call with a
    /// `Conflict` and writes nothing.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Written>>;

    /// Every change of `collection` with `seq > after`, in `seq` order, at
    /// most `limit` (capped at [`MAX_PAGE`]): each upsert and each delete
    /// is its own entry (a [`Record`] with the version, data and timestamps
    /// of that change; deletes are tombstones). Resume with the last entry's
    /// `seq`. A record written twice between two reads appears twice, once
    /// per version. No entry is skipped when concurrent writers commit out
    /// of order; entries removed by [`Adapter::prune_changes`] are gone.
    async fn changes(&self, collection: &str, after: u64, limit: usize) -> Result<Vec<Record>>;

    /// Retention of the change log: remove the entries of `collection`
    /// with `seq <= up_to` that are no longer a record's current state;
    /// returns how many. Prune only below every feed reader's checkpoint.
    /// (A record's current entry stays until the record is replaced, or
    /// purged by [`Adapter::purge_tombstones`].)
    async fn prune_changes(&self, collection: &str, up_to: u64) -> Result<u64> {
        let _ = (collection, up_to);
        Err(Error::permanent(format!(
            "the {} backend has no change-log retention",
            self.backend()
        )))
    }

    /// Start an interactive transaction.
    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Err(Error::permanent(format!(
            "the {} backend has no interactive transactions; use write() for atomic batches",
            self.backend()
        )))
    }

    /// A live (unexpired) key-value entry.
    async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>>;

    /// Set a key-value entry; returns its new version.
    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64>;

    /// Set `key` only if its live version is `expected` (`None`: only if it
    /// has no live entry). Returns the new version, or `None` when the
    /// comparison failed.
    async fn kv_compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<u64>>;

    /// Remove a key-value entry; whether a live one was there.
    async fn kv_delete(&self, key: &str) -> Result<bool>;

    /// Remove the tombstones of `collection` whose delete has `seq <= up_to`
    /// for good (their change-log entries then become prunable; a backend
    /// whose log is the record store, PostgreSQL, deletes them at once);
    /// returns how many. A purged id written again starts at version 1.
    /// Only purge below every feed reader's checkpoint.
    async fn purge_tombstones(&self, collection: &str, up_to: u64) -> Result<u64>;

    /// Upsert one record.
    async fn upsert(
        &self,
        collection: &str,
        id: &str,
        data: Value,
        expect: Expect,
    ) -> Result<Written> {
        let op = WriteOp::upsert(collection, id, data).expect(expect);
        single(self.write(vec![op]).await?)
    }

    /// Upsert many records of one collection atomically (one transaction or
    /// one script): `(id, data)` pairs without preconditions.
    async fn upsert_batch(
        &self,
        collection: &str,
        items: Vec<(String, Value)>,
    ) -> Result<Vec<Written>> {
        let ops = items
            .into_iter()
            .map(|(id, data)| WriteOp::Upsert {
                collection: collection.to_owned(),
                id,
                data,
                expect: Expect::Any,
            })
            .collect();
        self.write(ops).await
    }

    /// [`Adapter::upsert_batch`] with each record's data as JSON text the
    /// caller has already serialized (`serde_json::to_raw_value`, or
    /// [`RawValue::from_string`] for text read from elsewhere), so that no
    /// [`Value`] is built and freed per record: the SQL backends, Redis and
    /// MongoDB store the text as it is. Same semantics as `upsert_batch`
    /// for the same records parsed into `Value`s: one atomic write without
    /// preconditions, the same versions, seqs and [`Written`] results, the
    /// same change-feed entries (an id given twice is written twice, in
    /// order), and [`Adapter::get`] and [`Adapter::changes`] return the
    /// data `upsert_batch` would have stored (text a database would read
    /// back otherwise, such as `1e2` in JSONB, is stored as its parsed
    /// `Value` is). Text that parses into no `Value` (a
    /// number out of `f64` range, an escaped lone surrogate: `RawValue`
    /// lets both through) is an `InvalidInput` error and nothing is
    /// written. [`MAX_RECORD_BYTES`] applies to the text as given,
    /// whitespace included. [`AdapterExt::upsert_batch_as`] serializes
    /// typed items into this.
    ///
    /// The default parses each text into a `Value` and calls
    /// [`Adapter::upsert_batch`], so a backend that does not override it
    /// behaves the same, without the saving.
    async fn upsert_batch_json(
        &self,
        collection: &str,
        items: Vec<(String, Box<RawValue>)>,
    ) -> Result<Vec<Written>> {
        common::check_batch_len(items.len())?;
        let items = items
            .into_iter()
            .map(|(id, raw)| {
                let data = common::parse_json(collection, &id, &raw)?;
                Ok((id, data))
            })
            .collect::<Result<Vec<_>>>()?;
        self.upsert_batch(collection, items).await
    }

    /// Replace a record by a tombstone (also when it never existed, so a late
    /// upsert with `Expect::Absent` of a deleted id can be told apart).
    async fn delete(&self, collection: &str, id: &str, expect: Expect) -> Result<Written> {
        single(
            self.write(vec![WriteOp::delete(collection, id).expect(expect)])
                .await?,
        )
    }
}

fn single(mut written: Vec<Written>) -> Result<Written> {
    written
        .pop()
        .ok_or_else(|| Error::internal("write returned no result"))
}

/// Typed helpers over any [`Adapter`].
#[async_trait::async_trait]
pub trait AdapterExt: Adapter {
    /// A live record's data as `T` (`None` when absent or deleted).
    async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<T>> {
        match self.get(collection, id).await? {
            Some(r) if !r.is_deleted() => r.data_as().map(Some),
            _ => Ok(None),
        }
    }

    /// Upsert a serializable value.
    async fn upsert_as<T: Serialize + Sync>(
        &self,
        collection: &str,
        id: &str,
        value: &T,
        expect: Expect,
    ) -> Result<Written> {
        let data = serde_json::to_value(value)?;
        self.upsert(collection, id, data, expect).await
    }

    /// Upsert a batch of serializable items of one collection atomically,
    /// each serialized straight to JSON text and written with
    /// [`Adapter::upsert_batch_json`]: no `Value` per item, and the items
    /// stay the caller's (borrowed). `items` yields `(id, &item)` pairs,
    /// the id anything `Into<String>` (`&str`, `&String`, `String`).
    /// A value that does not serialize (a map with non-string keys, a
    /// failing `Serialize` impl) is an `InvalidInput` error naming its
    /// record, and nothing is written; so is a batch of more than
    /// [`MAX_BATCH`] items (found before the rest is serialized).
    ///
    /// The data stored is what `serde_json::to_string` writes for the item
    /// (as read back): an `f32` keeps its shortest form (`1.1`), where
    /// [`AdapterExt::upsert_as`] goes through a `Value` (`1.100000023841858`).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use flextime_db::{connect, AdapterExt, DbOptions};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Event {
    ///     id: String,
    ///     title: String,
    /// }
    ///
    /// let db = connect("sqlite::memory:", DbOptions::default()).await.unwrap();
    /// let events = vec![
    ///     Event { id: "evt-1".into(), title: "Standup".into() },
    ///     Event { id: "evt-2".into(), title: "Review".into() },
    /// ];
    /// let written = db
    ///     .upsert_batch_as("events", events.iter().map(|e| (e.id.as_str(), e)))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(written.len(), 2);
    /// // pairs held as (id, item), borrowed too
    /// let pairs = vec![("evt-3".to_owned(), serde_json::json!({"title": "1:1"}))];
    /// db.upsert_batch_as("events", pairs.iter().map(|(id, v)| (id, v)))
    ///     .await
    ///     .unwrap();
    /// # });
    /// ```
    async fn upsert_batch_as<'a, T, K, I>(&self, collection: &str, items: I) -> Result<Vec<Written>>
    where
        T: Serialize + Sync + 'a,
        K: Into<String>,
        I: IntoIterator<Item = (K, &'a T)> + Send,
    {
        let items = serialize_batch(collection, items)?;
        self.upsert_batch_json(collection, items).await
    }
}

/// The items of [`AdapterExt::upsert_batch_as`] as JSON text.
fn serialize_batch<'a, T, K, I>(collection: &str, items: I) -> Result<Vec<(String, Box<RawValue>)>>
where
    T: Serialize + 'a,
    K: Into<String>,
    I: IntoIterator<Item = (K, &'a T)>,
{
    let items = items.into_iter();
    let mut out = Vec::with_capacity(items.size_hint().0.min(MAX_BATCH));
    for (id, item) in items {
        if out.len() == MAX_BATCH {
            return Err(Error::invalid_input(format!(
                "more than {MAX_BATCH} writes in one call"
            )));
        }
        let id = id.into();
        let raw = serde_json::value::to_raw_value(item).map_err(|e| {
            Error::invalid_input(format!("record {collection}/{id}: JSON: {e}")).with_source(e)
        })?;
        out.push((id, raw));
    }
    Ok(out)
}

impl<A: Adapter + ?Sized> AdapterExt for A {}

/// Connect to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://`,
/// `mysql://`, `redis://`) with the backend whose cargo feature is on, and
/// apply migrations unless [`DbOptions::migrate_on_connect`] is false.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis",
        feature = "mongodb"
    )),
    allow(unused_variables, clippy::unused_async)
)]
pub async fn connect(url: &str, options: DbOptions) -> Result<Arc<dyn Adapter>> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(
            sqlite::SqliteAdapter::connect(url, options).await?,
        )),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(
            postgres::PostgresAdapter::connect(url, options).await?,
        )),
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => Ok(Arc::new(mysql::MysqlAdapter::connect(url, options).await?)),
        #[cfg(feature = "mongodb")]
        "mongodb" => Ok(Arc::new(
            mongodb::MongoAdapter::connect(url, options).await?,
        )),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(Arc::new(redis::RedisAdapter::connect(url, options).await?)),
        known
            if [
                "sqlite",
                "postgres",
                "postgresql",
                "mysql",
                "mariadb",
                "redis",
                "rediss",
                "mongodb",
            ]
            .contains(&known) =>
        {
            Err(Error::invalid_input(format!(
                "the `{scheme}` backend is not compiled in: enable flextime-db's `{}` feature",
                match scheme.as_str() {
                    "postgresql" => "postgres",
                    "mariadb" => "mysql",
                    "rediss" => "redis",
                    s => s,
                }
            )))
        }
        _ => Err(Error::invalid_input(format!(
            "unsupported database URL scheme `{scheme}` in {}",
            redact_url(url)
        ))),
    }
}
