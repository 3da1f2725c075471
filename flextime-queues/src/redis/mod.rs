#![doc = include_str!("docs.md")]

mod config;
mod consumer;
mod producer;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use config::RedisConfig;
pub use consumer::RedisConsumer;
pub use producer::RedisProducer;

use crate::{
    Broker, Consumer, ConsumerOptions, Error, Message, Producer, ProducerOptions, Result,
    from_unix_millis, redact_url, unix_millis, uuid_v7_millis,
};

/// The Redis Streams backend.
#[derive(Clone)]
pub struct RedisBroker {
    config: RedisConfig,
    client: redis::Client,
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connect (the connection re-establishes itself after failures).
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            Error::invalid_input(format!("Redis URL `{}`: {e}", redact_url(&config.url)))
        })?;
        let conn = manager(&client, None).await?;
        Ok(Self {
            config,
            client,
            conn,
        })
    }
}

pub(crate) async fn manager(
    client: &redis::Client,
    response_timeout: Option<Duration>,
) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(response_timeout.unwrap_or(Duration::from_secs(10))))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| redis_error(&e, "connecting"))
}

pub(crate) fn redis_error(err: &redis::RedisError, doing: &str) -> Error {
    let message = format!("Redis {doing}: {err}");
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
    {
        Error::unavailable(message)
    } else {
        Error::internal(message)
    }
}

impl RedisBroker {
    /// Non-durable fan-out: `PUBLISH` the message on a pub/sub `channel`;
    /// every subscriber connected right now receives it, nobody later.
    /// Returns how many subscribers received it. For events that must not be
    /// lost, use a topic and consumer groups instead.
    pub async fn broadcast(&self, channel: &str, message: &Message) -> Result<usize> {
        let mut conn = self.conn.clone();
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(to_member(message, 0))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e, "PUBLISH"))?;
        Ok(usize::try_from(receivers).unwrap_or(0))
    }

    /// Subscribe to a pub/sub `channel` (see [`RedisBroker::broadcast`]).
    /// The stream yields each broadcast message (attempt 1); payloads that
    /// are not Flextime broadcasts arrive as the message payload. It ends
    /// when the connection is lost (non-durable: subscribe again).
    pub async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<futures::stream::BoxStream<'static, Message>> {
        use futures::StreamExt;
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| redis_error(&e, "connecting for pub/sub"))?;
        pubsub
            .subscribe(channel)
            .await
            .map_err(|e| redis_error(&e, "SUBSCRIBE"))?;
        Ok(pubsub
            .into_on_message()
            .map(|msg| {
                let bytes = msg.get_payload_bytes();
                let mut message =
                    from_member(bytes).map_or_else(|_| Message::new(bytes.to_vec()), |(m, _)| m);
                message.attempt = 1;
                message
            })
            .boxed())
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn producer(&self, options: ProducerOptions) -> Result<Box<dyn Producer>> {
        Ok(Box::new(RedisProducer::new(self.conn.clone(), &options)))
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(
            RedisConsumer::start(&self.client, self.conn.clone(), &self.config, options).await?,
        ))
    }
}

/// The key of a topic's delayed-message sorted set.
pub(crate) fn delayed_key(topic: &str) -> String {
    format!("{topic}:delayed")
}

/// The field that holds a whole message moved from the delayed set.
pub(crate) const DELAYED_FIELD: &str = "flextime-delayed";

/// Walks a message's stream fields in order (`id`, `ts`, `attempt`, `key`,
/// `h:<header>`..., `payload`); `attempt` is the number of deliveries before
/// this copy, left out when 0 (a first copy; readers take a missing
/// `attempt` as 0); `ts` is left out when the id is a UUIDv7 holding the
/// same millisecond (as [`Message::new`]'s ids do: readers take the time
/// from the id, exactly, so an entry carries one field less). The one
/// definition of the entry layout, for `XADD` and for delayed-set members.
pub(crate) fn for_each_field(message: &Message, attempt: u32, mut field: impl FnMut(&str, &[u8])) {
    field("id", message.id.as_bytes());
    let ts = unix_millis(message.timestamp);
    if uuid_v7_millis(&message.id) != Some(ts) {
        let mut digits = itoa::Buffer::new();
        field("ts", digits.format(ts).as_bytes());
    }
    if attempt > 0 {
        field("attempt", attempt.to_string().as_bytes());
    }
    if let Some(key) = &message.key {
        field("key", key.as_bytes());
    }
    for (name, value) in &message.headers {
        field(&format!("h:{name}"), value.as_bytes());
    }
    field("payload", &message.payload);
}

/// The delayed-set member for a message: its fields as JSON (values base64).
pub(crate) fn to_member(message: &Message, attempt: u32) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut fields: Vec<(String, String)> = Vec::new();
    for_each_field(message, attempt, |k, v| {
        fields.push((k.to_owned(), b64.encode(v)));
    });
    // unique even when the same message is delayed twice
    fields.push((
        "nonce".to_owned(),
        uuid::Uuid::new_v4().simple().to_string(),
    ));
    serde_json::to_vec(&fields).unwrap_or_default()
}

