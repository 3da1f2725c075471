//! What the SQL backends share: error mapping, embedded migrations, and the
//! write algorithm (take the collection counters, read the current
//! versions, check preconditions, write the final rows).
//!
//! Two table layouts sit behind [`RowStore`]: SQLite and MySQL keep each
//! record's current version in `ft_records` next to the change log
//! `ft_changes`; PostgreSQL keeps the log only, a record's current state
//! being its latest entry. The algorithm is the same for both.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use flextime_core::{Error, ErrorKind, Result};
use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};

use crate::common::{
    Batch, Op, RowWrite, check_collection, check_id, group, in_order, micros, plan,
};
use crate::{Expect, Record, Transaction, WriteOp, Written};
use flextime_core::SharedClock;

/// Map a sqlx error to a core error of the right kind, without echoing any
/// connection string.
pub(crate) fn map_err(err: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match err {
        E::Configuration(_) => Error::invalid_input("invalid database URL or connection option"),
        E::PoolTimedOut => {
            Error::timeout("no database connection became free within the acquire timeout")
        }
        E::PoolClosed => Error::unavailable("the connection pool is closed"),
        E::Io(e) => Error::unavailable(format!("database connection lost: {e}")),
        E::Tls(e) => Error::unavailable(format!("database TLS failure: {e}")),
        E::Protocol(p) => Error::unavailable(format!("database protocol error: {p}")),
        E::WorkerCrashed => Error::unavailable("the database worker stopped"),
        E::RowNotFound => Error::not_found("row not found"),
        E::Database(db) => {
            let code = db
                .code()
                .map(std::borrow::Cow::into_owned)
                .unwrap_or_default();
            let message = db.message().to_owned();
            let kind = classify(&db.kind(), &code, &message);
            Error::new(kind, format!("database error {code}: {message}"))
        }
        E::Migrate(m) => Error::permanent(format!("migration failed: {m}")),
        other => Error::internal(format!("database: {other}")),
    }
}

#[allow(clippy::match_same_arms)]
fn classify(kind: &sqlx::error::ErrorKind, code: &str, message: &str) -> ErrorKind {
    use sqlx::error::ErrorKind as K;
    if matches!(kind, K::UniqueViolation) {
        return ErrorKind::Conflict;
    }
    match code {
        // PostgreSQL / SQLSTATE: serialization failure, deadlock
        "40001" | "40P01" => ErrorKind::Unavailable,
        // query cancelled (statement_timeout), lock not available
        "57014" | "55P03" => ErrorKind::Timeout,
        // admin shutdown / crash shutdown / cannot connect now, too many connections
        "57P01" | "57P02" | "57P03" | "53300" | "08S01" | "08004" => ErrorKind::Unavailable,
        // MariaDB max_statement_time / MySQL max_execution_time exceeded
        "70100" if message.contains("max_statement_time") => ErrorKind::Timeout,
        "70100" => ErrorKind::Unavailable,
        // SQLite BUSY / LOCKED (and extended codes)
        "5" | "6" | "261" | "262" | "517" | "773" => ErrorKind::Unavailable,
        c if c.starts_with("08") => ErrorKind::Unavailable,
        c if c.starts_with("22") => ErrorKind::InvalidInput,
        _ if message.contains("Lock wait timeout")
            || message.contains("maximum statement execution time") =>
        {
            ErrorKind::Timeout
        }
        _ => ErrorKind::Internal,
    }
}

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MigrationSpec {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
    /// Drops or rewrites data: refused unless explicitly allowed.
    pub destructive: bool,
}

/// Apply the pending migrations of `specs` on `conn` with sqlx's migrator
/// (which keeps `_sqlx_migrations`, checks checksums and locks).
pub(crate) async fn run_migrations<C>(
    conn: &mut C,
    specs: &[MigrationSpec],
    allow_destructive: bool,
) -> Result<()>
where
    C: Migrate + Send,
{
    conn.ensure_migrations_table()
        .await
        .map_err(|e| Error::permanent(format!("migration table: {e}")))?;
    let applied: Vec<i64> = conn
        .list_applied_migrations()
        .await
        .map_err(|e| Error::permanent(format!("listing migrations: {e}")))?
        .into_iter()
        .map(|m| m.version)
        .collect();
    if !allow_destructive
        && let Some(spec) = specs
            .iter()
            .find(|s| s.destructive && !applied.contains(&s.version))
    {
        return Err(Error::permanent(format!(
            "migration {} ({}) is destructive; set allow_destructive_migrations to apply it",
            spec.version, spec.description
        )));
    }
    let migrations: Vec<Migration> = specs
        .iter()
        .map(|s| {
            Migration::new(
                s.version,
                Cow::Borrowed(s.description),
                MigrationType::Simple,
                Cow::Borrowed(s.sql),
                false,
            )
        })
        .collect();
    let migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    migrator
        .run_direct(conn)
        .await
        .map_err(|e| Error::permanent(format!("migrations: {e}")))
}

