#![doc = include_str!("docs.md")]

mod config;
mod consumer;
mod producer;

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

pub use config::RabbitConfig;
pub use consumer::RabbitConsumer;
pub use producer::RabbitProducer;

use crate::{
    Broker, Consumer, ConsumerOptions, Error, Message, Producer, ProducerOptions, Result,
    from_unix_millis, headers, redact_url, unix_millis,
};

/// The group whose queue keeps a dead-letter topic's messages.
pub const DEAD_LETTER_GROUP: &str = "dead-letters";

const CE_PREFIX: &str = "ce_";
const AMQP_CE_PREFIX: &str = "cloudEvents:";

/// The RabbitMQ backend.
#[derive(Clone)]
pub struct RabbitBroker {
    config: RabbitConfig,
}

impl std::fmt::Debug for RabbitBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitBroker")
            .field("config", &self.config)
            .finish()
    }
}

impl RabbitBroker {
    /// Check that the server answers and return the broker.
    pub async fn connect(config: RabbitConfig) -> Result<Self> {
        let conn = open(&config.url).await?;
        let _ = conn.close(200, "probe").await;
        Ok(Self { config })
    }
}

#[async_trait]
impl Broker for RabbitBroker {
    fn backend(&self) -> &'static str {
        "rabbitmq"
    }

    async fn producer(&self, options: ProducerOptions) -> Result<Box<dyn Producer>> {
        Ok(Box::new(
            RabbitProducer::new(self.config.clone(), &options).await?,
        ))
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(
            RabbitConsumer::start(self.config.clone(), options).await?,
        ))
    }
}

pub(crate) fn amqp_error(err: &lapin::Error, doing: &str) -> Error {
    Error::unavailable(format!("RabbitMQ {doing}: {err}"))
}

pub(crate) async fn open(url: &str) -> Result<Connection> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|e| {
            Error::unavailable(format!("RabbitMQ: connecting to {}: {e}", redact_url(url)))
        })
}

