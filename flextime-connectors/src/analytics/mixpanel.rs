//! Mixpanel ingestion: `/track` (project token, up to 50 events a request)
//! and `/import` (service account or project secret, `strict=1`, up to 2000
//! events, per-event errors). `$insert_id` carries the message id, and
//! `time` is sent in milliseconds.

use flextime_core::{Error, Result};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AnalyticsBackend, AnalyticsEvent, BatchResult};
use crate::http::{Auth, HttpClient, HttpClientBuilder};

/// Mixpanel's US ingestion host (`https://api-eu.mixpanel.com` for EU residency).
pub const DEFAULT_BASE_URL: &str = "https://api.mixpanel.com";

/// Which endpoint to use.
#[derive(Debug, Clone)]
pub enum MixpanelMode {
    /// `/track` with the project token (recent events, 50 per request).
    Track {
        /// The project token.
        token: String,
    },
    /// `/import` with credentials (any age, 2000 per request, strict
    /// validation with per-event errors).
    Import {
        /// The project id.
        project_id: String,
        /// A service account (`Auth::basic(user, secret)`) or the project
        /// secret (`Auth::basic(secret, "")`).
        auth: Auth,
    },
}

/// The Mixpanel backend.
#[derive(Debug, Clone)]
pub struct Mixpanel {
    http: HttpClient,
    mode: MixpanelMode,
}

#[derive(Deserialize)]
struct ImportAnswer {
    #[serde(default)]
    num_records_imported: Option<usize>,
    #[serde(default)]
    failed_records: Vec<FailedRecord>,
}

#[derive(Deserialize)]
struct FailedRecord {
    #[serde(default)]
    index: Option<usize>,
    #[serde(rename = "$insert_id", default)]
    insert_id: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl Mixpanel {
    /// A backend for `mode` at `base_url`; `configure` adjusts the HTTP client.
    pub fn new(
        base_url: &str,
        mode: MixpanelMode,
        configure: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder,
    ) -> Result<Self> {
        let mut builder = HttpClient::builder("mixpanel");
        if let MixpanelMode::Import { auth, .. } = &mode {
            builder = builder.auth(auth.clone());
        }
        let http = configure(builder).base_url(base_url)?.build()?;
        Ok(Self { http, mode })
    }

    fn body(&self, events: &[AnalyticsEvent]) -> Value {
        let token = match &self.mode {
            MixpanelMode::Track { token } => Some(token.as_str()),
            MixpanelMode::Import { .. } => None,
        };
        Value::Array(
            events
                .iter()
                .map(|e| {
                    let mut props = e.properties.clone();
                    props.insert("time".into(), json!(e.time.timestamp_millis()));
                    props.insert("distinct_id".into(), json!(e.distinct_id));
                    props.insert("$insert_id".into(), json!(e.insert_id));
                    if let Some(token) = token {
                        props.insert("token".into(), json!(token));
                    }
                    json!({"event": e.name, "properties": props})
                })
                .collect(),
        )
    }
}

#[async_trait::async_trait]
impl AnalyticsBackend for Mixpanel {
    fn name(&self) -> &'static str {
        "mixpanel"
    }

    fn max_batch(&self) -> usize {
        match self.mode {
            MixpanelMode::Track { .. } => 50,
            MixpanelMode::Import { .. } => 2000,
        }
    }

    async fn send(&self, events: &[AnalyticsEvent]) -> Result<BatchResult> {
        let body = self.body(events);
        match &self.mode {
            MixpanelMode::Track { .. } => {
                // `$insert_id` makes a repeated request harmless.
                let resp = self
                    .http
                    .post("track")
                    .idempotent(true)
                    .json(&body)
                    .send()
                    .await?;
                match resp.text()?.trim() {
                    "1" => Ok(BatchResult {
                        accepted: events.len(),
                        rejected: Vec::new(),
                    }),
                    "0" => Err(Error::permanent(
                        "Mixpanel /track refused the batch (answered 0); use /import with strict=1 for per-event errors",
                    )),
                    other => Err(Error::permanent(format!(
                        "malformed response body from Mixpanel /track: {other:?}"
                    ))),
                }
            }
            MixpanelMode::Import { project_id, .. } => {
                let resp = self
                    .http
                    .post("import")
                    .query(&[("strict", "1"), ("project_id", project_id.as_str())])
                    .idempotent(true)
                    .allow_status(StatusCode::BAD_REQUEST)
                    .json(&body)
                    .send()
                    .await?;
                let answer: ImportAnswer = resp.json()?;
                if resp.status() == StatusCode::BAD_REQUEST && answer.failed_records.is_empty() {
                    return Err(Error::invalid_input(format!(
                        "Mixpanel /import refused the batch: {}",
                        String::from_utf8_lossy(resp.bytes())
                    )));
                }
                let rejected: Vec<(String, String)> = answer
                    .failed_records
                    .iter()
                    .map(|f| {
                        let id = f
                            .insert_id
                            .clone()
                            .or_else(|| {
                                f.index
                                    .and_then(|i| events.get(i))
                                    .map(|e| e.insert_id.clone())
                            })
                            .unwrap_or_default();
                        let reason = format!(
                            "{}: {}",
                            f.field.as_deref().unwrap_or("event"),
                            f.message.as_deref().unwrap_or("rejected")
                        );
                        (id, reason)
                    })
                    .collect();
                // Never more than were sent, whatever the answer says.
                let accepted = answer
                    .num_records_imported
                    .unwrap_or(events.len().saturating_sub(rejected.len()))
                    .min(events.len());
                Ok(BatchResult { accepted, rejected })
            }
        }
    }
}
