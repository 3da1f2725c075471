//! A channel-based [`Acknowledger`] and the task that drives it: the
//! building block that keeps settlements cancellation-safe.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::{Acknowledger, Error, Result, Settlement};

/// What a [`SettleRequest`] asks for.
#[derive(Debug)]
pub enum SettleOp {
    /// Settle the message.
    Settle {
        /// How.
        settlement: Settlement,
        /// Whether the delivery was dropped unsettled.
        dropped: bool,
    },
    /// Extend its deadline.
    Extend(Duration),
}

/// One request from a delivery to its consumer's settle task.
#[derive(Debug)]
pub struct SettleRequest<T> {
    /// The backend's handle of the message.
    pub token: T,
    /// What to do.
    pub op: SettleOp,
    /// Where to report the outcome (none when nobody waits).
    pub reply: Option<oneshot::Sender<Result<()>>>,
}

struct ChannelAcker<T> {
    token: T,
    tx: mpsc::UnboundedSender<SettleRequest<T>>,
}

/// An [`Acknowledger`] that enqueues each request on `tx`; a task (see
/// [`Settler`]) performs them. Enqueueing happens before `settle` returns,
/// so dropping the returned future never cancels a settlement. The channel
/// holds at most one settlement per outstanding delivery, which the
/// consumer's prefetch bounds.
pub fn channel_acker<T: Clone + Send + Sync + 'static>(
    token: T,
    tx: mpsc::UnboundedSender<SettleRequest<T>>,
) -> Box<dyn Acknowledger> {
    Box::new(ChannelAcker { token, tx })
}

fn closed() -> Error {
    Error::unavailable("the consumer is closed; the broker will redeliver the message")
}

impl<T: Clone + Send + Sync + 'static> Acknowledger for ChannelAcker<T> {
    fn settle(&self, settlement: Settlement, dropped: bool) -> BoxFuture<'static, Result<()>> {
        request(
            &self.tx,
            self.token.clone(),
            SettleOp::Settle {
                settlement,
                dropped,
            },
            !dropped,
        )
    }

    fn extend(&self, by: Duration) -> BoxFuture<'static, Result<()>> {
        request(&self.tx, self.token.clone(), SettleOp::Extend(by), true)
    }
}

/// Enqueue one request (before returning); the future reports its outcome.
fn request<T>(
    tx: &mpsc::UnboundedSender<SettleRequest<T>>,
    token: T,
    op: SettleOp,
    wait: bool,
) -> BoxFuture<'static, Result<()>> {
    let (reply, rx) = oneshot::channel();
    let sent = tx
        .send(SettleRequest {
            token,
            op,
            reply: wait.then_some(reply),
        })
        .is_ok();
    Box::pin(async move {
        if !sent {
            return Err(closed());
        }
        rx.await.unwrap_or_else(|_| Err(closed()))
    })
}

/// A backend's fast path for acks, beside the settle task: an ack is the
/// common case and needs no settle-task hop when the backend can commit to
/// it at once (enqueue it for a batching task, or perform it synchronously).
#[allow(dead_code)] // used by the broker backends
pub(crate) trait AckPath<T>: Send + Sync + 'static {
    /// Commit to acknowledging `token` before returning (as
    /// [`Acknowledger::settle`] must); the future only reports the outcome,
    /// and dropping it must not cancel the ack.
    fn ack(&self, token: &T) -> BoxFuture<'static, Result<()>>;
}

/// Where a consumer's deliveries settle: the settle task's channel and the
/// ack fast path, shared by all of them (one reference count per delivery).
#[allow(dead_code)] // used by the broker backends
pub(crate) struct SettlePaths<T, A> {
    /// The settle task's requests (nacks, dead letters, drops, extensions).
    pub(crate) tx: mpsc::UnboundedSender<SettleRequest<T>>,
    /// The ack fast path.
    pub(crate) acks: A,
}

struct FastAcker<T, A> {
    token: T,
    paths: std::sync::Arc<SettlePaths<T, A>>,
}

/// Like [`channel_acker`], but acks go through `paths.acks` instead of the
/// settle task; nacks, dead letters, drops and extensions still go to
/// `paths.tx`.
#[allow(dead_code)] // used by the broker backends
pub(crate) fn fast_acker<T, A>(
    token: T,
    paths: std::sync::Arc<SettlePaths<T, A>>,
) -> Box<dyn Acknowledger>
where
    T: Clone + Send + Sync + 'static,
    A: AckPath<T>,
{
    Box::new(FastAcker { token, paths })
}

