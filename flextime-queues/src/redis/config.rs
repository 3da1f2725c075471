//! Configuration of the Redis backend.

use std::fmt;
use std::time::Duration;

use crate::{Error, Result, redact_url};

/// Configuration of a [`RedisBroker`](super::RedisBroker).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[:password@]host[:port][/db]` (password never printed).
    pub url: String,
    /// How long one `XREADGROUP` blocks waiting for entries (also the
    /// granularity of delayed delivery). Default 200 ms.
    pub block: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("block", &self.block)
            .finish()
    }
}

impl RedisConfig {
    /// Configuration for the server at `url`.
    pub fn from_url(url: &str) -> Result<Self> {
        url::Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("Redis URL `{}`: {e}", redact_url(url))))?;
        Ok(Self {
            url: url.to_owned(),
            block: Duration::from_millis(200),
        })
    }
}
