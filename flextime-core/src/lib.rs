//! # flextime-core
//!
//! The shared vocabulary of the Flextime integration SDK. Every other crate
//! (webhooks, queues, db, connectors, sync, api) depends on this one and on
//! nothing of each other's by default.
//!
//! - [`Envelope`]: an event in CloudEvents 1.0 shape, in structured JSON mode
//!   and in binary mode for the HTTP, Kafka and AMQP protocol bindings.
//! - [`ScheduleItem`]: the domain record (event, booking, shift, time off,
//!   availability) with time zones, recurrence and attendees.
//! - [`Change`]: an upsert or delete of one keyed record with a [`Version`],
//!   and a hybrid logical clock ([`hlc::HybridClock`]).
//! - The traits that cross crates: [`Source`], [`Sink`], [`Transformer`],
//!   [`Validator`], [`HealthCheck`].
//! - [`Error`] with an [`ErrorKind`] and `is_retryable()`, [`Secret`],
//!   [`Clock`], resilience ([`resilience`]), configuration ([`config`]) and the
//!   catalogue of metric names and span conventions ([`telemetry`]).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod change;
pub mod clock;
pub mod config;
pub mod envelope;
pub mod error;
pub mod health;
pub mod hlc;
pub mod memory;
pub mod resilience;
pub mod schedule;
pub mod secret;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod transform;
pub mod validate;

pub use change::{Change, ChangeKey, Operation, Version};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use health::{HealthCheck, HealthRegistry, HealthReport, HealthStatus};
pub use secret::{Secret, constant_time_eq};
pub use sink::{ApplyOutcome, ApplyResult, Sink};
pub use source::{Batch, BatchStream, Checkpoint, Source};
pub use transform::Transformer;
pub use validate::{Validator, Violation};
// envelope re-exports (edited by the envelope work only):
pub use envelope::{AmqpMessage, AmqpValue, Data, Envelope, ExtensionValue, KafkaRecord};
// schedule re-exports (edited by the schedule work only):
pub use schedule::{
    Attendee, ExternalRef, ItemKind, ItemTime, Occurrence, Organizer, Override,
    ParticipationStatus, Recurrence, Role, ScheduleItem, ScheduleItemValidator, Status,
};
