//! The Redis consumer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{
    DELAY_SCRIPT, MOVE_SCRIPT, RedisConfig, delayed_key, from_fields, manager, redis_error,
    to_member, xadd,
};
use crate::settle::{
    AckPath, SettlePaths, Settler, TaskConsumer, fast_acker, hand_over, join_tasks, spawn_settler,
};
use crate::{
    ConsumedCounters, Consumer, ConsumerOptions, Delivery, Message, Result, Settlement,
    dead_letter_copy, duration_millis, max_attempts_reason,
};

/// A member of a Redis consumer group.
pub struct RedisConsumer {
    inner: TaskConsumer,
}

impl std::fmt::Debug for RedisConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConsumer").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Token {
    entry: EntryId,
    message: Arc<Message>,
}

/// A stream entry id (`<ms>-<seq>`, both 64-bit), held as two numbers so
/// that a delivery allocates nothing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntryId {
    ms: u64,
    seq: u64,
}

impl EntryId {
    fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl redis::ToRedisArgs for EntryId {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        let (mut ms, mut seq) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (ms, seq) = (
            ms.format(self.ms).as_bytes(),
            seq.format(self.seq).as_bytes(),
        );
        let mut text = [0u8; 41];
        let n = ms.len() + 1 + seq.len();
        text[..ms.len()].copy_from_slice(ms);
        text[ms.len()] = b'-';
        text[ms.len() + 1..n].copy_from_slice(seq);
        out.write_arg(&text[..n]);
    }
}

impl redis::ToSingleRedisArg for EntryId {}

/// How often a consumer moves due delayed messages into the stream (delays
/// are never early, and late by at most this plus the read block time).
const MOVE_EVERY: Duration = Duration::from_millis(100);

type AckRequest = (EntryId, oneshot::Sender<Result<()>>);

/// Acks waiting to be sent, and where to send them.
struct AckQueue {
    waiting: std::sync::Mutex<Vec<AckRequest>>,
    conn: ConnectionManager,
    stream: String,
    group: String,
    /// Wakes the ack task (weak: the task ends when the last [`Acks`] is gone).
    wake: mpsc::WeakUnboundedSender<()>,
}

impl AckQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AckRequest>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Send every ack waiting now as one `XACK` and report its outcome to
    /// each. Whoever calls it first takes the wave: the ack task, or a
    /// delivery's ack future on its first poll (no hop through the task).
    async fn flush(self: &Arc<Self>) {
        let wave = std::mem::take(&mut *self.lock());
        if wave.is_empty() {
            return;
        }
        // Cancelled mid-flight: the wave goes back and the ack task sends
        // it (`XACK` of an id twice is harmless).
        let mut guard = WaveGuard {
            queue: self,
            wave: Some(wave),
        };
        let ids = guard.wave.as_ref().map_or(&[][..], Vec::as_slice);
        // An id is at most 41 bytes, usually 15 (ms) + 1 + 1.
        let mut cmd = redis::Cmd::with_capacity(
            3 + ids.len(),
            4 + self.stream.len() + self.group.len() + 20 * ids.len(),
        );
        cmd.arg("XACK").arg(&self.stream).arg(&self.group);
        for (entry, _) in ids {
            cmd.arg(entry);
        }
        let mut conn = self.conn.clone();
        let outcome: Result<()> = cmd
            .query_async::<Value>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| redis_error(&e, "XACK"));
        for (_, reply) in guard.wave.take().into_iter().flatten() {
            let _ = reply.send(match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(crate::Error::new(e.kind(), e.message().to_owned())),
            });
        }
    }
}

struct WaveGuard<'a> {
    queue: &'a Arc<AckQueue>,
    wave: Option<Vec<AckRequest>>,
}

impl Drop for WaveGuard<'_> {
    fn drop(&mut self) {
        let Some(wave) = self.wave.take() else {
            return;
        };
        // Back in the queue for the ack task; with no task left to send
        // them (the consumer is gone), every waiting ack learns it failed
        // rather than waiting forever (the broker redelivers those).
        self.queue.lock().extend(wave);
        let handed = self
            .queue
            .wake
            .upgrade()
            .is_some_and(|wake| wake.send(()).is_ok());
        if !handed {
            for (_, reply) in std::mem::take(&mut *self.queue.lock()) {
                let _ = reply.send(Err(ack_task_stopped()));
            }
        }
    }
}