pub(crate) async fn confirm_channel(conn: &Connection) -> Result<Channel> {
    let channel = conn
        .create_channel()
        .await
        .map_err(|e| amqp_error(&e, "opening a channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp_error(&e, "confirm.select"))?;
    Ok(channel)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The arguments every declared queue starts from (`x-expires`).
fn queue_args(expires: Option<Duration>) -> FieldTable {
    let mut args = FieldTable::default();
    if let Some(idle) = expires {
        let ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX).max(1);
        args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
    }
    args
}

/// Declare the topic's fanout exchange and its delay queue.
pub(crate) async fn declare_topic(
    channel: &Channel,
    topic: &str,
    expires: Option<Duration>,
) -> Result<()> {
    channel
        .exchange_declare(
            topic,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_error(&e, "declaring an exchange"))?;
    let mut args = queue_args(expires);
    args.insert("x-dead-letter-exchange".into(), long(topic));
    channel
        .queue_declare(&format!("{topic}.delay"), durable(), args)
        .await
        .map_err(|e| amqp_error(&e, "declaring a delay queue"))?;
    Ok(())
}

/// Declare a group's queue (quorum), bound to the topic, and its retry queue.
pub(crate) async fn declare_group(
    channel: &Channel,
    topic: &str,
    group: &str,
    expires: Option<Duration>,
) -> Result<String> {
    declare_topic(channel, topic, expires).await?;
    let queue = format!("{topic}.{group}");
    let mut args = queue_args(expires);
    args.insert("x-queue-type".into(), long("quorum"));
    channel
        .queue_declare(&queue, durable(), args)
        .await
        .map_err(|e| amqp_error(&e, "declaring a queue"))?;
    channel
        .queue_bind(
            &queue,
            topic,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_error(&e, "binding a queue"))?;
    let mut args = queue_args(expires);
    args.insert("x-dead-letter-exchange".into(), long(""));
    args.insert("x-dead-letter-routing-key".into(), long(&queue));
    channel
        .queue_declare(&format!("{queue}.retry"), durable(), args)
        .await
        .map_err(|e| amqp_error(&e, "declaring a retry queue"))?;
    Ok(queue)
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// AMQP properties for a message; `attempt` is the deliveries before it.
pub(crate) fn properties(
    message: &Message,
    attempt: u32,
    expiration: Option<Duration>,
) -> BasicProperties {
    let mut table = FieldTable::default();
    for (name, value) in &message.headers {
        if name == headers::CONTENT_TYPE {
            continue;
        }
        let name = match name.strip_prefix(CE_PREFIX) {
            Some(attr) => format!("{AMQP_CE_PREFIX}{attr}"),
            None => name.clone(),
        };
        table.insert(ShortString::from(name), long(value));
    }
    table.insert(
        headers::TIMESTAMP.into(),
        long(&unix_millis(message.timestamp).to_string()),
    );
    table.insert(headers::ATTEMPT.into(), long(&attempt.to_string()));
    if let Some(key) = &message.key {
        table.insert("x-flextime-key".into(), long(key));
    }
    let mut props = BasicProperties::default()
        .with_message_id(ShortString::from(message.id.clone()))
        .with_timestamp(u64::try_from(message.timestamp.timestamp()).unwrap_or(0))
        .with_delivery_mode(2)
        .with_headers(table);
    if let Some(ct) = message.header(headers::CONTENT_TYPE) {
        props = props.with_content_type(ShortString::from(ct.to_owned()));
    }
    if let Some(ttl) = expiration {
        props = props.with_expiration(ShortString::from(ttl.as_millis().to_string()));
    }
    props
}

fn text_of(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        AMQPValue::LongLongInt(i) => Some(i.to_string()),
        AMQPValue::LongInt(i) => Some(i.to_string()),
        AMQPValue::LongUInt(i) => Some(i.to_string()),
        AMQPValue::ShortInt(i) => Some(i.to_string()),
        AMQPValue::ShortUInt(i) => Some(i.to_string()),
        AMQPValue::ShortShortInt(i) => Some(i.to_string()),
        AMQPValue::ShortShortUInt(i) => Some(i.to_string()),
        AMQPValue::Timestamp(t) => Some(t.to_string()),
        _ => None,
    }
}

/// A message from an AMQP delivery, with the attempt header and the
/// broker's delivery count.
pub(crate) fn from_amqp(
    props: &BasicProperties,
    body: &[u8],
    routing_key: &str,
) -> (Message, u32, u32) {
    let mut message = Message::new(body.to_vec());
    let mut attempt = 0;
    let mut delivery_count = 0;
    if let Some(id) = props.message_id() {
        id.as_str().clone_into(&mut message.id);
    }
    if let Some(ts) = props.timestamp().and_then(|s| i64::try_from(s).ok()) {
        if let Some(t) = chrono::DateTime::from_timestamp(ts, 0) {
            message.timestamp = t;
        }
    }
    if let Some(ct) = props.content_type() {
        message
            .headers
            .insert(headers::CONTENT_TYPE.to_owned(), ct.as_str().to_owned());
    }
    if let Some(table) = props.headers() {
        for (name, value) in table.inner() {
            let name = name.as_str();
            let Some(text) = text_of(value) else { continue };
            match name {
                "x-delivery-count" => delivery_count = text.parse().unwrap_or(0),
                headers::ATTEMPT => attempt = text.parse().unwrap_or(0),
                headers::TIMESTAMP => {
                    if let Ok(ms) = text.parse() {
                        message.timestamp = from_unix_millis(ms);
                    }
                }
                "x-flextime-key" => message.key = Some(text),
                _ if name.starts_with("x-death")
                    || name.starts_with("x-first-death")
                    || name.starts_with("x-last-death") => {}
                _ => {
                    let name = match name.strip_prefix(AMQP_CE_PREFIX) {
                        Some(attr) => format!("{CE_PREFIX}{attr}"),
                        None => name.to_owned(),
                    };
                    message.headers.insert(name, text);
                }
            }
        }
    }
    let foreign = props
        .headers()
        .as_ref()
        .is_none_or(|t| !t.inner().contains_key(headers::ATTEMPT));
    if foreign && message.key.is_none() && !routing_key.is_empty() {
        message.key = Some(routing_key.to_owned());
    }
    (message, attempt, delivery_count)
}

/// Publish and wait for the broker's confirmation.
pub(crate) async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<()> {
    let confirm = channel
        .basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload,
            props,
        )
        .await
        .map_err(|e| amqp_error(&e, "publishing"))?;
    match confirm
        .await
        .map_err(|e| amqp_error(&e, "awaiting a confirm"))?
    {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err(Error::not_found(format!(
            "RabbitMQ: no queue is bound to exchange `{exchange}` (start a consumer group first)"
        ))),
        Confirmation::Nack(_) => Err(Error::unavailable("RabbitMQ refused the message (nack)")),
    }
}