impl<T, A> Acknowledger for FastAcker<T, A>
where
    T: Clone + Send + Sync + 'static,
    A: AckPath<T>,
{
    fn settle(&self, settlement: Settlement, dropped: bool) -> BoxFuture<'static, Result<()>> {
        if settlement == Settlement::Ack && !dropped {
            return self.paths.acks.ack(&self.token);
        }
        request(
            &self.paths.tx,
            self.token.clone(),
            SettleOp::Settle {
                settlement,
                dropped,
            },
            !dropped,
        )
    }

    fn extend(&self, by: Duration) -> BoxFuture<'static, Result<()>> {
        request(
            &self.paths.tx,
            self.token.clone(),
            SettleOp::Extend(by),
            true,
        )
    }
}

/// Hand a fetched delivery to the consumer's channel: at once when it has
/// room (the common case, without setting up a wait on `stop`), else wait
/// for room or for `stop`. False when the consumer is gone or stopping (the
/// fetch loop then ends; a delivery not handed over is never acked, so the
/// broker redelivers it).
///
/// A full channel is waited on until half of it is free, not one slot:
/// waiting for one slot woke the fetch task for every delivery the
/// consumer took (a cross-thread wake-up per message while the consumer
/// drains a full buffer); this way it wakes once per half buffer and
/// refills it in one burst.
#[allow(dead_code)] // used by the broker backends
pub(crate) async fn hand_over(
    tx: &mpsc::Sender<Result<crate::Delivery>>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    delivery: crate::Delivery,
) -> bool {
    match tx.try_send(Ok(delivery)) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(item)) => {
            let room = (tx.max_capacity() / 2).max(1);
            tokio::select! {
                permits = tx.reserve_many(room) => match permits {
                    // The other permits go back to the channel when
                    // dropped; the following deliveries take them with
                    // `try_send`.
                    Ok(mut permits) => permits.next().map(|p| p.send(item)).is_some(),
                    Err(_) => false,
                },
                _ = stop.changed() => false,
            }
        }
    }
}

/// One task that ends when all of `tasks` have ended, in order; aborting it
/// aborts those still running. Lets [`TaskConsumer`] wait for a settle task
/// and the ack task beside it as one.
#[allow(dead_code)] // used by the broker backends
pub(crate) fn join_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) -> tokio::task::JoinHandle<()> {
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for task in &self.0 {
                task.abort();
            }
        }
    }
    tokio::spawn(async move {
        let mut tasks = AbortOnDrop(tasks);
        for task in &mut tasks.0 {
            let _ = task.await;
        }
    })
}

/// The backend side of [`channel_acker`]: performs settlements.
#[async_trait]
pub trait Settler<T: Send + 'static>: Send + Sync + 'static {
    /// Perform one settlement.
    async fn settle(&self, token: T, settlement: Settlement, dropped: bool) -> Result<()>;
    /// Extend a deadline (unsupported by default).
    async fn extend(&self, _token: T, _by: Duration) -> Result<()> {
        Err(Error::permanent(
            "this backend cannot extend a delivery's deadline",
        ))
    }

    /// Called once when every acknowledger is gone (after the last
    /// settlement): commit what is left.
    async fn finish(&self) {}
}

/// Spawn the task that performs requests from `rx` with `settler`, up to
/// `concurrency` at once; it ends (after [`Settler::finish`]) when every
/// sender is dropped.
#[allow(dead_code)] // used by the broker backends
pub(crate) fn spawn_settler<T, S>(
    settler: std::sync::Arc<S>,
    rx: mpsc::UnboundedReceiver<SettleRequest<T>>,
    concurrency: usize,
) -> tokio::task::JoinHandle<()>
where
    T: Send + 'static,
    S: Settler<T> + ?Sized,
{
    tokio::spawn(async move {
        let mut rx = rx;
        let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        requests
            .for_each_concurrent(concurrency.max(1), |req| {
                let settler = settler.clone();
                async move {
                    let outcome = match req.op {
                        SettleOp::Settle {
                            settlement,
                            dropped,
                        } => settler.settle(req.token, settlement, dropped).await,
                        SettleOp::Extend(by) => settler.extend(req.token, by).await,
                    };
                    if let Err(err) = &outcome {
                        tracing::warn!(error = %err, "settling a delivery failed; the broker will redeliver it");
                    }
                    if let Some(reply) = req.reply {
                        let _ = reply.send(outcome);
                    }
                }
            })
            .await;
        settler.finish().await;
    })
}

