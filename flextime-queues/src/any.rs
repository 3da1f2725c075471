//! Choosing a backend at run time from a URL.

use std::sync::Arc;

use crate::{Broker, Error, Result, redact_url};

/// The URL schemes [`connect`] accepts with the features compiled in.
pub fn supported_schemes() -> Vec<&'static str> {
    let mut schemes = Vec::new();
    if cfg!(feature = "memory") {
        schemes.push("memory");
    }
    if cfg!(feature = "redis") {
        schemes.extend(["redis", "rediss"]);
    }
    if cfg!(feature = "rabbitmq") {
        schemes.extend(["amqp", "amqps"]);
    }
    if cfg!(feature = "kafka") {
        schemes.push("kafka");
    }
    if cfg!(feature = "nats") {
        schemes.push("nats");
    }
    schemes
}

/// A broker chosen by the URL's scheme: `memory://`, `redis://`,
/// `amqp://`, `kafka://host:port[,host:port]`, `nats://`. The backend's
/// cargo feature must be enabled. Errors never show the URL's password.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let broker = flextime_queues::connect("memory://?capacity=100").await.unwrap();
/// assert_eq!(broker.backend(), "memory");
/// let Err(err) = flextime_queues::connect("gopher://user:pw@host").await else { panic!() };
/// assert!(!err.to_string().contains("pw"));
/// # });
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Broker>> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .ok_or_else(|| {
            Error::invalid_input(format!("queue URL `{}` has no scheme", redact_url(url)))
        })?;
    match scheme.as_str() {
        #[cfg(feature = "memory")]
        "memory" => Ok(Arc::new(crate::memory::MemoryBroker::new(
            crate::memory::MemoryConfig::from_url(url)?,
        ))),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(Arc::new(
            crate::redis::RedisBroker::connect(crate::redis::RedisConfig::from_url(url)?).await?,
        )),
        #[cfg(feature = "rabbitmq")]
        "amqp" | "amqps" => Ok(Arc::new(
            crate::rabbitmq::RabbitBroker::connect(crate::rabbitmq::RabbitConfig::from_url(url)?)
                .await?,
        )),
        #[cfg(feature = "kafka")]
        "kafka" => Ok(Arc::new(crate::kafka::KafkaBroker::new(
            crate::kafka::KafkaConfig::from_url(url)?,
        )?)),
        #[cfg(feature = "nats")]
        "nats" => Ok(Arc::new(
            crate::nats::NatsBroker::connect(crate::nats::NatsConfig::from_url(url)?).await?,
        )),
        other => Err(Error::invalid_input(format!(
            "queue URL `{}`: scheme `{other}` is not supported (enabled: {})",
            redact_url(url),
            supported_schemes().join(", ")
        ))),
    }
}
