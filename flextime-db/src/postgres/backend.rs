//! The PostgreSQL [`Adapter`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use flextime_core::{Error, HealthCheck, HealthReport, Result, SharedClock};
use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions};

use super::config::PostgresConfig;
use crate::common::{
    RowWrite, check_collection, check_id, check_ids, check_key, check_value, from_micros, micros,
    observe, page_limit, to_i64, to_u64, ttl_deadline,
};
use crate::sql::{
    FastRow, MigrationSpec, RecordRow, RowStore, SqlTx, map_err, order_by_ids, run_migrations,
    to_record,
};
use crate::{Adapter, DbOptions, KvEntry, Record, Transaction, WriteOp, Written};

const BACKEND: &str = "postgres";

/// Writes are not run again on a deadlock: each takes its collections' counters
/// first, in name order, and waits there.
const RETRY_DEADLOCKS: bool = false;

/// The channel every write notifies, with the collection name as payload.
pub const CHANNEL: &str = "flextime_changes";

const MIGRATIONS: &[MigrationSpec] = &[
    MigrationSpec {
        version: 1,
        description: "records_kv",
        sql: include_str!("migrations/0001_records_kv.sql"),
        destructive: false,
    },
    MigrationSpec {
        version: 2,
        description: "change_log",
        sql: include_str!("migrations/0002_change_log.sql"),
        destructive: false,
    },
    MigrationSpec {
        version: 3,
        description: "log_only",
        sql: include_str!("migrations/0003_log_only.sql"),
        // Drops ft_records and log entries no record can reach any more;
        // the migration's comment says why that loses nothing.
        destructive: false,
    },
];

/// The columns of a change-log entry, as a [`RecordRow`].
const ENTRY_COLUMNS: &str = "id, version, seq, data::text, updated_at_us, deleted_at_us";

/// One page of the change feed (run by [`PostgresAdapter::feed_query`]).
const FEED_PAGE: &str = "SELECT id, version, seq, data::text, updated_at_us, deleted_at_us \
     FROM ft_changes WHERE collection = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// A record store in PostgreSQL. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresAdapter {
    pool: PgPool,
    clock: SharedClock,
    allow_destructive: bool,
    config: PostgresConfig,
}

