//! [`InboundEvent`]: what the receiver hands off.

use bytes::Bytes;
use flextime_core::Envelope;
use serde::{Deserialize, Serialize};

/// Headers never kept with an event: they carry credentials.
const DROPPED_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// A verified inbound webhook.
///
/// `envelope` is the CloudEvent: `id` is the provider's idempotency key when
/// it has one (else a UUIDv7), `source` the source's configured name, `type`
/// the provider's event type (else `webhook.received`), `data` the body (JSON
/// as JSON, form bodies as a JSON object of their fields, anything else as
/// binary). `raw_body` and `headers` keep the request exactly as received,
/// minus credential headers, for handlers that need them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// The event as a CloudEvent.
    pub envelope: Envelope,
    /// The source's name.
    pub source: String,
    /// The verification scheme (`stripe`, `standard-webhooks` ...).
    pub scheme: String,
    /// The provider's idempotency key, if it sends one.
    pub idempotency_key: Option<String>,
    /// The body exactly as received.
    #[serde(with = "body_base64")]
    pub raw_body: Bytes,
    /// The request headers (lowercase names), minus credential headers.
    pub headers: Vec<(String, String)>,
}

impl InboundEvent {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The event type (`envelope.type`).
    pub fn event_type(&self) -> &str {
        self.envelope.event_type()
    }
}

/// Keep the headers a handler may need.
pub(crate) fn kept_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !DROPPED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_owned(), v.to_owned()))
        })
        .collect()
}

mod body_base64 {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}
