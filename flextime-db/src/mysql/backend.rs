//! The MySQL / MariaDB [`Adapter`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use flextime_core::{Error, HealthCheck, HealthReport, Result, SharedClock};
use sqlx::mysql::{MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{Executor, MySql, QueryBuilder};

use super::config::MysqlConfig;
use crate::common::{
    RowWrite, check_collection, check_id, check_ids, check_key, check_value, from_micros, latest,
    micros, observe, page_limit, to_i64, to_u64, ttl_deadline,
};
use crate::sql::{
    FastRow, LogRow, MigrationSpec, ROWS_PER_STATEMENT, RecordRow, RowStore, SqlTx, map_err,
    order_by_ids, run_migrations, to_record,
};
use crate::{Adapter, DbOptions, KvEntry, Record, Transaction, WriteOp, Written};

const BACKEND: &str = "mysql";

/// InnoDB may pick a write as a deadlock victim (its locking reads can meet
/// a user transaction's locks): it was rolled back whole, so it is run again.
const RETRY_DEADLOCKS: bool = true;

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

/// A record's current state: its row joined to its current change-log
/// entry. Binary-collated text reads back as VARBINARY; convert it for decoding.
const RECORD_SELECT: &str = "SELECT CONVERT(r.id USING utf8mb4), r.version, r.seq, \
     CONVERT(c.data USING utf8mb4), r.updated_at_us, r.deleted_at_us \
     FROM ft_records r LEFT JOIN ft_changes c ON c.collection = r.collection AND c.seq = r.seq";

/// A record store in MySQL or MariaDB. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct MysqlAdapter {
    pool: MySqlPool,
    clock: SharedClock,
    allow_destructive: bool,
    config: MysqlConfig,
}

impl fmt::Debug for MysqlAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlAdapter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MysqlAdapter {
    /// Open (creating if missing) the database at `url` and apply migrations
    /// unless [`DbOptions::migrate_on_connect`] is false.
    pub async fn connect(url: &str, options: DbOptions) -> Result<Self> {
        let config = MysqlConfig::from_url(url)?;
        let timeout = options.pool.statement_timeout;
        let pool = MySqlPoolOptions::new()
            .acquire_timeout(options.pool.acquire_timeout)
            .test_before_acquire(true)
            .max_connections(options.pool.max_connections.max(1))
            .min_connections(options.pool.min_connections)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if let Some(timeout) = timeout {
                        let secs = timeout.as_secs_f64();
                        // MariaDB, then MySQL; a server with neither keeps no timeout.
                        if conn
                            .execute(format!("SET SESSION max_statement_time = {secs}").as_str())
                            .await
                            .is_err()
                        {
                            let ms = timeout.as_millis();
                            let _ = conn
                                .execute(format!("SET SESSION max_execution_time = {ms}").as_str())
                                .await;
                        }
                    }
                    Ok(())
                })
            })
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
    pub fn pool(&self) -> &MySqlPool {
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
            let mut qb: QueryBuilder<'_, MySql> =
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
impl RowStore for MySqlConnection {
    async fn bump(&mut self, collection: &str, n: u64) -> Result<u64> {
        sqlx::query(
            "INSERT INTO ft_collections (name, seq) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE seq = seq + VALUES(seq)",
        )
        .bind(collection)
        .bind(to_i64(n))
        .execute(&mut *self)
        .await
        .map_err(map_err)?;
        let (seq,): (i64,) =
            sqlx::query_as("SELECT seq FROM ft_collections WHERE name = ? FOR UPDATE")
                .bind(collection)
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
        // Locking reads see the latest committed rows whatever the snapshot.
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<'_, MySql> = QueryBuilder::new(
                "SELECT CONVERT(id USING utf8mb4), version, deleted_at_us FROM ft_records WHERE collection = ",
            );
            qb.push_bind(collection).push(" AND id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(") FOR UPDATE");
            let rows: Vec<(String, i64, Option<i64>)> = qb
                .build_query_as()
                .fetch_all(&mut *self)
                .await
                .map_err(map_err)?;
            out.extend(
                rows.into_iter()
                    .map(|(id, v, d)| (id, (to_u64(v), d.is_some()))),
            );
        }
        Ok(out)
    }

    async fn store(&mut self, collection: &str, changes: &[RowWrite]) -> Result<()> {
        for chunk in latest(changes).chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<'_, MySql> = QueryBuilder::new(
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
                " ON DUPLICATE KEY UPDATE version = VALUES(version), seq = VALUES(seq), \
                 updated_at_us = VALUES(updated_at_us), deleted_at_us = VALUES(deleted_at_us)",
            );
            qb.build().execute(&mut *self).await.map_err(map_err)?;
        }
        append_log(self, collection, changes.iter().map(LogRow::from)).await
    }

    fn has_fast_write(&self) -> bool {
        true
    }

    /// Under the collection's counter lock (taken first, held to the end of
    /// the transaction) no other writer changes its records. The records
    /// are upserted first, the server making each new version (old + 1, or
    /// 1); when every row was new (1 affected row each, 2 for an update)
    /// every version is 1 and nothing is read back. Then the log.
    async fn fast_write(
        &mut self,
        collection: &str,
        items: &[FastRow],
        now_us: i64,
    ) -> Result<Option<Vec<(u64, u64)>>> {
        let count = items.len() as u64;
        let base = self.bump(collection, count).await?.saturating_sub(count);
        let mut all_new = true;
        let mut seq = base;
        for chunk in items.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<'_, MySql> = QueryBuilder::new(
                "INSERT INTO ft_records (collection, id, version, seq, updated_at_us, deleted_at_us) ",
            );
            qb.push_values(chunk, |mut b, row| {
                seq += 1;
                b.push_bind(collection)
                    .push_bind(&row.id)
                    .push_bind(1_i64)
                    .push_bind(to_i64(seq))
                    .push_bind(now_us)
                    .push_bind(row.data.is_none().then_some(now_us));
            });
            qb.push(
                " ON DUPLICATE KEY UPDATE version = version + 1, seq = VALUES(seq), \
                 updated_at_us = VALUES(updated_at_us), deleted_at_us = VALUES(deleted_at_us)",
            );
            let done = qb.build().execute(&mut *self).await.map_err(map_err)?;
            all_new &= done.rows_affected() == chunk.len() as u64;
        }
        let versions: Vec<u64> = if all_new {
            vec![1; items.len()]
        } else {
            let ids: Vec<&str> = items.iter().map(|row| row.id.as_str()).collect();
            let current = self.existing(collection, &ids).await?;
            items
                .iter()
                .map(|row| {
                    current
                        .get(&row.id)
                        .map(|&(version, _)| version)
                        .ok_or_else(|| {
                            Error::internal(format!(
                                "record {collection}/{} was written but is not there",
                                row.id
                            ))
                        })
                })
                .collect::<Result<_>>()?
        };
        append_log(
            self,
            collection,
            items
                .iter()
                .zip(&versions)
                .zip(base + 1..)
                .map(|((row, &version), seq)| LogRow {
                    seq,
                    id: &row.id,
                    version,
                    data: row.data.as_deref(),
                    updated_at_us: now_us,
                    deleted_at_us: row.data.is_none().then_some(now_us),
                }),
        )
        .await?;
        Ok(Some(versions.into_iter().zip(base + 1..).collect()))
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

