//! [`DbDeliveryStore`]: dispatcher state in any flextime-db [`Adapter`]
//! (feature `db`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use flextime_core::{Error, Result};
use flextime_db::Adapter;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::endpoint::Endpoint;
use super::store::{DeliveryQuery, DeliveryRecord, DeliveryStore};

/// Rows one group commit writes at most.
const GROUP_MAX_ROWS: usize = 2000;

/// Deliveries to commit, each already JSON text (no `Value` tree per
/// record), and where to report the commit.
type Job = (Vec<(String, Box<RawValue>)>, oneshot::Sender<Result<()>>);

/// Endpoints and deliveries as records of two collections
/// (`_ft_dispatch_endpoints`, `_ft_dispatch_deliveries`).
///
/// Delivery writes are group-committed: concurrent
/// [`DeliveryStore::save_deliveries`] calls are gathered into one
/// `upsert_batch_json` (one transaction; on PostgreSQL and SQLite one
/// statement of records serialized straight to JSON text),
/// and each call returns once its rows are committed. Scans follow the
/// deliveries collection's change feed (they read the whole collection; the
/// dispatcher scans at start-up and for operator queries only).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use flextime_db::{connect, DbOptions};
/// use flextime_webhooks::dispatch::{DbDeliveryStore, DeliveryStore, Endpoint};
///
/// let db = connect("sqlite::memory:", DbOptions::default()).await.unwrap();
/// let store = DbDeliveryStore::new(db);
/// store.save_endpoint(&Endpoint::new("ep1", "https://example.com/hooks")).await.unwrap();
/// assert_eq!(store.endpoints().await.unwrap().len(), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct DbDeliveryStore {
    adapter: Arc<dyn Adapter>,
    endpoints: String,
    deliveries: String,
    commits: mpsc::Sender<Job>,
}

impl DbDeliveryStore {
    /// A store in collections `_ft_dispatch_endpoints` and
    /// `_ft_dispatch_deliveries`. Must be created inside a tokio runtime
    /// (it starts the group-commit task).
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        Self::with_prefix(adapter, "_ft_dispatch")
    }

    /// A store in collections `<prefix>_endpoints` and `<prefix>_deliveries`.
    pub fn with_prefix(adapter: Arc<dyn Adapter>, prefix: &str) -> Self {
        let deliveries = format!("{prefix}_deliveries");
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(group_commit(Arc::clone(&adapter), deliveries.clone(), rx));
        Self {
            adapter,
            endpoints: format!("{prefix}_endpoints"),
            deliveries,
            commits: tx,
        }
    }

    /// The adapter underneath.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    async fn scan_collection<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>> {
        // The feed holds every change of a record: keep each record's
        // latest one (a tombstone included), in feed order.
        let mut latest: HashMap<String, flextime_db::Record> = HashMap::new();
        let mut after = 0;
        loop {
            let page = self
                .adapter
                .changes(collection, after, flextime_db::MAX_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in page {
                latest.insert(r.id.clone(), r);
            }
        }
        let mut current: Vec<flextime_db::Record> =
            latest.into_values().filter(|r| !r.is_deleted()).collect();
        current.sort_by_key(|r| r.seq);
        let mut out = Vec::new();
        for r in &current {
            let item: T = r.data_as()?;
            if keep(&item) {
                out.push(item);
            }
        }
        Ok(out)
    }
}

async fn group_commit(adapter: Arc<dyn Adapter>, collection: String, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut rows = jobs[0].0.len();
        while rows < GROUP_MAX_ROWS {
            match rx.try_recv() {
                Ok(job) => {
                    rows += job.0.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // The last write of an id wins (one statement cannot touch a row twice).
        let mut index: HashMap<String, usize> = HashMap::with_capacity(rows);
        let mut batch: Vec<(String, Box<RawValue>)> = Vec::with_capacity(rows);
        let mut waiters = Vec::with_capacity(jobs.len());
        for (items, tx) in jobs {
            for (id, value) in items {
                if let Some(&i) = index.get(&id) {
                    batch[i].1 = value;
                } else {
                    index.insert(id.clone(), batch.len());
                    batch.push((id, value));
                }
            }
            waiters.push(tx);
        }
        let result = adapter.upsert_batch_json(&collection, batch).await;
        for tx in waiters {
            let _ = tx.send(match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(Error::new(e.kind(), e.message().to_owned())),
            });
        }
    }
}

#[async_trait]
impl DeliveryStore for DbDeliveryStore {
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        self.adapter
            .upsert(
                &self.endpoints,
                &endpoint.id,
                serde_json::to_value(endpoint)?,
                flextime_db::Expect::Any,
            )
            .await
            .map(drop)
    }

    async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        let existed =
            matches!(self.adapter.get(&self.endpoints, id).await?, Some(r) if !r.is_deleted());
        if existed {
            self.adapter
                .delete(&self.endpoints, id, flextime_db::Expect::Any)
                .await?;
        }
        Ok(existed)
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let mut v: Vec<Endpoint> = self.scan_collection(&self.endpoints, |_| true).await?;
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    async fn save_deliveries(&self, deliveries: Vec<DeliveryRecord>) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        // Each record straight to JSON text, and moved (not copied) to the
        // commit task in chunks.
        let mut rows = deliveries.iter().map(|d| {
            Ok((
                d.id.as_str().to_owned(),
                serde_json::value::to_raw_value(d)?,
            ))
        });
        loop {
            let chunk = rows
                .by_ref()
                .take(GROUP_MAX_ROWS)
                .collect::<Result<Vec<_>>>()?;
            if chunk.is_empty() {
                break;
            }
            let (tx, rx) = oneshot::channel();
            self.commits
                .send((chunk, tx))
                .await
                .map_err(|_| Error::unavailable("the delivery store's commit task has stopped"))?;
            rx.await.map_err(|_| {
                Error::unavailable("the delivery store's commit task has stopped")
            })??;
        }
        Ok(())
    }

    fn group_commits(&self) -> bool {
        true
    }

    async fn get_deliveries(&self, ids: &[String]) -> Result<Vec<DeliveryRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(flextime_db::MAX_PAGE) {
            for r in self.adapter.get_many(&self.deliveries, chunk).await? {
                if !r.is_deleted() {
                    out.push(r.data_as()?);
                }
            }
        }
        Ok(out)
    }

    async fn scan(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        let mut v: Vec<DeliveryRecord> = self
            .scan_collection(&self.deliveries, |d| query.matches(d))
            .await?;
        v.sort_by_key(|d| (d.created_at, d.seq));
        if query.limit > 0 {
            v.truncate(query.limit);
        }
        Ok(v)
    }
}
