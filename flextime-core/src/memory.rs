//! [`MemoryStore`]: an in-process record store that is both a [`Source`]
//! and a [`Sink`]. For examples, tests and embedded defaults; nothing is
//! persisted.
//!
//! ```
//! use flextime_core::memory::MemoryStore;
//! use flextime_core::{Change, ChangeKey, Sink, Source, Version};
//! use futures::TryStreamExt;
//! use serde_json::json;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new("local");
//! let key = ChangeKey::new("local", "events", "1");
//! let results = store
//!     .apply(&[Change::upsert(key.clone(), json!({"title": "Standup"})).with_version(Version::Sequence(3))])
//!     .await
//!     .unwrap();
//! assert!(results[0].outcome.is_settled());
//!
//! let batches: Vec<_> = store.changes(None).await.unwrap().try_collect().await.unwrap();
//! assert_eq!(batches[0].changes.len(), 1);
//! // Resuming from the last checkpoint yields nothing new.
//! let cp = batches.last().unwrap().checkpoint.clone();
//! let rest: Vec<_> = store.changes(Some(cp)).await.unwrap().try_collect().await.unwrap();
//! assert!(rest.is_empty());
//! # });
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::change::{Change, ChangeKey, Version};
use crate::error::{Error, Result};
use crate::sink::{ApplyOutcome, ApplyResult, Sink};
use crate::source::{Batch, BatchStream, Checkpoint, Source};

#[derive(Debug, Default)]
struct State {
    records: BTreeMap<ChangeKey, (Option<Version>, Option<serde_json::Value>)>,
    /// Applied changes; `log[0]` has sequence number `first_seq`.
    log: VecDeque<Change>,
    first_seq: u64,
    next_local_version: u64,
}

/// An in-memory record store with a change log.
///
/// - As a [`Sink`]: an upsert or delete whose version is not newer than the
///   stored one (both sequences or both HLC timestamps) is `Stale`; an
///   upsert without data is `Rejected`. A change without a version gets a
///   local sequence number.
/// - As a [`Source`]: every applied change in order, in batches; the
///   checkpoint is the log position. The log keeps at most `capacity`
///   entries; resuming from a position that was dropped is a conflict error
///   (start again from `None`).
#[derive(Debug)]
pub struct MemoryStore {
    name: String,
    batch_size: usize,
    capacity: usize,
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store: batches of 100, a log of 100 000 changes.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            batch_size: 100,
            capacity: 100_000,
            state: Mutex::new(State::default()),
        }
    }

    /// Set the batch size of the change feed (at least 1).
    #[must_use]
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Set how many changes the log keeps (at least 1).
    #[must_use]
    pub fn with_capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored data of a record (`None` if absent or deleted).
    pub fn get(&self, key: &ChangeKey) -> Option<serde_json::Value> {
        self.lock().records.get(key).and_then(|(_, d)| d.clone())
    }

    /// The stored version of a record (also for deleted ones).
    pub fn version(&self, key: &ChangeKey) -> Option<Version> {
        self.lock().records.get(key).and_then(|(v, _)| v.clone())
    }

    /// How many live (not deleted) records there are.
    pub fn len(&self) -> usize {
        self.lock()
            .records
            .values()
            .filter(|(_, d)| d.is_some())
            .count()
    }

    /// Whether there are no live records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply_one(&self, state: &mut State, change: &Change) -> ApplyOutcome {
        if change.is_upsert() && change.data.is_none() {
            return ApplyOutcome::Rejected {
                reason: "upsert without data".into(),
            };
        }
        let current = state.records.get(&change.key).and_then(|(v, _)| v.clone());
        if let (Some(incoming), Some(cur)) = (&change.version, &current)
            && incoming.compare(cur).is_some_and(std::cmp::Ordering::is_le)
        {
            return ApplyOutcome::Stale {
                current: Some(cur.clone()),
            };
        }
        let version = change.version.clone().unwrap_or_else(|| {
            state.next_local_version += 1;
            Version::Sequence(state.next_local_version)
        });
        state.records.insert(
            change.key.clone(),
            (Some(version.clone()), change.data.clone()),
        );
        let mut logged = change.clone();
        logged.version = Some(version.clone());
        state.log.push_back(logged);
        while state.log.len() > self.capacity {
            state.log.pop_front();
            state.first_seq += 1;
        }
        ApplyOutcome::Applied {
            version: Some(version),
        }
    }
}

