//! PostHog capture: `POST /batch/` with the project API key in the body.
//! Each event carries `uuid` (PostHog de-duplicates on it), `distinct_id`,
//! `timestamp` (ISO 8601) and its properties.

use flextime_core::Result;
use serde_json::{Value, json};

use super::{AnalyticsBackend, AnalyticsEvent, BatchResult};
use crate::http::{HttpClient, HttpClientBuilder};

/// PostHog Cloud US ingestion (`https://eu.i.posthog.com` for EU).
pub const DEFAULT_BASE_URL: &str = "https://us.i.posthog.com";

/// The PostHog backend.
#[derive(Debug, Clone)]
pub struct PostHog {
    http: HttpClient,
    api_key: String,
    max_batch: usize,
}

impl PostHog {
    /// A backend for project `api_key` at `base_url`.
    pub fn new(
        base_url: &str,
        api_key: impl Into<String>,
        configure: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder,
    ) -> Result<Self> {
        let http = configure(HttpClient::builder("posthog").redact_query_param("api_key"))
            .base_url(base_url)?
            .build()?;
        Ok(Self {
            http,
            api_key: api_key.into(),
            max_batch: 1000,
        })
    }

    /// The request body of one batch.
    pub fn body(&self, events: &[AnalyticsEvent]) -> Value {
        let batch: Vec<Value> = events
            .iter()
            .map(|e| {
                let mut props = e.properties.clone();
                props.insert("$lib".into(), json!("flextime-connectors"));
                json!({
                    "event": e.name,
                    "distinct_id": e.distinct_id,
                    "uuid": uuid_of(&e.insert_id),
                    "timestamp": e.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "properties": props,
                })
            })
            .collect();
        json!({"api_key": self.api_key, "historical_migration": false, "batch": batch})
    }
}

/// PostHog wants a UUID: a message id that is one is used as is, any other
/// is mapped to a stable v5-style UUID so the same id always de-duplicates.
fn uuid_of(id: &str) -> String {
    if let Ok(u) = uuid::Uuid::parse_str(id) {
        return u.hyphenated().to_string();
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[async_trait::async_trait]
impl AnalyticsBackend for PostHog {
    fn name(&self) -> &'static str {
        "posthog"
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn send(&self, events: &[AnalyticsEvent]) -> Result<BatchResult> {
        // Events carry a uuid PostHog de-duplicates on: a retry is harmless.
        self.http
            .post("batch/")
            .idempotent(true)
            .json(&self.body(events))
            .send()
            .await?;
        Ok(BatchResult {
            accepted: events.len(),
            rejected: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_become_stable_uuids() {
        let u = "0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b";
        assert_eq!(uuid_of(u), u);
        assert_eq!(
            uuid_of("booking-1:confirmed"),
            uuid_of("booking-1:confirmed")
        );
        assert_ne!(
            uuid_of("booking-1:confirmed"),
            uuid_of("booking-2:confirmed")
        );
        assert!(uuid::Uuid::parse_str(&uuid_of("x")).is_ok());
    }
}