/// Acks are batched: one `XACK` for every ack waiting at that moment. A
/// delivery's ack is queued when called (so it is committed even if its
/// future is dropped) and the ack task is woken; the future, when polled,
/// sends the waiting wave itself if the task has not yet.
#[derive(Clone)]
struct Acks {
    queue: Arc<AckQueue>,
    wake: mpsc::UnboundedSender<()>,
}

fn ack_task_stopped() -> crate::Error {
    crate::Error::unavailable("Redis ack task stopped; the message will be redelivered")
}

impl Acks {
    fn enqueue(&self, entry: EntryId) -> futures::future::BoxFuture<'static, Result<()>> {
        let (reply, outcome) = oneshot::channel();
        let first = {
            let mut waiting = self.queue.lock();
            waiting.push((entry, reply));
            waiting.len() == 1
        };
        if first {
            let _ = self.wake.send(());
        }
        let queue = Arc::clone(&self.queue);
        Box::pin(async move {
            queue.flush().await;
            outcome.await.unwrap_or_else(|_| Err(ack_task_stopped()))
        })
    }
}

impl AckPath<Token> for Acks {
    fn ack(&self, token: &Token) -> futures::future::BoxFuture<'static, Result<()>> {
        self.enqueue(token.entry)
    }
}

struct Ctx {
    conn: ConnectionManager,
    acks: Acks,
    options: ConsumerOptions,
    topic: Arc<str>,
    counters: Arc<ConsumedCounters>,
    delay_script: redis::Script,
}

async fn create_group(conn: &mut ConnectionManager, stream: &str, group: &str) -> Result<()> {
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(redis_error(&e, "XGROUP CREATE")),
    }
}

impl RedisConsumer {
    pub(super) async fn start(
        client: &redis::Client,
        mut conn: ConnectionManager,
        config: &RedisConfig,
        options: ConsumerOptions,
    ) -> Result<Self> {
        create_group(&mut conn, &options.topic, &options.group).await?;
        let blocking = manager(client, Some(config.block + Duration::from_secs(10))).await?;
        let (wake, wake_rx) = mpsc::unbounded_channel();
        let acks = Acks {
            queue: Arc::new(AckQueue {
                waiting: std::sync::Mutex::new(Vec::new()),
                conn: conn.clone(),
                stream: options.topic.clone(),
                group: options.group.clone(),
                wake: wake.downgrade(),
            }),
            wake,
        };
        // Ends once every sender (the context, the deliveries) is gone.
        let ack_task = tokio::spawn(ack_batches(Arc::clone(&acks.queue), wake_rx));
        let ctx = Arc::new(Ctx {
            acks: acks.clone(),
            conn,
            topic: Arc::from(options.topic.as_str()),
            counters: ConsumedCounters::new("redis", &options.topic),
            options,
            delay_script: redis::Script::new(DELAY_SCRIPT),
        });
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let settler = spawn_settler(ctx.clone(), settle_rx, 256);
        let paths = Arc::new(SettlePaths {
            tx: settle_tx,
            acks,
        });
        // Shutdown waits for the settle task, then for the acks it left.
        let settled = join_tasks(vec![settler, ack_task]);
        let block = config.block;
        let inner = TaskConsumer::start(
            ctx.options.prefetch,
            ctx.options.shutdown_timeout,
            Some(settled),
            move |tx, stop| fetch(ctx, blocking, block, paths, tx, stop),
        );
        Ok(Self { inner })
    }
}

#[async_trait]
impl Consumer for RedisConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        self.inner.next().await
    }

    async fn next_batch(&mut self, max: usize, deadline: Duration) -> Result<Vec<Delivery>> {
        self.inner.next_batch(max, deadline).await
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.inner.shutdown().await
    }
}

type Entry = (String, Vec<Value>);