/// The statements a SQL backend provides; [`apply_ops`], [`SqlTx`] and
/// [`write_in_tx`] are written once over them.
#[async_trait::async_trait]
pub(crate) trait RowStore: Send {
    /// Add `n` to the collection's change counter (creating it), holding
    /// its row lock until the transaction ends; returns the new value.
    async fn bump(&mut self, collection: &str, n: u64) -> Result<u64>;
    /// The current `(version, deleted)` of the given ids (from the record
    /// table, or each id's latest log entry), read with a locking read or
    /// under the counter lock.
    async fn existing(
        &mut self,
        collection: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, (u64, bool)>>;
    /// Write `changes` (one per op, in `seq` order): every one into the
    /// change log, and the last one of each id as the record's state (on
    /// a log-only layout the last entry is that state: nothing more to
    /// write).
    async fn store(&mut self, collection: &str, changes: &[RowWrite]) -> Result<()>;
    /// Fast path for writes without preconditions to distinct ids: take
    /// the counter, append the change log and (on a two-table layout)
    /// upsert the records, the server computing each new version (old + 1,
    /// or 1), in as few statements as the backend allows; returns
    /// `(version, seq)` per item, in item order. `None` when the backend
    /// has no fast path (then [`RowStore::has_fast_write`] is false: when
    /// it is true, `None` is an error).
    async fn fast_write(
        &mut self,
        _collection: &str,
        _items: &[FastRow],
        _now_us: i64,
    ) -> Result<Option<Vec<(u64, u64)>>> {
        Ok(None)
    }
    /// Whether [`RowStore::fast_write`] is implemented.
    fn has_fast_write(&self) -> bool {
        false
    }
    /// One record (tombstones included) as this connection sees it.
    async fn get_record(&mut self, collection: &str, id: &str) -> Result<Option<Record>>;
}

/// One write of the fast path: an id and its JSON text (`None`: a delete).
#[derive(Debug)]
pub(crate) struct FastRow {
    pub id: String,
    pub data: Option<String>,
}

/// One change-log entry to append (two-table layouts: SQLite, MySQL).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) struct LogRow<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub version: u64,
    pub data: Option<&'a str>,
    pub updated_at_us: i64,
    pub deleted_at_us: Option<i64>,
}

#[cfg(any(feature = "sqlite", feature = "mysql"))]
impl<'a> From<&'a RowWrite> for LogRow<'a> {
    fn from(c: &'a RowWrite) -> Self {
        Self {
            seq: c.seq,
            id: &c.id,
            version: c.version,
            data: c.data.as_deref(),
            updated_at_us: c.updated_at_us,
            deleted_at_us: c.deleted_at_us,
        }
    }
}

/// `append_log(conn, collection, rows)` for one backend: multi-row
/// `INSERT`s of [`LogRow`]s into `ft_changes`, [`ROWS_PER_STATEMENT`] per
/// statement. (A macro: sqlx's bounds for a function generic over the
/// database do not hold across `async_trait` boundaries.)
#[cfg(any(feature = "sqlite", feature = "mysql"))]
macro_rules! log_appender {
    ($db:ty, $conn:ty) => {
        async fn append_log<'a>(
            conn: &mut $conn,
            collection: &str,
            rows: impl Iterator<Item = $crate::sql::LogRow<'a>>,
        ) -> Result<()> {
            let rows: Vec<$crate::sql::LogRow<'a>> = rows.collect();
            for chunk in rows.chunks($crate::sql::ROWS_PER_STATEMENT) {
                let mut qb: QueryBuilder<'_, $db> = QueryBuilder::new(
                    "INSERT INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us) ",
                );
                qb.push_values(chunk, |mut b, row| {
                    b.push_bind(collection)
                        .push_bind(to_i64(row.seq))
                        .push_bind(row.id)
                        .push_bind(to_i64(row.version))
                        .push_bind(row.data)
                        .push_bind(row.updated_at_us)
                        .push_bind(row.deleted_at_us);
                });
                qb.build().execute(&mut *conn).await.map_err(map_err)?;
            }
            Ok(())
        }
    };
}
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) use log_appender;

