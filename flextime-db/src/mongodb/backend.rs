//! The MongoDB [`Adapter`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::{Error, HealthCheck, HealthReport, Result, SharedClock};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, ClientSession, Collection, IndexModel};
use serde_json::value::RawValue;

use super::config::MongoConfig;
use crate::common::{
    Batch, RowWrite, check_collection, check_id, check_ids, check_key, check_value, from_micros,
    group, group_json, in_order, latest, micros, observe, page_limit, plan, to_i64, to_u64,
    ttl_deadline,
};
use crate::stores::part;
use crate::{Adapter, DbOptions, KvEntry, Record, WriteOp, Written};

const BACKEND: &str = "mongodb";
const DUPLICATE_KEY: i32 = 11000;

#[allow(clippy::needless_pass_by_value)] // used as `.map_err(map_err)`
fn map_err(err: mongodb::error::Error) -> Error {
    use mongodb::error::{ErrorKind as K, WriteFailure};
    if err.contains_label("TransientTransactionError") || err.contains_label("RetryableWriteError")
    {
        return Error::unavailable(format!("mongodb: transient failure: {err}"));
    }
    match err.kind.as_ref() {
        K::Io(_) | K::ServerSelection { .. } | K::ConnectionPoolCleared { .. } => {
            Error::unavailable(format!("mongodb connection lost: {err}"))
        }
        K::Authentication { .. } => Error::unauthorized("mongodb refused the credentials"),
        K::InvalidArgument { .. } => Error::invalid_input(format!("mongodb: {err}")),
        K::Command(c) if c.code == 50 => Error::timeout(format!("mongodb: {err}")),
        K::Command(c) if c.code == 112 => Error::unavailable(format!("mongodb: {err}")),
        K::Command(c) if c.code == DUPLICATE_KEY => Error::conflict(format!("mongodb: {err}")),
        K::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => {
            Error::conflict(format!("mongodb: {err}"))
        }
        _ => Error::internal(format!("mongodb: {err}")),
    }
}

fn is_duplicate(err: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind as K, WriteFailure};
    match err.kind.as_ref() {
        K::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        K::Command(c) => c.code == DUPLICATE_KEY,
        K::InsertMany(e) => e
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == DUPLICATE_KEY)),
        _ => false,
    }
}

fn record_key(collection: &str, id: &str) -> String {
    format!("{}{id}", part(collection))
}

