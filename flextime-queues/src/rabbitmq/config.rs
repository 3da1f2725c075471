//! Configuration of the RabbitMQ backend.

use std::fmt;

use crate::{Error, Result, redact_url};

/// Configuration of a [`RabbitBroker`](super::RabbitBroker).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RabbitConfig {
    /// `amqp://user:password@host:port/vhost` (password never printed).
    pub url: String,
}

impl fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl RabbitConfig {
    /// Configuration for the server at `url`.
    pub fn from_url(url: &str) -> Result<Self> {
        url::Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("AMQP URL `{}`: {e}", redact_url(url))))?;
        Ok(Self {
            url: url.to_owned(),
        })
    }
}
