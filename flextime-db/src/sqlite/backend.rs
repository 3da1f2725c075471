//! The SQLite [`Adapter`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use flextime_core::{Error, HealthCheck, HealthReport, Result, SharedClock};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqlitePoolOptions};
use sqlx::{QueryBuilder, Sqlite};

use super::config::SqliteConfig;
use crate::common::{
    RowWrite, check_collection, check_id, check_ids, check_key, check_value, from_micros, latest,
    micros, observe, page_limit, to_i64, to_u64, ttl_deadline,
};
use crate::sql::{
    FastRow, LogRow, MigrationSpec, ROWS_PER_STATEMENT, RecordRow, RowStore, SqlTx, map_err,
    order_by_ids, run_migrations, to_record,
};
use crate::{Adapter, DbOptions, KvEntry, Record, Transaction, WriteOp, Written};

const BACKEND: &str = "sqlite";

/// Writes are not run again on a deadlock (SQLite has one writer at a time).
const RETRY_DEADLOCKS: bool = false;

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
];

/// A record's current state: its row joined to its current change-log entry.
const RECORD_SELECT: &str = "SELECT r.id, r.version, r.seq, c.data, r.updated_at_us, r.deleted_at_us \
     FROM ft_records r LEFT JOIN ft_changes c ON c.collection = r.collection AND c.seq = r.seq";

/// A record store in SQLite. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SqliteAdapter {
    pool: SqlitePool,
    clock: SharedClock,
    allow_destructive: bool,
    config: SqliteConfig,
}

impl fmt::Debug for SqliteAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteAdapter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SqliteAdapter {
    /// Open (creating if missing) the database at `url` and apply migrations
    /// unless [`DbOptions::migrate_on_connect`] is false.
    pub async fn connect(url: &str, options: DbOptions) -> Result<Self> {
        let config = SqliteConfig::from_url(url, &options.pool)?;
        let mut pool = SqlitePoolOptions::new()
            .acquire_timeout(options.pool.acquire_timeout)
            .test_before_acquire(true);
        pool = if config.memory {
            // One private in-memory database lives as long as its connection.
            pool.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool.max_connections(options.pool.max_connections.max(1))
                .min_connections(options.pool.min_connections)
        };
        let pool = pool
            .connect_with(config.connect.clone())
            .await
            .map_err(map_err)?;
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

    /// The underlying pool, for queries of your own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Delete expired key-value entries; returns how many.
    pub async fn purge_expired(&self) -> Result<u64> {
        let now = micros(self.clock.now());
        let done =
            sqlx::query("DELETE FROM ft_kv WHERE expires_at_us IS NOT NULL AND expires_at_us <= ?")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn fetch_records(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<'_, Sqlite> =
                QueryBuilder::new(format!("{RECORD_SELECT} WHERE r.collection = "));
            qb.push_bind(collection).push(" AND r.id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id);
            }
            qb.push(")");
            let rows: Vec<RecordRow> = qb
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?;
            for row in rows {
                out.push(to_record(collection, row)?);
            }
        }
        Ok(order_by_ids(ids, out))
    }
}

#[async_trait::async_trait]
impl RowStore for SqliteConnection {
    async fn bump(&mut self, collection: &str, n: u64) -> Result<u64> {
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO ft_collections (name, seq) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET seq = seq + excluded.seq RETURNING seq",
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
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "SELECT id, version, deleted_at_us IS NOT NULL FROM ft_records WHERE collection = ",
            );
            qb.push_bind(collection).push(" AND id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            let rows: Vec<(String, i64, bool)> = qb
                .build_query_as()
                .fetch_all(&mut *self)
                .await
                .map_err(map_err)?;
            out.extend(rows.into_iter().map(|(id, v, d)| (id, (to_u64(v), d))));
        }
        Ok(out)
    }

