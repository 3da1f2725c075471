//! The NATS JetStream consumer.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::AckKind;
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::{Shared, delayed_subject, from_nats, nats_error, stream_name};
use crate::settle::{Settler, TaskConsumer, hand_over, spawn_settler};
use crate::{
    ConsumedCounters, Consumer, ConsumerOptions, Delivery, Message, Result, SettleRequest,
    Settlement, channel_acker, dead_letter_copy, headers, max_attempts_reason, unix_millis,
};

/// A member of a consumer group (a durable pull consumer).
pub struct NatsConsumer {
    inner: TaskConsumer,
    mover: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConsumer").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Token {
    raw: Arc<async_nats::jetstream::Message>,
    message: Arc<Message>,
}

struct Ctx {
    shared: Arc<Shared>,
    /// Acks are requests on the client's shared reply subscription.
    client: async_nats::Client,
    options: ConsumerOptions,
    topic: Arc<str>,
    counters: Arc<ConsumedCounters>,
}

async fn pull_consumer(
    shared: &Shared,
    subject: &str,
    durable: &str,
    ack_wait: Duration,
    max_ack_pending: usize,
) -> Result<pull::Stream> {
    let stream = shared
        .js
        .get_stream(stream_name(subject))
        .await
        .map_err(|e| nats_error(&e, "looking up a stream"))?;
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait,
                max_ack_pending: i64::try_from(max_ack_pending).unwrap_or(i64::MAX),
                ..pull::Config::default()
            },
        )
        .await
        .map_err(|e| nats_error(&e, "creating a consumer"))?;
    consumer
        .messages()
        .await
        .map_err(|e| nats_error(&e, "pulling messages"))
}

impl NatsConsumer {
    pub(super) async fn start(shared: Arc<Shared>, options: ConsumerOptions) -> Result<Self> {
        shared.ensure_stream(&options.topic).await?;
        shared.ensure_stream(&options.dead_letter_topic).await?;
        let delayed = delayed_subject(&options.topic);
        shared.ensure_stream(&delayed).await?;
        let durable = stream_name(&options.group);
        let first = pull_consumer(
            &shared,
            &options.topic,
            &durable,
            options.ack_deadline,
            options.prefetch.saturating_mul(4).max(256),
        )
        .await?;
        let movers = pull_consumer(
            &shared,
            &delayed,
            "flextime-mover",
            Duration::from_secs(30),
            256,
        )
        .await?;
        let mover = tokio::spawn(move_delayed(shared.clone(), options.topic.clone(), movers));
        let ctx = Arc::new(Ctx {
            client: shared.js.client(),
            shared,
            topic: Arc::from(options.topic.as_str()),
            counters: ConsumedCounters::new("nats", &options.topic),
            options,
        });
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let settler = spawn_settler(ctx.clone(), settle_rx, 256);
        let fetch_ctx = ctx.clone();
        let inner = TaskConsumer::start(
            ctx.options.prefetch,
            ctx.options.shutdown_timeout,
            Some(settler),
            move |tx, stop| fetch(fetch_ctx, durable, first, settle_tx, tx, stop),
        );
        Ok(Self { inner, mover })
    }
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        self.inner.next().await
    }

    async fn next_batch(&mut self, max: usize, deadline: Duration) -> Result<Vec<Delivery>> {
        self.inner.next_batch(max, deadline).await
    }

    async fn shutdown(&mut self) -> Result<()> {
        self.mover.abort();
        self.inner.shutdown().await
    }
}

impl Drop for NatsConsumer {
    fn drop(&mut self) {
        self.mover.abort();
    }
}

