//! The RabbitMQ consumer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::acker::Acker;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::{mpsc, watch};

use super::{
    DEAD_LETTER_GROUP, RabbitConfig, amqp_error, confirm_channel, declare_group, from_amqp, open,
    properties, publish,
};
use crate::settle::{Settler, TaskConsumer, hand_over, spawn_settler};
use crate::{
    ConsumedCounters, Consumer, ConsumerOptions, Delivery, Message, Result, SettleRequest,
    Settlement, channel_acker, dead_letter_copy, max_attempts_reason,
};

/// A consumer on a group's queue.
pub struct RabbitConsumer {
    inner: TaskConsumer,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for RabbitConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitConsumer").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Token {
    acker: Acker,
    channel: Channel,
    message: Arc<Message>,
}

struct Ctx {
    config: RabbitConfig,
    options: ConsumerOptions,
    topic: Arc<str>,
    counters: Arc<ConsumedCounters>,
    queue: String,
    conn: std::sync::Mutex<Option<Connection>>,
}

impl Ctx {
    async fn connect(&self) -> Result<(Connection, Channel, lapin::Consumer)> {
        let conn = open(&self.config.url).await?;
        let channel = confirm_channel(&conn).await?;
        let expires = self.config.queue_expires;
        declare_group(&channel, &self.options.topic, &self.options.group, expires).await?;
        declare_group(
            &channel,
            &self.options.dead_letter_topic,
            DEAD_LETTER_GROUP,
            expires,
        )
        .await?;
        channel
            .basic_qos(
                u16::try_from(self.options.prefetch).unwrap_or(u16::MAX),
                BasicQosOptions::default(),
            )
            .await
            .map_err(|e| amqp_error(&e, "basic.qos"))?;
        let consumer = channel
            .basic_consume(
                &self.queue,
                &self.options.name,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(&e, "basic.consume"))?;
        Ok((conn, channel, consumer))
    }

    fn close(&self) {
        let conn = crate::memory_lock(&self.conn).take();
        if let Some(conn) = conn {
            tokio::spawn(async move {
                let _ = conn.close(200, "consumer closed").await;
            });
        }
    }
}

impl RabbitConsumer {
    pub(super) async fn start(config: RabbitConfig, options: ConsumerOptions) -> Result<Self> {
        let queue = format!("{}.{}", options.topic, options.group);
        let ctx = Arc::new(Ctx {
            config,
            topic: Arc::from(options.topic.as_str()),
            counters: ConsumedCounters::new("rabbitmq", &options.topic),
            queue,
            options,
            conn: std::sync::Mutex::new(None),
        });
        let first = ctx.connect().await?;
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let settler = spawn_settler(ctx.clone(), settle_rx, 256);
        let fetch_ctx = ctx.clone();
        let inner = TaskConsumer::start(
            ctx.options.prefetch,
            ctx.options.shutdown_timeout,
            Some(settler),
            move |tx, stop| fetch(fetch_ctx, first, settle_tx, tx, stop),
        );
        Ok(Self { inner, ctx })
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        self.inner.next().await
    }

    async fn next_batch(&mut self, max: usize, deadline: Duration) -> Result<Vec<Delivery>> {
        self.inner.next_batch(max, deadline).await
    }

    async fn shutdown(&mut self) -> Result<()> {
        let outcome = self.inner.shutdown().await;
        self.ctx.close();
        outcome
    }
}

impl Drop for RabbitConsumer {
    fn drop(&mut self) {
        // Unacked messages go back to the queue for the group's other consumers.
        self.ctx.close();
    }
}

async fn fetch(
    ctx: Arc<Ctx>,
    first: (Connection, Channel, lapin::Consumer),
    settle_tx: mpsc::UnboundedSender<SettleRequest<Token>>,
    tx: mpsc::Sender<Result<Delivery>>,
    mut stop: watch::Receiver<bool>,
) {
    let options = &ctx.options;
    let mut current = Some(first);
    let mut backoff = Duration::from_millis(200);
    loop {
        let (conn, channel, mut consumer) = match current.take() {
            Some(c) => c,
            None => match ctx.connect().await {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(error = %err, "rabbitmq consumer: reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(200);
        *crate::memory_lock(&ctx.conn) = Some(conn);
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = stop.changed() => return,
            };
            let Some(Ok(delivery)) = next else {
                break;
            };
            let (mut message, attempt, count) = from_amqp(
                &delivery.properties,
                &delivery.data,
                delivery.routing_key.as_str(),
            );
            message.attempt = attempt.saturating_add(count).saturating_add(1);
            let message = Arc::new(message);
            let token = Token {
                acker: delivery.acker,
                channel: channel.clone(),
                message: message.clone(),
            };
            if message.attempt > options.max_attempts {
                let reason = max_attempts_reason(options.max_attempts);
                if let Err(e) = ctx
                    .settle(token, Settlement::DeadLetter { reason }, false)
                    .await
                {
                    tracing::warn!(error = %e, "rabbitmq: dead-lettering failed");
                }
                continue;
            }
            let delivery = Delivery::shared(
                ctx.topic.clone(),
                message,
                channel_acker(token, settle_tx.clone()),
            )
            .with_backend("rabbitmq")
            .with_counters(&ctx.counters);
            if !hand_over(&tx, &mut stop, delivery).await {
                return;
            }
        }
        if *stop.borrow() {
            return;
        }
        tracing::warn!("rabbitmq consumer: connection lost, reconnecting");
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
            Settlement::Ack => {}
            Settlement::Nack { delay: None } => {
                token
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    })
                    .await
                    .map_err(|e| amqp_error(&e, "basic.nack"))?;
                return Ok(());
            }
            Settlement::Nack { delay: Some(delay) } => {
                publish(
                    &token.channel,
                    "",
                    &format!("{}.retry", self.queue),
                    &token.message.payload,
                    properties(
                        &token.message,
                        attempt,
                        Some(delay.max(Duration::from_millis(1))),
                    ),
                )
                .await?;
            }
            Settlement::DeadLetter { reason } => {
                let copy = dead_letter_copy(&token.message, &options.topic, &reason);
                let key = copy.key.clone().unwrap_or_default();
                publish(
                    &token.channel,
                    &options.dead_letter_topic,
                    &key,
                    &copy.payload,
                    properties(&copy, attempt, None),
                )
                .await?;
            }
        }
        token
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| amqp_error(&e, "basic.ack"))?;
        Ok(())
    }
}
