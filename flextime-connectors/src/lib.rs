//! Connectors of the Flextime integration SDK.
//!
//! - [`Connector`]: what every connector is (a name, its [`Capability`]s and a
//!   [`check`](Connector::check) of credentials and reachability), with
//!   capability traits on top, such as [`calendar::CalendarProvider`].
//! - [`http`]: the one HTTP client stack every HTTP connector uses: retries
//!   with backoff and jitter, `Retry-After` and `X-RateLimit-*`, a client-side
//!   token bucket, timeouts, pagination streams, OAuth2 / API key / Bearer /
//!   Basic auth and request tracing with secrets redacted.
//! - Calendar connectors behind cargo features: `ics` (default), `caldav`,
//!   `google-calendar`, `microsoft-graph`.
//! - [`sms::SmsSender`] with local de-duplication, and Twilio behind the
//!   `twilio` feature; [`payments::PaymentGateway`], and Stripe behind the
//!   `stripe` feature. The `webhooks` feature verifies Twilio status
//!   callbacks and Stripe events with flextime-webhooks' verifiers.
//! - [`email`]: the [`EmailSender`](email::EmailSender) trait with SMTP
//!   (`smtp`), SendGrid (`sendgrid`) and Postmark (`postmark`) senders and
//!   iTIP calendar invitations.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod analytics;
#[cfg(feature = "caldav")]
pub mod caldav;
pub mod calendar;
pub mod email;
#[cfg(feature = "google-calendar")]
pub mod google_calendar;
pub mod http;
#[cfg(feature = "ics")]
pub mod ics;
#[cfg(feature = "microsoft-graph")]
pub mod microsoft_graph;
#[cfg(feature = "notion")]
pub mod notion;
pub mod payments;
pub mod sms;

use flextime_core::{HealthReport, Result};

/// What a connector can do; a connector lists its capabilities so a host can
/// discover them at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Capability {
    /// Lists calendars and reads their events incrementally.
    CalendarRead,
    /// Creates, updates and deletes calendar events.
    CalendarWrite,
    /// Answers free/busy queries.
    FreeBusy,
    /// Reads records from a document database (Notion ...).
    RecordRead,
    /// Writes records to a document database.
    RecordWrite,
    /// Sends email.
    Email,
    /// Sends SMS.
    Sms,
    /// Takes payments.
    Payments,
    /// Records analytics events.
    Analytics,
}

/// A connection to one external system.
///
/// Implementors also implement the capability traits they list in
/// [`capabilities`](Connector::capabilities).
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// The connector's name (`caldav`, `google-calendar` ...), used in logs,
    /// metrics and change keys.
    fn name(&self) -> &str;

    /// What this connector can do.
    fn capabilities(&self) -> &[Capability];

    /// Checks credentials and reachability with one cheap request.
    async fn check(&self) -> Result<()>;

    /// [`check`](Connector::check) as a health report.
    async fn health(&self) -> HealthReport {
        HealthReport::from_result(&self.check().await)
    }
}

/// Any connector as a core [`HealthCheck`](flextime_core::HealthCheck).
pub struct ConnectorHealth<C>(pub C);

#[async_trait::async_trait]
impl<C: Connector> flextime_core::HealthCheck for ConnectorHealth<C> {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn check(&self) -> HealthReport {
        self.0.health().await
    }
}

/// The [`ApplyOutcome`](flextime_core::ApplyOutcome) of one write a sink made:
/// a failed version precondition is a `Conflict` outcome and an input the
/// peer refused a `Rejected` one, so one bad record does not stop a batch;
/// other errors (unavailable, unauthorized ...) stop it.
pub(crate) fn write_outcome(
    written: Result<Option<String>>,
) -> Result<flextime_core::ApplyOutcome> {
    use flextime_core::{ApplyOutcome, ErrorKind, Version};
    match written {
        Ok(tag) => Ok(ApplyOutcome::Applied {
            version: tag.map(Version::Etag),
        }),
        Err(e) if e.kind() == ErrorKind::Conflict => Ok(ApplyOutcome::Conflict {
            current: None,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == ErrorKind::InvalidInput => Ok(ApplyOutcome::Rejected {
            reason: e.to_string(),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flextime_core::{Error, HealthCheck, HealthStatus};

    struct Fake(bool);

    #[async_trait::async_trait]
    impl Connector for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn capabilities(&self) -> &[Capability] {
            &[Capability::CalendarRead]
        }
        async fn check(&self) -> Result<()> {
            if self.0 {
                Ok(())
            } else {
                Err(Error::unauthorized("token revoked"))
            }
        }
    }

    #[tokio::test]
    async fn a_connector_is_a_core_health_check() {
        let up = ConnectorHealth(Fake(true));
        assert_eq!(HealthCheck::name(&up), "fake");
        assert_eq!(up.check().await.status, HealthStatus::Healthy);
        let down = ConnectorHealth(Fake(false)).check().await;
        assert_eq!(down.status, HealthStatus::Unhealthy);
        assert!(down.detail.unwrap_or_default().contains("token revoked"));
    }
}
