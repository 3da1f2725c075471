//! One HTTP attempt: build the signed request, send it, classify the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flextime_core::envelope::STRUCTURED_CONTENT_TYPE;
use flextime_core::{Error, ErrorKind};
use http::HeaderMap;

use super::endpoint::Endpoint;
use super::schedule::parse_retry_after;
use super::ssrf::{SsrfGuard, refused_in};
use super::store::{Attempt, DeliveryRecord, RESPONSE_BODY_KEPT};
use crate::verify::standard::StandardWebhooks;

const WEBHOOK_ID: http::HeaderName = http::HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: http::HeaderName = http::HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: http::HeaderName = http::HeaderName::from_static("webhook-signature");

/// What an attempt came to.
#[derive(Debug)]
pub(crate) struct AttemptResult {
    pub attempt: Attempt,
    /// The server asked to wait this long (429, 502, 503, 504 only).
    pub retry_after: Option<Duration>,
}

impl AttemptResult {
    pub fn gone(&self) -> bool {
        self.attempt.status == Some(410)
    }
}

/// Build the request headers of one attempt (Standard Webhooks + custom).
pub(crate) fn headers(
    endpoint: &Endpoint,
    signer: &StandardWebhooks,
    delivery: &DeliveryRecord,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<HeaderMap, Error> {
    let ts = now.timestamp();
    let signature = signer.sign(&delivery.message_id, ts, body);
    // Room for our four, the client's two defaults (user-agent, accept),
    // the two the HTTP/1 client adds on the way out (host, content-length)
    // and the endpoint's own: the map never regrows (a regrow is two more
    // allocations and a rehash per request).
    let mut h = HeaderMap::with_capacity(8 + endpoint.headers.len());
    for (name, value) in &endpoint.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    let bad = |what: &str| Error::invalid_input(format!("delivery {}: bad {what}", delivery.id));
    h.insert(
        WEBHOOK_ID,
        http::HeaderValue::from_str(&delivery.message_id).map_err(|_| bad("message id"))?,
    );
    h.insert(WEBHOOK_TIMESTAMP, http::HeaderValue::from(ts));
    h.insert(
        WEBHOOK_SIGNATURE,
        // Takes the string's buffer, no copy.
        http::HeaderValue::try_from(signature).map_err(|_| bad("signature"))?,
    );
    let content_type = if delivery.content_type == STRUCTURED_CONTENT_TYPE {
        http::HeaderValue::from_static(STRUCTURED_CONTENT_TYPE)
    } else {
        http::HeaderValue::from_str(&delivery.content_type).map_err(|_| bad("content type"))?
    };
    h.insert(http::header::CONTENT_TYPE, content_type);
    Ok(h)
}

/// Make one attempt.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn attempt(
    client: &reqwest::Client,
    guard: &SsrfGuard,
    endpoint: &Endpoint,
    signer: Result<Arc<StandardWebhooks>, Error>,
    url: Option<&url::Url>,
    delivery: &DeliveryRecord,
    number: u32,
    now: DateTime<Utc>,
) -> AttemptResult {
    let started = Instant::now();
    let mut attempt = Attempt {
        attempt: number,
        at: now,
        status: None,
        latency_ms: 0,
        response_body: String::new(),
        error_kind: None,
        error: None,
    };
    let fail = |mut attempt: Attempt, e: &Error| {
        attempt.error_kind = Some(e.kind());
        attempt.error = Some(e.to_string());
        attempt.latency_ms = elapsed_ms(started);
        AttemptResult {
            attempt,
            retry_after: None,
        }
    };
    let Some(url) = url else {
        return fail(
            attempt,
            &Error::invalid_input("the endpoint URL does not parse"),
        );
    };
    if let Err(e) = guard.check_url(url) {
        return fail(attempt, &e);
    }
    let body = delivery.body_bytes();
    let headers = match signer.and_then(|signer| headers(endpoint, &signer, delivery, &body, now)) {
        Ok(h) => h,
        Err(e) => return fail(attempt, &e),
    };
    // A request built whole: the client adds its default headers and its
    // timeout on execute, without merging a second header map.
    let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
    *request.headers_mut() = headers;
    *request.body_mut() = Some(body.into());
    let response = client.execute(request).await;
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return fail(attempt, &classify(e)),
    };
    let status = response.status().as_u16();
    attempt.status = Some(status);
    let retry_after = if matches!(status, 429 | 502 | 503 | 504) {
        response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now))
    } else {
        None
    };
    let mut kept = Vec::new();
    let mut body_error = None;
    while kept.len() < RESPONSE_BODY_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_BODY_KEPT - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => {
                body_error = Some(classify(e));
                break;
            }
        }
    }
    attempt.response_body = String::from_utf8_lossy(&kept).into_owned();
    attempt.latency_ms = elapsed_ms(started);
    if (200..300).contains(&status) {
        if let Some(e) = body_error.filter(|e| e.kind() == ErrorKind::Timeout) {
            // The answer was 2xx; a slow body after it still counts as delivered.
            tracing::debug!(endpoint = %endpoint.id, error = %e, "response body timed out after 2xx");
        }
    } else {
        let e = match status {
            300..=399 => Error::permanent(format!("HTTP {status}: redirects are not followed")),
            410 => Error::permanent("HTTP 410 Gone: the endpoint is disabled"),
            429 => Error::rate_limited(format!("HTTP {status}"), retry_after),
            500..=599 => Error::unavailable(format!("HTTP {status}")),
            _ => Error::permanent(format!("HTTP {status}")),
        };
        attempt.error_kind = Some(e.kind());
        attempt.error = Some(e.to_string());
    }
    AttemptResult {
        attempt,
        retry_after,
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn classify(e: reqwest::Error) -> Error {
    // The URL may carry credentials: never print it.
    let e = e.without_url();
    if let Some(message) = refused_in(&e) {
        return Error::forbidden(message);
    }
    if e.is_timeout() {
        return Error::timeout("the endpoint did not answer in time");
    }
    if e.is_connect() {
        return Error::unavailable(format!("could not connect: {}", source_text(&e)));
    }
    Error::unavailable(format!("request failed: {}", source_text(&e)))
}

fn source_text(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&err.to_string());
        cur = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_map_holds_what_the_client_adds_without_regrowing() {
        let endpoint = Endpoint::new("ep", "http://127.0.0.1:9/hooks")
            .with_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let now = chrono::Utc::now();
        let signer = endpoint.signer(now).unwrap();
        let delivery: DeliveryRecord = serde_json::from_value(serde_json::json!({
            "id": "msg_1.ep", "message_id": "msg_1", "endpoint_id": "ep",
            "event_id": "evt-1", "event_type": "booking.created", "body": "{}",
            "content_type": STRUCTURED_CONTENT_TYPE, "status": "pending",
            "created_at": now,
        }))
        .unwrap();
        let mut h = headers(&endpoint, &signer, &delivery, b"{}", now).unwrap();
        let capacity = h.capacity();
        // What reqwest (user-agent, accept) and hyper's HTTP/1 client (host,
        // content-length) add before the request is written.
        for (name, value) in [
            (http::header::USER_AGENT, "flextime"),
            (http::header::ACCEPT, "*/*"),
            (http::header::HOST, "127.0.0.1:9"),
            (http::header::CONTENT_LENGTH, "2"),
        ] {
            h.entry(name)
                .or_insert_with(|| http::HeaderValue::from_static(value));
        }
        assert_eq!(h.len(), 8);
        assert_eq!(h.capacity(), capacity, "the map regrew");
    }
}
