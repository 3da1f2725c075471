//! The library's own durable stores, built once over any [`Adapter`]
//! (so every backend has them):
//!
//! - [`IdempotencyStore`]: key -> first seen + stored result, with a TTL.
//! - [`CheckpointStore`]: an opaque cursor per pipeline and stream.
//! - [`MappingStore`]: local id <-> external ids per system, with the etag
//!   and the last-synced base copy.
//! - [`OutboxStore`]: messages written in the same atomic write (or
//!   transaction) as the business change, relayed at least once, in order,
//!   to an [`OutboxPublisher`].
//! - [`DeliveryLog`]: the attempts of outbound webhook deliveries.
//!
//! [`Adapter`]: crate::Adapter

mod checkpoint;
mod delivery;
mod idempotency;
mod mapping;
mod outbox;

pub use checkpoint::CheckpointStore;
pub use delivery::{Delivery, DeliveryAttempt, DeliveryLog, DeliveryState};
pub use idempotency::{Claim, IdempotencyRecord, IdempotencyStore};
pub use mapping::{Link, Mapping, MappingStore};
pub use outbox::{
    NoWakeup, OutboxEntry, OutboxMessage, OutboxPublisher, OutboxStore, RelayReport, Wakeup,
};

/// `part` length-prefixed, so joined parts can never collide.
pub(crate) fn part(s: &str) -> String {
    format!("{}:{s}", s.len())
}