/// A [`crate::Consumer`] fed by a background fetch task through a bounded
/// channel (so `next` is cancel-safe), with a settle task behind the
/// deliveries' acknowledgers.
#[allow(dead_code)] // used by the broker backends
pub(crate) struct TaskConsumer {
    rx: mpsc::Receiver<Result<crate::Delivery>>,
    /// Taken from `rx` and not handed out yet (what followed an error in
    /// one take, or what a cancelled call had taken), in order.
    pending: std::collections::VecDeque<Result<crate::Delivery>>,
    /// Reused for every take from `rx`.
    scratch: Vec<Result<crate::Delivery>>,
    stop: tokio::sync::watch::Sender<bool>,
    fetch: Option<tokio::task::JoinHandle<()>>,
    settler: Option<tokio::task::JoinHandle<()>>,
    shutdown_timeout: Duration,
    closed: bool,
}

#[allow(dead_code)] // used by the broker backends
impl TaskConsumer {
    /// Start `fetch(tx, stop)`: it sends deliveries on `tx` (bounded by
    /// `prefetch`) until `stop` turns true or the receiver is gone.
    pub(crate) fn start<F, Fut>(
        prefetch: usize,
        shutdown_timeout: Duration,
        settler: Option<tokio::task::JoinHandle<()>>,
        fetch: F,
    ) -> Self
    where
        F: FnOnce(mpsc::Sender<Result<crate::Delivery>>, tokio::sync::watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(prefetch.max(1));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let fetch = tokio::spawn(fetch(tx, stop_rx));
        Self {
            rx,
            pending: std::collections::VecDeque::new(),
            scratch: Vec::new(),
            stop,
            fetch: Some(fetch),
            settler,
            shutdown_timeout,
            closed: false,
        }
    }
}

#[async_trait]
impl crate::Consumer for TaskConsumer {
    async fn next(&mut self) -> Result<Option<crate::Delivery>> {
        if self.closed {
            return Ok(None);
        }
        if let Some(item) = self.pending.pop_front() {
            return item.map(Some);
        }
        match self.rx.recv().await {
            Some(Ok(delivery)) => Ok(Some(delivery)),
            Some(Err(err)) => Err(err),
            None => Ok(None),
        }
    }

    async fn next_batch(&mut self, max: usize, deadline: Duration) -> Result<Vec<crate::Delivery>> {
        if self.closed {
            return Ok(Vec::new());
        }
        let max = max.max(1);
        let mut batch = Vec::new();
        // Wait for the first, then take what is already buffered; wait for
        // more only while the deadline allows. Each take empties the
        // channel up to what is missing at once (one release of its
        // permits, not one per delivery).
        let until = tokio::time::Instant::now() + deadline;
        loop {
            while batch.len() < max {
                match self.pending.pop_front() {
                    Some(Ok(delivery)) => batch.push(delivery),
                    Some(Err(err)) if batch.is_empty() => return Err(err),
                    Some(Err(err)) => {
                        // Reported by the next call, after this batch.
                        self.pending.push_front(Err(err));
                        return Ok(batch);
                    }
                    None => break,
                }
            }
            if batch.len() >= max {
                return Ok(batch);
            }
            let missing = max - batch.len();
            match tokio::time::timeout_at(until, self.rx.recv_many(&mut self.scratch, missing))
                .await
            {
                Ok(0) | Err(_) => return Ok(batch),
                Ok(_) => self.pending.extend(self.scratch.drain(..)),
            }
        }
    }

    async fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let _ = self.stop.send(true);
        if let Some(fetch) = self.fetch.take()
            && tokio::time::timeout(self.shutdown_timeout, fetch)
                .await
                .is_err()
        {
            tracing::warn!("consumer fetch task did not stop in time");
        }
        // Received but never handed out: released (nacked) by their Drop.
        self.pending.clear();
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        if let Some(settler) = self.settler.take() {
            let abort = settler.abort_handle();
            if tokio::time::timeout(self.shutdown_timeout, settler)
                .await
                .is_err()
            {
                abort.abort();
                return Err(Error::timeout(
                    "shutdown: deliveries were still unsettled after the shutdown timeout",
                ));
            }
        }
        Ok(())
    }
}

