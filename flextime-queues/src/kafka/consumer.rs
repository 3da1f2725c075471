//! The Kafka consumer: in-order commits up to the lowest unsettled offset.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message as _;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Notify, mpsc, watch};

use super::{Shared, client_config, from_record, kafka_error};
use crate::settle::{
    AckPath, SettlePaths, Settler, TaskConsumer, fast_acker, hand_over, spawn_settler,
};
use crate::{
    ConsumedCounters, Consumer, ConsumerOptions, Delivery, Message, Result, Settlement,
    dead_letter_copy, headers, max_attempts_reason, memory_lock, unix_millis, unix_millis_due,
};

/// The most records held back for a later due time before reading pauses.
const MAX_HELD: usize = 10_000;

/// A member of a Kafka consumer group.
pub struct KafkaConsumer {
    inner: TaskConsumer,
    consumer: Arc<StreamConsumer<Context>>,
    committer: tokio::task::JoinHandle<()>,
    /// Set when dropped without `shutdown` (shared with the settle task).
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Part {
    outstanding: BTreeSet<i64>,
    next: i64,
    committed: i64,
}

/// Offsets received and not yet settled, per partition.
#[derive(Default)]
struct Tracker {
    parts: HashMap<i32, Part>,
}

impl Tracker {
    fn received(&mut self, partition: i32, offset: i64) {
        let part = self.parts.entry(partition).or_default();
        part.outstanding.insert(offset);
        part.next = part.next.max(offset + 1);
    }

    /// Settle an offset; the new commit point when it moved.
    fn settled(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let part = self.parts.get_mut(&partition)?;
        part.outstanding.remove(&offset);
        let point = part.outstanding.first().copied().unwrap_or(part.next);
        (point > part.committed).then(|| {
            part.committed = point;
            point
        })
    }

    fn commit_points(&self, topic: &str, only: Option<&[i32]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (partition, part) in &self.parts {
            if only.is_some_and(|o| !o.contains(partition)) {
                continue;
            }
            let point = part.outstanding.first().copied().unwrap_or(part.next);
            if point > 0 {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(point));
            }
        }
        tpl
    }
}

pub(super) struct Context {
    topic: String,
    tracker: Arc<Mutex<Tracker>>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let partitions: Vec<i32> = revoked
                .elements_for_topic(&self.topic)
                .iter()
                .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
                .collect();
            let mut tracker = memory_lock(&self.tracker);
            let tpl = tracker.commit_points(&self.topic, Some(&partitions));
            if tpl.count() > 0 {
                if let Err(e) = base_consumer.commit(&tpl, CommitMode::Sync) {
                    tracing::warn!(error = %e, "kafka: commit on revocation failed");
                }
            }
            for p in partitions {
                tracker.parts.remove(&p);
            }
        }
    }
}

#[derive(Clone)]
struct Token {
    partition: i32,
    offset: i64,
    message: Arc<Message>,
}

