//! [`HttpClient`]: one reqwest client with retries, rate limits, auth and
//! redacted tracing, shared by every HTTP connector.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flextime_core::resilience::{Jitter, RateLimit, RateLimiter, RetryPolicy};
use flextime_core::telemetry::{CONNECTOR_REQUEST_SECONDS, CONNECTOR_REQUESTS, RATE_LIMITED};
use flextime_core::{Error, ErrorKind, Result};
use http::header::{CONTENT_TYPE, ETAG, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, StatusCode};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::Auth;
use super::ratelimit::{RateLimitHeaders, parse_retry_after};
use super::redact::{Redactor, excerpt};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default largest response body (32 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// A header whose presence makes a POST or PATCH safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The HTTP client every HTTP connector uses. Cheap to clone.
///
/// Every request:
/// - waits while the peer asked the client to pause (`Retry-After`, or an
///   exhausted `X-RateLimit-*` / `RateLimit-*` window: the longest wins), then
///   takes a token from the client-side bucket, if one is configured;
/// - carries the configured [`Auth`] (an OAuth2 token is refreshed before it
///   expires, and once more after a 401);
/// - is retried with exponential backoff and full jitter on 5xx, 408, 429 and
///   network errors, up to the [`RetryPolicy`]'s attempts. A POST or PATCH is
///   retried only when it is marked [`idempotent`](RequestBuilder::idempotent)
///   or carries an `Idempotency-Key`, or when it was certainly not processed
///   (429, connection refused);
/// - is traced (`connector.request` span) and counted
///   (`flextime_connector_requests_total`) with credentials redacted from the
///   URL and headers;
/// - ends as a [`Response`] for 2xx (and any status the caller allowed), or a
///   typed [`Error`]: 400/422 `InvalidInput`, 401 `Unauthorized`, 403
///   `Forbidden`, 404 `NotFound`, 409/412 `Conflict`, 408 `Timeout`, 429
///   `RateLimited` (with `retry_after`), 5xx `Unavailable`, other statuses
///   `Permanent`; the error message quotes the peer's own message.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    base: Url,
    http: reqwest::Client,
    auth: Auth,
    retry: RetryPolicy,
    limiter: Option<RateLimiter>,
    default_headers: HeaderMap,
    redactor: Redactor,
    pause_until: Mutex<Option<Instant>>,
    timeout: Duration,
    observers: Vec<Observer>,
    max_response_bytes: usize,
}

/// Called with every response a client receives (every attempt, before
/// status mapping): the request's method and URL and the response. Contract
/// tests use it to read Prism's `sl-violations` header; hosts can use it for
/// auditing. It must not block.
pub type Observer = Arc<dyn Fn(&Method, &Url, &Response) + Send + Sync>;

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("name", &self.inner.name)
            .field("base", &self.inner.redactor.url(&self.inner.base))
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

/// Builds an [`HttpClient`].
#[must_use]
pub struct HttpClientBuilder {
    name: String,
    base: Option<Url>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    rate_limit: Option<RateLimit>,
    auth: Auth,
    user_agent: String,
    default_headers: HeaderMap,
    redactor: Redactor,
    reqwest: Option<reqwest::Client>,
    observers: Vec<Observer>,
    max_response_bytes: usize,
}