fn into_bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A message from stream entry fields (taken, not copied), with the stored
/// attempt.
pub(crate) fn from_fields(values: Vec<Value>) -> Result<(Message, u32)> {
    let mut message = Message {
        id: String::new(),
        key: None,
        headers: BTreeMap::new(),
        payload: bytes::Bytes::new(),
        timestamp: chrono::DateTime::UNIX_EPOCH,
        attempt: 0,
    };
    // The clock is read only for an entry without `ts` (a foreign producer's).
    let mut stamped = false;
    let mut headers = BTreeMap::new();
    let mut attempt = 0;
    let mut values = values.into_iter();
    while let (Some(k), Some(v)) = (values.next(), values.next()) {
        let (Some(k), Some(v)) = (into_bytes(k), into_bytes(v)) else {
            continue;
        };
        match k.as_slice() {
            b"payload" => message.payload = v.into(),
            b"id" => message.id = into_text(v),
            b"ts" => {
                if let Some(ms) = std::str::from_utf8(&v).ok().and_then(|t| t.parse().ok()) {
                    message.timestamp = from_unix_millis(ms);
                    stamped = true;
                }
            }
            b"attempt" => {
                attempt = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0);
            }
            b"key" => message.key = Some(into_text(v)),
            k if k == DELAYED_FIELD.as_bytes() => return from_member(&v),
            k => {
                if let Some(name) = k.strip_prefix(b"h:") {
                    headers.insert(String::from_utf8_lossy(name).into_owned(), into_text(v));
                }
            }
        }
    }
    // Foreign producers may leave out everything but the payload: such a
    // message gets a fresh id.
    if message.id.is_empty() {
        message.id = crate::new_message_id();
    }
    if !stamped {
        // No `ts`: the time is in a UUIDv7 id; a foreign entry without either
        // is stamped on receipt.
        message.timestamp =
            uuid_v7_millis(&message.id).map_or_else(chrono::Utc::now, from_unix_millis);
    }
    message.headers = headers;
    Ok((message, attempt))
}

fn from_member(member: &[u8]) -> Result<(Message, u32)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let fields: Vec<(String, String)> = serde_json::from_slice(member)
        .map_err(|e| Error::invalid_input(format!("Redis delayed entry: {e}")))?;
    let mut values = Vec::new();
    for (k, v) in fields {
        let v = b64
            .decode(v)
            .map_err(|e| Error::invalid_input(format!("Redis delayed entry: {e}")))?;
        values.push(Value::BulkString(k.into_bytes()));
        values.push(Value::BulkString(v));
    }
    from_fields(values)
}

/// `XADD stream * <fields of message>`, written straight into a command
/// sized up front (growing it argument by argument copied the payload
/// several times).
pub(crate) fn xadd(pipe: &mut redis::Pipeline, stream: &str, message: &Message, attempt: u32) {
    // An upper bound of what `for_each_field` writes: names, ids and
    // numbers of at most 20 digits.
    let headers: usize = message
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum();
    let key = message.key.as_ref().map_or(0, |k| k.len() + 3);
    let size = "XADD".len()
        + stream.len()
        + 1
        + 2
        + message.id.len()
        + 2
        + 20
        + 7
        + 20
        + key
        + headers
        + 7
        + message.payload.len();
    let mut cmd = redis::Cmd::with_capacity(3 + 2 * (4 + 1 + message.headers.len()), size);
    cmd.arg("XADD").arg(stream).arg("*");
    for_each_field(message, attempt, |k, v| {
        cmd.arg(k).arg(v);
    });
    pipe.add_command(cmd);
}

/// `ZADD key (broker time + delay_ms) member`, on the broker's clock; the
/// time is rounded up to the millisecond so the member is never due early.
pub(crate) const DELAY_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
";

/// Move up to 100 due members of KEYS[1] into stream KEYS[2].
pub(crate) const MOVE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'flextime-delayed', m)
  redis.call('ZREM', KEYS[1], m)
end
return #due
";

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(message: &Message) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for_each_field(message, 0, |k, v| out.push((k.to_owned(), v.to_vec())));
        out
    }

    fn read_back(message: &Message) -> Message {
        let values = fields_of(message)
            .into_iter()
            .flat_map(|(k, v)| [Value::BulkString(k.into_bytes()), Value::BulkString(v)])
            .collect();
        from_fields(values).unwrap().0
    }

    fn names(message: &Message) -> Vec<String> {
        fields_of(message).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_uuid_v7_id_carries_the_time() {
        let mut message = Message::new("x");
        let ms = uuid_v7_millis(&message.id).expect("Message::new makes UUIDv7 ids");
        message.timestamp = from_unix_millis(ms);
        assert_eq!(names(&message), ["id", "payload"]);
        let back = read_back(&message);
        assert_eq!(back.id, message.id);
        assert_eq!(back.timestamp, message.timestamp);
    }

    #[test]
    fn ts_is_written_when_the_id_does_not_hold_the_time() {
        // Another time than the id's.
        let mut message = Message::new("x");
        let ms = uuid_v7_millis(&message.id).unwrap();
        message.timestamp = from_unix_millis(ms - 5_000);
        assert_eq!(names(&message), ["id", "ts", "payload"]);
        assert_eq!(read_back(&message).timestamp, message.timestamp);
        // An id that is no UUIDv7.
        let mut message = Message::new("x").with_id("order-1");
        message.timestamp = from_unix_millis(1_700_000_000_123);
        assert_eq!(names(&message), ["id", "ts", "payload"]);
        assert_eq!(read_back(&message).timestamp, message.timestamp);
        // A UUIDv4.
        let mut message = Message::new("x").with_id(uuid::Uuid::new_v4().to_string());
        message.timestamp = from_unix_millis(1_700_000_000_123);
        assert_eq!(names(&message), ["id", "ts", "payload"]);
        assert_eq!(read_back(&message).timestamp, message.timestamp);
    }

    #[test]
    fn uuid_v7_millis_reads_only_v7_ids() {
        assert_eq!(
            uuid_v7_millis("0190163d-8694-739b-aea5-966c26f8ad91"),
            Some(0x0190_163d_8694)
        );
        assert_eq!(uuid_v7_millis("not-a-uuid"), None);
        assert_eq!(uuid_v7_millis("550e8400-e29b-41d4-a716-446655440000"), None);
    }
}