/// Publish due delayed messages to the topic; nak early ones for the time left.
async fn move_delayed(shared: Arc<Shared>, topic: String, mut messages: pull::Stream) {
    while let Some(next) = messages.next().await {
        let Ok(raw) = next else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let not_before = raw
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::NOT_BEFORE))
            .and_then(|v| v.to_string().parse::<u64>().ok())
            .unwrap_or(0);
        let now = unix_millis(chrono::Utc::now());
        if now < not_before {
            let left = Duration::from_millis(not_before - now);
            let _ = raw.ack_with(AckKind::Nak(Some(left))).await;
            continue;
        }
        let message = from_nats(&raw.message);
        match shared.publish(&topic, &message, &[]).await {
            Ok(()) => {
                let _ = raw.double_ack().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "nats: moving a delayed message failed; retrying");
                let _ = raw
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }
}

async fn fetch(
    ctx: Arc<Ctx>,
    durable: String,
    first: pull::Stream,
    settle_tx: mpsc::UnboundedSender<SettleRequest<Token>>,
    tx: mpsc::Sender<Result<Delivery>>,
    mut stop: watch::Receiver<bool>,
) {
    let options = &ctx.options;
    let mut current = Some(first);
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut messages = match current.take() {
            Some(m) => m,
            None => match pull_consumer(
                &ctx.shared,
                &options.topic,
                &durable,
                options.ack_deadline,
                options.prefetch.saturating_mul(4).max(256),
            )
            .await
            {
                Ok(m) => m,
                Err(err) => {
                    tracing::warn!(error = %err, "nats consumer: retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = stop.changed() => return,
            };
            let raw = match next {
                Some(Ok(raw)) => raw,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "nats consumer: message stream error");
                    continue;
                }
                None => break,
            };
            backoff = Duration::from_millis(200);
            let mut message = from_nats(&raw.message);
            message.attempt = raw
                .info()
                .ok()
                .and_then(|i| u32::try_from(i.delivered).ok())
                .unwrap_or(1)
                .max(1);
            let message = Arc::new(message);
            let token = Token {
                raw: Arc::new(raw),
                message: message.clone(),
            };
            if message.attempt > options.max_attempts {
                let reason = max_attempts_reason(options.max_attempts);
                if let Err(e) = ctx
                    .settle(token, Settlement::DeadLetter { reason }, false)
                    .await
                {
                    tracing::warn!(error = %e, "nats: dead-lettering failed");
                }
                continue;
            }
            let delivery = Delivery::shared(
                ctx.topic.clone(),
                message,
                channel_acker(token, settle_tx.clone()),
            )
            .with_backend("nats")
            .with_counters(&ctx.counters);
            if !hand_over(&tx, &mut stop, delivery).await {
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
    }
}

#[async_trait]
impl Settler<Token> for Ctx {
    async fn settle(&self, token: Token, settlement: Settlement, _dropped: bool) -> Result<()> {
        let options = &self.options;
        let attempt = token.message.attempt;
        let settlement = match settlement {
            Settlement::Nack { .. } if !options.may_retry(attempt) => Settlement::DeadLetter {
                reason: max_attempts_reason(options.max_attempts),
            },
            other => other,
        };
        match settlement {
            // Confirmed by the server, as `double_ack` is, but as a request
            // on the client's one reply subscription instead of a
            // subscription of its own per ack.
            Settlement::Ack => {
                let reply = token.raw.message.reply.clone().ok_or_else(|| {
                    crate::Error::internal("NATS: a JetStream message without a reply subject")
                })?;
                self.client
                    .request(reply, AckKind::Ack.into())
                    .await
                    .map_err(|e| nats_error(&e, "acking"))?;
            }
            Settlement::Nack { delay } => token
                .raw
                .ack_with(AckKind::Nak(delay))
                .await
                .map_err(|e| nats_error(&e, "naking"))?,
            Settlement::DeadLetter { reason } => {
                let copy = dead_letter_copy(&token.message, &options.topic, &reason);
                self.shared
                    .publish(&options.dead_letter_topic, &copy, &[])
                    .await?;
                token
                    .raw
                    .ack_with(AckKind::Term)
                    .await
                    .map_err(|e| nats_error(&e, "terminating"))?;
            }
        }
        Ok(())
    }

    async fn extend(&self, token: Token, _by: Duration) -> Result<()> {
        token
            .raw
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| nats_error(&e, "extending"))
    }
}