impl HttpClientBuilder {
    /// The largest response body read (default 32 MiB); a larger one is a
    /// typed `Permanent` error, never an out-of-memory.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Calls `observer` with every response (see [`Observer`]).
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observers.push(observer);
        self
    }

    /// The base URL relative paths resolve against. Every connector takes one
    /// so tests and proxies can point it elsewhere.
    pub fn base_url(mut self, url: &str) -> Result<Self> {
        let mut parsed = Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("base URL {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::invalid_input(format!(
                "base URL must be http or https, not {}",
                parsed.scheme()
            )));
        }
        if !parsed.path().ends_with('/') {
            let path = format!("{}/", parsed.path());
            parsed.set_path(&path);
        }
        self.base = Some(parsed);
        Ok(self)
    }

    /// The timeout of one attempt (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The TCP/TLS connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The retry policy (default: 4 attempts, 250 ms doubling to 30 s, full
    /// jitter, `Retry-After` honoured up to 5 minutes).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// A client-side token bucket every request takes from.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// How requests authenticate.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The User-Agent (default `flextime-connectors/VERSION (NAME)`).
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// A header sent with every request (a vendor API version, ...).
    pub fn default_header(mut self, name: &str, value: &str) -> Result<Self> {
        let (name, value) = header_pair(name, value)?;
        self.default_headers.insert(name, value);
        Ok(self)
    }

    /// Another header whose value is never logged (`Authorization`, `Cookie`,
    /// `Proxy-Authorization` and any header with `key`, `token`, `secret`,
    /// `signature` or `password` in its name are always redacted).
    pub fn redact_header(mut self, name: &str) -> Self {
        self.redactor.add_header(name);
        self
    }

    /// Another query parameter whose value is never logged (`key`, `api_key`,
    /// `token`, `access_token`, `client_secret`, `code`, `sig` ... always are).
    pub fn redact_query_param(mut self, name: &str) -> Self {
        self.redactor.add_query_param(name);
        self
    }

    /// Use this reqwest client (its own TLS or proxy settings) instead of a
    /// new one; `timeout` and `connect_timeout` are then the caller's to set
    /// on it, except the per-request timeout, which still applies.
    pub fn reqwest_client(mut self, client: reqwest::Client) -> Self {
        self.reqwest = Some(client);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<HttpClient> {
        let base = self.base.ok_or_else(|| {
            Error::invalid_input(format!("{}: no base URL configured", self.name))
        })?;
        let http = match self.reqwest {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::internal("cannot build the HTTP client").with_source(e))?,
        };
        let mut default_headers = self.default_headers;
        let agent = HeaderValue::from_str(&self.user_agent)
            .map_err(|_| Error::invalid_input("the user agent is not a valid header value"))?;
        default_headers.insert(USER_AGENT, agent);
        let limiter = self
            .rate_limit
            .map(|limit| RateLimiter::new(self.name.clone(), limit));
        Ok(HttpClient {
            inner: Arc::new(Inner {
                name: self.name,
                base,
                http,
                auth: self.auth,
                retry: self.retry,
                limiter,
                default_headers,
                redactor: self.redactor,
                pause_until: Mutex::new(None),
                timeout: self.timeout,
                observers: self.observers,
                max_response_bytes: self.max_response_bytes,
            }),
        })
    }
}

/// The default retry policy of connectors.
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(30),
        factor: 2.0,
        jitter: Jitter::Full,
        max_retry_after: Duration::from_secs(300),
    }
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::invalid_input(format!("{name:?} is not a header name")))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| Error::invalid_input(format!("the value of header {name} is not valid")))?;
    Ok((name, value))
}

impl HttpClient {
    /// A builder for a client named `name` (the connector's name, used in
    /// logs, metrics and error messages).
    pub fn builder(name: impl Into<String>) -> HttpClientBuilder {
        let name = name.into();
        HttpClientBuilder {
            user_agent: format!("flextime-connectors/{} ({name})", env!("CARGO_PKG_VERSION")),
            name,
            base: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            retry: default_retry_policy(),
            rate_limit: None,
            auth: Auth::None,
            default_headers: HeaderMap::new(),
            redactor: Redactor::default(),
            reqwest: None,
            observers: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The connector name this client was built for.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The auth this client uses.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// Resolves `path` against the base URL. A path may carry a query string;
    /// an absolute `http(s)://` URL (a next link from the peer) is taken as is
    /// when it has the base URL's origin, and refused otherwise so a peer
    /// cannot send credentials elsewhere.
    pub fn url(&self, path: &str) -> Result<Url> {
        if path.starts_with("http://") || path.starts_with("https://") {
            let url = Url::parse(path)
                .map_err(|e| Error::invalid_input(format!("{path:?} is not a URL: {e}")))?;
            if url.origin() != self.inner.base.origin() {
                return Err(Error::invalid_input(format!(
                    "{}: refusing to follow a link to another origin ({})",
                    self.inner.name,
                    self.inner.redactor.url(&url)
                )));
            }
            return Ok(url);
        }
        self.inner
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::invalid_input(format!("{path:?} is not a valid path: {e}")))
    }

    /// A request with `method` to `path` (see [`url`](Self::url)).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            url: self.url(path),
            method,
            headers: HeaderMap::new(),
            body: None,
            idempotent: None,
            allowed: Vec::new(),
            auth: true,
            error: None,
        }
    }

    /// A GET request.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A POST request.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A PUT request.
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    /// A PATCH request.
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    /// A DELETE request.
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// How long requests are held back because the peer asked for a pause
    /// (`Retry-After`, an exhausted rate-limit window), if they are.
    pub fn pause_remaining(&self) -> Option<Duration> {
        let until = (*self
            .inner
            .pause_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))?;
        until.checked_duration_since(Instant::now())
    }

    /// Waits while the peer asked us to pause, then for a token.
    async fn admit(&self) {
        loop {
            let until = *self
                .inner
                .pause_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until.into()).await;
                }
                _ => break,
            }
        }
        if let Some(limiter) = &self.inner.limiter {
            limiter.acquire().await;
        }
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self
            .inner
            .pause_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }
}