fn entries_of(value: Value) -> Vec<Entry> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::Array(pair) if pair.len() == 2 => {
                let mut pair = pair.into_iter();
                let id = match pair.next()? {
                    Value::BulkString(b) => String::from_utf8(b)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                    Value::SimpleString(s) => s,
                    _ => return None,
                };
                match pair.next()? {
                    Value::Array(fields) => Some((id, fields)),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// `XREADGROUP` from `from`: `>` for new entries, `0` for this consumer's
/// own pending ones (after a reconnect, replies may have been lost).
async fn read_group(
    conn: &mut ConnectionManager,
    options: &ConsumerOptions,
    block: Duration,
    from: &str,
) -> redis::RedisResult<Vec<Entry>> {
    let reply: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&options.group)
        .arg(&options.name)
        .arg("COUNT")
        .arg(options.prefetch)
        .arg("BLOCK")
        .arg(duration_millis(block))
        .arg("STREAMS")
        .arg(&options.topic)
        .arg(from)
        .query_async(conn)
        .await?;
    // [[stream, [entries]]] or nil
    Ok(match reply {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => {
                    pair.into_iter().nth(1).map(entries_of).unwrap_or_default()
                }
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    })
}

async fn claim(
    conn: &mut ConnectionManager,
    options: &ConsumerOptions,
) -> redis::RedisResult<Vec<Entry>> {
    let reply: Value = redis::cmd("XAUTOCLAIM")
        .arg(&options.topic)
        .arg(&options.group)
        .arg(&options.name)
        .arg(duration_millis(options.ack_deadline))
        .arg("0-0")
        .arg("COUNT")
        .arg(options.prefetch)
        .query_async(conn)
        .await?;
    Ok(match reply {
        Value::Array(parts) if parts.len() >= 2 => {
            parts.into_iter().nth(1).map(entries_of).unwrap_or_default()
        }
        _ => Vec::new(),
    })
}

async fn delivery_count(conn: &mut ConnectionManager, options: &ConsumerOptions, id: &str) -> u32 {
    let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
        .arg(&options.topic)
        .arg(&options.group)
        .arg(id)
        .arg(id)
        .arg(1)
        .query_async(conn)
        .await;
    if let Ok(Value::Array(rows)) = reply
        && let Some(Value::Array(row)) = rows.first()
        && let Some(Value::Int(n)) = row.get(3)
    {
        return u32::try_from(*n).unwrap_or(u32::MAX);
    }
    1
}

async fn fetch(
    ctx: Arc<Ctx>,
    mut blocking: ConnectionManager,
    block: Duration,
    paths: Arc<SettlePaths<Token, Acks>>,
    tx: mpsc::Sender<Result<Delivery>>,
    mut stop: watch::Receiver<bool>,
) {
    let options = &ctx.options;
    let mut conn = ctx.conn.clone();
    let move_script = redis::Script::new(MOVE_SCRIPT);
    let delayed = delayed_key(&options.topic);
    let claim_every =
        (options.ack_deadline / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut next_claim = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut recover = false;
    let mut next_move = Instant::now();
    loop {
        if *stop.borrow() || tx.is_closed() {
            return;
        }
        if Instant::now() >= next_move {
            next_move = Instant::now() + MOVE_EVERY;
            let moved: redis::RedisResult<i64> = move_script
                .key(&delayed)
                .key(&options.topic)
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = moved {
                tracing::debug!(error = %e, "redis: moving delayed messages failed");
            }
        }
        let mut claimed = false;
        let mut entries = Vec::new();
        if Instant::now() >= next_claim {
            next_claim = Instant::now() + claim_every;
            match claim(&mut conn, options).await {
                Ok(found) if !found.is_empty() => {
                    claimed = true;
                    entries = found;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "redis: XAUTOCLAIM failed"),
            }
        }
        if entries.is_empty() {
            let from = if recover { "0" } else { ">" };
            match read_group(&mut blocking, options, block, from).await {
                Ok(found) => {
                    backoff = Duration::from_millis(100);
                    if recover {
                        recover = false;
                        claimed = !found.is_empty();
                    }
                    entries = found;
                }
                Err(e) => {
                    recover = true;
                    if e.code() == Some("NOGROUP") {
                        let _ = create_group(&mut conn, &options.topic, &options.group).await;
                    } else {
                        tracing::warn!(error = %redis_error(&e, "XREADGROUP"), "redis consumer: retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        // One clock read per read, not per entry.
        let received_at = chrono::Utc::now();
        for (id, fields) in entries {
            let read = EntryId::parse(&id)
                .ok_or_else(|| crate::Error::invalid_input(format!("entry id {id:?}")))
                .and_then(|entry| Ok((entry, from_fields(fields)?)));
            let (entry, (mut message, stored)) = match read {
                Ok(m) => m,
                Err(err) => {
                    tracing::warn!(entry = %id, error = %err, "redis: unreadable entry acknowledged and skipped");
                    let _: redis::RedisResult<Value> = redis::cmd("XACK")
                        .arg(&options.topic)
                        .arg(&options.group)
                        .arg(&id)
                        .query_async(&mut conn)
                        .await;
                    continue;
                }
            };
            let count = if claimed {
                delivery_count(&mut conn, options, &id).await
            } else {
                1
            };
            message.attempt = stored.saturating_add(count);
            let message = Arc::new(message);
            let token = Token {
                entry,
                message: message.clone(),
            };
            if message.attempt > options.max_attempts {
                let reason = max_attempts_reason(options.max_attempts);
                if let Err(e) = ctx
                    .settle(token, Settlement::DeadLetter { reason }, false)
                    .await
                {
                    tracing::warn!(error = %e, "redis: dead-lettering failed");
                }
                continue;
            }
            let delivery = Delivery::shared_at(
                ctx.topic.clone(),
                message,
                fast_acker(token, paths.clone()),
                received_at,
            )
            .with_backend("redis")
            .with_counters(&ctx.counters);
            if !hand_over(&tx, &mut stop, delivery).await {
                return;
            }
        }
    }
}

/// Send the acks no delivery's future has sent, whenever woken; once
/// every [`Acks`] is gone, send what is left and end.
async fn ack_batches(queue: Arc<AckQueue>, mut wake: mpsc::UnboundedReceiver<()>) {
    let mut signals = Vec::new();
    while wake.recv_many(&mut signals, 1024).await > 0 {
        signals.clear();
        queue.flush().await;
    }
    queue.flush().await;
}

#[async_trait]
impl Settler<Token> for Ctx {
    async fn settle(&self, token: Token, settlement: Settlement, _dropped: bool) -> Result<()> {
        let options = &self.options;
        let stream = options.topic.as_str();
        let mut conn = self.conn.clone();
        let attempt = token.message.attempt;
        let settlement = match settlement {
            Settlement::Nack { .. } if !options.may_retry(attempt) => Settlement::DeadLetter {
                reason: max_attempts_reason(options.max_attempts),
            },
            other => other,
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        match settlement {
            Settlement::Ack => return self.acks.enqueue(token.entry).await,
            Settlement::Nack { delay: None } => {
                xadd(&mut pipe, stream, &token.message, attempt);
            }
            Settlement::Nack { delay: Some(delay) } => {
                let _: i64 = self
                    .delay_script
                    .key(delayed_key(stream))
                    .arg(duration_millis(delay))
                    .arg(to_member(&token.message, attempt))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis_error(&e, "delaying a message"))?;
            }
            Settlement::DeadLetter { reason } => {
                let copy = dead_letter_copy(&token.message, stream, &reason);
                xadd(&mut pipe, &options.dead_letter_topic, &copy, attempt);
            }
        }
        pipe.cmd("XACK")
            .arg(stream)
            .arg(&options.group)
            .arg(token.entry);
        let _: Value = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e, "settling"))?;
        Ok(())
    }

    async fn extend(&self, token: Token, _by: Duration) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: Value = redis::cmd("XCLAIM")
            .arg(&self.options.topic)
            .arg(&self.options.group)
            .arg(&self.options.name)
            .arg(0)
            .arg(token.entry)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e, "XCLAIM"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::EntryId;
    use redis::ToRedisArgs;

    #[test]
    fn entry_ids_parse_and_are_written_back_as_given() {
        for text in [
            "1733561234567-0",
            "0-1",
            "18446744073709551615-18446744073709551615",
        ] {
            let id = EntryId::parse(text).unwrap();
            assert_eq!(id.to_redis_args(), vec![text.as_bytes().to_vec()]);
        }
        for bad in [
            "",
            "12",
            "12-",
            "-3",
            "a-1",
            "1-2-3",
            "18446744073709551616-0",
        ] {
            assert_eq!(EntryId::parse(bad), None, "{bad}");
        }
    }
}