impl fmt::Debug for PostgresAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresAdapter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PostgresAdapter {
    /// Open (creating if missing) the database at `url` and apply migrations
    /// unless [`DbOptions::migrate_on_connect`] is false.
    pub async fn connect(url: &str, options: DbOptions) -> Result<Self> {
        let config = PostgresConfig::from_url(url, &options.pool, options.schema.as_deref())?;
        let pool = PgPoolOptions::new()
            .acquire_timeout(options.pool.acquire_timeout)
            .test_before_acquire(true)
            .max_connections(options.pool.max_connections.max(1))
            .min_connections(options.pool.min_connections)
            .connect_with(config.connect.clone())
            .await
            .map_err(map_err)?;
        if let Some(schema) = &config.schema {
            // validated as [a-z_][a-z0-9_]*: safe to quote into the statement
            let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&pool)
                .await;
            if let Err(e) = created {
                let exists: Option<(String,)> =
                    sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname = $1")
                        .bind(schema)
                        .fetch_optional(&pool)
                        .await
                        .map_err(map_err)?;
                if exists.is_none() {
                    return Err(map_err(e));
                }
            }
        }
        let adapter = Self {
            pool,
            clock: options.clock,
            allow_destructive: options.allow_destructive_migrations,
            config,
        };
        if options.migrate_on_connect {
            adapter.migrate().await?;
        }
        Ok(adapter)
    }

    /// A listener woken after every committed write, with the collection's
    /// name (PostgreSQL `LISTEN flextime_changes`).
    pub async fn listen(&self) -> Result<ChangeListener> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(map_err)?;
        listener.listen(CHANNEL).await.map_err(map_err)?;
        Ok(ChangeListener {
            listener,
            only: None,
        })
    }

    /// A listener woken only by committed writes to `collection`; as a
    /// [`Wakeup`](crate::stores::Wakeup) it wakes an outbox relay
    /// ([`OutboxStore::run_with_wakeup`](crate::stores::OutboxStore::run_with_wakeup))
    /// or a feed reader as soon as a write commits. Listening starts before
    /// this returns, so a write committed after it is never missed.
    pub async fn listen_to(&self, collection: &str) -> Result<ChangeListener> {
        check_collection(collection)?;
        let mut listener = self.listen().await?;
        listener.only = Some(collection.to_owned());
        Ok(listener)
    }

    /// The underlying pool, for queries of your own.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The plan PostgreSQL runs for one page of [`Adapter::changes`]
    /// (`EXPLAIN` of the same query with the same planner settings), for an
    /// operator looking into a slow feed: it should be an index scan of
    /// `ft_changes_pkey` in `seq` order, stopping after `limit` entries.
    pub async fn explain_changes(
        &self,
        collection: &str,
        after: u64,
        limit: usize,
    ) -> Result<String> {
        let lines: Vec<(String,)> = self
            .feed_query(&format!("EXPLAIN {FEED_PAGE}"), collection, after, limit)
            .await?;
        Ok(lines
            .into_iter()
            .map(|(line,)| line)
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// `sql` (a feed page, or its `EXPLAIN`) in [`PostgresAdapter::feed_tx`].
    async fn feed_query<R>(
        &self,
        sql: &str,
        collection: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let mut tx = self.feed_tx().await?;
        let rows: Vec<R> = sqlx::query_as(sql)
            .bind(collection)
            .bind(to_i64(after))
            .bind(to_i64(page_limit(limit) as u64))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(rows)
    }

    /// A transaction planned for the feed: on a collection whose
    /// statistics are missing or stale (right after a bulk load, before
    /// autovacuum's next ANALYZE, up to a minute later) the planner guesses a
    /// few hundred matching entries and picks a bitmap scan of every entry
    /// after the cursor plus a sort, turning each page into a read of the
    /// rest of the log (120 ms instead of 3 ms per page of 1,000 with 50,000
    /// entries after the cursor). Without bitmap and sequential scans the
    /// primary key is read in order and the scan stops at the limit.
    async fn feed_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // `SET LOCAL` of both, in one prepared statement.
        sqlx::query(
            "SELECT set_config('enable_bitmapscan', 'off', true), \
                    set_config('enable_seqscan', 'off', true)",
        )
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        Ok(tx)
    }

    /// Delete expired key-value entries; returns how many.
    pub async fn purge_expired(&self) -> Result<u64> {
        let now = micros(self.clock.now());
        let done = sqlx::query(
            "DELETE FROM ft_kv WHERE expires_at_us IS NOT NULL AND expires_at_us <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn fetch_records(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>> {
        // Each id's latest entry, one index probe per id.
        let rows: Vec<RecordRow> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS} FROM UNNEST($2::text[]) AS i(i_id) CROSS JOIN LATERAL ( \
               SELECT * FROM ft_changes c WHERE c.collection = $1 AND c.id = i.i_id \
               ORDER BY c.version DESC LIMIT 1) c"
        ))
        .bind(collection)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let records = rows
            .into_iter()
            .map(|r| to_record(collection, r))
            .collect::<Result<Vec<_>>>()?;
        Ok(order_by_ids(ids, records))
    }
}

/// Wakes up after committed writes; see [`PostgresAdapter::listen`].
pub struct ChangeListener {
    listener: PgListener,
    only: Option<String>,
}

impl fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeListener").finish_non_exhaustive()
    }
}

