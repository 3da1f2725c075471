//! The inbound [`Receiver`]: an axum router a host application mounts.
//!
//! For each request to a registered source's path the receiver checks, in
//! order: method (405), client address allow-list (403), per-source rate
//! limit (429 with `Retry-After`), content type (415), body size (413),
//! signature headers (400) and signature (401), timestamp window (401 with
//! its own reason), replay (a duplicate gets 200 and no second hand-off),
//! then hands the event off and answers 200 only once the hand-off
//! succeeded; a failed or slow hand-off is 503 with `Retry-After`, so the
//! provider retries and nothing is lost. The whole request has a deadline
//! (408).
//!
//! Every refusal is a JSON body `{"error": "<reason code>", "message": "..."}`
//! that never reveals a secret or which secret was tried.
//!
//! ```
//! use flextime_webhooks::receiver::{ChannelHandOff, Receiver, SourceConfig};
//! use flextime_webhooks::verify::{GitHub, Tolerance};
//! use std::sync::Arc;
//!
//! let (handoff, mut events) = ChannelHandOff::new(1024);
//! let github = GitHub::new(["my-secret".into()]).unwrap();
//! let receiver = Receiver::builder(handoff)
//!     .source(SourceConfig::new("github", "/hooks/github", Arc::new(github)))
//!     .build()
//!     .unwrap();
//! let app: axum::Router = receiver.router();
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! ```

#[cfg(feature = "db")]
mod db;
mod event;
mod handlers;
mod handoff;
mod idempotency;
#[cfg(feature = "queues")]
mod queue;

#[cfg(feature = "db")]
pub use db::{DbIdempotencyStore, OutboxHandOff, to_outbox_message};
pub use event::InboundEvent;
pub use handlers::{DeadLetter, HandlerWorker, Handlers};
pub use handoff::{ChannelHandOff, DEFAULT_HANDOFF_TIMEOUT, HandOff, HandOffHealth};
pub use idempotency::{Begin, IdempotencyStore, MemoryIdempotencyStore};
#[cfg(feature = "queues")]
pub use queue::{
    INBOUND_EVENT_CONTENT_TYPE, QueueHandOff, from_message, run_queue_handlers, to_message,
};

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use flextime_core::resilience::{RateLimit, RateLimiter};
use flextime_core::telemetry as metric;
use flextime_core::{Envelope, Error, SharedClock, SystemClock};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use ipnet::IpNet;
use serde_json::json;
use tracing::Instrument;

use crate::verify::{Rejection, Verifier, WebhookRequest};

/// Default largest body accepted: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default deadline for a whole request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time an idempotency key is remembered: 7 days, longer than
/// Stripe (3 days), Svix/Standard Webhooks (about 5 days) and GitHub retry.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// One webhook source: a name, a path, a verifier and its limits.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    name: String,
    path: String,
    verifier: Arc<dyn Verifier>,
    max_body: usize,
    content_types: Vec<String>,
    rate_limit: Option<RateLimit>,
    allow: Vec<IpNet>,
    client_ip_header: Option<http::HeaderName>,
    request_timeout: Duration,
    handoff_timeout: Duration,
    idempotency_ttl: Duration,
}

impl SourceConfig {
    /// A source named `name` at `path`, verified by `verifier`, with the
    /// defaults: 1 MiB bodies, JSON or form content, no rate limit, any
    /// client address, 30 s request deadline, 5 s hand-off deadline, keys
    /// remembered 7 days.
    pub fn new(
        name: impl Into<String>,
        path: impl Into<String>,
        verifier: Arc<dyn Verifier>,
    ) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            verifier,
            max_body: DEFAULT_MAX_BODY,
            content_types: vec![
                "application/json".into(),
                "application/x-www-form-urlencoded".into(),
            ],
            rate_limit: None,
            allow: Vec::new(),
            client_ip_header: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            handoff_timeout: DEFAULT_HANDOFF_TIMEOUT,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
        }
    }

    /// The largest body accepted (413 beyond).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The accepted media types (415 otherwise; `+json` suffixes count as
    /// `application/json`). An empty list accepts any content type.
    #[must_use]
    pub fn content_types(mut self, types: Vec<String>) -> Self {
        self.content_types = types;
        self
    }

    /// Limit requests per source (429 with `Retry-After` beyond).
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Accept only clients in these networks (403 otherwise).
    #[must_use]
    pub fn allow_networks(mut self, networks: Vec<IpNet>) -> Self {
        self.allow = networks;
        self
    }

    /// Read the client address from this header's first entry (for example
    /// `x-forwarded-for` behind a proxy you trust) instead of the socket.
    #[must_use]
    pub fn client_ip_header(mut self, header: http::HeaderName) -> Self {
        self.client_ip_header = Some(header);
        self
    }

    /// Deadline for the whole request (408 beyond).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Deadline for the hand-off (503 beyond).
    #[must_use]
    pub fn handoff_timeout(mut self, timeout: Duration) -> Self {
        self.handoff_timeout = timeout;
        self
    }

    /// How long idempotency keys are remembered.
    #[must_use]
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source's path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A refused request, as reported to a [`ReceiverBuilder::on_refusal`] observer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// The source's name.
    pub source: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The reason code (`signature_mismatch`, `timestamp_too_old` ...).
    pub reason: &'static str,
    /// The message sent back (never contains a secret).
    pub message: String,
}

/// Called for every refused request.
pub type RefusalObserver = Arc<dyn Fn(&Refused) + Send + Sync>;

/// Builds a [`Receiver`].
pub struct ReceiverBuilder {
    handoff: Arc<dyn HandOff>,
    idempotency: Arc<dyn IdempotencyStore>,
    clock: SharedClock,
    sources: Vec<SourceConfig>,
    observer: Option<RefusalObserver>,
}

impl std::fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl ReceiverBuilder {
    /// Add a source.
    #[must_use]
    pub fn source(mut self, source: SourceConfig) -> Self {
        self.sources.push(source);
        self
    }

    /// Use this idempotency store (default: in memory).
    #[must_use]
    pub fn idempotency_store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = store;
        self
    }

    /// Use this clock for timestamp windows (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Report every refused request to `observer` (for audit logs, or the
    /// example binary's stderr lines).
    #[must_use]
    pub fn on_refusal(mut self, observer: impl Fn(&Refused) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Check the configuration and build the receiver.
    pub fn build(self) -> Result<Receiver, Error> {
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        if self.sources.is_empty() {
            return Err(Error::invalid_input("receiver: no source configured"));
        }
        let mut sources = Vec::new();
        for s in self.sources {
            if s.name.is_empty() || !names.insert(s.name.clone()) {
                return Err(Error::invalid_input(format!(
                    "receiver: source name {:?} is empty or used twice",
                    s.name
                )));
            }
            if !s.path.starts_with('/') || !paths.insert(s.path.clone()) {
                return Err(Error::invalid_input(format!(
                    "receiver: source {:?}: path {:?} must start with / and be unique",
                    s.name, s.path
                )));
            }
            let limiter = s
                .rate_limit
                .map(|limit| RateLimiter::new(format!("webhooks:{}", s.name), limit));
            sources.push(Arc::new(SourceState {
                config: s,
                limiter,
                handoff: Arc::clone(&self.handoff),
                idempotency: Arc::clone(&self.idempotency),
                clock: Arc::clone(&self.clock),
                observer: self.observer.clone(),
            }));
        }
        Ok(Receiver { sources })
    }
}

/// The inbound webhook receiver; see the module docs.
#[derive(Debug, Clone)]
pub struct Receiver {
    sources: Vec<Arc<SourceState>>,
}

struct SourceState {
    config: SourceConfig,
    limiter: Option<RateLimiter>,
    handoff: Arc<dyn HandOff>,
    idempotency: Arc<dyn IdempotencyStore>,
    clock: SharedClock,
    observer: Option<RefusalObserver>,
}

impl std::fmt::Debug for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Start building a receiver that hands accepted events to `handoff`.
    pub fn builder(handoff: impl HandOff + 'static) -> ReceiverBuilder {
        Self::builder_shared(Arc::new(handoff))
    }

    /// Like [`Receiver::builder`] with a shared hand-off.
    pub fn builder_shared(handoff: Arc<dyn HandOff>) -> ReceiverBuilder {
        ReceiverBuilder {
            handoff,
            idempotency: Arc::new(MemoryIdempotencyStore::default()),
            clock: Arc::new(SystemClock),
            sources: Vec::new(),
            observer: None,
        }
    }

    /// The router: one route per source. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so allow-lists
    /// see the client address.
    pub fn router(&self) -> Router {
        let mut router = Router::new();
        for source in &self.sources {
            let state = Arc::clone(source);
            router = router.route(
                &source.config.path,
                any(move |request: Request| {
                    let state = Arc::clone(&state);
                    async move { state.handle(request).await }
                }),
            );
        }
        router
    }
}

/// A refusal: status, reason code, message, optional Retry-After seconds.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d.as_secs() + u64::from(d.subsec_nanos() > 0));
        self
    }
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Self {
        Refusal::new(r.status(), r.code(), r.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

fn accepted(status: &str, id: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"status": status, "id": id})),
    )
        .into_response()
}

/// The media type without parameters, lowercased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

impl SourceState {
    async fn handle(self: Arc<Self>, request: Request) -> Response {
        let source = self.config.name.clone();
        let span = tracing::info_span!(
            "webhooks.receive",
            source = %source,
            idempotency_key = tracing::field::Empty,
            status = tracing::field::Empty
        );
        metrics::counter!(metric::WEBHOOKS_RECEIVED, "source" => source.clone()).increment(1);
        let in_flight = metrics::gauge!(metric::WEBHOOKS_IN_FLIGHT, "source" => source.clone());
        in_flight.increment(1.0);
        let deadline = self.config.request_timeout;
        let outcome = tokio::time::timeout(deadline, self.process(request))
            .instrument(span.clone())
            .await;
        in_flight.decrement(1.0);
        let response = match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(refusal)) => self.refuse(refusal),
            Err(_) => self.refuse(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request did not complete within {} s",
                    deadline.as_secs()
                ),
            )),
        };
        span.record("status", response.status().as_u16());
        response
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        metrics::counter!(
            metric::WEBHOOKS_REJECTED,
            "source" => self.config.name.clone(),
            "reason" => refusal.code
        )
        .increment(1);
        tracing::info!(source = %self.config.name, reason = refusal.code, message = %refusal.message, "webhook refused");
        if let Some(observer) = &self.observer {
            observer(&Refused {
                source: self.config.name.clone(),
                status: refusal.status.as_u16(),
                reason: refusal.code,
                message: refusal.message.clone(),
            });
        }
        refusal.into_response()
    }

    fn client_ip(&self, request: &Request) -> Option<IpAddr> {
        if let Some(name) = &self.config.client_ip_header {
            return request
                .headers()
                .get(name)?
                .to_str()
                .ok()?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok();
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    }

    async fn process(&self, request: Request) -> Result<Response, Refusal> {
        let config = &self.config;
        if request.method() != Method::POST {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed; webhooks are POSTed", request.method()),
            ));
        }
        if !config.allow.is_empty() {
            let ip = self.client_ip(&request);
            let allowed = ip.is_some_and(|ip| {
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 @ IpAddr::V4(_) => v4,
                };
                config.allow.iter().any(|net| net.contains(&ip))
            });
            if !allowed {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_address",
                    "the client address is not allowed for this source",
                ));
            }
        }
        if let Some(limiter) = &self.limiter
            && let Err(e) = limiter.try_acquire()
        {
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this source",
            )
            .retry_after(e.retry_after().unwrap_or(Duration::from_secs(1))));
        }
        let media = media_type(request.headers());
        if !config.content_types.is_empty() {
            let ok = media.as_deref().is_some_and(|m| {
                config.content_types.iter().any(|allowed| {
                    allowed.eq_ignore_ascii_case(m) || (allowed == "application/json" && is_json(m))
                })
            });
            if !ok {
                return Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "content type {} is not accepted (accepted: {})",
                        media.as_deref().unwrap_or("(none)"),
                        config.content_types.join(", ")
                    ),
                ));
            }
        }
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {} bytes", config.max_body),
            )
        };
        if let Some(len) = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > config.max_body as u64
        {
            return Err(too_large());
        }
        let (parts, body) = request.into_parts();
        let body: Bytes = axum::body::to_bytes(Body::new(body), config.max_body)
            .await
            .map_err(|e| {
                if std::error::Error::source(&e)
                    .is_some_and(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>)
                {
                    too_large()
                } else {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "body_unreadable",
                        "the body could not be read",
                    )
                }
            })?;
        let now = self.clock.now().timestamp();
        let verified = config.verifier.verify(
            &WebhookRequest {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
                body: &body,
            },
            now,
        )?;
        let key = verified.idempotency_key.clone().filter(|k| !k.is_empty());
        if let Some(k) = &key {
            tracing::Span::current().record("idempotency_key", k.as_str());
            let begin = self
                .idempotency
                .begin(
                    &config.name,
                    k,
                    config.handoff_timeout * 2 + Duration::from_secs(1),
                )
                .await
                .map_err(|e| {
                    Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "idempotency_unavailable",
                        format!("replay protection is unavailable: {}", e.kind()),
                    )
                    .retry_after(Duration::from_secs(5))
                })?;
            match begin {
                Begin::New => {}
                Begin::Done => {
                    metrics::counter!(metric::WEBHOOKS_DUPLICATES, "source" => config.name.clone())
                        .increment(1);
                    return Ok(accepted("duplicate", k));
                }
                Begin::InProgress => {
                    return Err(Refusal::new(
                        StatusCode::CONFLICT,
                        "duplicate_in_progress",
                        "a delivery with this idempotency key is being processed",
                    )
                    .retry_after(Duration::from_secs(1)));
                }
            }
        }
        let event = self.build_event(
            &parts.headers,
            media.as_deref(),
            body,
            &verified,
            key.as_deref(),
        );
        let id = event.envelope.id().to_owned();
        let started = Instant::now();
        let handed =
            tokio::time::timeout(config.handoff_timeout, self.handoff.hand_off(event)).await;
        metrics::histogram!(metric::WEBHOOKS_HANDOFF_SECONDS, "source" => config.name.clone())
            .record(started.elapsed().as_secs_f64());
        let failure = match handed {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("the event could not be handed off ({})", e.kind())),
            Err(_) => Some(format!(
                "the hand-off did not finish within {} ms",
                config.handoff_timeout.as_millis()
            )),
        };
        if let Some(message) = failure {
            if let Some(k) = &key {
                // Best effort: an unreleased reservation expires by itself.
                let _ = self.idempotency.release(&config.name, k).await;
            }
            return Err(
                Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "handoff_failed", message)
                    .retry_after(Duration::from_secs(5)),
            );
        }
        if let Some(k) = &key
            && let Err(e) = self
                .idempotency
                .complete(&config.name, k, config.idempotency_ttl)
                .await
        {
            // The event is safe; at worst a retry is handed off twice (at-least-once).
            tracing::warn!(error = %e, "could not record the idempotency key");
        }
        Ok(accepted("accepted", &id))
    }

    fn build_event(
        &self,
        headers: &HeaderMap,
        media: Option<&str>,
        body: Bytes,
        verified: &crate::verify::Verified,
        key: Option<&str>,
    ) -> InboundEvent {
        let config = &self.config;
        let event_type = verified
            .event_type
            .clone()
            .unwrap_or_else(|| "webhook.received".to_owned());
        let mut envelope =
            Envelope::new(config.name.clone(), event_type).with_time(self.clock.now());
        if let Some(k) = key {
            envelope = envelope.with_id(k);
        }
        let json_body = match media {
            Some(m) if is_json(m) => serde_json::from_slice::<serde_json::Value>(&body).ok(),
            Some("application/x-www-form-urlencoded") => {
                let mut map = serde_json::Map::new();
                for (k, v) in form_urlencoded::parse(&body) {
                    map.insert(k.into_owned(), serde_json::Value::String(v.into_owned()));
                }
                Some(serde_json::Value::Object(map))
            }
            _ => None,
        };
        envelope = match json_body {
            Some(value) => envelope.with_data_json(value),
            None if body.is_empty() => envelope,
            None => envelope.with_data_binary(
                body.clone(),
                media.unwrap_or("application/octet-stream").to_owned(),
            ),
        };
        InboundEvent {
            envelope,
            source: config.name.clone(),
            scheme: config.verifier.scheme().to_owned(),
            idempotency_key: key.map(str::to_owned),
            raw_body: body,
            headers: event::kept_headers(headers),
        }
    }
}
