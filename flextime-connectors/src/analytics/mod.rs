//! Analytics: an [`AnalyticsSink`] that batches events by size and time in a
//! bounded buffer, drops by policy when the buffer is full (and counts it),
//! de-duplicates by message id and flushes on shutdown, in front of a vendor
//! [`AnalyticsBackend`] (Mixpanel behind the `mixpanel` feature, PostHog
//! behind `posthog`).
//!
//! A batch that fails with a retryable error (after the HTTP client's own
//! retries) goes back to the front of the buffer for the next flush; a batch
//! the vendor refuses for good is counted as failed and logged, so one bad
//! event cannot block the rest.

#[cfg(feature = "mixpanel")]
pub mod mixpanel;
#[cfg(feature = "posthog")]
pub mod posthog;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One analytics event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    /// The event name (`booking_confirmed`).
    pub name: String,
    /// Who did it.
    pub distinct_id: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The message id used for de-duplication (`$insert_id` at Mixpanel,
    /// `uuid` at PostHog): the same id is sent at most once.
    pub insert_id: String,
    /// Event properties.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

impl AnalyticsEvent {
    /// An event happening now, with a fresh message id.
    pub fn new(name: impl Into<String>, distinct_id: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            distinct_id: distinct_id.into(),
            time: Utc::now(),
            insert_id: uuid::Uuid::new_v4().simple().to_string(),
            properties: Map::new(),
        }
    }

    /// Sets a property.
    #[must_use]
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Sets the message id (derive it from the business event so a replay
    /// de-duplicates).
    #[must_use]
    pub fn with_insert_id(mut self, id: impl Into<String>) -> Self {
        self.insert_id = id.into();
        self
    }

    /// Sets the time.
    #[must_use]
    pub fn at(mut self, time: DateTime<Utc>) -> Self {
        self.time = time;
        self
    }
}

/// What a vendor said about one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Events accepted.
    pub accepted: usize,
    /// Events refused, with the vendor's reason: `(insert_id, reason)`.
    pub rejected: Vec<(String, String)>,
}

/// A vendor's ingestion API.
#[async_trait::async_trait]
pub trait AnalyticsBackend: Send + Sync + 'static {
    /// The vendor's name.
    fn name(&self) -> &str;

    /// The most events one request may carry.
    fn max_batch(&self) -> usize;

    /// Sends one batch.
    async fn send(&self, events: &[AnalyticsEvent]) -> Result<BatchResult>;
}

/// Where analytics events go.
#[async_trait::async_trait]
pub trait AnalyticsSink: Send + Sync {
    /// Queues an event without waiting for the network. Fails only after
    /// shutdown; a full buffer drops by policy and counts the drop.
    fn track(&self, event: AnalyticsEvent) -> Result<()>;

    /// Sends everything queued now.
    async fn flush(&self) -> Result<()>;

    /// Stops the background flusher and sends what is left.
    async fn shutdown(&self) -> Result<()>;

    /// Counters.
    fn stats(&self) -> AnalyticsStats;
}

/// What to drop when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Refuse the new event (keeps the history intact).
    #[default]
    DropNewest,
    /// Evict the oldest queued event (keeps the most recent activity).
    DropOldest,
}

/// Batching settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Flush when this many events are queued (capped at the backend's
    /// maximum).
    pub max_batch: usize,
    /// Flush at least this often when anything is queued.
    pub flush_interval: Duration,
    /// The most events held in memory.
    pub capacity: usize,
    /// What to drop when full.
    pub drop_policy: DropPolicy,
    /// How many recent message ids are remembered for de-duplication.
    pub dedup_window: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 50,
            flush_interval: Duration::from_secs(5),
            capacity: 10_000,
            drop_policy: DropPolicy::DropNewest,
            dedup_window: 100_000,
        }
    }
}

/// Counters of a [`Batcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AnalyticsStats {
    /// Events waiting.
    pub queued: usize,
    /// Events the vendor accepted.
    pub sent: u64,
    /// Events dropped because the buffer was full.
    pub dropped: u64,
    /// Events ignored as repeats of a recent message id.
    pub duplicates: u64,
    /// Events the vendor refused for good.
    pub failed: u64,
}

struct Shared<B> {
    backend: B,
    config: BatchConfig,
    queue: Mutex<VecDeque<AnalyticsEvent>>,
    recent: Mutex<(HashSet<String>, VecDeque<String>)>,
    wake: Notify,
    flushing: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
    duplicates: AtomicU64,
    failed: AtomicU64,
}

