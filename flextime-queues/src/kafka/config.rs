//! Configuration of the Kafka backend.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Error, Result};

/// Configuration of a [`KafkaBroker`](super::KafkaBroker).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// `host:port[,host:port]` of the bootstrap brokers.
    pub brokers: String,
    /// Create missing topics (and dead-letter topics) on first use. Default on.
    pub create_topics: bool,
    /// Partitions of topics created on first use. Default 3.
    pub partitions: i32,
    /// Extra librdkafka settings for producers and consumers (values are
    /// never logged).
    pub extra: BTreeMap<String, String>,
    /// The most often a consumer commits its offsets: the first settlement
    /// that moves the commit point is committed at once, later ones at most
    /// once per this interval (one commit covers them all), and the last
    /// on shutdown and on revocation. A consumer that dies may see the
    /// settlements of its last interval again. Default 100 ms; zero
    /// commits after every settlement that moves the point.
    pub commit_interval: Duration,
}

impl KafkaConfig {
    /// Configuration for the bootstrap brokers `host:port[,host:port]`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            create_topics: true,
            partitions: 3,
            extra: BTreeMap::new(),
            commit_interval: Duration::from_millis(100),
        }
    }

    /// Read
    /// `kafka://host:port[,host:port][?partitions=N&create_topics=false&commit_interval_ms=M]`.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| Error::invalid_input("a Kafka URL starts with kafka://"))?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        if hosts.is_empty() || hosts.contains('@') {
            return Err(Error::invalid_input(
                "Kafka URL: expected kafka://host:port[,host:port] (credentials go in `extra`)",
            ));
        }
        let mut config = Self::new(hosts);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "partitions" => {
                    config.partitions = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::invalid_input(format!(
                            "Kafka URL: partitions `{value}` is not a positive number"
                        ))
                    })?;
                }
                "create_topics" => config.create_topics = value != "false",
                "commit_interval_ms" => {
                    config.commit_interval = value
                        .parse()
                        .map(Duration::from_millis)
                        .map_err(|_| {
                            Error::invalid_input(format!(
                                "Kafka URL: commit_interval_ms `{value}` is not a number of milliseconds"
                            ))
                        })?;
                }
                other => {
                    return Err(Error::invalid_input(format!(
                        "Kafka URL: unknown parameter `{other}`"
                    )));
                }
            }
        }
        Ok(config)
    }
}
