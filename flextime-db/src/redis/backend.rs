//! The Redis [`Adapter`].

use std::fmt;
use std::time::Duration;

use flextime_core::{Error, HealthCheck, HealthReport, Result, SharedClock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use serde_json::value::RawValue;

use super::config::RedisConfig;
use super::scripts;
use crate::common::{
    Batch, Op, check_collection, check_id, check_ids, check_key, check_value, from_micros, group,
    group_json, micros, observe, page_limit, to_u64,
};
use crate::stores::part;
use crate::{Adapter, DbOptions, Expect, KvEntry, Record, WriteOp, Written};

const BACKEND: &str = "redis";

#[allow(clippy::needless_pass_by_value)] // used as `.map_err(map_err)`
fn map_err(err: RedisError) -> Error {
    use redis::ErrorKind as K;
    if err.is_timeout() {
        return Error::timeout(format!("redis: {err}"));
    }
    if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() {
        return Error::unavailable(format!("redis connection lost: {err}"));
    }
    if matches!(
        err.code(),
        Some("TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "READONLY")
    ) {
        return Error::unavailable(format!("redis: {err}"));
    }
    match err.kind() {
        K::AuthenticationFailed => Error::unauthorized("redis refused the credentials"),
        K::InvalidClientConfig => Error::invalid_input("invalid redis URL or option"),
        _ => Error::internal(format!("redis: {err}")),
    }
}

type RecordRow = (String, i64, i64, Option<String>, i64, Option<i64>);
type Fields = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// The keys of one collection.
struct CollectionKeys {
    /// Each record's key is this and its id.
    record_prefix: String,
    feed: String,
    log: String,
    counter: String,
}

/// One op as [`scripts::WRITE`] takes it.
#[derive(serde::Serialize)]
struct ScriptOp<'a> {
    rk: String,
    fk: &'a str,
    lk: &'a str,
    ck: &'a str,
    id: String,
    #[serde(serialize_with = "precondition")]
    e: Expect,
    /// The JSON text; `None` for a delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    #[serde(skip)]
    collection: &'a str,
}

/// `"any"`, `"absent"` or the expected version.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's serialize_with signature
fn precondition<S: serde::Serializer>(
    expect: &Expect,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match expect {
        Expect::Any => s.serialize_str("any"),
        Expect::Absent => s.serialize_str("absent"),
        Expect::Version(v) => s.serialize_u64(*v),
    }
}

/// A record store in Redis. Cheap to clone (the connection is shared).
#[derive(Clone)]
pub struct RedisAdapter {
    conn: ConnectionManager,
    clock: SharedClock,
    config: RedisConfig,
    write: Script,
    changes: Script,
    prune: Script,
    purge: Script,
    kv_set: Script,
}

impl fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisAdapter {
    /// Connect to `url` with the key prefix of [`DbOptions::key_prefix`].
    pub async fn connect(url: &str, options: DbOptions) -> Result<Self> {
        let config = RedisConfig::from_url(url, options.key_prefix.as_deref())?;
        let client = redis::Client::open(url).map_err(|_| {
            Error::invalid_input(format!("invalid redis URL {}", crate::redact_url(url)))
        })?;
        let mut manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.pool.acquire_timeout))
            .set_number_of_retries(3);
        if let Some(timeout) = options.pool.statement_timeout {
            manager = manager.set_response_timeout(Some(timeout));
        }
        // One plain attempt first, so a wrong address fails at once instead
        // of inside the manager's reconnect loop.
        let probe = tokio::time::timeout(
            options.pool.acquire_timeout,
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| Error::timeout("redis did not answer within the acquire timeout"))?
        .map_err(map_err)?;
        drop(probe);
        let conn = tokio::time::timeout(
            options.pool.acquire_timeout,
            ConnectionManager::new_with_config(client, manager),
        )
        .await
        .map_err(|_| Error::timeout("redis did not answer within the acquire timeout"))?
        .map_err(map_err)?;
        Ok(Self {
            conn,
            clock: options.clock,
            config,
            write: Script::new(scripts::WRITE),
            changes: Script::new(scripts::CHANGES),
            prune: Script::new(scripts::PRUNE),
            purge: Script::new(scripts::PURGE),
            kv_set: Script::new(scripts::KV_SET),
        })
    }

    /// The server-side id of the current connection (`CLIENT ID`), for diagnostics.
    pub async fn client_id(&self) -> Result<i64> {
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_err)
    }

    fn record_prefix(&self, collection: &str) -> String {
        format!("{}r:{}", self.config.prefix, part(collection))
    }

    fn feed_key(&self, collection: &str) -> String {
        format!("{}f:{}", self.config.prefix, part(collection))
    }

    fn log_key(&self, collection: &str) -> String {
        format!("{}l:{}", self.config.prefix, part(collection))
    }

    fn counter_key(&self, collection: &str) -> String {
        format!("{}c:{}", self.config.prefix, part(collection))
    }

    fn kv_key(&self, key: &str) -> String {
        format!("{}k:{key}", self.config.prefix)
    }

    fn to_record(collection: &str, row: RecordRow) -> Result<Record> {
        let (id, version, seq, data, updated, deleted) = row;
        Ok(Record {
            collection: collection.to_owned(),
            id,
            version: to_u64(version),
            seq: to_u64(seq),
            data: data
                .map(|d| serde_json::from_str(&d))
                .transpose()
                .map_err(|e| Error::internal(format!("stored record is not JSON: {e}")))?,
            updated_at: from_micros(updated),
            deleted_at: deleted.map(from_micros),
        })
    }

    fn keys(&self, collection: &str) -> CollectionKeys {
        CollectionKeys {
            record_prefix: self.record_prefix(collection),
            feed: self.feed_key(collection),
            log: self.log_key(collection),
            counter: self.counter_key(collection),
        }
    }

    /// Apply `batch` with one run of the write script, its ops in call order.
    async fn write_batch(&self, batch: Batch) -> Result<Vec<Written>> {
        let Batch { len, groups } = batch;
        if len == 0 {
            return Ok(Vec::new());
        }
        let (names, groups): (Vec<String>, Vec<Vec<(usize, Op)>>) = groups.into_iter().unzip();
        let keys: Vec<CollectionKeys> = names.iter().map(|c| self.keys(c)).collect();
        let mut slots: Vec<Option<ScriptOp<'_>>> =
            std::iter::repeat_with(|| None).take(len).collect();
        for ((collection, ops), keys) in names.iter().zip(groups).zip(&keys) {
            for (pos, Op { id, expect, data }) in ops {
                let d = data.map(|d| d.into_text(collection, &id)).transpose()?;
                let op = ScriptOp {
                    rk: format!("{}{id}", keys.record_prefix),
                    fk: &keys.feed,
                    lk: &keys.log,
                    ck: &keys.counter,
                    id,
                    e: expect,
                    d,
                    collection,
                };
                if let Some(slot) = slots.get_mut(pos) {
                    *slot = Some(op);
                }
            }
        }
        let ops: Vec<ScriptOp<'_>> = slots
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| Error::internal("a write has no op"))?;
        let now = self.clock.now();
        let payload = serde_json::to_string(&ops)?;
        let result: std::result::Result<Vec<(i64, i64)>, RedisError> = self
            .write
            .arg(micros(now))
            .arg(payload)
            .invoke_async(&mut self.conn.clone())
            .await;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) if e.code() == Some("CONFLICT") => {
                let detail = e.detail().unwrap_or_default();
                let (index, found) = detail.split_once(' ').unwrap_or((detail, ""));
                let op = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| ops.get(i.saturating_sub(1)));
                return Err(match op {
                    Some(op) => Error::conflict(format!(
                        "{}/{}: expected {}, found {found}",
                        op.collection,
                        op.id,
                        match op.e {
                            Expect::Any => "any version".to_owned(),
                            Expect::Absent => "no record".to_owned(),
                            Expect::Version(v) => format!("version {v}"),
                        }
                    )),
                    None => Error::conflict(format!("precondition failed: {detail}")),
                });
            }
            Err(e) => return Err(map_err(e)),
        };
        Ok(ops
            .into_iter()
            .zip(rows)
            .map(|(op, (version, seq))| Written {
                collection: op.collection.to_owned(),
                deleted: op.d.is_none(),
                id: op.id,
                version: to_u64(version),
                seq: to_u64(seq),
                updated_at: now,
            })
            .collect())
    }

    async fn read(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>> {
        let prefix = self.record_prefix(collection);
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(format!("{prefix}{id}"))
                .arg(&["v", "s", "d", "u", "x"]);
        }
        let rows: Vec<Fields> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        let mut out = Vec::new();
        for (id, (v, s, d, u, x)) in ids.iter().zip(rows) {
            if let (Some(v), Some(s), Some(u)) = (v, s, u) {
                out.push(Self::to_record(collection, (id.clone(), v, s, d, u, x))?);
            }
        }
        Ok(out)
    }
}

fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl.map_or_else(String::new, |t| t.as_millis().max(1).to_string())
}

#[async_trait::async_trait]
impl Adapter for RedisAdapter {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        observe(BACKEND, "ping", async {
            redis::cmd("PING")
                .query_async::<String>(&mut self.conn.clone())
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
            Ok(self.read(collection, &[id.to_owned()]).await?.pop())
        })
        .await
    }

    async fn get_many(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>> {
        observe(BACKEND, "get_many", async {
            check_ids(collection, ids)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            self.read(collection, ids).await
        })
        .await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Written>> {
        observe(BACKEND, "write", async {
            self.write_batch(group(ops)?).await
        })
        .await
    }

    /// The caller's JSON text goes into the script's payload as it is: no
    /// `Value` is built.
    async fn upsert_batch_json(
        &self,
        collection: &str,
        items: Vec<(String, Box<RawValue>)>,
    ) -> Result<Vec<Written>> {
        observe(BACKEND, "write", async {
            self.write_batch(group_json(collection, items)?).await
        })
        .await
    }

    async fn changes(&self, collection: &str, after: u64, limit: usize) -> Result<Vec<Record>> {
        observe(BACKEND, "changes", async {
            check_collection(collection)?;
            let rows: Vec<RecordRow> = self
                .changes
                .arg(self.log_key(collection))
                .arg(after)
                .arg(page_limit(limit))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(map_err)?;
            rows.into_iter()
                .map(|r| Self::to_record(collection, r))
                .collect()
        })
        .await
    }

    async fn purge_tombstones(&self, collection: &str, up_to: u64) -> Result<u64> {
        observe(BACKEND, "purge", async {
            check_collection(collection)?;
            let n: i64 = self
                .purge
                .arg(self.feed_key(collection))
                .arg(self.record_prefix(collection))
                .arg(up_to)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(map_err)?;
            Ok(to_u64(n))
        })
        .await
    }

    async fn prune_changes(&self, collection: &str, up_to: u64) -> Result<u64> {
        observe(BACKEND, "prune", async {
            check_collection(collection)?;
            let mut total = 0;
            let mut from = 0_i64;
            loop {
                let (removed, scanned, last): (i64, i64, i64) = self
                    .prune
                    .arg(self.log_key(collection))
                    .arg(self.record_prefix(collection))
                    .arg(up_to)
                    .arg(from)
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(map_err)?;
                total += to_u64(removed);
                if scanned < 10_000 {
                    return Ok(total);
                }
                from = last;
            }
        })
        .await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>> {
        observe(BACKEND, "kv_get", async {
            check_key(key)?;
            let k = self.kv_key(key);
            let ((value, version), pttl): ((Option<Vec<u8>>, Option<i64>), i64) = redis::pipe()
                .atomic()
                .cmd("HMGET")
                .arg(&k)
                .arg(&["v", "n"])
                .cmd("PTTL")
                .arg(&k)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(map_err)?;
            let (Some(value), Some(version)) = (value, version) else {
                return Ok(None);
            };
            let expires_at =
                (pttl >= 0).then(|| self.clock.now() + chrono::Duration::milliseconds(pttl));
            Ok(Some(KvEntry {
                value,
                version: to_u64(version),
                expires_at,
            }))
        })
        .await
    }

    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64> {
        observe(BACKEND, "kv_set", async {
            check_key(key)?;
            check_value(value.len())?;
            let v: Option<i64> = self
                .kv_set
                .key(self.kv_key(key))
                .arg(value)
                .arg(ttl_arg(ttl))
                .arg("*")
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(map_err)?;
            v.map(to_u64)
                .ok_or_else(|| Error::internal("redis set returned no version"))
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
            let v: Option<i64> = self
                .kv_set
                .key(self.kv_key(key))
                .arg(value)
                .arg(ttl_arg(ttl))
                .arg(expected.map_or_else(String::new, |v| v.to_string()))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(map_err)?;
            Ok(v.map(to_u64))
        })
        .await
    }

    async fn kv_delete(&self, key: &str) -> Result<bool> {
        observe(BACKEND, "kv_delete", async {
            check_key(key)?;
            let n: i64 = redis::cmd("DEL")
                .arg(self.kv_key(key))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(map_err)?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait::async_trait]
impl HealthCheck for RedisAdapter {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn check(&self) -> HealthReport {
        HealthReport::from_result(&self.ping().await)
    }
}