struct Ctx {
    shared: Arc<Shared>,
    consumer: Arc<StreamConsumer<Context>>,
    /// Holds the offset tracker too (`commits.tracker`).
    commits: Commits,
    options: ConsumerOptions,
    topic: Arc<str>,
    counters: Arc<ConsumedCounters>,
    /// The consumer was dropped without `shutdown`: see [`Settler::finish`].
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

/// Settled offsets move the commit point; the committer task commits it.
/// One commit covers every settlement since the last (a commit per ack was a
/// broker request per message).
#[derive(Clone)]
struct Commits {
    tracker: Arc<Mutex<Tracker>>,
    due: Arc<Notify>,
}

impl Commits {
    /// Settle an offset (synchronously), waking the committer when the
    /// commit point moved.
    fn settled(&self, partition: i32, offset: i64) {
        if memory_lock(&self.tracker)
            .settled(partition, offset)
            .is_some()
        {
            self.due.notify_one();
        }
    }
}

/// An ack only moves the commit point: done before `settle` returns, with
/// no settle-task hop.
impl AckPath<Token> for Commits {
    fn ack(&self, token: &Token) -> futures::future::BoxFuture<'static, Result<()>> {
        self.settled(token.partition, token.offset);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Commit the commit points (asynchronously) when they moved, at most once
/// per `every`: a commit per settlement was a broker request per message.
/// Settlements during the pause leave `due` notified, so the next commit
/// follows the pause at once. The final commit, on shutdown, is
/// [`Settler::finish`]'s.
async fn commit_due(
    commits: Commits,
    topic: String,
    every: Duration,
    mut commit: impl FnMut(TopicPartitionList) + Send,
) {
    loop {
        commits.due.notified().await;
        let tpl = memory_lock(&commits.tracker).commit_points(&topic, None);
        if tpl.count() > 0 {
            commit(tpl);
        }
        if !every.is_zero() {
            tokio::time::sleep(every).await;
        }
    }
}

impl KafkaConsumer {
    pub(super) async fn start(shared: Arc<Shared>, options: ConsumerOptions) -> Result<Self> {
        shared.ensure_topic(&options.topic).await?;
        shared.ensure_topic(&options.dead_letter_topic).await?;
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let mut cc = client_config(&shared.config);
        cc.set("group.id", &options.group)
            .set("client.id", &options.name)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        let consumer: StreamConsumer<Context> = cc
            .create_with_context(Context {
                topic: options.topic.clone(),
                tracker: tracker.clone(),
            })
            .map_err(|e| kafka_error(&e, "creating a consumer"))?;
        consumer
            .subscribe(&[&options.topic])
            .map_err(|e| kafka_error(&e, "subscribing"))?;
        let consumer = Arc::new(consumer);
        let commits = Commits {
            tracker,
            due: Arc::new(Notify::new()),
        };
        let committer = {
            let consumer = consumer.clone();
            tokio::spawn(commit_due(
                commits.clone(),
                options.topic.clone(),
                shared.config.commit_interval,
                move |tpl| {
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                        tracing::debug!(error = %e, "kafka: commit failed; a later one covers it");
                    }
                },
            ))
        };
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ctx = Arc::new(Ctx {
            dropped: Arc::clone(&dropped),
            shared,
            consumer: consumer.clone(),
            commits: commits.clone(),
            topic: Arc::from(options.topic.as_str()),
            counters: ConsumedCounters::new("kafka", &options.topic),
            options,
        });
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let settler = spawn_settler(ctx.clone(), settle_rx, 256);
        let paths = Arc::new(SettlePaths {
            tx: settle_tx,
            acks: commits,
        });
        let fetch_ctx = ctx.clone();
        let inner = TaskConsumer::start(
            ctx.options.prefetch,
            ctx.options.shutdown_timeout,
            Some(settler),
            move |tx, stop| fetch(fetch_ctx, paths, tx, stop),
        );
        Ok(Self {
            inner,
            consumer,
            committer,
            dropped,
        })
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        self.inner.next().await
    }

    async fn next_batch(&mut self, max: usize, deadline: Duration) -> Result<Vec<Delivery>> {
        self.inner.next_batch(max, deadline).await
    }