/// One request being built. Finish it with [`send`](Self::send) or
/// [`send_json`](Self::send_json).
#[must_use]
pub struct RequestBuilder {
    client: HttpClient,
    url: Result<Url>,
    method: Method,
    headers: HeaderMap,
    body: Option<(Bytes, HeaderValue)>,
    idempotent: Option<bool>,
    allowed: Vec<StatusCode>,
    auth: bool,
    error: Option<Error>,
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match header_pair(name, value) {
            Ok((name, value)) => {
                self.headers.append(name, value);
            }
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// `If-Match: etag` when there is one (a version precondition: a stale
    /// tag makes the peer answer 412, a `Conflict`).
    pub fn if_match(self, etag: Option<&str>) -> Self {
        match etag {
            Some(etag) => self.header("If-Match", etag),
            None => self,
        }
    }

    /// Adds query parameters.
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        if let Ok(url) = &mut self.url {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k.as_ref(), v.as_ref());
            }
        }
        self
    }

    /// A JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some((
                    Bytes::from(bytes),
                    HeaderValue::from_static("application/json"),
                ));
            }
            Err(e) => {
                self.error =
                    Some(Error::invalid_input("the request body is not JSON").with_source(e));
            }
        }
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        let mut encoder = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            encoder.append_pair(k.as_ref(), v.as_ref());
        }
        self.body = Some((
            Bytes::from(encoder.finish()),
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        ));
        self
    }

    /// A raw body with its content type.
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> Self {
        match HeaderValue::from_str(content_type) {
            Ok(ct) => self.body = Some((body.into(), ct)),
            Err(_) => {
                self.error = Some(Error::invalid_input(
                    "the content type is not a header value",
                ));
            }
        }
        self
    }

    /// Marks a POST or PATCH as safe to retry (or a PUT or DELETE as unsafe).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// Returns this non-2xx status as a [`Response`] instead of an error
    /// (304 for a conditional GET, 410 for an expired sync token ...).
    pub fn allow_status(mut self, status: StatusCode) -> Self {
        self.allowed.push(status);
        self
    }

    /// Sends no credentials with this request (a token endpoint, a public feed).
    pub fn without_auth(mut self) -> Self {
        self.auth = false;
        self
    }

    /// Sends the request and reads the body of a JSON response into `T`.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T> {
        self.send().await?.json()
    }

    /// Sends the request, with retries.
    pub async fn send(self) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let url = self.url?;
        let client = self.client;
        let inner = &client.inner;
        let idempotent = self.idempotent.unwrap_or_else(|| {
            matches!(
                self.method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
            ) || self.headers.contains_key(IDEMPOTENCY_KEY)
        });
        let shown_url = inner.redactor.url(&url);
        let span = tracing::debug_span!(
            "connector.request",
            connector = %inner.name,
            method = %self.method,
            url = %shown_url,
        );
        let policy = &inner.retry;
        let timeout = inner.timeout;
        let mut attempt: u32 = 0;
        let mut refreshed_after_401 = false;
        loop {
            attempt += 1;
            client.admit().await;
            let mut req = inner.http.request(self.method.clone(), url.clone());
            let mut headers = inner.default_headers.clone();
            for (k, v) in &self.headers {
                headers.append(k.clone(), v.clone());
            }
            if let Some((_, ct)) = &self.body {
                headers.insert(CONTENT_TYPE, ct.clone());
            }
            if self.auth {
                req = inner.auth.apply(&mut headers, req).await?;
            }
            tracing::trace!(
                parent: &span,
                attempt,
                headers = ?inner.redactor.headers(&headers),
                "sending"
            );
            req = req.headers(headers).timeout(timeout);
            if let Some((body, _)) = &self.body {
                req = req.body(body.clone());
            }
            let started = Instant::now();
            let outcome = req.send().await;
            let elapsed = started.elapsed();
            let result = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let final_url = resp.url().clone();
                    let body = read_limited(resp, inner.max_response_bytes).await;
                    record(&inner.name, status.as_str(), elapsed);
                    tracing::debug!(
                        parent: &span,
                        attempt,
                        status = status.as_u16(),
                        latency_ms = elapsed.as_millis(),
                        "response"
                    );
                    match body {
                        Ok(Some(body)) => Ok(Response {
                            status,
                            headers,
                            body,
                            url: final_url,
                        }),
                        Ok(None) => {
                            return Err(Error::permanent(format!(
                                "{}: {} {shown_url}: the response body is larger than {} bytes",
                                inner.name, self.method, inner.max_response_bytes
                            )));
                        }
                        Err(e) => Err(network_error(&inner.name, &self.method, &shown_url, &e)),
                    }
                }
                Err(e) => {
                    record(&inner.name, "error", elapsed);
                    tracing::debug!(parent: &span, attempt, error = %e, "request failed");
                    Err(network_error(&inner.name, &self.method, &shown_url, &e))
                }
            };
            let (error, safe_to_retry) = match result {
                Ok(resp) => {
                    for observer in &inner.observers {
                        observer(&self.method, &url, &resp);
                    }
                    let limits = RateLimitHeaders::read(&resp.headers);
                    if let Some(wait) = limits.exhausted_wait() {
                        client.pause_for(wait.min(policy.max_retry_after));
                    }
                    if resp.status.is_success() || self.allowed.contains(&resp.status) {
                        return Ok(resp);
                    }
                    if resp.status == StatusCode::UNAUTHORIZED
                        && self.auth
                        && !refreshed_after_401
                        && inner.auth.can_refresh()
                    {
                        refreshed_after_401 = true;
                        inner.auth.invalidate().await?;
                        attempt -= 1;
                        continue;
                    }
                    let err = status_error(&inner.name, &self.method, &shown_url, &resp, &limits);
                    let not_processed = resp.status == StatusCode::TOO_MANY_REQUESTS;
                    (err, idempotent || not_processed)
                }
                Err((err, not_sent)) => (err, idempotent || not_sent),
            };
            let attempts_left =
                usize::try_from(attempt).unwrap_or(usize::MAX) < policy.max_attempts;
            if !(error.is_retryable() && safe_to_retry && attempts_left) {
                return Err(error);
            }
            let wait = backoff(policy, attempt, error.retry_after());
            if error.kind() == ErrorKind::RateLimited {
                metrics::counter!(RATE_LIMITED, "connector" => inner.name.clone()).increment(1);
            }
            if let Some(asked) = error.retry_after() {
                if asked > policy.max_retry_after {
                    return Err(error);
                }
                client.pause_for(wait);
            }
            tracing::debug!(
                parent: &span,
                attempt,
                wait_ms = wait.as_millis(),
                error = %error,
                "retrying"
            );
            metrics::counter!(flextime_core::telemetry::RETRIES, "kind" => error.kind().as_str())
                .increment(1);
            tokio::time::sleep(wait).await;
        }
    }
}

