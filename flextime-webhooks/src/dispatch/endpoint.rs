//! Endpoints: where deliveries go, which events they take, how they are signed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::resilience::RateLimit;
use flextime_core::{Error, Result, Secret};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::verify::{Tolerance, standard::StandardWebhooks};

/// Shortest signing key accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 24;
/// Longest signing key accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64;
/// How long a rotated-out secret keeps signing by default (24 h).
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A new random signing secret: `whsec_` + base64 of `bytes` random bytes
/// (clamped to 24..=64).
///
/// ```
/// let s = flextime_webhooks::dispatch::generate_secret(32);
/// assert!(s.expose().starts_with("whsec_"));
/// flextime_webhooks::dispatch::check_secret(&s).unwrap();
/// ```
pub fn generate_secret(bytes: usize) -> Secret {
    let mut key = vec![0u8; bytes.clamp(MIN_SECRET_BYTES, MAX_SECRET_BYTES)];
    rand::rng().fill_bytes(&mut key);
    Secret::new(format!("whsec_{}", crate::verify::encode_base64(&key)))
}

/// Check a signing secret: `whsec_` followed by the base64 of 24 to 64 bytes.
pub fn check_secret(secret: &Secret) -> Result<()> {
    let text = secret.expose();
    if !text.starts_with("whsec_") {
        return Err(Error::invalid_input(
            "endpoint secret: expected `whsec_` followed by base64",
        ));
    }
    let key = crate::verify::standard::decode_secret(secret)?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
        return Err(Error::invalid_input(format!(
            "endpoint secret: the key is {} bytes; expected {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// One signing secret of an endpoint.
#[derive(Clone, Serialize, Deserialize)]
pub struct EndpointSecret {
    /// The secret (`whsec_...`); stored as is, so the store must be trusted.
    #[serde(with = "secret_text")]
    pub secret: Secret,
    /// When it stops signing (`None`: the current secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for EndpointSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointSecret")
            .field("secret", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Which event types an endpoint takes: exact names and `prefix.*`
/// wildcards; empty means every event.
///
/// ```
/// use flextime_webhooks::dispatch::EventFilter;
/// let f = EventFilter::new(["booking.*", "invoice.paid"]);
/// assert!(f.matches("booking.created"));
/// assert!(f.matches("booking.room.moved"));
/// assert!(!f.matches("bookings.created"));
/// assert!(f.matches("invoice.paid"));
/// assert!(!f.matches("invoice.voided"));
/// assert!(EventFilter::default().matches("anything"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventFilter(pub Vec<String>);

impl EventFilter {
    /// A filter from patterns.
    pub fn new<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Self(patterns.into_iter().map(Into::into).collect())
    }

    /// Whether `event_type` passes.
    pub fn matches(&self, event_type: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|p| {
                if p == "*" {
                    true
                } else if let Some(prefix) = p.strip_suffix(".*") {
                    event_type
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
                } else {
                    p == event_type
                }
            })
    }
}

/// What the request body is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyMode {
    /// The CloudEvents structured JSON (`application/cloudevents+json`).
    #[default]
    Structured,
    /// The event's data alone, with its `datacontenttype`.
    Raw,
}

/// An endpoint that receives deliveries.
#[derive(Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// Its id (unique within a store).
    pub id: String,
    /// Where to POST.
    pub url: String,
    /// Free text for operators.
    #[serde(default)]
    pub description: String,
    /// Which events it takes.
    #[serde(default)]
    pub filter: EventFilter,
    /// Whether deliveries are made (a disabled endpoint gets none).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Why it was disabled, when it was disabled automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests per second at most, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<u32>,
    /// Requests in flight at most (default: the dispatcher's setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Deliver one at a time, in the order sent (a failing delivery holds
    /// back the ones after it until it succeeds or gives up).
    #[serde(default)]
    pub ordered: bool,
    /// The body format.
    #[serde(default)]
    pub body: BodyMode,
    /// Signing secrets, newest first.
    pub secrets: Vec<EndpointSecret>,
    /// Since when it has failed without a success (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
}

mod secret_text {
    use flextime_core::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

fn yes() -> bool {
    true
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("filter", &self.filter)
            .field("enabled", &self.enabled)
            .field("ordered", &self.ordered)
            .field("body", &self.body)
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An enabled endpoint taking every event, with a fresh 32-byte secret.
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            url: url.into(),
            description: String::new(),
            filter: EventFilter::default(),
            enabled: true,
            disabled_reason: None,
            headers: BTreeMap::new(),
            rate_limit_per_sec: None,
            max_in_flight: None,
            ordered: false,
            body: BodyMode::Structured,
            secrets: vec![EndpointSecret {
                secret: generate_secret(32),
                expires_at: None,
            }],
            failing_since: None,
        }
    }

    /// Replace the secrets by this one.
    #[must_use]
    pub fn with_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secrets = vec![EndpointSecret {
            secret: secret.into(),
            expires_at: None,
        }];
        self
    }

    /// Set the event filter.
    #[must_use]
    pub fn with_filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Add a request header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Set the body format.
    #[must_use]
    pub fn with_body(mut self, body: BodyMode) -> Self {
        self.body = body;
        self
    }

    /// Deliver in order, one at a time.
    #[must_use]
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Limit the request rate.
    #[must_use]
    pub fn with_rate_limit(mut self, per_sec: u32) -> Self {
        self.rate_limit_per_sec = Some(per_sec);
        self
    }

    /// Limit requests in flight.
    #[must_use]
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// Set the description.
    #[must_use]
    pub fn with_description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Check the endpoint: id, URL, secrets, headers.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty() || self.id.len() > 128 || self.id.contains(['/', '\0']) {
            return Err(Error::invalid_input(
                "endpoint id: 1 to 128 characters, no `/` or NUL",
            ));
        }
        let url = url::Url::parse(&self.url)
            .map_err(|e| Error::invalid_input(format!("endpoint {}: url: {e}", self.id)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::invalid_input(format!(
                "endpoint {}: url must be http(s) with a host",
                self.id
            )));
        }
        if self.secrets.is_empty() {
            return Err(Error::invalid_input(format!(
                "endpoint {}: at least one secret is required",
                self.id
            )));
        }
        for s in &self.secrets {
            check_secret(&s.secret).map_err(|e| e.context(format!("endpoint {}", self.id)))?;
        }
        for (name, value) in &self.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::invalid_input(format!("endpoint {}: bad header name {name:?}", self.id))
            })?;
            if name.as_str().starts_with("webhook-") || name == http::header::CONTENT_TYPE {
                return Err(Error::invalid_input(format!(
                    "endpoint {}: header {name} is set by the dispatcher",
                    self.id
                )));
            }
            http::HeaderValue::from_str(value).map_err(|_| {
                Error::invalid_input(format!("endpoint {}: bad value for header {name}", self.id))
            })?;
        }
        if self.rate_limit_per_sec == Some(0) || self.max_in_flight == Some(0) {
            return Err(Error::invalid_input(format!(
                "endpoint {}: limits must be at least 1",
                self.id
            )));
        }
        Ok(())
    }

    /// The secrets that sign at `now` (current one and those in their grace period).
    pub fn active_secrets(&self, now: DateTime<Utc>) -> Vec<Secret> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| s.secret.clone())
            .collect()
    }

    /// Make `new` the current secret; the previous ones keep signing until
    /// `now + grace` (secrets already expired are dropped).
    pub fn rotate(&mut self, new: Secret, now: DateTime<Utc>, grace: Duration) -> Result<()> {
        check_secret(&new)?;
        let until = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        self.secrets
            .retain(|s| s.expires_at.is_none_or(|t| t > now));
        for s in &mut self.secrets {
            if s.expires_at.is_none_or(|t| t > until) {
                s.expires_at = Some(until);
            }
        }
        self.secrets.insert(
            0,
            EndpointSecret {
                secret: new,
                expires_at: None,
            },
        );
        Ok(())
    }

    /// The signer for the secrets active at `now`.
    pub(crate) fn signer(&self, now: DateTime<Utc>) -> Result<StandardWebhooks> {
        StandardWebhooks::new(self.active_secrets(now), Tolerance::DISABLED)
    }

    /// The rate limit, if any.
    pub(crate) fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit_per_sec.map(RateLimit::per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked() {
        assert!(check_secret(&"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()).is_ok());
        assert!(check_secret(&"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()).is_err());
        assert!(check_secret(&"whsec_c2hvcnQ=".into()).is_err());
        assert!(check_secret(&"whsec_!!!".into()).is_err());
        for n in [0, 24, 40, 64, 100] {
            check_secret(&generate_secret(n)).unwrap();
        }
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_grace_period() {
        let now = Utc::now();
        let old: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
        let mut ep = Endpoint::new("e", "https://example.com/").with_secret(old.clone());
        let new = generate_secret(32);
        ep.rotate(new.clone(), now, DEFAULT_ROTATION_GRACE).unwrap();
        let active = ep.active_secrets(now);
        assert_eq!(active.len(), 2);
        assert_eq!(active[0].expose(), new.expose());
        assert_eq!(active[1].expose(), old.expose());
        let later = now + chrono::Duration::hours(24) + chrono::Duration::seconds(1);
        assert_eq!(ep.active_secrets(later).len(), 1);
        assert!(
            ep.rotate("whsec_bad".into(), now, DEFAULT_ROTATION_GRACE)
                .is_err()
        );
    }
}