    async fn shutdown(&mut self) -> Result<()> {
        // The settle task's last act is the final (synchronous) commit.
        let outcome = self.inner.shutdown().await;
        self.committer.abort();
        self.consumer.unsubscribe();
        outcome
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // Leave the group so that the partitions (and their uncommitted
        // records) go to the group's other consumers at once.
        self.dropped
            .store(true, std::sync::atomic::Ordering::Release);
        self.committer.abort();
        self.consumer.unsubscribe();
    }
}

async fn fetch(
    ctx: Arc<Ctx>,
    paths: Arc<SettlePaths<Token, Commits>>,
    tx: mpsc::Sender<Result<Delivery>>,
    mut stop: watch::Receiver<bool>,
) {
    let options = &ctx.options;
    let mut held: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut held_tokens: HashMap<u64, Token> = HashMap::new();
    let mut seq = 0u64;
    loop {
        if *stop.borrow() {
            return;
        }
        // Hand out held records that are due (the clock is read only while
        // some are held).
        let now = if held.is_empty() {
            0
        } else {
            unix_millis(chrono::Utc::now())
        };
        while let Some(Reverse((due, id))) = held.peek().copied() {
            if due > now {
                break;
            }
            held.pop();
            if let Some(token) = held_tokens.remove(&id) {
                let delivery = Delivery::shared(
                    ctx.topic.clone(),
                    token.message.clone(),
                    fast_acker(token, paths.clone()),
                )
                .with_backend("kafka")
                .with_counters(&ctx.counters);
                if !hand_over(&tx, &mut stop, delivery).await {
                    return;
                }
            }
        }
        let wait = held
            .peek()
            .map(|Reverse((due, _))| Duration::from_millis(due.saturating_sub(now)));
        let record = if held.len() >= MAX_HELD {
            tokio::select! {
                () = tokio::time::sleep(wait.unwrap_or_default()) => continue,
                _ = stop.changed() => return,
            }
        } else if let Some(wait) = wait {
            tokio::select! {
                biased;
                record = ctx.consumer.recv() => record,
                () = tokio::time::sleep(wait) => continue,
                _ = stop.changed() => return,
            }
        } else {
            // Nothing held: no timer to register per record. Biased, so a
            // record already queued is taken without registering a wait on
            // `stop` (checked at the top of every turn instead).
            tokio::select! {
                biased;
                record = ctx.consumer.recv() => record,
                _ = stop.changed() => return,
            }
        };
        let first = match record {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer: receive failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        // Take every record already queued (as many as the channel has room
        // for) before handing any over: the consumer then finds a burst
        // waiting instead of being woken record by record.
        let mut burst = vec![first];
        while burst.len() < tx.capacity() {
            match ctx.consumer.recv().now_or_never() {
                Some(Ok(record)) => burst.push(record),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "kafka consumer: receive failed");
                    break;
                }
                None => break,
            }
        }
        let mut ready = Vec::with_capacity(burst.len());
        let mut dead = Vec::new();
        {
            let mut tracker = memory_lock(&ctx.commits.tracker);
            for record in burst {
                let (partition, offset) = (record.partition(), record.offset());
                let (mut message, stored, not_before) = from_record(
                    record.key(),
                    record.payload(),
                    record.timestamp().to_millis(),
                    record.headers(),
                    &ctx.topic,
                    partition,
                    offset,
                );
                drop(record);
                tracker.received(partition, offset);
                message.attempt = stored.saturating_add(1);
                let message = Arc::new(message);
                let token = Token {
                    partition,
                    offset,
                    message: message.clone(),
                };
                if message.attempt > options.max_attempts {
                    dead.push(token);
                } else if let Some(due) =
                    not_before.filter(|due| *due > unix_millis(chrono::Utc::now()))
                {
                    seq += 1;
                    held.push(Reverse((due, seq)));
                    held_tokens.insert(seq, token);
                } else {
                    ready.push(
                        Delivery::shared(
                            ctx.topic.clone(),
                            message,
                            fast_acker(token, paths.clone()),
                        )
                        .with_backend("kafka")
                        .with_counters(&ctx.counters),
                    );
                }
            }
        }
        for token in dead {
            let reason = max_attempts_reason(options.max_attempts);
            if let Err(e) = ctx
                .settle(token, Settlement::DeadLetter { reason }, false)
                .await
            {
                tracing::warn!(error = %e, "kafka: dead-lettering failed");
            }
        }
        for delivery in ready {
            if !hand_over(&tx, &mut stop, delivery).await {
                return;
            }
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
            Settlement::Ack => {}
            Settlement::Nack { delay } => {
                let extra: Vec<(&str, String)> = delay
                    .map(|d| {
                        let due =
                            chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default();
                        (headers::NOT_BEFORE, unix_millis_due(due).to_string())
                    })
                    .into_iter()
                    .collect();
                self.shared
                    .produce(&options.topic, &token.message, attempt, &extra)
                    .await?;
            }
            Settlement::DeadLetter { reason } => {
                let copy = dead_letter_copy(&token.message, &options.topic, &reason);
                self.shared
                    .produce(&options.dead_letter_topic, &copy, attempt, &[])
                    .await?;
            }
        }
        self.commits.settled(token.partition, token.offset);
        Ok(())
    }