impl Drop for TaskConsumer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(fetch) = self.fetch.take() {
            fetch.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;

    use super::*;
    use crate::{Delivery, Message};

    struct NoAcker;

    impl Acknowledger for NoAcker {
        fn settle(&self, _: Settlement, _: bool) -> BoxFuture<'static, Result<()>> {
            Box::pin(std::future::ready(Ok(())))
        }
        fn extend(&self, _: Duration) -> BoxFuture<'static, Result<()>> {
            Box::pin(std::future::ready(Ok(())))
        }
    }

    fn delivery(id: &str) -> Delivery {
        Delivery::new(
            Arc::from("t"),
            Message::new("x").with_id(id),
            Box::new(NoAcker),
        )
    }

    fn id_of(item: Option<Result<Delivery>>) -> String {
        item.expect("an item")
            .expect("a delivery")
            .message()
            .id
            .clone()
    }

    #[tokio::test]
    async fn a_full_channel_resumes_the_fetch_task_once_half_of_it_is_free() {
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop_tx, mut stop) = tokio::sync::watch::channel(false);
        for i in 0..4 {
            assert!(hand_over(&tx, &mut stop, delivery(&i.to_string())).await);
        }
        let mut stop5 = stop.clone();
        let mut fifth = Box::pin(hand_over(&tx, &mut stop5, delivery("4")));
        assert!(
            (&mut fifth).now_or_never().is_none(),
            "a full channel took more"
        );
        assert_eq!(id_of(rx.recv().await), "0");
        // One free slot does not resume it (it would, per slot, before).
        assert!(
            (&mut fifth).now_or_never().is_none(),
            "resumed for one slot"
        );
        assert_eq!(id_of(rx.recv().await), "1");
        assert_eq!((&mut fifth).now_or_never(), Some(true));
        drop(fifth);
        // The other slot is free for the next delivery at once, and the
        // order is kept.
        assert!(hand_over(&tx, &mut stop, delivery("5")).await);
        for want in ["2", "3", "4", "5"] {
            assert_eq!(id_of(rx.recv().await), want);
        }
    }

    #[tokio::test]
    async fn a_stop_or_a_closed_channel_ends_the_hand_over() {
        let (tx, mut rx) = mpsc::channel(1);
        let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
        assert!(hand_over(&tx, &mut stop, delivery("a")).await);
        let mut stop2 = stop.clone();
        let waiting = hand_over(&tx, &mut stop2, delivery("b"));
        stop_tx.send(true).unwrap();
        assert!(!waiting.await, "a stop did not end the wait");
        rx.close();
        assert!(!hand_over(&tx, &mut stop, delivery("c")).await);
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_buffered_and_an_error_keeps_its_place() {
        use crate::Consumer as _;
        let mut consumer =
            TaskConsumer::start(8, Duration::from_secs(1), None, |tx, mut stop| async move {
                for item in [
                    Ok(delivery("a")),
                    Ok(delivery("b")),
                    Err(Error::unavailable("broker gone")),
                    Ok(delivery("c")),
                    Ok(delivery("d")),
                    Ok(delivery("e")),
                ] {
                    tx.send(item).await.unwrap();
                }
                // Keeps the channel open until shutdown: nothing more comes.
                let _ = stop.changed().await;
                drop(tx);
            });
        let ids = |batch: Vec<Delivery>| -> Vec<String> {
            batch.iter().map(|d| d.message().id.clone()).collect()
        };
        let short = Duration::from_millis(50);
        // Everything before the error, then the error on its own...
        let first = consumer.next_batch(10, short).await.unwrap();
        assert_eq!(ids(first), ["a", "b"]);
        let err = consumer.next_batch(10, short).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            Error::unavailable("broker gone").to_string()
        );
        // ...then what came after it, in order, a batch at most `max` long.
        assert_eq!(
            ids(consumer.next_batch(2, short).await.unwrap()),
            ["c", "d"]
        );
        assert_eq!(id_of(consumer.next().await.transpose()), "e");
        // Nothing left: the deadline ends an empty wait.
        assert!(consumer.next_batch(10, short).await.unwrap().is_empty());
        consumer.shutdown().await.unwrap();
    }
}
