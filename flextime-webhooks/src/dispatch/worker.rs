//! One HTTP attempt: build the signed request, send it, classify the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flextime_core::envelope::STRUCTURED_CONTENT_TYPE;
use flextime_core::{Error, ErrorKind};
use http::HeaderMap;

use super::endpoint::Endpoint;
use super::http::{HttpClient, Target};
use super::schedule::parse_retry_after;
use super::ssrf::SsrfGuard;
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
    // Room for our four, the two the client adds (user-agent, and
    // authorization when the URL carries credentials), the two the HTTP/1
    // client adds on the way out (host, content-length)
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
    client: &HttpClient,
    guard: &SsrfGuard,
    endpoint: &Endpoint,
    signer: Result<Arc<StandardWebhooks>, Error>,
    target: Option<&Target>,
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
    let Some(target) = target else {
        return fail(
            attempt,
            &Error::invalid_input("the endpoint URL does not parse"),
        );
    };
    if let Err(e) = guard.check_url(&target.url) {
        return fail(attempt, &e);
    }
    let body = delivery.body_bytes();
    let headers = match signer.and_then(|signer| headers(endpoint, &signer, delivery, &body, now)) {
        Ok(h) => h,
        Err(e) => return fail(attempt, &e),
    };
    let answer = match client.post(target, headers, body, RESPONSE_BODY_KEPT).await {
        Ok(a) => a,
        Err(e) => return fail(attempt, &e),
    };
    let status = answer.status;
    attempt.status = Some(status);
    let retry_after = if matches!(status, 429 | 502 | 503 | 504) {
        answer
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now))
    } else {
        None
    };
    let (kept, body_error) = (answer.body, answer.body_error);
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
        // What the client (user-agent, authorization from the URL) and
        // hyper's HTTP/1 client (host, content-length) add before the
        // request is written.
        for (name, value) in [
            (http::header::USER_AGENT, "flextime"),
            (http::header::AUTHORIZATION, "Basic dTpw"),
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
