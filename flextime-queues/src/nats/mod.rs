#![doc = include_str!("docs.md")]

mod config;
mod consumer;
mod producer;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;

pub use config::NatsConfig;
pub use consumer::NatsConsumer;
pub use producer::NatsProducer;

use crate::{
    Broker, Consumer, ConsumerOptions, Error, Message, Producer, ProducerOptions, Result,
    from_unix_millis, headers, memory_lock, redact_url, unix_millis, uuid_v7_millis,
};

const MSG_ID: &str = "Nats-Msg-Id";
const KEY: &str = "x-flextime-key";

/// The NATS JetStream backend.
#[derive(Clone)]
pub struct NatsBroker {
    config: NatsConfig,
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) js: jetstream::Context,
    streams: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NatsBroker {
    /// Connect (the client reconnects by itself after failures).
    pub async fn connect(config: NatsConfig) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(config.url.as_str());
        let client = tokio::time::timeout(std::time::Duration::from_secs(10), client)
            .await
            .map_err(|_| {
                Error::unavailable(format!(
                    "NATS: connecting to {} timed out",
                    redact_url(&config.url)
                ))
            })?
            .map_err(|e| {
                Error::unavailable(format!(
                    "NATS: connecting to {}: {e}",
                    redact_url(&config.url)
                ))
            })?;
        Ok(Self {
            config,
            shared: Arc::new(Shared {
                js: jetstream::new(client),
                streams: Mutex::new(HashSet::new()),
            }),
        })
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn backend(&self) -> &'static str {
        "nats"
    }

    async fn producer(&self, options: ProducerOptions) -> Result<Box<dyn Producer>> {
        Ok(Box::new(NatsProducer::new(self.shared.clone(), &options)))
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(
            NatsConsumer::start(self.shared.clone(), options).await?,
        ))
    }
}

/// The stream name of a subject.
pub(crate) fn stream_name(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The subject of a topic's delayed messages.
pub(crate) fn delayed_subject(topic: &str) -> String {
    format!("_flextime.delayed.{topic}")
}

pub(crate) fn nats_error(err: &impl std::fmt::Display, doing: &str) -> Error {
    Error::unavailable(format!("NATS {doing}: {err}"))
}

fn check_subject(subject: &str) -> Result<()> {
    if subject.is_empty()
        || subject
            .chars()
            .any(|c| c.is_whitespace() || c == '*' || c == '>')
        || subject.starts_with('.')
        || subject.ends_with('.')
        || subject.contains("..")
    {
        return Err(Error::invalid_input(format!(
            "`{subject}` is not a valid NATS subject for a topic"
        )));
    }
    Ok(())
}

impl Shared {
    /// Make sure the stream holding `subject` exists.
    pub(crate) async fn ensure_stream(&self, subject: &str) -> Result<()> {
        check_subject(subject)?;
        if memory_lock(&self.streams).contains(subject) {
            return Ok(());
        }
        self.js
            .get_or_create_stream(stream::Config {
                name: stream_name(subject),
                subjects: vec![subject.to_owned()],
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| nats_error(&e, "creating a stream"))?;
        memory_lock(&self.streams).insert(subject.to_owned());
        Ok(())
    }

    /// Publish and await the JetStream ack.
    pub(crate) async fn publish(
        &self,
        subject: &str,
        message: &Message,
        extra: &[(&str, String)],
    ) -> Result<()> {
        let ack = self
            .js
            .publish_with_headers(
                subject.to_owned(),
                to_headers(message, extra),
                message.payload.clone(),
            )
            .await
            .map_err(|e| nats_error(&e, "publishing"))?;
        ack.await
            .map_err(|e| nats_error(&e, "awaiting a publish ack"))?;
        Ok(())
    }
}

pub(crate) fn to_headers(message: &Message, extra: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(MSG_ID, message.id.as_str());
    // The time, unless the id (a UUIDv7 of the same millisecond) holds it.
    let ts = unix_millis(message.timestamp);
    if uuid_v7_millis(&message.id) != Some(ts) {
        map.insert(headers::TIMESTAMP, ts.to_string());
    }
    if let Some(key) = &message.key {
        map.insert(KEY, key.as_str());
    }
    for (name, value) in &message.headers {
        map.insert(name.as_str(), value.as_str());
    }
    for (name, value) in extra {
        map.insert(*name, value.as_str());
    }
    map
}

pub(crate) fn from_nats(message: &async_nats::Message) -> Message {
    // Id and timestamp come from the headers; only a foreign message without
    // them gets fresh ones (below).
    let mut out = Message {
        id: String::new(),
        key: None,
        headers: std::collections::BTreeMap::new(),
        payload: message.payload.clone(),
        timestamp: chrono::DateTime::UNIX_EPOCH,
        attempt: 0,
    };
    let mut timestamp = None;
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            let Some(value) = values.first() else {
                continue;
            };
            let value = value.to_string();
            match name {
                MSG_ID => out.id = value,
                KEY => out.key = Some(value),
                headers::TIMESTAMP => {
                    if let Ok(ms) = value.parse() {
                        timestamp = Some(from_unix_millis(ms));
                    }
                }
                headers::NOT_BEFORE => {}
                _ => {
                    out.headers.insert(name.to_owned(), value);
                }
            }
        }
    }
    if out.id.is_empty() {
        out.id = crate::new_message_id();
    }
    out.timestamp = timestamp
        .or_else(|| uuid_v7_millis(&out.id).map(from_unix_millis))
        .unwrap_or_else(chrono::Utc::now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_nats(message: &Message) -> (HeaderMap, Message) {
        let headers = to_headers(message, &[]);
        let received = async_nats::Message {
            subject: "t".into(),
            reply: None,
            payload: message.payload.clone(),
            headers: Some(headers.clone()),
            status: None,
            description: None,
            length: 0,
        };
        (headers, from_nats(&received))
    }

    #[test]
    fn the_time_travels_in_a_uuid_v7_id_or_in_its_own_header() {
        let mut message = Message::new("x");
        let ms = uuid_v7_millis(&message.id).expect("a UUIDv7 id");
        message.timestamp = from_unix_millis(ms);
        let (headers, back) = through_nats(&message);
        assert!(headers.get(headers::TIMESTAMP).is_none());
        assert_eq!(
            (back.id.as_str(), back.timestamp),
            (message.id.as_str(), message.timestamp)
        );

        for id in ["order-1", "0190163d-8694-739b-aea5-966c26f8ad91"] {
            let mut message = Message::new("x").with_id(id);
            message.timestamp = from_unix_millis(1_700_000_000_123);
            let (headers, back) = through_nats(&message);
            assert!(headers.get(headers::TIMESTAMP).is_some(), "{id}");
            assert_eq!(back.timestamp, message.timestamp, "{id}");
        }
    }
}