impl ChangeListener {
    /// Wait for the next notification; returns the written collection.
    /// (With [`PostgresAdapter::listen_to`], only that collection's.) If the
    /// listening connection is lost it reconnects; notifications sent in
    /// between are lost, so keep a polling fallback.
    pub async fn recv(&mut self) -> Result<String> {
        loop {
            let n = self.listener.recv().await.map_err(map_err)?;
            if self.only.as_deref().is_none_or(|c| c == n.payload()) {
                return Ok(n.payload().to_owned());
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::stores::Wakeup for ChangeListener {
    async fn wait(&mut self) -> Result<()> {
        self.recv().await.map(drop)
    }
}

#[async_trait::async_trait]
impl RowStore for PgConnection {
    async fn bump(&mut self, collection: &str, n: u64) -> Result<u64> {
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO ft_collections (name, seq) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET seq = ft_collections.seq + EXCLUDED.seq RETURNING seq",
        )
        .bind(collection)
        .bind(to_i64(n))
        .fetch_one(&mut *self)
        .await
        .map_err(map_err)?;
        Ok(to_u64(seq))
    }

    async fn existing(
        &mut self,
        collection: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, (u64, bool)>> {
        // The counter row lock taken by bump() serialises writers of this
        // collection, and READ COMMITTED gives this statement a fresh
        // snapshot. Each id's latest entry is its current state.
        let rows: Vec<(String, i64, bool)> = sqlx::query_as(
            "SELECT c.id, c.version, c.deleted_at_us IS NOT NULL \
             FROM UNNEST($2::text[]) AS i(i_id) CROSS JOIN LATERAL ( \
               SELECT id, version, deleted_at_us FROM ft_changes c \
               WHERE c.collection = $1 AND c.id = i.i_id ORDER BY c.version DESC LIMIT 1) c",
        )
        .bind(collection)
        .bind(ids)
        .fetch_all(&mut *self)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, v, d)| (id, (to_u64(v), d)))
            .collect())
    }

    async fn store(&mut self, collection: &str, changes: &[RowWrite]) -> Result<()> {
        let ids: Vec<&str> = changes.iter().map(|r| r.id.as_str()).collect();
        let versions: Vec<i64> = changes.iter().map(|r| to_i64(r.version)).collect();
        let seqs: Vec<i64> = changes.iter().map(|r| to_i64(r.seq)).collect();
        let datas: Vec<Option<&str>> = changes.iter().map(|r| r.data.as_deref()).collect();
        let updated: Vec<i64> = changes.iter().map(|r| r.updated_at_us).collect();
        let deleted: Vec<Option<i64>> = changes.iter().map(|r| r.deleted_at_us).collect();
        // One statement: every change into the log (the last one of an id
        // is its new state), and a notification delivered on commit.
        sqlx::query(
            "WITH l AS ( \
               INSERT INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us) \
               SELECT $1, u.seq, u.id, u.version, u.data::jsonb, u.updated, u.deleted \
               FROM UNNEST($2::text[], $3::int8[], $4::int8[], $5::text[], $6::int8[], $7::int8[]) \
                 AS u(id, version, seq, data, updated, deleted)) \
             SELECT pg_notify($8, $1)",
        )
        .bind(collection)
        .bind(&ids)
        .bind(&versions)
        .bind(&seqs)
        .bind(&datas)
        .bind(&updated)
        .bind(&deleted)
        .bind(CHANNEL)
        .execute(&mut *self)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    fn has_fast_write(&self) -> bool {
        true
    }

    async fn fast_write(
        &mut self,
        collection: &str,
        items: &[FastRow],
        now_us: i64,
    ) -> Result<Option<Vec<(u64, u64)>>> {
        let ids: Vec<&str> = items.iter().map(|r| r.id.as_str()).collect();
        let datas: Vec<Option<&str>> = items.iter().map(|r| r.data.as_deref()).collect();
        // First the counter: its row lock is held until commit, so seqs
        // become visible in order and no other writer of the collection
        // adds an entry until then. Under READ COMMITTED the next
        // statement takes its snapshot after the lock was granted, so the
        // versions it reads are current (a statement that waited for the
        // lock itself would still read its older snapshot).
        let count = items.len() as u64;
        let base = self.bump(collection, count).await?.saturating_sub(count);
        // Then one statement: append each item at seq base + its position,
        // with its id's latest version + 1 (one backward probe of the
        // unique index; the ids are distinct), and notify on commit.
        // The versions come back as one array in seq order: one row instead
        // of one per item.
        let (versions,): (Vec<i64>,) = sqlx::query_as(
            "WITH written AS (\
             INSERT INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us) \
             SELECT $1, $4 + i.n, i.id, \
               COALESCE((SELECT max(c.version) FROM ft_changes c \
                 WHERE c.collection = $1 AND c.id = i.id), 0) + 1, \
               i.data::jsonb, $5, CASE WHEN i.data IS NULL THEN $5::int8 END \
             FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS i(id, data, n), \
               (SELECT pg_notify($6, $1)) AS notified \
             RETURNING version, seq) \
             SELECT COALESCE(array_agg(version ORDER BY seq), '{}') FROM written",
        )
        .bind(collection)
        .bind(&ids)
        .bind(&datas)
        .bind(to_i64(base))
        .bind(now_us)
        .bind(CHANNEL)
        .fetch_one(&mut *self)
        .await
        .map_err(map_err)?;
        // Every item was appended at base + its position.
        if versions.len() != items.len() {
            return Err(Error::internal(format!(
                "{} of {} writes to {collection} came back",
                versions.len(),
                items.len()
            )));
        }
        let out: Vec<(u64, u64)> = versions.into_iter().map(to_u64).zip(base + 1..).collect();
        Ok(Some(out))
    }

    async fn get_record(&mut self, collection: &str, id: &str) -> Result<Option<Record>> {
        let row: Option<RecordRow> = sqlx::query_as(&format!(
            "SELECT {ENTRY_COLUMNS} FROM ft_changes WHERE collection = $1 AND id = $2 \
             ORDER BY version DESC LIMIT 1"
        ))
        .bind(collection)
        .bind(id)
        .fetch_optional(&mut *self)
        .await
        .map_err(map_err)?;
        row.map(|r| to_record(collection, r)).transpose()
    }
}

crate::sql::sql_adapter_impl!(PostgresAdapter {

    async fn changes(&self, collection: &str, after: u64, limit: usize) -> Result<Vec<Record>> {
        observe(BACKEND, "changes", async {
            check_collection(collection)?;
            let rows: Vec<RecordRow> = self.feed_query(FEED_PAGE, collection, after, limit).await?;
            rows.into_iter().map(|r| to_record(collection, r)).collect()
        })
        .await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let tx = self.pool.begin().await.map_err(map_err)?;
        Ok(Box::new(SqlTx {
            tx,
            clock: self.clock.clone(),
        }))
    }

    async fn purge_tombstones(&self, collection: &str, up_to: u64) -> Result<u64> {
        observe(BACKEND, "purge", async {
            check_collection(collection)?;
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            // The counter lock first, as writers take it: no write to the
            // collection interleaves, and the next statement's snapshot
            // (READ COMMITTED) sees every committed write, so a record
            // re-created after its delete is never taken for a tombstone.
            sqlx::query("SELECT 1 FROM ft_collections WHERE name = $1 FOR UPDATE")
                .bind(collection)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            // A purged record goes whole: every entry of an id whose latest
            // entry is a tombstone at seq <= up_to (all of them are then at
            // seq <= up_to), so a new record of that id starts at version 1.
            let (purged,): (i64,) = sqlx::query_as(
                "WITH purged AS ( \
                   SELECT l.id FROM ( \
                     SELECT DISTINCT id FROM ft_changes \
                     WHERE collection = $1 AND seq <= $2 AND deleted_at_us IS NOT NULL) t \
                   CROSS JOIN LATERAL ( \
                     SELECT c.id, c.seq, c.deleted_at_us FROM ft_changes c \
                     WHERE c.collection = $1 AND c.id = t.id ORDER BY c.version DESC LIMIT 1) l \
                   WHERE l.seq <= $2 AND l.deleted_at_us IS NOT NULL), \
                 gone AS ( \
                   DELETE FROM ft_changes c USING purged p WHERE c.collection = $1 AND c.id = p.id) \
                 SELECT count(*) FROM purged",
            )
            .bind(collection)
            .bind(to_i64(up_to))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(to_u64(purged))
        })
        .await
    }

    async fn prune_changes(&self, collection: &str, up_to: u64) -> Result<u64> {
        observe(BACKEND, "prune", async {
            check_collection(collection)?;
            // An entry with a later version of its id is not its latest.
            let done = sqlx::query(
                "DELETE FROM ft_changes c WHERE c.collection = $1 AND c.seq <= $2 AND EXISTS ( \
                   SELECT 1 FROM ft_changes n WHERE n.collection = c.collection AND n.id = c.id \
                   AND n.version > c.version)",
            )
            .bind(collection)
            .bind(to_i64(up_to))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>> {
        observe(BACKEND, "kv_get", async {
            check_key(key)?;
            let row: Option<(Vec<u8>, i64, Option<i64>)> = sqlx::query_as(
                "SELECT value, version, expires_at_us FROM ft_kv \
                 WHERE k = $1 AND (expires_at_us IS NULL OR expires_at_us > $2)",
            )
            .bind(key)
            .bind(micros(self.clock.now()))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            Ok(row.map(|(value, version, exp)| KvEntry {
                value,
                version: to_u64(version),
                expires_at: exp.map(from_micros),
            }))
        })
        .await
    }

    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64> {
        observe(BACKEND, "kv_set", async {
            check_key(key)?;
            check_value(value.len())?;
            let exp = ttl_deadline(self.clock.now(), ttl);
            let (version,): (i64,) = sqlx::query_as(
                "INSERT INTO ft_kv (k, value, version, expires_at_us) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (k) DO UPDATE SET value = excluded.value, version = ft_kv.version + 1, \
                 expires_at_us = excluded.expires_at_us RETURNING version",
            )
            .bind(key)
            .bind(value)
            .bind(exp)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
            Ok(to_u64(version))
        })
        .await
    }

    async fn kv_compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Option<u64>> {
        observe(BACKEND, "kv_cas", async {
            check_key(key)?;
            check_value(value.len())?;
            let now = self.clock.now();
            let exp = ttl_deadline(now, ttl);
            let row: Option<(i64,)> = match expected {
                None => sqlx::query_as(
                    "INSERT INTO ft_kv (k, value, version, expires_at_us) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (k) DO UPDATE SET value = excluded.value, version = ft_kv.version + 1, \
                     expires_at_us = excluded.expires_at_us \
                     WHERE ft_kv.expires_at_us IS NOT NULL AND ft_kv.expires_at_us <= $4 RETURNING version",
                )
                .bind(key)
                .bind(value)
                .bind(exp)
                .bind(micros(now)),
                Some(v) => sqlx::query_as(
                    "UPDATE ft_kv SET value = $1, version = version + 1, expires_at_us = $2 \
                     WHERE k = $3 AND version = $4 AND (expires_at_us IS NULL OR expires_at_us > $5) \
                     RETURNING version",
                )
                .bind(value)
                .bind(exp)
                .bind(key)
                .bind(to_i64(v))
                .bind(micros(now)),
            }
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            Ok(row.map(|(v,)| to_u64(v)))
        })
        .await
    }

    async fn kv_delete(&self, key: &str) -> Result<bool> {
        observe(BACKEND, "kv_delete", async {
            check_key(key)?;
            let row: Option<(Option<i64>,)> =
                sqlx::query_as("DELETE FROM ft_kv WHERE k = $1 RETURNING expires_at_us")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
            let now = micros(self.clock.now());
            Ok(row.is_some_and(|(exp,)| exp.is_none_or(|e| e > now)))
        })
        .await
    }
});

#[async_trait::async_trait]
impl HealthCheck for PostgresAdapter {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn check(&self) -> HealthReport {
        HealthReport::from_result(&self.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Expect;
    use serde_json::json;

    /// A database at migration 2 (current versions in `ft_records`, data in
    /// the log; one record purged, one purged and written again) keeps
    /// every record and its feed when migration 3 drops `ft_records`, and
    /// loses only the entries no record reaches any more.
    #[tokio::test]
    async fn migration_3_keeps_records_in_the_log_only() {
        let url = flextime_testkit::require_peer!(Postgres);
        let schema = flextime_testkit::unique_name("ftdb_m3");
        let options = DbOptions {
            migrate_on_connect: false,
            schema: Some(schema.clone()),
            ..DbOptions::default()
        };
        let db = PostgresAdapter::connect(&url, options).await.unwrap();
        {
            let mut conn = db.pool.acquire().await.unwrap();
            run_migrations(&mut *conn, &MIGRATIONS[..2], false)
                .await
                .unwrap();
            sqlx::query("INSERT INTO ft_collections (name, seq) VALUES ('c', 9)")
                .execute(&mut *conn)
                .await
                .unwrap();
            // a: live at version 3 (seq 4); b: deleted, its first entry
            // pruned; p: purged (no record row); r: deleted and purged at
            // versions 1-2 (seqs 7-8), then written again (version 1, seq 9).
            sqlx::query(
                "INSERT INTO ft_records (collection, id, version, seq, updated_at_us, deleted_at_us) \
                 VALUES ('c', 'a', 3, 4, 40, NULL), ('c', 'b', 2, 5, 50, 50), ('c', 'r', 1, 9, 90, NULL)",
            )
            .execute(&mut *conn)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us) \
                 VALUES ('c', 1, 'a', 1, '{\"v\":1}', 10, NULL), ('c', 2, 'a', 2, '{\"v\":2}', 20, NULL), \
                 ('c', 3, 'p', 1, '{\"p\":1}', 30, NULL), ('c', 4, 'a', 3, '{\"v\":3}', 40, NULL), \
                 ('c', 5, 'b', 2, NULL, 50, 50), ('c', 6, 'p', 2, NULL, 60, 60), \
                 ('c', 7, 'r', 1, '{\"r\":\"old\"}', 70, NULL), ('c', 8, 'r', 2, NULL, 80, 80), \
                 ('c', 9, 'r', 1, '{\"r\":\"new\"}', 90, NULL)",
            )
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        db.migrate().await.unwrap();
        let (records,): (Option<String>,) =
            sqlx::query_as("SELECT to_regclass('ft_records')::text")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(records, None);
        let a = db.get("c", "a").await.unwrap().unwrap();
        assert_eq!((a.version, a.seq, a.data), (3, 4, Some(json!({"v": 3}))));
        assert_eq!(a.updated_at, from_micros(40));
        let b = db.get("c", "b").await.unwrap().unwrap();
        assert!(b.is_deleted() && b.data.is_none());
        assert_eq!((b.version, b.seq), (2, 5));
        assert_eq!(db.get("c", "p").await.unwrap(), None);
        let r = db.get("c", "r").await.unwrap().unwrap();
        assert_eq!(
            (r.version, r.seq, r.data),
            (1, 9, Some(json!({"r": "new"})))
        );
        let many = db
            .get_many("c", &["r".into(), "p".into(), "a".into()])
            .await
            .unwrap();
        assert_eq!(
            many.iter()
                .map(|r| (r.id.as_str(), r.version))
                .collect::<Vec<_>>(),
            [("r", 1), ("a", 3)]
        );
        let feed = db.changes("c", 0, 20).await.unwrap();
        assert_eq!(
            feed.iter()
                .map(|r| (r.id.as_str(), r.version, r.seq))
                .collect::<Vec<_>>(),
            [
                ("a", 1, 1),
                ("a", 2, 2),
                ("a", 3, 4),
                ("b", 2, 5),
                ("r", 1, 9)
            ]
        );
        // writes go on from the migrated state: with a precondition, new
        // ids, and the batch fast path
        let w = db
            .upsert("c", "r", json!({"r": 2}), Expect::Version(1))
            .await
            .unwrap();
        assert_eq!((w.version, w.seq), (2, 10));
        let w = db
            .upsert("c", "p", json!({"p": "again"}), Expect::Absent)
            .await
            .unwrap();
        assert_eq!((w.version, w.seq), (1, 11));
        let w = db
            .upsert_batch("c", vec![("a".into(), json!(4)), ("b".into(), json!(3))])
            .await
            .unwrap();
        assert_eq!(
            w.iter().map(|w| (w.version, w.seq)).collect::<Vec<_>>(),
            [(4, 12), (3, 13)]
        );
        assert_eq!(
            db.changes("c", 9, 20)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.id.as_str(), r.version, r.data.clone()))
                .collect::<Vec<_>>(),
            [
                ("r", 2, Some(json!({"r": 2}))),
                ("p", 1, Some(json!({"p": "again"}))),
                ("a", 4, Some(json!(4))),
                ("b", 3, Some(json!(3)))
            ]
        );
        let mut admin = db.pool.acquire().await.unwrap();
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&mut *admin)
            .await
            .unwrap();
    }
}
