//! The HTTP client stack every HTTP connector uses.
//!
//! [`HttpClient`] wraps one reqwest client with retries (exponential backoff
//! and full jitter on 5xx, 408, 429 and network errors), `Retry-After` and
//! `X-RateLimit-*` / `RateLimit-*` handling (the strictest wins and pauses
//! every request of the client), a client-side token bucket, timeouts, a
//! base-URL override, [`Auth`] (API key, Bearer, Basic, OAuth2 with
//! proactive single-flight refresh) and tracing with credentials redacted.
//! [`paginate`] and [`next_link`] turn cursors, page tokens, `Link` headers
//! and delta links into async streams.

mod auth;
mod client;
pub mod oauth2;
mod paginate;
mod ratelimit;
mod redact;

pub use auth::Auth;
pub use client::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, HttpClient, HttpClientBuilder, IDEMPOTENCY_KEY,
    Observer, RequestBuilder, Response, default_retry_policy,
};
pub use oauth2::{AuthEvent, OAuth2Config, OAuth2Session, TokenSet};
pub use paginate::{Page, collect_all, collect_sync, items, next_link, paginate};
pub use ratelimit::{RateLimitHeaders, parse_retry_after, parse_retry_after_value};

/// `s` percent-encoded for use as one path segment (`/`, `?`, `#`, spaces and
/// non-ASCII all escaped), for ids that go into URL paths.
pub fn path_segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