fn int(doc: &Document, field: &str) -> i64 {
    match doc.get(field) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        #[allow(clippy::cast_possible_truncation)]
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

fn opt_int(doc: &Document, field: &str) -> Option<i64> {
    match doc.get(field) {
        None | Some(Bson::Null) => None,
        Some(_) => Some(int(doc, field)),
    }
}

fn to_record(doc: &Document) -> Result<Record> {
    let data = match doc.get("d") {
        Some(Bson::String(text)) => Some(
            serde_json::from_str(text)
                .map_err(|e| Error::internal(format!("stored record is not JSON: {e}")))?,
        ),
        _ => None,
    };
    Ok(Record {
        collection: doc.get_str("c").unwrap_or_default().to_owned(),
        id: doc.get_str("i").unwrap_or_default().to_owned(),
        version: to_u64(int(doc, "v")),
        seq: to_u64(int(doc, "s")),
        data,
        updated_at: from_micros(int(doc, "u")),
        deleted_at: opt_int(doc, "x").map(from_micros),
    })
}

/// A record or change-log document.
fn change_doc(key: String, collection: &str, r: &RowWrite) -> Document {
    let mut d = doc! {
        "_id": key, "c": collection, "i": &r.id, "v": to_i64(r.version),
        "s": to_i64(r.seq), "u": r.updated_at_us,
    };
    if let Some(data) = &r.data {
        d.insert("d", data.as_str());
    }
    if let Some(x) = r.deleted_at_us {
        d.insert("x", x);
    }
    d
}

/// A record store in MongoDB. Cheap to clone.
#[derive(Clone)]
pub struct MongoAdapter {
    client: Client,
    records: Collection<Document>,
    log: Collection<Document>,
    counters: Collection<Document>,
    kv: Collection<Document>,
    clock: SharedClock,
    config: MongoConfig,
}

impl fmt::Debug for MongoAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoAdapter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MongoAdapter {
    /// Connect to `url` and create the indexes unless
    /// [`DbOptions::migrate_on_connect`] is false.
    pub async fn connect(url: &str, options: DbOptions) -> Result<Self> {
        let config = MongoConfig::from_url(url)?;
        let mut client_options = ClientOptions::parse(url).await.map_err(|_| {
            Error::invalid_input(format!("invalid mongodb URL {}", crate::redact_url(url)))
        })?;
        client_options.max_pool_size = Some(options.pool.max_connections.max(1));
        client_options.min_pool_size = Some(options.pool.min_connections);
        client_options.server_selection_timeout = Some(options.pool.acquire_timeout);
        client_options.connect_timeout = Some(options.pool.acquire_timeout);
        let client = Client::with_options(client_options).map_err(map_err)?;
        let db = client.database(&config.database);
        let adapter = Self {
            records: db.collection("ft_records"),
            log: db.collection("ft_changes"),
            counters: db.collection("ft_collections"),
            kv: db.collection("ft_kv"),
            client,
            clock: options.clock,
            config,
        };
        if options.migrate_on_connect {
            adapter.migrate().await?;
        } else {
            adapter.ping().await?;
        }
        Ok(adapter)
    }

    async fn apply(
        &self,
        session: &mut ClientSession,
        batch: Batch,
        now: DateTime<Utc>,
    ) -> Result<Vec<Written>> {
        let Batch { len, groups } = batch;
        let mut planned: Vec<(String, Vec<RowWrite>)> = Vec::new();
        let mut parts = Vec::with_capacity(len);
        for (collection, ops) in groups {
            let count = ops.len() as u64;
            let counter = self
                .counters
                .find_one_and_update(
                    doc! {"_id": &collection},
                    doc! {"$inc": {"seq": to_i64(count)}},
                )
                .upsert(true)
                .return_document(ReturnDocument::After)
                .session(&mut *session)
                .await
                .map_err(map_err)?
                .ok_or_else(|| Error::internal("counter upsert returned nothing"))?;
            let base = to_u64(int(&counter, "seq")).saturating_sub(count);
            let keys: Vec<String> = ops
                .iter()
                .map(|(_, op)| record_key(&collection, &op.id))
                .collect();
            let mut cursor = self
                .records
                .find(doc! {"_id": {"$in": &keys}})
                .projection(doc! {"i": 1, "v": 1, "x": 1})
                .session(&mut *session)
                .await
                .map_err(map_err)?;
            let mut existing = HashMap::new();
            while let Some(d) = cursor.next(&mut *session).await {
                let d = d.map_err(map_err)?;
                existing.insert(
                    d.get_str("i").unwrap_or_default().to_owned(),
                    (to_u64(int(&d, "v")), opt_int(&d, "x").is_some()),
                );
            }
            let (rows, out) = plan(&collection, ops, &existing, base, now)?;
            parts.extend(out);
            planned.push((collection, rows));
        }
        for (collection, changes) in planned {
            let rows = latest(&changes);
            let keys: Vec<String> = rows
                .iter()
                .map(|r| record_key(&collection, &r.id))
                .collect();
            self.records
                .delete_many(doc! {"_id": {"$in": &keys}})
                .session(&mut *session)
                .await
                .map_err(map_err)?;
            let docs: Vec<Document> = rows
                .iter()
                .zip(keys)
                .map(|(r, key)| change_doc(key, &collection, r))
                .collect();
            self.records
                .insert_many(docs)
                .session(&mut *session)
                .await
                .map_err(map_err)?;
            // Every change into the log, in the same transaction.
            let entries: Vec<Document> = changes
                .iter()
                .map(|r| change_doc(format!("{}{}", part(&collection), r.seq), &collection, r))
                .collect();
            self.log
                .insert_many(entries)
                .session(&mut *session)
                .await
                .map_err(map_err)?;
        }
        in_order(len, parts)
    }

    /// Apply `batch` in a transaction, run again (up to 100 times) while
    /// it fails on a write conflict: another writer of the collection
    /// committed first.
    async fn write_batch(&self, batch: Batch) -> Result<Vec<Written>> {
        let mut attempt = 0;
        loop {
            match self.write_once(batch.clone()).await {
                Err(e)
                    if e.kind() == flextime_core::ErrorKind::Unavailable
                        && e.message().contains("transient")
                        && attempt < 100 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(1 + (attempt % 10))).await;
                }
                other => return other,
            }
        }
    }

    async fn write_once(&self, batch: Batch) -> Result<Vec<Written>> {
        let now = self.clock.now();
        let mut session = self.client.start_session().await.map_err(map_err)?;
        session.start_transaction().await.map_err(map_err)?;
        let written = match self.apply(&mut session, batch, now).await {
            Ok(w) => w,
            Err(e) => {
                let _ = session.abort_transaction().await;
                return Err(e);
            }
        };
        let mut commit = session.commit_transaction().await;
        for _ in 0..3 {
            match &commit {
                Err(e) if e.contains_label("UnknownTransactionCommitResult") => {
                    commit = session.commit_transaction().await;
                }
                _ => break,
            }
        }
        commit.map_err(map_err)?;
        Ok(written)
    }

    fn live(&self, d: &Document) -> bool {
        opt_int(d, "x").is_none_or(|x| x > micros(self.clock.now()))
    }
}

