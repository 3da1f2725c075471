#![doc = include_str!("docs.md")]

mod config;
mod consumer;
mod producer;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

pub use config::KafkaConfig;
pub use consumer::KafkaConsumer;
pub use producer::KafkaProducer;

use crate::{
    Broker, Consumer, ConsumerOptions, Error, Message, Producer, ProducerOptions, Result,
    from_unix_millis, headers, memory_lock, unix_millis,
};

/// The Kafka backend.
#[derive(Clone)]
pub struct KafkaBroker {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: KafkaConfig,
    admin: AdminClient<DefaultClientContext>,
    producer: FutureProducer,
    topics: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("brokers", &self.shared.config.brokers)
            .finish_non_exhaustive()
    }
}

pub(crate) fn kafka_error(err: &rdkafka::error::KafkaError, doing: &str) -> Error {
    Error::unavailable(format!("Kafka {doing}: {err}"))
}

impl KafkaBroker {
    /// A broker client for `config` (connections are made lazily).
    pub fn new(config: KafkaConfig) -> Result<Self> {
        let admin = client_config(&config)
            .create()
            .map_err(|e| kafka_error(&e, "creating an admin client"))?;
        let producer = producer_config(&config)
            .create()
            .map_err(|e| kafka_error(&e, "creating a producer"))?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                admin,
                producer,
                topics: Mutex::new(HashSet::new()),
            }),
        })
    }
}

pub(crate) fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.extra {
        cc.set(k, v);
    }
    cc
}

fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut cc = client_config(config);
    cc.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000");
    cc
}

#[async_trait]
impl Broker for KafkaBroker {
    fn backend(&self) -> &'static str {
        "kafka"
    }

    async fn producer(&self, options: ProducerOptions) -> Result<Box<dyn Producer>> {
        Ok(Box::new(KafkaProducer::new(self.shared.clone(), &options)))
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(
            KafkaConsumer::start(self.shared.clone(), options).await?,
        ))
    }
}

impl Shared {
    /// Create `topic` when missing (and allowed to).
    pub(crate) async fn ensure_topic(&self, topic: &str) -> Result<()> {
        if !self.config.create_topics || memory_lock(&self.topics).contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(topic, self.config.partitions, TopicReplication::Fixed(1));
        let results = self
            .admin
            .create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(|e| kafka_error(&e, "creating a topic"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::unavailable(format!(
                        "Kafka: creating topic `{name}`: {code}"
                    )));
                }
            }
        }
        memory_lock(&self.topics).insert(topic.to_owned());
        Ok(())
    }

    /// Produce one message and wait for its delivery report.
    pub(crate) async fn produce(
        &self,
        topic: &str,
        message: &Message,
        attempt: u32,
        extra: &[(&str, String)],
    ) -> Result<()> {
        let headers = to_headers(message, attempt, extra);
        let mut record = FutureRecord::to(topic)
            .payload(message.payload.as_ref())
            .headers(headers)
            .timestamp(i64::try_from(unix_millis(message.timestamp)).unwrap_or(0));
        if let Some(key) = &message.key {
            record = record.key(key.as_bytes());
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| kafka_error(&e, "producing"))?;
        Ok(())
    }
}

pub(crate) fn to_headers(
    message: &Message,
    attempt: u32,
    extra: &[(&str, String)],
) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(message.headers.len() + extra.len() + 2);
    out = out.insert(Header {
        key: headers::ID,
        value: Some(message.id.as_bytes()),
    });
    // Only a nacked copy counts attempts; a first copy (0) carries none.
    if attempt > 0 {
        let attempt = attempt.to_string();
        out = out.insert(Header {
            key: headers::ATTEMPT,
            value: Some(attempt.as_bytes()),
        });
    }
    for (name, value) in &message.headers {
        out = out.insert(Header {
            key: name.as_str(),
            value: Some(value.as_bytes()),
        });
    }
    for (name, value) in extra {
        out = out.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    out
}

/// A message from a record, with the stored attempt and not-before time.
pub(crate) fn from_record(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    timestamp: Option<i64>,
    record_headers: Option<&rdkafka::message::BorrowedHeaders>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (Message, u32, Option<u64>) {
    let mut message = Message {
        id: String::new(),
        key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
        headers: std::collections::BTreeMap::new(),
        payload: bytes::Bytes::copy_from_slice(payload.unwrap_or_default()),
        timestamp: timestamp
            .and_then(|t| u64::try_from(t).ok())
            .map_or_else(chrono::Utc::now, from_unix_millis),
        attempt: 0,
    };
    let mut attempt = 0;
    let mut not_before = None;
    if let Some(hs) = record_headers {
        for h in hs.iter() {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
            match h.key {
                headers::ID => message.id = value,
                headers::ATTEMPT => attempt = value.parse().unwrap_or(0),
                headers::NOT_BEFORE => not_before = value.parse().ok(),
                name => {
                    message.headers.insert(name.to_owned(), value);
                }
            }
        }
    }
    if message.id.is_empty() {
        // Foreign records have no id header: the position is a stable id.
        message.id = format!("{topic}/{partition}/{offset}");
    }
    (message, attempt, not_before)
}