/// Reads a body of at most `limit` bytes; `None` when it is larger (the
/// rest is not read).
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> std::result::Result<Option<Bytes>, reqwest::Error> {
    if resp
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit))
    {
        return Ok(None);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

fn record(name: &str, status: &str, elapsed: Duration) {
    metrics::counter!(CONNECTOR_REQUESTS, "connector" => name.to_owned(), "status" => status.to_owned())
        .increment(1);
    metrics::histogram!(CONNECTOR_REQUEST_SECONDS, "connector" => name.to_owned())
        .record(elapsed.as_secs_f64());
}

/// The wait before retry number `attempt`: exponential backoff with full
/// jitter, raised to what the peer asked for (the strictest wins).
fn backoff(policy: &RetryPolicy, attempt: u32, asked: Option<Duration>) -> Duration {
    let base = policy.base_delay(attempt);
    let jittered = match policy.jitter {
        Jitter::None => base,
        Jitter::Full => {
            let max = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(rand::rng().random_range(0..=max))
        }
    };
    asked.map_or(jittered, |asked| jittered.max(asked))
}

/// A network failure as a typed error, and whether the request certainly
/// never reached the peer.
fn network_error(name: &str, method: &Method, url: &str, e: &reqwest::Error) -> (Error, bool) {
    let what = format!("{name}: {method} {url}");
    if e.is_timeout() {
        (Error::timeout(format!("{what} timed out")), false)
    } else if e.is_connect() {
        (
            Error::unavailable(format!("{what}: cannot connect: {}", root_cause(e))),
            true,
        )
    } else if e.is_builder() {
        (
            Error::invalid_input(format!("{what}: invalid request: {}", root_cause(e))),
            false,
        )
    } else {
        (
            Error::unavailable(format!("{what}: request failed: {}", root_cause(e))),
            false,
        )
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Maps a non-success response to a typed error quoting the peer's message.
fn status_error(
    name: &str,
    method: &Method,
    url: &str,
    resp: &Response,
    limits: &RateLimitHeaders,
) -> Error {
    let status = resp.status;
    let detail = peer_message(&resp.body);
    let message = if detail.is_empty() {
        format!("{name}: {method} {url} returned {status}")
    } else {
        format!("{name}: {method} {url} returned {status}: {detail}")
    };
    let retry_after = parse_retry_after(&resp.headers).or_else(|| limits.exhausted_wait());
    match status.as_u16() {
        400 | 422 => Error::invalid_input(message),
        401 => Error::unauthorized(message),
        403 if retry_after.is_some() || detail.contains("ateLimitExceeded") => {
            Error::rate_limited(message, retry_after)
        }
        403 => Error::new(ErrorKind::Forbidden, message),
        404 => Error::not_found(message),
        408 => Error::timeout(message),
        409 | 412 => Error::conflict(message),
        429 => Error::rate_limited(message, retry_after),
        500..=599 => Error::unavailable(message).with_retry_after(retry_after),
        _ => Error::permanent(message),
    }
}

/// The peer's own error message, from the usual JSON shapes (`message`,
/// `error.message`, `error_description`, `detail`, `errors[0].message`), or
/// the start of the body. The machine-readable fields next to the message
/// are kept too: Stripe's `error.type`, `error.code`, `error.decline_code`
/// and `error.param`, Twilio's top-level `code` (`(code 21211)`).
fn peer_message(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            ("/error", value.pointer("/error/message")),
            ("", value.pointer("/message")),
            ("", value.pointer("/error_description")),
            ("", value.pointer("/detail")),
            ("", value.pointer("/errors/0/message")),
            ("", value.pointer("/error")),
        ];
        for (parent, candidate) in candidates {
            if let Some(s) = candidate.and_then(serde_json::Value::as_str) {
                let details = peer_error_details(&value, parent);
                let message = excerpt(s, 500);
                return if details.is_empty() {
                    message
                } else {
                    format!("{message} ({details})")
                };
            }
        }
    }
    excerpt(&String::from_utf8_lossy(body), 300)
}

/// `type X, code Y, param Z` from the object at `parent` that holds the
/// message (text or integer members only, each cut short).
fn peer_error_details(value: &serde_json::Value, parent: &str) -> String {
    let mut details = Vec::new();
    for field in ["type", "code", "decline_code", "param"] {
        let member = value.pointer(&format!("{parent}/{field}"));
        let text = match member {
            Some(serde_json::Value::String(s)) if !s.is_empty() => excerpt(s, 80),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        details.push(format!("{} {text}", field.replace('_', " ")));
    }
    details.join(", ")
}

/// A response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    url: Url,
}

impl Response {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header as text, if present and ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header.
    pub fn etag(&self) -> Option<&str> {
        self.headers.get(ETAG).and_then(|v| v.to_str().ok())
    }

    /// The URL that answered.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as UTF-8 text; a body that is not UTF-8 is a typed error.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body).map_err(|e| {
            Error::permanent(format!(
                "response from {} is not UTF-8",
                self.url.host_str().unwrap_or("peer")
            ))
            .with_source(e)
        })
    }

    /// The body as JSON; a malformed body is a typed `Permanent` error that
    /// says where it broke.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::permanent(format!(
                "malformed response body from {} {}: {e}",
                self.url.host_str().unwrap_or("peer"),
                self.url.path()
            ))
        })
    }
}
