//! Outbound webhooks: deliver events to endpoints reliably.
//!
//! A [`Dispatcher`] fans each [`Envelope`](flextime_core::Envelope) out to
//! every enabled [`Endpoint`] whose [`EventFilter`] takes its type (exact
//! names and `prefix.*` wildcards) and delivers it at least once:
//!
//! - **Signed** the Standard Webhooks way: `webhook-id` (the message id, the
//!   same on every attempt and every endpoint), `webhook-timestamp`, and
//!   `webhook-signature` with one `v1,` entry per active secret. Secrets are
//!   `whsec_` + base64 of 24 to 64 random bytes ([`generate_secret`]);
//!   [`Dispatcher::rotate_secret`] keeps the old secret signing for a grace
//!   period (default 24 h), so receivers can switch at their pace.
//! - **Body** per endpoint ([`BodyMode`]): the CloudEvents structured JSON
//!   (`application/cloudevents+json`) or the event's data alone. Custom
//!   headers per endpoint.
//! - **Durable**: [`Dispatcher::send`] returns once the deliveries are in the
//!   [`DeliveryStore`]: memory ([`MemoryStore`], the default) or any
//!   flextime-db adapter ([`DbDeliveryStore`], feature `db`, with group
//!   commit). A dispatcher started on the same store resumes every pending
//!   delivery; one recorded as delivered is never sent again.
//! - **Retries** ([`RetrySchedule`]): at once, then 5 s, 5 min, 30 min, 2 h,
//!   5 h, 10 h, 10 h, +-20 % jitter. 2xx is success; 3xx is a failure
//!   (redirects are never followed); 410 Gone disables the endpoint; 429, 502,
//!   503 and 504 honour `Retry-After`, clamped between the scheduled delay and
//!   twice it; a timeout (default 15 s) is a failure.
//! - **Attempt log**: time, status, latency, the first 4 KiB of the response
//!   body, error kind; [`Dispatcher::attempts_of_message`],
//!   [`Dispatcher::attempts_of_endpoint`], [`Dispatcher::resend`],
//!   [`Dispatcher::recover`] (every failure since a time).
//! - **Endpoint health**: a circuit breaker per endpoint (consecutive
//!   failures or a failure ratio, half-open probe); an endpoint failing
//!   without a success for `disable_after` (default 5 days) is disabled and a
//!   [`DispatcherEvent::EndpointDisabled`] is emitted;
//!   [`Dispatcher::enable_endpoint`] turns it back on.
//! - **Limits**: attempts in flight globally and per endpoint, optional
//!   per-endpoint ordering ([`Endpoint::ordered`]), per-endpoint rate limit.
//! - **SSRF guard** ([`SsrfGuard`]): after DNS resolution, loopback, private,
//!   link-local, CGNAT, multicast, documentation, benchmarking, reserved and
//!   the special IPv6 ranges (with IPv4-mapped, NAT64, 6to4 forms checked on
//!   the embedded IPv4 address) are refused unless allow-listed; optional
//!   https-only.
//!
//! Time comes from an injectable [`Clock`](flextime_core::Clock): with a
//! [`ManualClock`](flextime_core::ManualClock), move it and call
//! [`Dispatcher::wake`].
//!
//! ```no_run
//! # async fn demo() -> flextime_core::Result<()> {
//! use flextime_core::Envelope;
//! use flextime_webhooks::dispatch::{Dispatcher, DispatcherEvent, Endpoint, EventFilter};
//!
//! let dispatcher = Dispatcher::builder().start().await?;
//! dispatcher
//!     .add_endpoint(
//!         Endpoint::new("crm", "https://crm.example.com/hooks")
//!             .with_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
//!             .with_filter(EventFilter::new(["booking.*"])),
//!     )
//!     .await?;
//! let mut events = dispatcher.subscribe();
//! let event = Envelope::new("/bookings", "booking.created")
//!     .with_data_json(serde_json::json!({"id": "b-1"}));
//! let receipt = dispatcher.send(&event).await?;
//! while let Ok(e) = events.recv().await {
//!     if let DispatcherEvent::Finished(outcome) = e {
//!         println!("{} -> {}: {:?}", receipt.message_id, outcome.endpoint_id, outcome.status);
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "db")]
mod db;
mod dispatcher;
mod endpoint;
mod http;
mod schedule;
mod ssrf;
mod store;
mod worker;

#[cfg(feature = "db")]
pub use db::DbDeliveryStore;
pub use dispatcher::{
    AttemptEntry, DisableReason, Dispatcher, DispatcherBuilder, DispatcherConfig, DispatcherEvent,
    Outcome, SendReceipt,
};
pub use endpoint::{
    BodyMode, DEFAULT_ROTATION_GRACE, Endpoint, EndpointSecret, EventFilter, MAX_SECRET_BYTES,
    MIN_SECRET_BYTES, check_secret, generate_secret,
};
pub use schedule::RetrySchedule;
pub use ssrf::{AddressNotAllowed, SsrfGuard, forbidden_range};
pub use store::{
    ATTEMPTS_KEPT, Attempt, DeliveryQuery, DeliveryRecord, DeliveryStatus, DeliveryStore,
    MemoryStore, RESPONSE_BODY_KEPT, SharedText,
};