/// The write algorithm, inside a transaction the caller owns. Counters are
/// taken in collection-name order (so writers cannot deadlock on them); a
/// failed precondition returns `Conflict` and the caller rolls back.
pub(crate) async fn apply_ops<S: RowStore + ?Sized>(
    store: &mut S,
    batch: Batch,
    now: DateTime<Utc>,
) -> Result<Vec<Written>> {
    let Batch { len, groups } = batch;
    let now_us = micros(now);
    let mut parts = Vec::with_capacity(len);
    for (collection, ops) in groups {
        let count = ops.len() as u64;
        let mut ids: Vec<&str> = ops.iter().map(|(_, op)| op.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let fast = store.has_fast_write()
            && ids.len() == ops.len()
            && ops.iter().all(|(_, op)| op.expect == Expect::Any);
        if fast {
            // Each op's JSON text and id, dropping its data as soon as it
            // is serialized (while it is still in cache, and not held
            // across the round trip); text the caller serialized is moved.
            let mut items = Vec::with_capacity(ops.len());
            let mut positions = Vec::with_capacity(ops.len());
            for (pos, Op { id, data, .. }) in ops {
                let data = data.map(|d| d.into_text(&collection, &id)).transpose()?;
                items.push(FastRow { id, data });
                positions.push(pos);
            }
            let Some(done) = store.fast_write(&collection, &items, now_us).await? else {
                return Err(Error::internal(
                    "the backend has a fast write path but declined a write",
                ));
            };
            if done.len() != items.len() {
                return Err(Error::internal(format!(
                    "{} of {} writes to {collection} came back",
                    done.len(),
                    items.len()
                )));
            }
            for ((pos, item), (version, seq)) in positions.into_iter().zip(items).zip(done) {
                parts.push((
                    pos,
                    Written {
                        collection: collection.clone(),
                        deleted: item.data.is_none(),
                        id: item.id,
                        version,
                        seq,
                        updated_at: now,
                    },
                ));
            }
            continue;
        }
        let top = store.bump(&collection, count).await?;
        let base = top.saturating_sub(count);
        let existing = store.existing(&collection, &ids).await?;
        let (changes, out) = plan(&collection, ops, &existing, base, now)?;
        store.store(&collection, &changes).await?;
        parts.extend(out);
    }
    in_order(len, parts)
}

/// An open transaction of any SQL backend.
pub(crate) struct SqlTx<DB: sqlx::Database> {
    pub tx: sqlx::Transaction<'static, DB>,
    pub clock: SharedClock,
}

#[async_trait::async_trait]
impl<DB> Transaction for SqlTx<DB>
where
    DB: sqlx::Database,
    DB::Connection: RowStore,
{
    async fn get(&mut self, collection: &str, id: &str) -> Result<Option<Record>> {
        check_collection(collection)?;
        check_id(id)?;
        (*self.tx).get_record(collection, id).await
    }

    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<Written>> {
        let now = self.clock.now();
        let mut sp = sqlx::Connection::begin(&mut *self.tx)
            .await
            .map_err(map_err)?;
        let written = apply_ops(&mut *sp, group(ops)?, now).await?;
        sp.commit().await.map_err(map_err)?;
        Ok(written)
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(map_err)
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.tx.rollback().await.map_err(map_err)
    }
}

/// [`apply_ops`] in a transaction of its own. With `retry`, a transaction
/// the server rolled back whole as a deadlock victim or serialization
/// failure is run again (up to three times; that costs a copy of `batch`).
pub(crate) async fn write_in_tx<DB>(
    pool: &sqlx::Pool<DB>,
    clock: &SharedClock,
    batch: Batch,
    retry: bool,
) -> Result<Vec<Written>>
where
    DB: sqlx::Database,
    DB::Connection: RowStore,
{
    let mut attempt = 0;
    let mut batch = Some(batch);
    loop {
        let now = clock.now();
        let mut tx = pool.begin().await.map_err(map_err)?;
        let this = if retry && attempt < 3 {
            batch.clone()
        } else {
            batch.take()
        }
        .ok_or_else(|| Error::internal("a write was run again after its last attempt"))?;
        match apply_ops(&mut *tx, this, now).await {
            Ok(written) => {
                tx.commit().await.map_err(map_err)?;
                return Ok(written);
            }
            Err(e) if retry && is_deadlock(&e) && attempt < 3 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Rows per multi-row statement (bind-parameter limits).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// A record or change-log row: id, version, seq, JSON text, updated and
/// deleted (µs).
pub(crate) type RecordRow = (String, i64, i64, Option<String>, i64, Option<i64>);

/// A row as a [`Record`] of `collection`.
pub(crate) fn to_record(collection: &str, row: RecordRow) -> Result<Record> {
    let (id, version, seq, data, updated, deleted) = row;
    Ok(Record {
        collection: collection.to_owned(),
        id,
        version: crate::common::to_u64(version),
        seq: crate::common::to_u64(seq),
        data: parse_data(data)?,
        updated_at: crate::common::from_micros(updated),
        deleted_at: deleted.map(crate::common::from_micros),
    })
}

/// Decode a record row's JSON text.
pub(crate) fn parse_data(text: Option<String>) -> Result<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| Error::internal(format!("stored record is not JSON: {e}")))
    })
    .transpose()
}

