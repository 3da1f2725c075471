//! What the SQL backends share: error mapping, embedded migrations, and the
//! write algorithm (take the collection counters, read the current
//! versions, check preconditions, write the final rows).

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use flextime_core::{Error, ErrorKind, Result};
use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};

use crate::common::{RowWrite, group, in_order, plan};
use crate::{Expect, WriteOp, Written};

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

/// The three statements a SQL backend provides for [`apply_ops`].
#[async_trait::async_trait]
pub(crate) trait RowStore: Send {
    /// Add `n` to the collection's change counter (creating it), holding
    /// its row lock until the transaction ends; returns the new value.
    async fn bump(&mut self, collection: &str, n: u64) -> Result<u64>;
    /// The current `(version, deleted)` of the given ids, read with a
    /// locking read or under the counter lock.
    async fn existing(
        &mut self,
        collection: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, (u64, bool)>>;
    /// Write the final rows (insert or replace).
    async fn store(&mut self, collection: &str, rows: &[RowWrite]) -> Result<()>;
    /// Fast path for writes without preconditions to distinct ids: insert or
    /// replace `rows` (whose `version` is ignored) in one statement, the
    /// server computing each new version (old + 1, or 1), and return
    /// id -> version. `None` when the backend has no such statement.
    async fn store_unchecked(
        &mut self,
        _collection: &str,
        _rows: &[RowWrite],
    ) -> Result<Option<HashMap<String, u64>>> {
        Ok(None)
    }
    /// Whether [`RowStore::store_unchecked`] is implemented.
    fn has_unchecked(&self) -> bool {
        false
    }
}

/// The write algorithm, inside a transaction the caller owns. Counters are
/// taken in collection-name order; preconditions are all checked before
/// any row is written, so a `Conflict` writes nothing.
pub(crate) async fn apply_ops<S: RowStore + ?Sized>(
    store: &mut S,
    ops: Vec<WriteOp>,
    now: DateTime<Utc>,
) -> Result<Vec<Written>> {
    let (n, grouped) = group(ops)?;
    let mut planned = Vec::with_capacity(grouped.len());
    for (collection, ops) in grouped {
        let count = ops.len() as u64;
        let top = store.bump(&collection, count).await?;
        let base = top.saturating_sub(count);
        let mut ids: Vec<&str> = ops.iter().map(|(_, op)| op.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        let unchecked = store.has_unchecked()
            && ids.len() == ops.len()
            && ops.iter().all(|(_, op)| op.precondition() == Expect::Any);
        let existing = if unchecked {
            HashMap::new()
        } else {
            store.existing(&collection, &ids).await?
        };
        let (rows, out) = plan(&collection, ops, &existing, base, now)?;
        planned.push((collection, rows, out, unchecked));
    }
    let mut parts = Vec::with_capacity(n);
    for (collection, rows, mut out, unchecked) in planned {
        if unchecked && let Some(versions) = store.store_unchecked(&collection, &rows).await? {
            for (_, w) in &mut out {
                w.version = versions.get(&w.id).copied().ok_or_else(|| {
                    Error::internal(format!("no version came back for {}/{}", collection, w.id))
                })?;
            }
        } else {
            store.store(&collection, &rows).await?;
        }
        parts.extend(out);
    }
    in_order(n, parts)
}

/// Rows per multi-row statement (bind-parameter limits).
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

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
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) fn is_deadlock(err: &Error) -> bool {
    err.kind() == ErrorKind::Unavailable
        && (err.message().starts_with("database error 40001")
            || err.message().starts_with("database error 40P01"))
}