    async fn store(&mut self, collection: &str, changes: &[RowWrite]) -> Result<()> {
        for chunk in latest(changes).chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "INSERT INTO ft_records (collection, id, version, seq, updated_at_us, deleted_at_us) ",
            );
            qb.push_values(chunk, |mut b, row| {
                b.push_bind(collection)
                    .push_bind(&row.id)
                    .push_bind(to_i64(row.version))
                    .push_bind(to_i64(row.seq))
                    .push_bind(row.updated_at_us)
                    .push_bind(row.deleted_at_us);
            });
            qb.push(
                " ON CONFLICT (collection, id) DO UPDATE SET version = excluded.version, \
                 seq = excluded.seq, updated_at_us = excluded.updated_at_us, \
                 deleted_at_us = excluded.deleted_at_us",
            );
            qb.build().execute(&mut *self).await.map_err(map_err)?;
        }
        append_log(self, collection, changes.iter().map(LogRow::from)).await
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
        let count = items.len() as u64;
        // SQLite has one writer at a time: nothing changes a version
        // between these statements of one transaction.
        let base = self.bump(collection, count).await?.saturating_sub(count);
        let now = now_us;
        // The log first, each entry's version looked up in SQL (3 binds per
        // item)...
        let mut offset = base;
        for chunk in items.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new("WITH v(n, id, data) AS (");
            let mut n = offset;
            qb.push_values(chunk, |mut b, row| {
                n += 1;
                b.push_bind(to_i64(n))
                    .push_bind(&row.id)
                    .push_bind(row.data.as_deref());
            });
            qb.push(
                ") INSERT INTO ft_changes (collection, seq, id, version, data, updated_at_us, deleted_at_us) \
                 SELECT ",
            )
            .push_bind(collection)
            .push(
                ", v.n, v.id, COALESCE((SELECT r.version FROM ft_records r \
                 WHERE r.collection = ",
            )
            .push_bind(collection)
            .push(" AND r.id = v.id), 0) + 1, v.data, ")
            .push_bind(now)
            .push(", CASE WHEN v.data IS NULL THEN ")
            .push_bind(now)
            .push(" END FROM v");
            qb.build().execute(&mut *self).await.map_err(map_err)?;
            offset = n;
        }
        // ...then the records from the log, in one statement...
        let (from, to) = (to_i64(base), to_i64(base + count));
        sqlx::query(
            "INSERT INTO ft_records (collection, id, version, seq, updated_at_us, deleted_at_us) \
             SELECT collection, id, version, seq, updated_at_us, deleted_at_us FROM ft_changes \
             WHERE collection = ?1 AND seq > ?2 AND seq <= ?3 \
             ON CONFLICT (collection, id) DO UPDATE SET version = excluded.version, \
               seq = excluded.seq, updated_at_us = excluded.updated_at_us, \
               deleted_at_us = excluded.deleted_at_us",
        )
        .bind(collection)
        .bind(from)
        .bind(to)
        .execute(&mut *self)
        .await
        .map_err(map_err)?;
        // ...and the versions written, in seq order, as one JSON array: one
        // row back instead of one per item (sqlx hands every row from
        // SQLite's worker thread over a channel on its own).
        let (versions,): (String,) = sqlx::query_as(
            "SELECT json_group_array(version ORDER BY seq) FROM ft_changes \
             WHERE collection = ?1 AND seq > ?2 AND seq <= ?3",
        )
        .bind(collection)
        .bind(from)
        .bind(to)
        .fetch_one(&mut *self)
        .await
        .map_err(map_err)?;
        let versions: Vec<u64> = serde_json::from_str(&versions)
            .map_err(|e| Error::internal(format!("the versions written to {collection}: {e}")))?;
        if versions.len() != items.len() {
            return Err(Error::internal(format!(
                "{} of {} writes to {collection} came back",
                versions.len(),
                items.len()
            )));
        }
        let out = versions
            .into_iter()
            .zip(base + 1..)
            .collect::<Vec<(u64, u64)>>();
        Ok(Some(out))
    }

    async fn get_record(&mut self, collection: &str, id: &str) -> Result<Option<Record>> {
        let row: Option<RecordRow> = sqlx::query_as(&format!(
            "{RECORD_SELECT} WHERE r.collection = ? AND r.id = ?"
        ))
        .bind(collection)
        .bind(id)
        .fetch_optional(&mut *self)
        .await
        .map_err(map_err)?;
        row.map(|r| to_record(collection, r)).transpose()
    }
}

crate::sql::log_appender!(Sqlite, SqliteConnection);