/// The batching [`AnalyticsSink`] in front of any [`AnalyticsBackend`].
/// Create it inside a Tokio runtime (it spawns its flusher).
pub struct Batcher<B: AnalyticsBackend> {
    shared: Arc<Shared<B>>,
    task: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<B: AnalyticsBackend> Batcher<B> {
    /// Starts a batcher over `backend`.
    pub fn new(backend: B, mut config: BatchConfig) -> Self {
        config.max_batch = config.max_batch.clamp(1, backend.max_batch().max(1));
        config.capacity = config.capacity.max(config.max_batch);
        let shared = Arc::new(Shared {
            backend,
            config,
            queue: Mutex::new(VecDeque::new()),
            recent: Mutex::new((HashSet::new(), VecDeque::new())),
            wake: Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(shared.clone(), stop.clone()));
        Self {
            shared,
            task: Mutex::new(Some(task)),
            stop,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }
}

async fn run<B: AnalyticsBackend>(shared: Arc<Shared<B>>, stop: Arc<Notify>) {
    loop {
        tokio::select! {
            () = stop.notified() => return,
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(shared.config.flush_interval) => {}
        }
        if let Err(e) = flush_all(&shared).await {
            tracing::warn!(backend = shared.backend.name(), error = %e, "analytics flush failed; events kept for the next one");
        }
    }
}

/// Sends batches until the queue is empty or a retryable failure stops it.
async fn flush_all<B: AnalyticsBackend>(shared: &Shared<B>) -> Result<()> {
    let _one_at_a_time = shared.flushing.lock().await;
    loop {
        let batch: Vec<AnalyticsEvent> = {
            let mut q = lock(&shared.queue);
            let n = q.len().min(shared.config.max_batch);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        match shared.backend.send(&batch).await {
            Ok(result) => {
                shared
                    .sent
                    .fetch_add(result.accepted as u64, Ordering::Relaxed);
                shared
                    .failed
                    .fetch_add(result.rejected.len() as u64, Ordering::Relaxed);
                for (id, reason) in &result.rejected {
                    tracing::warn!(backend = shared.backend.name(), insert_id = %id, reason = %reason, "analytics event refused");
                }
            }
            Err(e) if e.is_retryable() => {
                requeue(shared, batch);
                return Err(e);
            }
            Err(e) => {
                shared
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(backend = shared.backend.name(), events = batch.len(), error = %e, "analytics batch refused");
            }
        }
    }
}

/// Puts a batch back at the front, dropping by policy if new events filled
/// the room meanwhile.
fn requeue<B: AnalyticsBackend>(shared: &Shared<B>, batch: Vec<AnalyticsEvent>) {
    let mut q = lock(&shared.queue);
    for event in batch.into_iter().rev() {
        q.push_front(event);
    }
    while q.len() > shared.config.capacity {
        let evicted = match shared.config.drop_policy {
            DropPolicy::DropNewest => q.pop_back(),
            DropPolicy::DropOldest => q.pop_front(),
        };
        if evicted.is_some() {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait::async_trait]
impl<B: AnalyticsBackend> AnalyticsSink for Batcher<B> {
    fn track(&self, event: AnalyticsEvent) -> Result<()> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::SeqCst) {
            return Err(Error::unavailable("the analytics sink is shut down"));
        }
        {
            let mut recent = lock(&shared.recent);
            if recent.0.contains(&event.insert_id) {
                shared.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            recent.0.insert(event.insert_id.clone());
            recent.1.push_back(event.insert_id.clone());
            while recent.1.len() > shared.config.dedup_window {
                if let Some(old) = recent.1.pop_front() {
                    recent.0.remove(&old);
                }
            }
        }
        let full_batch = {
            let mut q = lock(&shared.queue);
            if q.len() >= shared.config.capacity {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("flextime_analytics_dropped_total", "backend" => shared.backend.name().to_owned())
                    .increment(1);
                match shared.config.drop_policy {
                    DropPolicy::DropNewest => return Ok(()),
                    DropPolicy::DropOldest => {
                        q.pop_front();
                    }
                }
            }
            q.push_back(event);
            q.len() >= shared.config.max_batch
        };
        if full_batch {
            shared.wake.notify_one();
        }
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        flush_all(&self.shared).await
    }

    async fn shutdown(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.stop.notify_one();
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        flush_all(&self.shared).await
    }

    fn stats(&self) -> AnalyticsStats {
        AnalyticsStats {
            queued: lock(&self.shared.queue).len(),
            sent: self.shared.sent.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            duplicates: self.shared.duplicates.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }
}

impl<B: AnalyticsBackend> Drop for Batcher<B> {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        let left = lock(&self.shared.queue).len();
        if left > 0 {
            // Dropped without `shutdown()`: say what is lost, loudly.
            tracing::error!(
                backend = self.shared.backend.name(),
                events = left,
                "analytics sink dropped with events not sent; call shutdown() to flush them"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A backend that records batches and fails on demand.
    #[derive(Default)]
    struct Recording {
        batches: Mutex<Vec<Vec<String>>>,
        fail_next: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl AnalyticsBackend for Arc<Recording> {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn max_batch(&self) -> usize {
            10
        }
        async fn send(&self, events: &[AnalyticsEvent]) -> Result<BatchResult> {
            if self.fail_next.load(Ordering::SeqCst) > 0 {
                self.fail_next.fetch_sub(1, Ordering::SeqCst);
                return Err(Error::unavailable("vendor down"));
            }
            lock(&self.batches).push(events.iter().map(|e| e.insert_id.clone()).collect());
            Ok(BatchResult {
                accepted: events.len(),
                rejected: Vec::new(),
            })
        }
    }

    fn backend() -> Arc<Recording> {
        Arc::new(Recording::default())
    }

    fn config(capacity: usize, policy: DropPolicy) -> BatchConfig {
        BatchConfig {
            max_batch: 100,
            flush_interval: Duration::from_secs(3600),
            capacity,
            drop_policy: policy,
            dedup_window: 1000,
        }
    }

    fn ev(id: &str) -> AnalyticsEvent {
        AnalyticsEvent::new("booking_confirmed", "user-1").with_insert_id(id)
    }

    #[tokio::test]
    async fn batches_are_capped_at_the_backend_maximum_and_repeats_are_dropped() {
        let b = backend();
        let sink = Batcher::new(b.clone(), config(100, DropPolicy::DropNewest));
        for i in 0..9 {
            sink.track(ev(&format!("e{i}"))).unwrap();
        }
        sink.track(ev("e3")).unwrap();
        sink.flush().await.unwrap();
        for i in 9..25 {
            sink.track(ev(&format!("e{i}"))).unwrap();
        }
        sink.shutdown().await.unwrap();
        let sizes: Vec<usize> = lock(&b.batches).iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 25);
        assert!(sizes.iter().all(|s| *s <= 10), "{sizes:?}");
        let stats = sink.stats();
        assert_eq!((stats.sent, stats.duplicates, stats.queued), (25, 1, 0));
        assert!(
            sink.track(ev("late")).is_err(),
            "tracking after shutdown must fail"
        );
    }

    #[tokio::test]
    async fn a_full_buffer_drops_by_policy_and_counts() {
        for (policy, kept) in [
            (DropPolicy::DropNewest, ["a0", "a1", "a2"]),
            (DropPolicy::DropOldest, ["a2", "a3", "a4"]),
        ] {
            let b = backend();
            let sink = Batcher::new(
                b.clone(),
                BatchConfig {
                    max_batch: 3,
                    ..config(3, policy)
                },
            );
            for i in 0..5 {
                sink.track(ev(&format!("a{i}"))).unwrap();
            }
            assert_eq!(sink.stats().dropped, 2);
            sink.shutdown().await.unwrap();
            let sent: Vec<String> = lock(&b.batches).concat();
            assert_eq!(sent, kept, "{policy:?}");
        }
    }

    #[tokio::test]
    async fn a_retryable_failure_keeps_the_batch_for_the_next_flush() {
        let b = backend();
        b.fail_next.store(1, Ordering::SeqCst);
        let sink = Batcher::new(b.clone(), config(100, DropPolicy::DropNewest));
        for i in 0..4 {
            sink.track(ev(&format!("r{i}"))).unwrap();
        }
        assert!(sink.flush().await.is_err());
        assert_eq!(sink.stats().queued, 4);
        sink.flush().await.unwrap();
        assert_eq!(lock(&b.batches).concat(), vec!["r0", "r1", "r2", "r3"]);
        assert_eq!(sink.stats().sent, 4);
    }

    #[tokio::test]
    async fn a_full_batch_is_sent_without_waiting_for_the_interval() {
        let b = backend();
        let sink = Batcher::new(
            b.clone(),
            BatchConfig {
                max_batch: 5,
                ..config(100, DropPolicy::DropNewest)
            },
        );
        for i in 0..5 {
            sink.track(ev(&format!("s{i}"))).unwrap();
        }
        // The interval is an hour: only the size trigger can send it.
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if sink.stats().sent == 5 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the full batch was not sent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_is_sent_after_the_interval() {
        let b = backend();
        let sink = Batcher::new(
            b.clone(),
            BatchConfig {
                flush_interval: Duration::from_secs(5),
                ..config(100, DropPolicy::DropNewest)
            },
        );
        sink.track(ev("t0")).unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(lock(&b.batches).concat(), vec!["t0"]);
    }
}
