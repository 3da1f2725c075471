//! [`Sink`]: anything that accepts a batch of [`Change`]s and reports, per
//! change, what became of it.

use serde::{Deserialize, Serialize};

use crate::change::{Change, ChangeKey, Version};
use crate::error::Result;

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// Written; `version` is the record's version in the sink afterwards.
    Applied {
        /// The new version in the sink, if it has one.
        version: Option<Version>,
    },
    /// Not written because the sink already has this or a newer version.
    Stale {
        /// The sink's current version.
        current: Option<Version>,
    },
    /// Not written because the sink's copy changed concurrently; a resolver decides.
    Conflict {
        /// The sink's current version.
        current: Option<Version>,
        /// Why it conflicts.
        reason: String,
    },
    /// Refused for good (invalid for this sink); the rest of the batch is unaffected.
    Rejected {
        /// Why.
        reason: String,
    },
}

impl ApplyOutcome {
    /// Whether the change is now reflected in the sink (applied, or already there).
    pub fn is_settled(&self) -> bool {
        matches!(self, Self::Applied { .. } | Self::Stale { .. })
    }
}

/// The outcome of one change of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    /// Which record.
    pub key: ChangeKey,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ApplyOutcome,
}

/// Something that accepts changes.
///
/// `apply` returns one [`ApplyResult`] per change, in order. It returns `Err`
/// only when the batch as a whole could not be attempted (the sink is down);
/// a bad change is a `Rejected` outcome and never takes the others down.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// A name for logs and metrics.
    fn name(&self) -> &str;

    /// Apply `changes` in order and report each.
    async fn apply(&self, changes: &[Change]) -> Result<Vec<ApplyResult>>;
}