crate::sql::log_appender!(MySql, MySqlConnection);

crate::sql::sql_adapter_impl!(MysqlAdapter {

    async fn changes(&self, collection: &str, after: u64, limit: usize) -> Result<Vec<Record>> {
        observe(BACKEND, "changes", async {
            check_collection(collection)?;
            let rows: Vec<RecordRow> = sqlx::query_as(
                "SELECT CONVERT(id USING utf8mb4), version, seq, CONVERT(data USING utf8mb4), \
                 updated_at_us, deleted_at_us FROM ft_changes \
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
                "DELETE FROM ft_changes WHERE collection = ? AND seq <= ? AND NOT EXISTS ( \
                   SELECT 1 FROM ft_records r WHERE r.collection = ft_changes.collection \
                   AND r.id = ft_changes.id AND r.seq = ft_changes.seq)",
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
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            sqlx::query(
                "INSERT INTO ft_kv (k, value, version, expires_at_us) VALUES (?, ?, 1, ?) \
                 ON DUPLICATE KEY UPDATE value = VALUES(value), version = version + 1, \
                 expires_at_us = VALUES(expires_at_us)",
            )
            .bind(key)
            .bind(value)
            .bind(exp)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            let (version,): (i64,) = sqlx::query_as("SELECT version FROM ft_kv WHERE k = ?")
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
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
            if let Some(v) = expected {
                let done = sqlx::query(
                    "UPDATE ft_kv SET value = ?, version = version + 1, expires_at_us = ? \
                     WHERE k = ? AND version = ? AND (expires_at_us IS NULL OR expires_at_us > ?)",
                )
                .bind(value)
                .bind(exp)
                .bind(key)
                .bind(to_i64(v))
                .bind(micros(now))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                return Ok((done.rows_affected() == 1).then_some(v + 1));
            }
            // Insert first, outside a transaction: an UPDATE of a missing
            // row would take a gap lock that deadlocks concurrent inserters.
            let inserted = sqlx::query(
                "INSERT IGNORE INTO ft_kv (k, value, version, expires_at_us) VALUES (?, ?, 1, ?)",
            )
            .bind(key)
            .bind(value)
            .bind(exp)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
            if inserted.rows_affected() == 1 {
                return Ok(Some(1));
            }
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let revived = sqlx::query(
                "UPDATE ft_kv SET value = ?, version = version + 1, expires_at_us = ? \
                 WHERE k = ? AND expires_at_us IS NOT NULL AND expires_at_us <= ?",
            )
            .bind(value)
            .bind(exp)
            .bind(key)
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            let version = if revived.rows_affected() == 1 {
                let (v,): (i64,) =
                    sqlx::query_as("SELECT version FROM ft_kv WHERE k = ? FOR UPDATE")
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                Some(to_u64(v))
            } else {
                None
            };
            tx.commit().await.map_err(map_err)?;
            Ok(version)
        })
        .await
    }

    async fn kv_delete(&self, key: &str) -> Result<bool> {
        observe(BACKEND, "kv_delete", async {
            check_key(key)?;
            let now = micros(self.clock.now());
            let live = sqlx::query(
                "DELETE FROM ft_kv WHERE k = ? AND (expires_at_us IS NULL OR expires_at_us > ?)",
            )
            .bind(key)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
            sqlx::query("DELETE FROM ft_kv WHERE k = ?")
                .bind(key)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            Ok(live.rows_affected() > 0)
        })
        .await
    }
});

#[async_trait::async_trait]
impl HealthCheck for MysqlAdapter {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn check(&self) -> HealthReport {
        HealthReport::from_result(&self.ping().await)
    }
}
