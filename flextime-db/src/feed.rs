//! [`CollectionFeed`]: one collection of an [`Adapter`] as a core
//! [`Source`] (its change feed) and [`Sink`] (upserts and tombstones).
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use flextime_core::{Change, ChangeKey, Sink, Source};
//! use flextime_db::{connect, feed::CollectionFeed, DbOptions};
//! use futures::TryStreamExt;
//! use serde_json::json;
//!
//! let db = connect("sqlite::memory:", DbOptions::default()).await.unwrap();
//! let feed = CollectionFeed::new(db, "local", "events");
//! feed.apply(&[Change::upsert(ChangeKey::new("google", "cal", "e1"), json!({"t": 1}))]).await.unwrap();
//! let batches: Vec<_> = feed.changes(None).await.unwrap().try_collect().await.unwrap();
//! assert_eq!(batches[0].changes[0].key, ChangeKey::new("local", "events", "e1"));
//! let rest: Vec<_> = feed.changes(Some(batches[0].checkpoint.clone())).await.unwrap().try_collect().await.unwrap();
//! assert!(rest.is_empty());
//! # });
//! ```

use std::sync::Arc;

use flextime_core::{
    ApplyOutcome, ApplyResult, Batch, BatchStream, Change, Checkpoint, Error, ErrorKind, Result,
    Sink, Source, Version,
};

use crate::{Adapter, Expect, WriteOp, Written};

/// A collection of an adapter, seen as a change source and a sink.
#[derive(Debug, Clone)]
pub struct CollectionFeed {
    adapter: Arc<dyn Adapter>,
    system: String,
    collection: String,
    batch_size: usize,
}

impl CollectionFeed {
    /// The collection `collection` of `adapter`; emitted changes are keyed
    /// `(system, collection, id)`. Batches of 500.
    pub fn new(
        adapter: Arc<dyn Adapter>,
        system: impl Into<String>,
        collection: impl Into<String>,
    ) -> Self {
        Self {
            adapter,
            system: system.into(),
            collection: collection.into(),
            batch_size: 500,
        }
    }

    /// Set the batch size (1 to [`crate::MAX_PAGE`]).
    #[must_use]
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.clamp(1, crate::MAX_PAGE);
        self
    }

    fn parse(&self, cp: Option<&Checkpoint>) -> Result<u64> {
        cp.map_or(Ok(0), |cp| {
            cp.as_str().parse().map_err(|_| {
                Error::invalid_input(format!(
                    "checkpoint {cp:?} of feed `{}` is not a sequence number",
                    self.collection
                ))
            })
        })
    }

    fn op_for(&self, change: &Change) -> std::result::Result<WriteOp, String> {
        if change.is_upsert() {
            let data = change
                .data
                .clone()
                .ok_or_else(|| "upsert without data".to_owned())?;
            Ok(WriteOp::upsert(&self.collection, &change.key.id, data))
        } else {
            Ok(WriteOp::delete(&self.collection, &change.key.id))
        }
    }

    fn applied(w: &Written) -> ApplyOutcome {
        ApplyOutcome::Applied {
            version: Some(Version::Sequence(w.version)),
        }
    }
}

#[async_trait::async_trait]
impl Source for CollectionFeed {
    fn name(&self) -> &str {
        &self.system
    }

    async fn changes(&self, since: Option<Checkpoint>) -> Result<BatchStream<'_>> {
        let start = self.parse(since.as_ref())?;
        let stream = futures::stream::try_unfold(Some(start), move |cursor| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let page = self
                .adapter
                .changes(&self.collection, after, self.batch_size)
                .await?;
            let Some(last) = page.last() else {
                return Ok(None);
            };
            let next = last.seq;
            let more = page.len() >= self.batch_size;
            let batch = Batch {
                changes: page.iter().map(|r| r.to_change(&self.system)).collect(),
                checkpoint: Checkpoint::new(next.to_string()),
            };
            Ok(Some((batch, more.then_some(next))))
        });
        Ok(Box::pin(stream))
    }
}

/// As a sink, every change is written into the feed's collection under the
/// change's record id (whatever its system and collection), without a
/// version precondition; the outcome's version is the local record version.
/// An upsert without data is `Rejected`; when the batch cannot be written
/// in one transaction, each change is retried alone so one bad change never
/// takes the others down.
#[async_trait::async_trait]
impl Sink for CollectionFeed {
    fn name(&self) -> &str {
        &self.system
    }

    async fn apply(&self, changes: &[Change]) -> Result<Vec<ApplyResult>> {
        let mut outcomes: Vec<Option<ApplyOutcome>> = vec![None; changes.len()];
        let mut ops = Vec::new();
        let mut positions = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            match self.op_for(change) {
                Ok(op) => {
                    ops.push(op);
                    positions.push(i);
                }
                Err(reason) => {
                    outcomes[i] = Some(ApplyOutcome::Rejected {
                        reason: reason.clone(),
                    });
                }
            }
        }
        for chunk_start in (0..ops.len()).step_by(crate::MAX_BATCH) {
            let end = (chunk_start + crate::MAX_BATCH).min(ops.len());
            let chunk = ops[chunk_start..end].to_vec();
            match self.adapter.write(chunk).await {
                Ok(written) => {
                    for (w, &pos) in written.iter().zip(&positions[chunk_start..end]) {
                        outcomes[pos] = Some(Self::applied(w));
                    }
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(_) => {
                    for (op, &pos) in ops[chunk_start..end]
                        .iter()
                        .zip(&positions[chunk_start..end])
                    {
                        let outcome = match self
                            .adapter
                            .write(vec![op.clone().expect(Expect::Any)])
                            .await
                        {
                            Ok(w) => w
                                .first()
                                .map_or(ApplyOutcome::Applied { version: None }, Self::applied),
                            Err(e) if e.is_retryable() => return Err(e),
                            Err(e) if e.kind() == ErrorKind::Conflict => ApplyOutcome::Conflict {
                                current: None,
                                reason: e.to_string(),
                            },
                            Err(e) => ApplyOutcome::Rejected {
                                reason: e.to_string(),
                            },
                        };
                        outcomes[pos] = Some(outcome);
                    }
                }
            }
        }
        Ok(changes
            .iter()
            .zip(outcomes)
            .map(|(c, o)| ApplyResult {
                key: c.key.clone(),
                outcome: o.unwrap_or(ApplyOutcome::Rejected {
                    reason: "not attempted".into(),
                }),
            })
            .collect())
    }
}
