//! [`CheckpointStore`]: an opaque cursor per pipeline and stream.

use std::sync::Arc;

use flextime_core::{Checkpoint, Error, Result};

use super::part;
use crate::Adapter;

/// Saves and loads [`Checkpoint`]s, one per `(pipeline, stream)`, in the
/// adapter's key-value space (`ckpt/<pipeline>/<stream>`, length-prefixed).
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flextime_core::Checkpoint;
/// use flextime_db::{connect, stores::CheckpointStore, DbOptions};
///
/// let store = CheckpointStore::new(connect("sqlite::memory:", DbOptions::default()).await.unwrap());
/// assert_eq!(store.load("google-sync", "calendar-1").await.unwrap(), None);
/// store.save("google-sync", "calendar-1", &Checkpoint::new("token-42")).await.unwrap();
/// assert_eq!(store.load("google-sync", "calendar-1").await.unwrap(), Some(Checkpoint::new("token-42")));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    adapter: Arc<dyn Adapter>,
}

impl CheckpointStore {
    /// A store over `adapter`.
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        Self { adapter }
    }

    fn key(pipeline: &str, stream: &str) -> String {
        format!("ckpt/{}/{}", part(pipeline), part(stream))
    }

    /// The saved checkpoint, if any.
    pub async fn load(&self, pipeline: &str, stream: &str) -> Result<Option<Checkpoint>> {
        let Some(entry) = self.adapter.kv_get(&Self::key(pipeline, stream)).await? else {
            return Ok(None);
        };
        let text = String::from_utf8(entry.value)
            .map_err(|_| Error::internal("stored checkpoint is not UTF-8"))?;
        Ok(Some(Checkpoint::new(text)))
    }

    /// Save a checkpoint (after the changes before it were applied).
    pub async fn save(&self, pipeline: &str, stream: &str, checkpoint: &Checkpoint) -> Result<()> {
        self.adapter
            .kv_set(
                &Self::key(pipeline, stream),
                checkpoint.as_str().as_bytes(),
                None,
            )
            .await
            .map(drop)
    }

    /// Forget a checkpoint (the next run starts from scratch); whether one was saved.
    pub async fn reset(&self, pipeline: &str, stream: &str) -> Result<bool> {
        self.adapter.kv_delete(&Self::key(pipeline, stream)).await
    }
}