    async fn extend(&self, _token: Token, _by: Duration) -> Result<()> {
        Ok(())
    }

    async fn finish(&self) {
        let tpl = memory_lock(&self.commits.tracker).commit_points(&self.options.topic, None);
        if tpl.count() == 0 {
            return;
        }
        if self.dropped.load(std::sync::atomic::Ordering::Acquire) {
            // Dropped without `shutdown`: nobody polls the consumer any
            // more, so it cannot finish leaving the group, and a synchronous
            // commit would wait through the rebalance it holds up (the
            // group's other members then get nothing until it gives up).
            // Hand the commit over without waiting; closing the consumer
            // right after sends it and leaves the group.
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "kafka: final commit of a dropped consumer failed");
            }
            return;
        }
        // A synchronous commit waits for the broker (longer while the group
        // rebalances): on a blocking thread, so that it never stalls the
        // runtime the application's other consumers run on.
        let consumer = Arc::clone(&self.consumer);
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "kafka: final commit failed"),
            Err(e) => tracing::warn!(error = %e, "kafka: final commit task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use rdkafka::Offset;
    use tokio::sync::{Notify, mpsc};
    use tokio::time::Instant;

    use super::{Commits, Tracker, commit_due};

    #[tokio::test(start_paused = true)]
    async fn settlements_are_committed_at_most_once_per_interval() {
        let commits = Commits {
            tracker: Arc::new(Mutex::new(Tracker::default())),
            due: Arc::new(Notify::new()),
        };
        for offset in 0..50 {
            commits.tracker.lock().unwrap().received(0, offset);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let committer = tokio::spawn(commit_due(
            commits.clone(),
            "t".to_owned(),
            Duration::from_millis(100),
            move |tpl| {
                let point = tpl.find_partition("t", 0).map(|p| p.offset());
                tx.send((Instant::now(), point)).unwrap();
            },
        ));
        // The first settlement is committed at once.
        commits.settled(0, 0);
        let (first, point) = rx.recv().await.unwrap();
        assert_eq!(point, Some(Offset::Offset(1)));
        // The next ones, each given the chance to be committed on its own,
        // are committed together once the interval has passed.
        for offset in 1..50 {
            commits.settled(0, offset);
            tokio::task::yield_now().await;
        }
        let (second, point) = rx.recv().await.unwrap();
        assert_eq!(point, Some(Offset::Offset(50)));
        assert!(second - first >= Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "more than one commit for the rest");
        committer.abort();
    }

    #[test]
    fn commits_only_up_to_the_lowest_unsettled_offset() {
        let mut t = Tracker::default();
        for offset in 10..15 {
            t.received(0, offset);
        }
        t.received(1, 3);
        // 11 and 12 settle first: 10 is still out, nothing moves.
        assert_eq!(t.settled(0, 11), Some(10));
        assert_eq!(t.settled(0, 12), None);
        // 10 settles: the commit point jumps to 13, the lowest still out.
        assert_eq!(t.settled(0, 10), Some(13));
        assert_eq!(t.settled(0, 14), None);
        assert_eq!(t.settled(0, 13), Some(15));
        // Partitions are independent; an unknown partition is ignored.
        assert_eq!(t.settled(1, 3), Some(4));
        assert_eq!(t.settled(7, 1), None);
        let tpl = t.commit_points("t", None);
        assert_eq!(tpl.count(), 2);
    }
}