#[async_trait::async_trait]
impl Sink for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(&self, changes: &[Change]) -> Result<Vec<ApplyResult>> {
        let mut state = self.lock();
        Ok(changes
            .iter()
            .map(|c| ApplyResult {
                key: c.key.clone(),
                outcome: self.apply_one(&mut state, c),
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Source for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, since: Option<Checkpoint>) -> Result<BatchStream<'_>> {
        let from: u64 = match &since {
            None => 0,
            Some(cp) => cp.as_str().parse().map_err(|_| {
                Error::invalid_input(format!(
                    "checkpoint {cp:?} of `{}` is not a log position",
                    self.name
                ))
            })?,
        };
        let state = self.lock();
        let end = state.first_seq + state.log.len() as u64;
        if from > end {
            return Err(Error::invalid_input(format!(
                "checkpoint {from} is beyond the end of `{}`'s log ({end})",
                self.name
            )));
        }
        if since.is_some() && from < state.first_seq {
            return Err(Error::conflict(format!(
                "checkpoint {from} predates the retained log of `{}` (starts at {}); resync from scratch",
                self.name, state.first_seq
            )));
        }
        let start =
            usize::try_from(from.max(state.first_seq) - state.first_seq).unwrap_or(usize::MAX);
        let pending: Vec<Change> = state.log.iter().skip(start).cloned().collect();
        let mut position = state.first_seq + start as u64;
        let batches: Vec<Result<Batch>> = pending
            .chunks(self.batch_size)
            .map(|chunk| {
                position += chunk.len() as u64;
                Ok(Batch {
                    changes: chunk.to_vec(),
                    checkpoint: Checkpoint::new(position.to_string()),
                })
            })
            .collect();
        Ok(Box::pin(futures::stream::iter(batches)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use serde_json::json;

    fn key(id: &str) -> ChangeKey {
        ChangeKey::new("m", "events", id)
    }

    #[tokio::test]
    async fn stale_and_rejected_do_not_touch_the_rest() {
        let store = MemoryStore::new("m");
        let results = store
            .apply(&[
                Change::upsert(key("a"), json!(1)).with_version(Version::Sequence(5)),
                Change::upsert(key("a"), json!(2)).with_version(Version::Sequence(4)),
                Change {
                    data: None,
                    ..Change::upsert(key("b"), json!(null))
                },
                Change::upsert(key("c"), json!(3)),
                Change::delete(key("a")).with_version(Version::Sequence(6)),
            ])
            .await
            .unwrap();
        let outcomes: Vec<_> = results.into_iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                ApplyOutcome::Applied {
                    version: Some(Version::Sequence(5))
                },
                ApplyOutcome::Stale {
                    current: Some(Version::Sequence(5))
                },
                ApplyOutcome::Rejected {
                    reason: "upsert without data".into()
                },
                ApplyOutcome::Applied {
                    version: Some(Version::Sequence(1))
                },
                ApplyOutcome::Applied {
                    version: Some(Version::Sequence(6))
                },
            ]
        );
        assert_eq!(store.get(&key("a")), None);
        assert_eq!(store.get(&key("c")), Some(json!(3)));
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn feed_is_resumable_from_every_checkpoint() {
        let store = MemoryStore::new("m").with_batch_size(2);
        let changes: Vec<_> = (0..5)
            .map(|i| Change::upsert(key(&i.to_string()), json!(i)))
            .collect();
        store.apply(&changes).await.unwrap();
        let batches: Vec<Batch> = store
            .changes(None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            batches.iter().map(|b| b.changes.len()).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        for (i, b) in batches.iter().enumerate() {
            let rest: Vec<Batch> = store
                .changes(Some(b.checkpoint.clone()))
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            let ids: Vec<_> = rest
                .iter()
                .flat_map(|b| b.changes.iter().map(|c| c.key.id.clone()))
                .collect();
            let expected: Vec<_> = ((i + 1) * 2..5).map(|n| n.to_string()).collect();
            assert_eq!(ids, expected);
        }
    }

    #[tokio::test]
    async fn bad_and_expired_checkpoints_are_typed_errors() {
        let store = MemoryStore::new("m").with_capacity(2);
        for i in 0..4 {
            store
                .apply(&[Change::upsert(key(&i.to_string()), json!(i))])
                .await
                .unwrap();
        }
        let err = store
            .changes(Some(Checkpoint::new("1")))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::Conflict);
        let err = store
            .changes(Some(Checkpoint::new("abc")))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        let err = store
            .changes(Some(Checkpoint::new("99")))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        let batches: Vec<Batch> = store
            .changes(None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(batches[0].changes.len(), 2);
        assert_eq!(batches[0].checkpoint.as_str(), "4");
    }
}
