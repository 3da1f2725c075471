//! Configuration of the RabbitMQ backend.

use std::fmt;
use std::time::Duration;

use crate::{Error, Result, redact_url};

/// Configuration of a [`RabbitBroker`](super::RabbitBroker).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RabbitConfig {
    /// `amqp://user:password@host:port/vhost` (password never printed).
    pub url: String,
    /// `x-expires` on every queue the backend declares (group, retry and
    /// delay queues): RabbitMQ deletes a queue nobody has consumed from for
    /// this long, messages included. `None` (the default) keeps queues for
    /// ever; set it for short-lived groups and tests. Every client of a topic
    /// must use the same value (RabbitMQ refuses to re-declare a queue with
    /// other arguments).
    pub queue_expires: Option<Duration>,
}

impl fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("url", &redact_url(&self.url))
            .field("queue_expires", &self.queue_expires)
            .finish()
    }
}

impl RabbitConfig {
    /// Configuration for the server at `url`. The query parameter
    /// `queue_expires_ms=N` sets [`RabbitConfig::queue_expires`] (and is
    /// removed before the URL reaches the client); other parameters
    /// (`heartbeat`, `connection_timeout`, ...) are lapin's.
    pub fn from_url(url: &str) -> Result<Self> {
        let mut parsed = url::Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("AMQP URL `{}`: {e}", redact_url(url))))?;
        let mut queue_expires = None;
        let mut kept = Vec::new();
        for (name, value) in parsed.query_pairs() {
            if name == "queue_expires_ms" {
                let ms: u64 = value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    Error::invalid_input(format!(
                        "AMQP URL `{}`: queue_expires_ms must be a positive number of milliseconds, not `{value}`",
                        redact_url(url)
                    ))
                })?;
                queue_expires = Some(Duration::from_millis(ms));
            } else {
                kept.push((name.into_owned(), value.into_owned()));
            }
        }
        if queue_expires.is_some() {
            if kept.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        Ok(Self {
            url: if queue_expires.is_some() {
                parsed.to_string()
            } else {
                url.to_owned()
            },
            queue_expires,
        })
    }

    /// Sets [`RabbitConfig::queue_expires`].
    #[must_use]
    pub fn with_queue_expires(mut self, idle: Duration) -> Self {
        self.queue_expires = Some(idle);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_expires_comes_from_the_query_and_leaves_it() {
        let c = RabbitConfig::from_url("amqp://u:p@h:5672/%2f?queue_expires_ms=60000&heartbeat=10")
            .unwrap();
        assert_eq!(c.queue_expires, Some(Duration::from_secs(60)));
        assert_eq!(c.url, "amqp://u:p@h:5672/%2f?heartbeat=10");
        let c = RabbitConfig::from_url("amqp://h/%2f?queue_expires_ms=5").unwrap();
        assert_eq!(c.url, "amqp://h/%2f");
        let plain = RabbitConfig::from_url("amqp://h/%2f").unwrap();
        assert_eq!(plain.queue_expires, None);
        for bad in ["0", "-1", "soon"] {
            let err =
                RabbitConfig::from_url(&format!("amqp://h/?queue_expires_ms={bad}")).unwrap_err();
            assert!(err.to_string().contains("queue_expires_ms"), "{err}");
        }
    }
}