crate::sql::sql_adapter_impl!(SqliteAdapter {

    async fn changes(&self, collection: &str, after: u64, limit: usize) -> Result<Vec<Record>> {
        observe(BACKEND, "changes", async {
            check_collection(collection)?;
            let rows: Vec<RecordRow> = sqlx::query_as(
                "SELECT id, version, seq, data, updated_at_us, deleted_at_us FROM ft_changes \
                 WHERE collection = ? AND seq > ? ORDER BY seq LIMIT ?",
            )
            .bind(collection)
            .bind(to_i64(after))
            .bind(to_i64(page_limit(limit) as u64))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
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
            let done = sqlx::query("DELETE FROM ft_records WHERE collection = ? AND seq <= ? AND deleted_at_us IS NOT NULL")
                .bind(collection)
                .bind(to_i64(up_to))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn prune_changes(&self, collection: &str, up_to: u64) -> Result<u64> {
        observe(BACKEND, "prune", async {
            check_collection(collection)?;
            let done = sqlx::query(
                "DELETE FROM ft_changes WHERE collection = ?1 AND seq <= ?2 AND NOT EXISTS ( \
                   SELECT 1 FROM ft_records r WHERE r.collection = ?1 AND r.id = ft_changes.id \
                   AND r.seq = ft_changes.seq)",
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
                 WHERE k = ? AND (expires_at_us IS NULL OR expires_at_us > ?)",
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
                "INSERT INTO ft_kv (k, value, version, expires_at_us) VALUES (?, ?, 1, ?) \
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
                    "INSERT INTO ft_kv (k, value, version, expires_at_us) VALUES (?, ?, 1, ?) \
                     ON CONFLICT (k) DO UPDATE SET value = excluded.value, version = ft_kv.version + 1, \
                     expires_at_us = excluded.expires_at_us \
                     WHERE ft_kv.expires_at_us IS NOT NULL AND ft_kv.expires_at_us <= ? RETURNING version",
                )
                .bind(key)
                .bind(value)
                .bind(exp)
                .bind(micros(now)),
                Some(v) => sqlx::query_as(
                    "UPDATE ft_kv SET value = ?, version = version + 1, expires_at_us = ? \
                     WHERE k = ? AND version = ? AND (expires_at_us IS NULL OR expires_at_us > ?) \
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
                sqlx::query_as("DELETE FROM ft_kv WHERE k = ? RETURNING expires_at_us")
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
impl HealthCheck for SqliteAdapter {
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
    use serde_json::json;

    /// A database made by migration 1 (data in `ft_records`) keeps its
    /// records when migration 2 moves the data into the change log.
    #[tokio::test]
    async fn migration_2_moves_existing_data_into_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let options = DbOptions {
            migrate_on_connect: false,
            ..DbOptions::default()
        };
        let db = SqliteAdapter::connect(&url, options).await.unwrap();
        {
            let mut conn = db.pool.acquire().await.unwrap();
            run_migrations(&mut *conn, &MIGRATIONS[..1], false)
                .await
                .unwrap();
            sqlx::query("INSERT INTO ft_collections (name, seq) VALUES ('c', 5)")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO ft_records (collection, id, version, seq, data, updated_at_us, deleted_at_us) \
                 VALUES ('c', 'a', 3, 4, '{\"v\":3}', 10, NULL), ('c', 'b', 2, 5, NULL, 11, 11)",
            )
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        db.migrate().await.unwrap();
        let a = db.get("c", "a").await.unwrap().unwrap();
        assert_eq!((a.version, a.seq, a.data), (3, 4, Some(json!({"v": 3}))));
        assert!(db.get("c", "b").await.unwrap().unwrap().is_deleted());
        let feed = db.changes("c", 0, 10).await.unwrap();
        assert_eq!(
            feed.iter()
                .map(|r| (r.id.as_str(), r.seq))
                .collect::<Vec<_>>(),
            [("a", 4), ("b", 5)]
        );
        let w = db
            .upsert("c", "a", json!({"v": 4}), crate::Expect::Version(3))
            .await
            .unwrap();
        assert_eq!((w.version, w.seq), (4, 6));
        assert_eq!(
            db.changes("c", 5, 10).await.unwrap()[0].data,
            Some(json!({"v": 4}))
        );
    }
}