#[async_trait::async_trait]
impl Adapter for MongoAdapter {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        observe(BACKEND, "migrate", async {
            let unique = IndexOptions::builder()
                .unique(true)
                .name("ft_records_feed".to_owned())
                .build();
            self.records
                .create_index(
                    IndexModel::builder()
                        .keys(doc! {"c": 1, "s": 1})
                        .options(unique)
                        .build(),
                )
                .await
                .map_err(map_err)?;
            let unique = IndexOptions::builder()
                .unique(true)
                .name("ft_changes_feed".to_owned())
                .build();
            self.log
                .create_index(
                    IndexModel::builder()
                        .keys(doc! {"c": 1, "s": 1})
                        .options(unique)
                        .build(),
                )
                .await
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        observe(BACKEND, "ping", async {
            self.client
                .database(&self.config.database)
                .run_command(doc! {"ping": 1})
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
            self.records
                .find_one(doc! {"_id": record_key(collection, id)})
                .await
                .map_err(map_err)?
                .map(|d| to_record(&d))
                .transpose()
        })
        .await
    }

    async fn get_many(&self, collection: &str, ids: &[String]) -> Result<Vec<Record>> {
        observe(BACKEND, "get_many", async {
            check_ids(collection, ids)?;
            let keys: Vec<String> = ids.iter().map(|id| record_key(collection, id)).collect();
            let docs: Vec<Document> = self
                .records
                .find(doc! {"_id": {"$in": keys}})
                .await
                .map_err(map_err)?
                .try_collect()
                .await
                .map_err(map_err)?;
            let records = docs.iter().map(to_record).collect::<Result<Vec<_>>>()?;
            let mut by_id: HashMap<String, Record> =
                records.into_iter().map(|r| (r.id.clone(), r)).collect();
            Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
        })
        .await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Written>> {
        observe(BACKEND, "write", async {
            self.write_batch(group(ops)?).await
        })
        .await
    }

    /// The caller's JSON text goes into the documents as it is: no `Value`.
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
            let docs: Vec<Document> = self
                .log
                .find(doc! {"c": collection, "s": {"$gt": to_i64(after)}})
                .sort(doc! {"s": 1})
                .limit(i64::try_from(page_limit(limit)).unwrap_or(1))
                .await
                .map_err(map_err)?
                .try_collect()
                .await
                .map_err(map_err)?;
            docs.iter().map(to_record).collect()
        })
        .await
    }

    async fn purge_tombstones(&self, collection: &str, up_to: u64) -> Result<u64> {
        observe(BACKEND, "purge", async {
            check_collection(collection)?;
            let done = self
                .records
                .delete_many(
                    doc! {"c": collection, "s": {"$lte": to_i64(up_to)}, "x": {"$ne": null}},
                )
                .await
                .map_err(map_err)?;
            Ok(done.deleted_count)
        })
        .await
    }

    async fn prune_changes(&self, collection: &str, up_to: u64) -> Result<u64> {
        observe(BACKEND, "prune", async {
            check_collection(collection)?;
            // Keep the entries that are a record's current state.
            let current: Vec<Document> = self
                .records
                .find(doc! {"c": collection, "s": {"$lte": to_i64(up_to)}})
                .projection(doc! {"s": 1})
                .await
                .map_err(map_err)?
                .try_collect()
                .await
                .map_err(map_err)?;
            let keep: Vec<i64> = current.iter().map(|d| int(d, "s")).collect();
            let done = self
                .log
                .delete_many(doc! {"c": collection, "s": {"$lte": to_i64(up_to), "$nin": keep}})
                .await
                .map_err(map_err)?;
            Ok(done.deleted_count)
        })
        .await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>> {
        observe(BACKEND, "kv_get", async {
            check_key(key)?;
            let Some(d) = self.kv.find_one(doc! {"_id": key}).await.map_err(map_err)? else {
                return Ok(None);
            };
            if !self.live(&d) {
                return Ok(None);
            }
            let value = match d.get("v") {
                Some(Bson::Binary(b)) => b.bytes.clone(),
                _ => Vec::new(),
            };
            Ok(Some(KvEntry {
                value,
                version: to_u64(int(&d, "n")),
                expires_at: opt_int(&d, "x").map(from_micros),
            }))
        })
        .await
    }

    async fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64> {
        observe(BACKEND, "kv_set", async {
            check_key(key)?;
            check_value(value.len())?;
            let exp = ttl_deadline(self.clock.now(), ttl);
            let d = self
                .kv
                .find_one_and_update(doc! {"_id": key}, update(value, exp))
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_err)?
                .ok_or_else(|| Error::internal("kv upsert returned nothing"))?;
            Ok(to_u64(int(&d, "n")))
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
            let now = micros(self.clock.now());
            let exp = ttl_deadline(self.clock.now(), ttl);
            let filter = if let Some(v) = expected {
                doc! {"_id": key, "n": to_i64(v), "$or": [{"x": null}, {"x": {"$gt": now}}]}
            } else {
                doc! {"_id": key, "x": {"$lte": now}}
            };
            let updated = self
                .kv
                .find_one_and_update(filter, update(value, exp))
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_err)?;
            if let Some(d) = updated {
                return Ok(Some(to_u64(int(&d, "n"))));
            }
            if expected.is_some() {
                return Ok(None);
            }
            let mut fresh = doc! {"_id": key, "v": binary(value), "n": 1_i64};
            if let Some(exp) = exp {
                fresh.insert("x", exp);
            }
            match self.kv.insert_one(fresh).await {
                Ok(_) => Ok(Some(1)),
                Err(e) if is_duplicate(&e) => Ok(None),
                Err(e) => Err(map_err(e)),
            }
        })
        .await
    }

    async fn kv_delete(&self, key: &str) -> Result<bool> {
        observe(BACKEND, "kv_delete", async {
            check_key(key)?;
            let removed = self
                .kv
                .find_one_and_delete(doc! {"_id": key})
                .await
                .map_err(map_err)?;
            Ok(removed.is_some_and(|d| self.live(&d)))
        })
        .await
    }
}

fn binary(value: &[u8]) -> Bson {
    Bson::Binary(mongodb::bson::Binary {
        subtype: mongodb::bson::spec::BinarySubtype::Generic,
        bytes: value.to_vec(),
    })
}

fn update(value: &[u8], exp: Option<i64>) -> Document {
    let mut set = doc! {"v": binary(value)};
    let mut update = doc! {"$inc": {"n": 1_i64}};
    match exp {
        Some(exp) => {
            set.insert("x", exp);
        }
        None => {
            update.insert("$unset", doc! {"x": ""});
        }
    }
    update.insert("$set", set);
    update
}

#[async_trait::async_trait]
impl HealthCheck for MongoAdapter {
    fn name(&self) -> &str {
        BACKEND
    }

    async fn check(&self) -> HealthReport {
        HealthReport::from_result(&self.ping().await)
    }
}
