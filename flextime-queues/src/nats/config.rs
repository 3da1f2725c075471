//! Configuration of the NATS JetStream backend.

use std::fmt;

use crate::{Error, Result, redact_url};

/// Configuration of a [`NatsBroker`](super::NatsBroker).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsConfig {
    /// `nats://[user:password@]host:port` (password never printed).
    pub url: String,
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl NatsConfig {
    /// Configuration for the server at `url`.
    pub fn from_url(url: &str) -> Result<Self> {
        url::Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("NATS URL `{}`: {e}", redact_url(url))))?;
        Ok(Self {
            url: url.to_owned(),
        })
    }
}
