//! Typed configuration of the Redis backend.

use std::fmt;

use flextime_core::{Error, Result};

/// Where Redis is and which key prefix to use.
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) url: String,
    pub(crate) prefix: String,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &crate::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisConfig {
    /// A `redis://` or `rediss://` URL and a key prefix (default `flextime:`).
    pub fn from_url(url: &str, prefix: Option<&str>) -> Result<Self> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(Error::invalid_input(format!(
                "not a redis URL: {}",
                crate::redact_url(url)
            )));
        }
        let prefix = prefix.unwrap_or("flextime:").to_owned();
        if prefix.len() > 128 {
            return Err(Error::invalid_input("key prefix longer than 128 bytes"));
        }
        Ok(Self {
            url: url.to_owned(),
            prefix,
        })
    }
}