/// Reorder `records` to follow `ids` (dropping ids not found).
pub(crate) fn order_by_ids(ids: &[String], records: Vec<crate::Record>) -> Vec<crate::Record> {
    let mut by_id: HashMap<String, crate::Record> =
        records.into_iter().map(|r| (r.id.clone(), r)).collect();
    ids.iter().filter_map(|id| by_id.remove(id)).collect()
}

/// Whether `err` is a deadlock or serialization failure (the transaction
/// was rolled back whole and may simply be run again).
pub(crate) fn is_deadlock(err: &Error) -> bool {
    err.kind() == ErrorKind::Unavailable
        && (err.message().starts_with("database error 40001")
            || err.message().starts_with("database error 40P01"))
}

/// `impl Adapter for $adapter { ... }` for a SQL backend: writes the
/// methods that read the same on every SQL backend (`backend`,
/// `supports_transactions`, `migrate`, `ping`, `get`, `get_many`, `write`,
/// `upsert_batch_json`) next to the backend's own. Used in each backend
/// module, where `BACKEND`, `MIGRATIONS`, `RETRY_DEADLOCKS` (whether
/// [`write_in_tx`] runs a deadlock victim again), `map_err`, `observe`,
/// `run_migrations` and the `check_*` helpers are in scope and the adapter
/// has `pool`, `clock`, `allow_destructive` and `fetch_records`.
macro_rules! sql_adapter_impl {
    ($adapter:ty { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl Adapter for $adapter {
        fn backend(&self) -> &'static str {
            BACKEND
        }

        fn supports_transactions(&self) -> bool {
            true
        }

        async fn migrate(&self) -> Result<()> {
            observe(BACKEND, "migrate", async {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                run_migrations(&mut *conn, MIGRATIONS, self.allow_destructive).await
            })
            .await
        }

        async fn ping(&self) -> Result<()> {
            observe(BACKEND, "ping", async {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)
                    .map(drop)
            })
            .await
        }

        async fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
            observe(BACKEND, "get", async {
                check_collection(collection)?;
                check_id(id)?;
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                conn.get_record(collection, id).await
            })
            .await
        }

        async fn get_many(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>> {
            observe(BACKEND, "get_many", async {
                check_ids(collection, ids)?;
                self.fetch_records(collection, ids).await
            })
            .await
        }

        async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Written>> {
            observe(BACKEND, "write", async {
                let batch = $crate::common::group(ops)?;
                $crate::sql::write_in_tx(&self.pool, &self.clock, batch, RETRY_DEADLOCKS).await
            })
            .await
        }

        /// Straight to the write algorithm with the caller's JSON text (the
        /// fast path when the ids are distinct): no `Value` is built.
        async fn upsert_batch_json(
            &self,
            collection: &str,
            items: Vec<(String, Box<serde_json::value::RawValue>)>,
        ) -> Result<Vec<Written>> {
            observe(BACKEND, "write", async {
                let batch = $crate::common::group_json(collection, items)?;
                $crate::sql::write_in_tx(&self.pool, &self.clock, batch, RETRY_DEADLOCKS).await
            })
            .await
        }

            $($own)*
        }
    };
}
pub(crate) use sql_adapter_impl;
