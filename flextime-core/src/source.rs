//! [`Source`]: anything that yields [`Change`]s since a checkpoint.
//!
//! A source returns a stream of [`Batch`]es. Each batch carries the
//! [`Checkpoint`] to save *after* its changes have been applied, so a
//! pipeline that stops between batches resumes exactly where it left off
//! and nothing is skipped (at-least-once: a batch may be seen twice, never
//! zero times).

use std::fmt;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::error::Result;

/// An opaque resume position (a sync token, a cursor, an offset).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Checkpoint(pub String);

impl Checkpoint {
    /// A checkpoint from its text.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The checkpoint's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Changes, and the checkpoint to save once they are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The changes, in the order the source saw them.
    pub changes: Vec<Change>,
    /// Where to resume after this batch.
    pub checkpoint: Checkpoint,
}

/// A stream of batches.
pub type BatchStream<'a> = BoxStream<'a, Result<Batch>>;

/// Something that yields changes since a checkpoint.
///
/// Implementations must be resumable: `changes(Some(cp))` for a checkpoint
/// `cp` taken from a batch yields every change after that batch.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// A name for logs and metrics.
    fn name(&self) -> &str;

    /// The changes since `since` (everything when `None`), as batches. The
    /// stream ends when the source has nothing more right now.
    async fn changes(&self, since: Option<Checkpoint>) -> Result<BatchStream<'_>>;
}
