//! Import from an ICS feed URL with HTTP caching.
//!
//! [`IcsFeed::fetch`] sends `If-None-Match` (the last `ETag`) and
//! `If-Modified-Since` (the last `Last-Modified`) once it has fetched the
//! feed; a `304 Not Modified` answer keeps the cached events. The cache
//! ([`FeedState`]) is serialisable, so a host can persist it between runs
//! and resume with [`IcsFeed::with_state`].
//!
//! Requests go through the crate's [`HttpClient`] (retries, rate-limit
//! pauses, redacted tracing); pass your own with [`IcsFeed::with_client`] for
//! a feed behind authentication. A `webcal://` URL is fetched over HTTPS.
//! A feed event that does not map fails alone: the others are returned and
//! the failures are listed in [`FeedFetch::errors`].
//!
//! ```no_run
//! # async fn run() -> flextime_core::Result<()> {
//! use flextime_connectors::ics::feed::{FetchStatus, IcsFeed};
//!
//! let mut feed = IcsFeed::new("https://calendar.example.com/team.ics")?;
//! let first = feed.fetch().await?;
//! assert_eq!(first.status, FetchStatus::Fetched);
//! let again = feed.fetch().await?; // 304: the same events, from the cache
//! assert_eq!(again.items, first.items);
//! # Ok(())
//! # }
//! ```

use flextime_core::{Error, Result, ScheduleItem};
use http::StatusCode;
use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde::{Deserialize, Serialize};

use super::parse_calendar;
use crate::http::HttpClient;

/// The name the feed's HTTP client reports in logs and metrics.
pub const CLIENT_NAME: &str = "ics-feed";

/// The largest feed body parsed (64 MiB); a larger one is an
/// `InvalidInput` error.
pub const MAX_FEED_BYTES: usize = 64 * 1024 * 1024;

/// What the last successful fetch left: validators and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedState {
    /// The `ETag` of the last 200 response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The `Last-Modified` of the last 200 response, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The calendar's name (`X-WR-CALNAME`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The events of the last 200 response.
    pub items: Vec<ScheduleItem>,
}

/// Whether a fetch downloaded the feed or was answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchStatus {
    /// 200: the feed was downloaded and parsed.
    Fetched,
    /// 304: nothing changed; the cached events are returned.
    NotModified,
}

/// The result of one [`IcsFeed::fetch`].
#[derive(Debug)]
pub struct FeedFetch {
    /// Downloaded or answered from the cache.
    pub status: FetchStatus,
    /// The feed's events (one item per UID).
    pub items: Vec<ScheduleItem>,
    /// One error per event that could not be mapped (skipped), from the
    /// download that filled the cache.
    pub errors: Vec<Error>,
}

/// An ICS feed at one URL, with its cache.
pub struct IcsFeed {
    client: HttpClient,
    url: String,
    state: Option<FeedState>,
    errors: Vec<String>,
}

impl std::fmt::Debug for IcsFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcsFeed")
            .field("client", &self.client.name())
            .field("cached", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

/// `webcal://` is HTTPS (Apple's convention for subscribable calendars).
fn http_url(url: &str) -> String {
    match url.get(..9) {
        Some(prefix) if prefix.eq_ignore_ascii_case("webcal://") => {
            format!("https://{}", &url[9..])
        }
        _ => url.to_owned(),
    }
}

impl IcsFeed {
    /// A feed at `url` (`http`, `https` or `webcal`), fetched with a default
    /// [`HttpClient`] named [`CLIENT_NAME`].
    pub fn new(url: &str) -> Result<Self> {
        let url = http_url(url);
        let client = HttpClient::builder(CLIENT_NAME)
            .max_response_bytes(MAX_FEED_BYTES)
            .base_url(&url)?
            .build()?;
        Ok(Self::with_client(client, &url))
    }

    /// A feed at `url` fetched with `client` (its auth, timeouts, retry
    /// policy); `url` must have the client's base-URL origin.
    pub fn with_client(client: HttpClient, url: &str) -> Self {
        Self {
            client,
            url: http_url(url),
            state: None,
            errors: Vec::new(),
        }
    }

    /// Resumes with a cache saved from an earlier run.
    #[must_use]
    pub fn with_state(mut self, state: FeedState) -> Self {
        self.state = Some(state);
        self
    }

    /// The cache, once a fetch succeeded (persist it to resume later).
    pub fn state(&self) -> Option<&FeedState> {
        self.state.as_ref()
    }

    /// Fetches the feed: a conditional GET once there is a cache; 304 keeps
    /// the cached events, 200 replaces them. HTTP failures are the client's
    /// typed errors; a body that is not iCalendar is `InvalidInput` (with
    /// its line) and leaves the cache as it was.
    pub async fn fetch(&mut self) -> Result<FeedFetch> {
        let mut request = self
            .client
            .get(&self.url)
            .header("accept", "text/calendar, */*;q=0.5")
            .allow_status(StatusCode::NOT_MODIFIED);
        if let Some(state) = &self.state {
            if let Some(etag) = &state.etag {
                request = request.header(IF_NONE_MATCH.as_str(), etag);
            }
            if let Some(lm) = &state.last_modified {
                request = request.header(IF_MODIFIED_SINCE.as_str(), lm);
            }
        }
        let response = request.send().await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            let Some(state) = &self.state else {
                return Err(Error::permanent(
                    "ics feed answered 304 Not Modified to an unconditional request",
                ));
            };
            return Ok(FeedFetch {
                status: FetchStatus::NotModified,
                items: state.items.clone(),
                errors: self.errors.iter().map(Error::invalid_input).collect(),
            });
        }
        if response.bytes().len() > MAX_FEED_BYTES {
            return Err(Error::invalid_input(format!(
                "ics feed body is {} bytes, more than the {MAX_FEED_BYTES} accepted",
                response.bytes().len()
            )));
        }
        let text = response.text()?;
        let calendar = parse_calendar(text)?;
        let (items, errors) = calendar.events_lossy();
        for e in &errors {
            tracing::warn!(error = %e, "ics feed: skipped an event that does not map");
        }
        let header = |name: &http::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.errors = errors.iter().map(|e| e.message().to_owned()).collect();
        self.state = Some(FeedState {
            etag: header(&ETAG),
            last_modified: header(&LAST_MODIFIED),
            name: calendar.name(),
            items: items.clone(),
        });
        Ok(FeedFetch {
            status: FetchStatus::Fetched,
            items,
            errors,
        })
    }
}
