//! The [`Dispatcher`]: fan-out, scheduling, endpoint health.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flextime_core::resilience::{BreakerConfig, CircuitBreaker, CircuitState, RateLimiter};
use flextime_core::{Data, Envelope, Error, Result, Secret, SharedClock, SystemClock};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, broadcast};

use super::endpoint::{BodyMode, DEFAULT_ROTATION_GRACE, Endpoint, generate_secret};
use super::http::{HttpClient, Target};
use super::schedule::RetrySchedule;
use super::ssrf::SsrfGuard;
use super::store::{
    Attempt, DeliveryQuery, DeliveryRecord, DeliveryStatus, DeliveryStore, MemoryStore, SharedText,
};
use super::worker;
use crate::verify::standard::StandardWebhooks;

/// Final outcomes handed to a group-committing store and not yet committed, at most.
const UNCOMMITTED_FINALS: usize = 8192;

/// How a [`Dispatcher`] behaves.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// When attempts are made (default: at once, 5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 10 h, +-20 %).
    pub schedule: RetrySchedule,
    /// The per-attempt timeout (default 15 s).
    pub timeout: Duration,
    /// Attempts in flight at most, over all endpoints (default 64).
    pub max_in_flight: usize,
    /// Attempts in flight at most per endpoint, unless the endpoint says (default 16).
    pub max_in_flight_per_endpoint: usize,
    /// Pending deliveries held at most; `send` beyond it is refused with
    /// `RateLimited` (default 100 000).
    pub max_pending: usize,
    /// Disable an endpoint that has failed without a success for this long
    /// (default 5 days).
    pub disable_after: Duration,
    /// The per-endpoint circuit breaker.
    pub breaker: BreakerConfig,
    /// How long a rotated-out secret keeps signing (default 24 h).
    pub rotation_grace: Duration,
    /// Which destinations are allowed.
    pub ssrf: SsrfGuard,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Capacity of the [`Dispatcher::subscribe`] channel (default 1024; a
    /// slow subscriber misses events, see [`broadcast`]).
    pub event_capacity: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            max_in_flight: 64,
            max_in_flight_per_endpoint: 16,
            max_pending: 100_000,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            breaker: BreakerConfig::default(),
            rotation_grace: DEFAULT_ROTATION_GRACE,
            ssrf: SsrfGuard::default(),
            user_agent: format!("flextime-webhooks/{}", env!("CARGO_PKG_VERSION")),
            event_capacity: 1024,
        }
    }
}

/// Why an endpoint was disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum DisableReason {
    /// It answered 410 Gone.
    Gone,
    /// It failed without a success since this time, longer than allowed.
    Failing {
        /// Since when.
        since: DateTime<Utc>,
    },
    /// An operator disabled it.
    Manual,
}

impl fmt::Display for DisableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gone => f.write_str("the endpoint answered 410 Gone"),
            Self::Failing { since } => write!(f, "failing without a success since {since}"),
            Self::Manual => f.write_str("disabled by an operator"),
        }
    }
}

/// A delivery's final outcome (or its state after a failed attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The delivery id.
    pub delivery_id: SharedText,
    /// The message id (`webhook-id`).
    pub message_id: SharedText,
    /// The endpoint.
    pub endpoint_id: SharedText,
    /// The CloudEvents id.
    pub event_id: SharedText,
    /// The status reached.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
}

impl Outcome {
    fn of(d: &DeliveryRecord) -> Self {
        Self {
            delivery_id: d.id.clone(),
            message_id: d.message_id.clone(),
            endpoint_id: d.endpoint_id.clone(),
            event_id: d.event_id.clone(),
            status: d.status,
            attempts: d.attempt_count,
        }
    }
}

/// What a dispatcher reports: outcomes and operational events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum DispatcherEvent {
    /// A delivery reached a final status (delivered, exhausted, endpoint disabled).
    Finished(Outcome),
    /// An attempt failed; another follows at `next_attempt_at`.
    AttemptFailed {
        /// The delivery after the attempt.
        outcome: Outcome,
        /// The failed attempt.
        attempt: Attempt,
        /// When the next attempt is due.
        next_attempt_at: DateTime<Utc>,
    },
    /// An endpoint was disabled (an operational event: someone should look).
    EndpointDisabled {
        /// The endpoint.
        endpoint_id: String,
        /// Why.
        reason: DisableReason,
    },
    /// An endpoint was enabled by hand.
    EndpointEnabled {
        /// The endpoint.
        endpoint_id: String,
    },
}

/// What [`Dispatcher::send`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message id (`webhook-id` of every attempt to every endpoint).
    pub message_id: SharedText,
    /// The deliveries created, one per matching enabled endpoint.
    pub deliveries: Vec<SharedText>,
}

/// One attempt in a listing, with the delivery it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptEntry {
    /// The delivery.
    pub delivery_id: SharedText,
    /// The message.
    pub message_id: SharedText,
    /// The endpoint.
    pub endpoint_id: SharedText,
    /// The attempt.
    pub attempt: Attempt,
}

type EventHook = Arc<dyn Fn(&DispatcherEvent) + Send + Sync>;

/// Builds a [`Dispatcher`].
pub struct DispatcherBuilder {
    store: Arc<dyn DeliveryStore>,
    clock: SharedClock,
    config: DispatcherConfig,
    hook: Option<EventHook>,
}

impl fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherBuilder")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DispatcherBuilder {
    /// Keep state in `store` (default: a [`MemoryStore`]).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn DeliveryStore>) -> Self {
        self.store = store;
        self
    }

    /// Read time from `clock` (default: the system clock). Call
    /// [`Dispatcher::wake`] after moving a manual clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Use this configuration.
    #[must_use]
    pub fn config(mut self, config: DispatcherConfig) -> Self {
        self.config = config;
        self
    }

    /// Call `hook` with every event, synchronously and without loss (keep it quick).
    #[must_use]
    pub fn on_event(mut self, hook: impl Fn(&DispatcherEvent) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Load endpoints and pending deliveries from the store and start
    /// delivering (inside a tokio runtime).
    pub async fn start(self) -> Result<Dispatcher> {
        let config = self.config;
        let client = HttpClient::new(
            &config.ssrf,
            config.timeout,
            &config.user_agent,
            config.max_in_flight.max(1),
        )?;
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let inner = Arc::new(Inner {
            config,
            store: self.store,
            clock: self.clock,
            client,
            endpoints: RwLock::new(HashMap::new()),
            work: Mutex::new(Work {
                pending: HashMap::default(),
                queue: DueQueue::default(),
            }),
            wake: Notify::new(),
            events,
            subscribed: AtomicBool::new(false),
            hook: self.hook,
            shutdown: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            draining_tx: tokio::sync::watch::Sender::new(false),
            uncommitted: Arc::new(Semaphore::new(UNCOMMITTED_FINALS)),
            seq: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        for ep in inner.store.endpoints().await? {
            inner.install(ep);
        }
        let resumed = inner
            .store
            .scan(&DeliveryQuery {
                statuses: vec![DeliveryStatus::Pending],
                ..DeliveryQuery::default()
            })
            .await?;
        let resumed_count = resumed.len();
        inner.enqueue(resumed);
        let workers = (0..inner.config.max_in_flight.max(1))
            .map(|_| tokio::spawn(Arc::clone(&inner).worker_loop()))
            .collect();
        Ok(Dispatcher {
            inner,
            workers,
            resumed: resumed_count,
        })
    }
}

/// Delivers events to endpoints: signed, retried, durable. See the
/// [module docs](super).
pub struct Dispatcher {
    inner: Arc<Inner>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    resumed: usize,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("store", &self.inner.store)
            .field("pending", &self.pending_count())
            .finish_non_exhaustive()
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        for w in &self.workers {
            w.abort();
        }
    }
}

/// What workers on every thread touch per attempt is read-mostly: the
/// flags are plain loads, the metric handles registered once, and the
/// endpoint and its signer sit behind one lock, so an attempt writes few
/// cache lines that the other threads also write.
struct EndpointRuntime {
    /// The endpoint (shared with in-flight attempts; changed copy-on-write)
    /// and its cached signer.
    state: Mutex<EndpointState>,
    /// Whether the endpoint has a `failing_since` (kept with every change
    /// made through [`EndpointRuntime::update`]): a success on a healthy
    /// endpoint then takes no lock.
    failing: AtomicBool,
    /// Whether the endpoint delivers in order (fixed for a runtime: only a
    /// new runtime changes it).
    sends_in_order: bool,
    /// Whether `order` may hold entries: the endpoint is ordered, or this
    /// runtime's predecessor left entries.
    ordered: bool,
    /// `flextime_deliveries_total{outcome="delivered"}` of this endpoint.
    delivered: metrics::Counter,
    /// `flextime_deliveries_total{outcome="failed"}` of this endpoint.
    failed: metrics::Counter,
    /// `flextime_delivery_seconds` of this endpoint.
    latency: metrics::Histogram,
    /// The endpoint's URL prepared for requests (`None`: it does not parse).
    target: Option<Target>,
    semaphore: Semaphore,
    limiter: Option<RateLimiter>,
    breaker: CircuitBreaker,
    /// Queue entries that found the endpoint at its in-flight limit.
    blocked: Mutex<Vec<QueueEntry>>,
    /// Ordered endpoints: pending deliveries in order; only the first is scheduled.
    order: Mutex<BTreeSet<(DateTime<Utc>, u64, SharedText)>>,
}

struct EndpointState {
    endpoint: Arc<Endpoint>,
    /// The signer of the last endpoint version seen, and until when its set
    /// of active secrets holds (decoding secrets per attempt is waste).
    signer: Option<CachedSigner>,
}

struct CachedSigner {
    endpoint: Arc<Endpoint>,
    until: Option<DateTime<Utc>>,
    signer: Arc<StandardWebhooks>,
}

impl EndpointRuntime {
    /// The endpoint as it stands now (a cheap shared copy).
    fn snapshot(&self) -> Arc<Endpoint> {
        Arc::clone(&lock(&self.state).endpoint)
    }

    /// The endpoint as it stands now and its signer at `now`, under one
    /// lock.
    fn current(&self, now: DateTime<Utc>) -> (Arc<Endpoint>, Result<Arc<StandardWebhooks>>) {
        let mut state = lock(&self.state);
        let endpoint = Arc::clone(&state.endpoint);
        if let Some(c) = state.signer.as_ref()
            && Arc::ptr_eq(&c.endpoint, &endpoint)
            && c.until.is_none_or(|until| now < until)
        {
            let signer = Arc::clone(&c.signer);
            return (endpoint, Ok(signer));
        }
        let signer = match endpoint.signer(now) {
            Ok(s) => Arc::new(s),
            Err(e) => return (endpoint, Err(e)),
        };
        // The active set changes when the next grace period ends.
        let until = endpoint
            .secrets
            .iter()
            .filter_map(|s| s.expires_at)
            .filter(|t| *t > now)
            .min();
        state.signer = Some(CachedSigner {
            endpoint: Arc::clone(&endpoint),
            until,
            signer: Arc::clone(&signer),
        });
        (endpoint, Ok(signer))
    }

    /// Changes the endpoint (copy-on-write) and returns the new state.
    fn update(&self, f: impl FnOnce(&mut Endpoint)) -> Endpoint {
        let mut state = lock(&self.state);
        let ep = Arc::make_mut(&mut state.endpoint);
        f(ep);
        self.failing
            .store(ep.failing_since.is_some(), Ordering::Release);
        ep.clone()
    }
}

/// `(due millis, generation, delivery id)`, smallest first.
type QueueEntry = (i64, u64, SharedText);

/// The schedule: entries already due when queued, in the order they came
/// (the common case: a first attempt goes out at once), in a FIFO; all
/// others in a min-heap. The FIFO is kept sorted, so the next entry is the
/// smaller of the two fronts, and a burst of new deliveries costs O(1) each
/// instead of heap sifts.
#[derive(Default)]
struct DueQueue {
    ready: VecDeque<QueueEntry>,
    later: BinaryHeap<Reverse<QueueEntry>>,
}

impl DueQueue {
    /// Queue `e`; `now` in millis.
    fn push(&mut self, e: QueueEntry, now: i64) {
        let in_order = self.ready.back().is_none_or(|b| (b.0, b.1) <= (e.0, e.1));
        if e.0 <= now && in_order {
            self.ready.push_back(e);
        } else {
            self.later.push(Reverse(e));
        }
    }

    /// The next entry, and whether it is the FIFO's front.
    fn next(&self) -> Option<(&QueueEntry, bool)> {
        match (self.ready.front(), self.later.peek()) {
            (None, None) => None,
            (Some(r), None) => Some((r, true)),
            (Some(r), Some(Reverse(l))) if (r.0, r.1) <= (l.0, l.1) => Some((r, true)),
            (_, Some(Reverse(l))) => Some((l, false)),
        }
    }

    /// The due time of the next entry.
    fn next_due(&self) -> Option<i64> {
        self.next().map(|(e, _)| e.0)
    }

    /// Take the next entry.
    fn pop(&mut self) -> Option<QueueEntry> {
        let (_, from_ready) = self.next()?;
        if from_ready {
            self.ready.pop_front()
        } else {
            self.later.pop().map(|Reverse(e)| e)
        }
    }
}

struct PendingEntry {
    /// Shared with the worker attempting it, so taking a delivery copies
    /// nothing; the worker gets it back whole once the entry is removed.
    record: Arc<DeliveryRecord>,
    generation: u64,
    running: bool,
}

struct Work {
    /// Keyed by delivery id; hashed with foldhash (randomly seeded, and
    /// several times cheaper than SipHash on this per-attempt path).
    pending: HashMap<SharedText, PendingEntry, foldhash::fast::RandomState>,
    queue: DueQueue,
}

struct Inner {
    config: DispatcherConfig,
    store: Arc<dyn DeliveryStore>,
    clock: SharedClock,
    client: HttpClient,
    endpoints: RwLock<HashMap<String, Arc<EndpointRuntime>>>,
    /// The working set and the schedule, under one lock: a worker taking a
    /// delivery, and a reschedule, lock once.
    work: Mutex<Work>,
    wake: Notify,
    events: broadcast::Sender<DispatcherEvent>,
    /// Set by the first [`Dispatcher::subscribe`]: until then events are not
    /// sent to the channel (asking the channel whether anyone listens takes
    /// its lock, on every outcome).
    subscribed: AtomicBool,
    hook: Option<EventHook>,
    shutdown: AtomicBool,
    /// Set by a graceful stop: workers take no new delivery and leave once
    /// idle, but finish (and record) the attempt in hand. The flag is what
    /// a busy worker reads (a plain load); the channel wakes idle ones.
    draining: AtomicBool,
    draining_tx: tokio::sync::watch::Sender<bool>,
    uncommitted: Arc<Semaphore>,
    seq: AtomicU64,
    generation: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Inner {
    /// Whether anyone receives events (a hook or a subscriber): when no one
    /// does, the hot path does not build them.
    fn observed(&self) -> bool {
        self.hook.is_some()
            || (self.subscribed.load(Ordering::Acquire) && self.events.receiver_count() > 0)
    }

    fn emit(&self, event: DispatcherEvent) {
        if let Some(hook) = &self.hook {
            hook(&event);
        }
        if self.subscribed.load(Ordering::Acquire) {
            let _ = self.events.send(event);
        }
    }

    fn runtime(&self, id: &str) -> Option<Arc<EndpointRuntime>> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    #[allow(clippy::needless_pass_by_value)]
    fn install(&self, ep: Endpoint) {
        let per = if ep.ordered {
            1
        } else {
            ep.max_in_flight
                .unwrap_or(self.config.max_in_flight_per_endpoint)
                .max(1)
        };
        let old = self.runtime(&ep.id);
        let order = old
            .as_ref()
            .map(|o| lock(&o.order).clone())
            .unwrap_or_default();
        let label = metrics::SharedString::from(Arc::<str>::from(ep.id.as_str()));
        let outcome = |outcome: &'static str| {
            metrics::counter!(
                flextime_core::telemetry::DELIVERIES,
                "endpoint" => label.clone(),
                "outcome" => outcome
            )
        };
        let rt = Arc::new(EndpointRuntime {
            failing: AtomicBool::new(ep.failing_since.is_some()),
            sends_in_order: ep.ordered,
            ordered: ep.ordered || !order.is_empty(),
            delivered: outcome("delivered"),
            failed: outcome("failed"),
            latency: metrics::histogram!(
                flextime_core::telemetry::DELIVERY_SECONDS,
                "endpoint" => label.clone()
            ),
            target: Target::parse(&ep.url),
            semaphore: Semaphore::new(per),
            limiter: ep
                .rate_limit()
                .map(|l| RateLimiter::new(format!("webhook-endpoint-{}", ep.id), l)),
            breaker: old.as_ref().map_or_else(
                || {
                    CircuitBreaker::with_clock(
                        format!("webhook-endpoint-{}", ep.id),
                        self.config.breaker.clone(),
                        Arc::clone(&self.clock),
                    )
                },
                |o| o.breaker.clone(),
            ),
            blocked: Mutex::new(Vec::new()),
            order: Mutex::new(order),
            state: Mutex::new(EndpointState {
                endpoint: Arc::new(ep.clone()),
                signer: None,
            }),
        });
        self.endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ep.id.clone(), Arc::clone(&rt));
        // Entries blocked on the old runtime's limit go back to the queue.
        if let Some(old) = old {
            let blocked = std::mem::take(&mut *lock(&old.blocked));
            let now = millis(self.clock.now());
            let mut work = lock(&self.work);
            for e in blocked {
                work.queue.push(e, now);
            }
            drop(work);
            self.wake.notify_one();
        }
    }

    /// Put pending deliveries in the working set and schedule them, taking
    /// each shared lock once for the whole batch.
    fn enqueue(&self, records: impl IntoIterator<Item = DeliveryRecord>) {
        let records: Vec<DeliveryRecord> = records.into_iter().collect();
        if records.is_empty() {
            return;
        }
        let now = self.clock.now();
        // The runtime of each record's endpoint when it is an ordered one
        // (under one read of the endpoint map, before the working set is locked).
        let ordered: Vec<Option<Arc<EndpointRuntime>>> = {
            let endpoints = self
                .endpoints
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            records
                .iter()
                .map(|r| {
                    endpoints
                        .get(r.endpoint_id.as_str())
                        .filter(|rt| rt.sends_in_order)
                        .cloned()
                })
                .collect()
        };
        let mut queued = 0;
        let mut in_order = Vec::new();
        {
            let now_ms = millis(now);
            let mut work = lock(&self.work);
            for (record, rt) in records.into_iter().zip(ordered) {
                let due = millis(record.next_attempt_at.unwrap_or(now));
                let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                let id = record.id.clone();
                let entry = (due, generation, id.clone());
                if let Some(rt) = rt {
                    in_order.push((rt, (record.created_at, record.seq, id.clone()), entry));
                } else {
                    work.queue.push(entry, now_ms);
                    queued += 1;
                }
                work.pending.insert(
                    id,
                    PendingEntry {
                        record: Arc::new(record),
                        generation,
                        running: false,
                    },
                );
            }
        }
        // Ordered ones are scheduled once they are in the working set, and
        // only the first of their endpoint (the others when the ones before
        // them are done).
        let mut first = Vec::new();
        for (rt, key, entry) in in_order {
            let mut order = lock(&rt.order);
            order.insert(key.clone());
            if order.first() == Some(&key) {
                first.push(entry);
            }
        }
        if !first.is_empty() {
            queued += first.len();
            let now = millis(self.clock.now());
            let mut work = lock(&self.work);
            for e in first {
                work.queue.push(e, now);
            }
        }
        let wakes = queued.min(self.config.max_in_flight.max(1));
        for _ in 0..wakes {
            self.wake.notify_one();
        }
    }

    /// Reschedule a pending delivery at `due` (no attempt counted).
    fn reschedule(&self, id: &str, due: DateTime<Utc>) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let now = millis(self.clock.now());
        {
            let mut work = lock(&self.work);
            let Some(entry) = work.pending.get_mut(id) else {
                return;
            };
            entry.generation = generation;
            entry.running = false;
            Arc::make_mut(&mut entry.record).next_attempt_at = Some(due);
            // The record's own id: a reference count, not a new copy.
            let id = entry.record.id.clone();
            work.queue.push((millis(due), generation, id), now);
        }
        self.wake.notify_one();
    }

    /// A delivery left the working set: let the next one of an ordered
    /// endpoint go. `hint`: the endpoint's runtime as the caller found it;
    /// when that one holds no order, no runtime holds this delivery's entry
    /// (an order set only passes on to the runtime that replaces it), so
    /// nothing is looked up or locked.
    fn release_order(&self, d: &DeliveryRecord, hint: Option<&EndpointRuntime>) {
        if hint.is_some_and(|rt| !rt.ordered) {
            return;
        }
        let Some(rt) = self.runtime(&d.endpoint_id) else {
            return;
        };
        let next = {
            let mut order = lock(&rt.order);
            if order.is_empty() {
                return; // not an ordered endpoint
            }
            order.remove(&(d.created_at, d.seq, d.id.clone()));
            order.first().map(|(_, _, id)| id.clone())
        };
        if let Some(next) = next {
            let due = {
                let work = lock(&self.work);
                work.pending
                    .get(&next)
                    .and_then(|e| e.record.next_attempt_at)
                    .unwrap_or_else(|| self.clock.now())
            };
            self.reschedule(&next, due);
        }
    }

    /// Take the next due entry, or say how long until one is due.
    fn pop_due(&self) -> std::result::Result<(Arc<DeliveryRecord>, u64), Option<Duration>> {
        let now = millis(self.clock.now());
        let mut work = lock(&self.work);
        let Work { pending, queue: q } = &mut *work;
        loop {
            let Some(due) = q.next_due() else {
                return Err(None);
            };
            if due > now {
                return Err(Some(Duration::from_millis(
                    u64::try_from(due - now).unwrap_or(0),
                )));
            }
            let Some((_, generation, id)) = q.pop() else {
                return Err(None);
            };
            match pending.get_mut(&id) {
                Some(e) if e.generation == generation && !e.running => {
                    e.running = true;
                    return Ok((Arc::clone(&e.record), generation));
                }
                _ => {} // stale entry
            }
        }
    }

    /// One of `max_in_flight` workers: take the next due delivery, attempt
    /// it, repeat; wait for a wake-up or the next due time when none is due.
    async fn worker_loop(self: Arc<Self>) {
        let mut draining = self.draining_tx.subscribe();
        loop {
            if self.shutdown.load(Ordering::SeqCst) || self.draining.load(Ordering::SeqCst) {
                return;
            }
            match self.pop_due() {
                Ok((record, generation)) => self.attempt_one(record, generation).await,
                Err(wait) => {
                    let wait = wait.unwrap_or(Duration::from_secs(3600));
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(wait) => {}
                        // Sees a stop that came before this wait began too.
                        _ = draining.wait_for(|d| *d) => return,
                    }
                }
            }
        }
    }

    async fn attempt_one(self: &Arc<Self>, record: Arc<DeliveryRecord>, generation: u64) {
        let Some(rt) = self.runtime(&record.endpoint_id) else {
            // The endpoint was removed: the delivery cannot be made.
            self.finish_many(
                vec![Arc::unwrap_or_clone(record)],
                DeliveryStatus::EndpointDisabled,
            )
            .await;
            return;
        };
        if let Ok(ep_permit) = rt.semaphore.try_acquire() {
            self.run_attempt(&rt, record).await;
            drop(ep_permit);
            self.unblock(&rt);
        } else {
            lock(&self.work)
                .pending
                .get_mut(&record.id)
                .into_iter()
                .for_each(|e| e.running = false);
            let due = millis(self.clock.now());
            lock(&rt.blocked).push((due, generation, record.id.clone()));
        }
    }

    fn unblock(&self, rt: &EndpointRuntime) {
        let blocked = std::mem::take(&mut *lock(&rt.blocked));
        if blocked.is_empty() {
            return;
        }
        let n = blocked.len();
        let now = millis(self.clock.now());
        let mut work = lock(&self.work);
        for e in blocked {
            work.queue.push(e, now);
        }
        drop(work);
        for _ in 0..n {
            self.wake.notify_one();
        }
    }

    async fn run_attempt(self: &Arc<Self>, rt: &EndpointRuntime, shared: Arc<DeliveryRecord>) {
        if self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let now = self.clock.now();
        let (endpoint, signer) = rt.current(now);
        if !endpoint.enabled {
            self.finish_many(
                vec![Arc::unwrap_or_clone(shared)],
                DeliveryStatus::EndpointDisabled,
            )
            .await;
            return;
        }
        if let Some(limiter) = &rt.limiter
            && let Err(e) = limiter.try_acquire()
        {
            let wait = e.retry_after().unwrap_or(Duration::from_millis(10));
            self.reschedule(&shared.id, add(now, wait));
            return;
        }
        let permit = match rt.breaker.try_acquire() {
            Ok(p) => p,
            Err(e) => {
                let wait = e.retry_after().unwrap_or(Duration::from_millis(100));
                self.reschedule(&shared.id, add(now, wait.max(Duration::from_millis(1))));
                return;
            }
        };
        let number = shared.attempt_count + 1;
        let result = worker::attempt(
            &self.client,
            &self.config.ssrf,
            &endpoint,
            signer,
            rt.target.as_ref(),
            &shared,
            number,
            now,
        )
        .await;
        if self.shutdown.load(Ordering::SeqCst) {
            // Stopped mid-attempt: record nothing, the store still says pending.
            return;
        }
        let finished = self.clock.now();
        let ok = result.attempt.succeeded();
        let gone = result.gone();
        if ok { &rt.delivered } else { &rt.failed }.increment(1);
        #[allow(clippy::cast_precision_loss)]
        rt.latency.record(result.attempt.latency_ms as f64 / 1000.0);
        if ok {
            permit.success();
        } else {
            permit.failure();
        }
        if ok {
            // Out of the working set first: then the record is ours alone
            // and is finished in place, without a copy.
            let ours = lock(&self.work).pending.remove(&shared.id).is_some();
            let mut record = Arc::unwrap_or_clone(shared);
            record.push_attempt(result.attempt);
            record.status = DeliveryStatus::Delivered;
            record.next_attempt_at = None;
            record.finished_at = Some(finished);
            // Health first: whoever sees the outcome sees the endpoint's
            // failure history cleared too.
            self.endpoint_succeeded(rt).await;
            self.record_final(record, ours, Some(rt)).await;
            return;
        }
        // Only a failure needs its own copy (for the AttemptFailed event).
        let attempt = result.attempt.clone();
        let mut record = Arc::unwrap_or_clone(shared);
        record.push_attempt(result.attempt);
        tracing::debug!(endpoint = %endpoint.id, attempt = number, status = ?attempt.status, error = ?attempt.error, "webhook attempt failed");
        if gone {
            record.status = DeliveryStatus::EndpointDisabled;
            record.next_attempt_at = None;
            record.finished_at = Some(finished);
            self.persist_final(record, Some(rt)).await;
            self.disable(rt, DisableReason::Gone).await;
            return;
        }
        let since = {
            let current = rt.snapshot();
            if let Some(since) = current.failing_since {
                (since, None)
            } else {
                let ep = rt.update(|ep| {
                    ep.failing_since.get_or_insert(finished);
                });
                (ep.failing_since.unwrap_or(finished), Some(ep))
            }
        };
        if let Some(ep) = since.1
            && let Err(e) = self.store.save_endpoint(&ep).await
        {
            tracing::warn!(endpoint = %ep.id, error = %e, "could not save endpoint health");
        }
        let failing_for = (finished - since.0).to_std().unwrap_or_default();
        if failing_for >= self.config.disable_after {
            record.status = DeliveryStatus::EndpointDisabled;
            record.next_attempt_at = None;
            record.finished_at = Some(finished);
            self.persist_final(record, Some(rt)).await;
            self.disable(rt, DisableReason::Failing { since: since.0 })
                .await;
            return;
        }
        let index = usize::try_from(record.attempt_count.saturating_sub(record.round_start))
            .unwrap_or(usize::MAX);
        match self.config.schedule.delay(index) {
            None => {
                record.status = DeliveryStatus::Exhausted;
                record.next_attempt_at = None;
                record.finished_at = Some(finished);
                self.persist_final(record, Some(rt)).await;
            }
            Some(delay) => {
                let delay = RetrySchedule::clamp_retry_after(delay, result.retry_after);
                let due = add(finished, delay);
                record.next_attempt_at = Some(due);
                let id = record.id.clone();
                if let Err(e) = self.store.save_delivery(record.clone()).await {
                    tracing::warn!(delivery = %id, error = %e, "could not record an attempt");
                }
                {
                    let mut work = lock(&self.work);
                    if let Some(entry) = work.pending.get_mut(&id) {
                        entry.record = Arc::new(record.clone());
                    } else {
                        return; // finished meanwhile (endpoint disabled)
                    }
                }
                self.emit(DispatcherEvent::AttemptFailed {
                    outcome: Outcome::of(&record),
                    attempt,
                    next_attempt_at: due,
                });
                self.reschedule(&id, due);
            }
        }
    }

    /// Record a final outcome. With a group-committing store the worker
    /// does not wait for the commit (it takes the next delivery; at most
    /// [`UNCOMMITTED_FINALS`] outcomes wait at once); the `Finished` event
    /// follows the commit either way. Until it is committed the store still
    /// says pending, so a crash in between means one more attempt, never a
    /// lost delivery.
    async fn persist_final(self: &Arc<Self>, record: DeliveryRecord, rt: Option<&EndpointRuntime>) {
        let ours = lock(&self.work).pending.remove(&record.id).is_some();
        self.record_final(record, ours, rt).await;
    }

    /// [`Inner::persist_final`] for a record already taken out of the
    /// working set (`ours`: it was still there).
    async fn record_final(
        self: &Arc<Self>,
        record: DeliveryRecord,
        ours: bool,
        rt: Option<&EndpointRuntime>,
    ) {
        if ours {
            self.release_order(&record, rt);
        }
        let write = {
            let this = Arc::clone(self);
            async move {
                let outcome = (ours && this.observed()).then(|| Outcome::of(&record));
                let id = record.id.clone();
                if let Err(e) = this.store.save_delivery(record).await {
                    tracing::warn!(delivery = %id, error = %e, "could not record a final outcome");
                }
                if let Some(outcome) = outcome {
                    this.emit(DispatcherEvent::Finished(outcome));
                }
            }
        };
        if self.store.group_commits() {
            let Ok(permit) = Arc::clone(&self.uncommitted).acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                write.await;
                drop(permit);
            });
        } else {
            write.await;
        }
    }

    async fn finish_many(&self, mut records: Vec<DeliveryRecord>, status: DeliveryStatus) {
        let now = self.clock.now();
        for r in &mut records {
            r.status = status;
            r.next_attempt_at = None;
            r.finished_at = Some(now);
        }
        if let Err(e) = self.store.save_deliveries(records.clone()).await {
            tracing::warn!(error = %e, "could not record final outcomes");
        }
        for r in records {
            if lock(&self.work).pending.remove(&r.id).is_some() {
                self.release_order(&r, None);
                self.emit(DispatcherEvent::Finished(Outcome::of(&r)));
            }
        }
    }

    async fn endpoint_succeeded(&self, rt: &EndpointRuntime) {
        // The hot path: a healthy endpoint is one load of a flag that only
        // changes with its health.
        if !rt.failing.load(Ordering::Acquire) {
            return;
        }
        let changed = if rt.snapshot().failing_since.is_some() {
            Some(rt.update(|ep| ep.failing_since = None))
        } else {
            None
        };
        if let Some(ep) = changed
            && let Err(e) = self.store.save_endpoint(&ep).await
        {
            tracing::warn!(endpoint = %ep.id, error = %e, "could not save endpoint health");
        }
    }

    async fn disable(&self, rt: &EndpointRuntime, reason: DisableReason) {
        let ep = {
            let mut state = lock(&rt.state);
            if !state.endpoint.enabled {
                return;
            }
            let ep = Arc::make_mut(&mut state.endpoint);
            ep.enabled = false;
            ep.disabled_reason = Some(reason.to_string());
            ep.clone()
        };
        tracing::warn!(endpoint = %ep.id, reason = %reason, "webhook endpoint disabled");
        if let Err(e) = self.store.save_endpoint(&ep).await {
            tracing::warn!(endpoint = %ep.id, error = %e, "could not save a disabled endpoint");
        }
        self.emit(DispatcherEvent::EndpointDisabled {
            endpoint_id: ep.id.clone(),
            reason,
        });
        let rest: Vec<DeliveryRecord> = lock(&self.work)
            .pending
            .values()
            .filter(|e| e.record.endpoint_id == ep.id && !e.running)
            .map(|e| (*e.record).clone())
            .collect();
        self.finish_many(rest, DeliveryStatus::EndpointDisabled)
            .await;
    }
}

impl Dispatcher {
    /// A builder with a memory store, the system clock and the default config.
    pub fn builder() -> DispatcherBuilder {
        DispatcherBuilder {
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(SystemClock),
            config: DispatcherConfig::default(),
            hook: None,
        }
    }

    /// Stop at once, and return once stopped: [`Dispatcher::shutdown_within`]
    /// with no grace period. Attempts in flight are abandoned: their
    /// deliveries stay pending in the store, and a dispatcher started later
    /// on it makes them again (at least once, never lost).
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::ZERO).await;
    }

    /// Stop, and return once stopped: no attempt starts after this is
    /// called; attempts in flight get up to `grace` to finish, and those
    /// that do have their outcome recorded as usual (a failure is
    /// rescheduled in the store, not retried now). Past `grace` the rest
    /// are abandoned and stay pending in the store, and a dispatcher
    /// started later on it makes them again (at least once, never lost).
    /// Returns when the workers have ended and every final outcome handed
    /// to the store is committed (or its commit has failed and been
    /// logged: a store that cannot be reached holds this up for as long as
    /// its own timeouts allow); the dispatcher's state is freed before it
    /// returns. Dropping a `Dispatcher` stops it at once too, but its
    /// workers wind down in the background afterwards.
    pub async fn shutdown_within(mut self, grace: Duration) {
        let mut workers = std::mem::take(&mut self.workers);
        if !grace.is_zero() {
            self.inner.draining.store(true, Ordering::SeqCst);
            self.inner.draining_tx.send_replace(true);
            let deadline = tokio::time::Instant::now() + grace;
            while let Some(w) = workers.last_mut() {
                if tokio::time::timeout_at(deadline, w).await.is_err() {
                    break;
                }
                workers.pop();
            }
        }
        self.inner.shutdown.store(true, Ordering::SeqCst);
        for w in &workers {
            w.abort();
        }
        for w in workers {
            // Cancelled (the expected end) or finished: either way stopped.
            let _ = w.await;
        }
        // Outcomes committed in the background (group-committing stores)
        // hold a permit each until their commit is done.
        let all = u32::try_from(UNCOMMITTED_FINALS).unwrap_or(u32::MAX);
        let _ = self.inner.uncommitted.acquire_many(all).await;
    }

    /// Pending deliveries loaded from the store at start.
    pub fn resumed(&self) -> usize {
        self.resumed
    }

    /// Pending deliveries now.
    pub fn pending_count(&self) -> usize {
        lock(&self.inner.work).pending.len()
    }

    /// Events: outcomes, failed attempts, endpoints disabled and enabled.
    pub fn subscribe(&self) -> broadcast::Receiver<DispatcherEvent> {
        let receiver = self.inner.events.subscribe();
        self.inner.subscribed.store(true, Ordering::Release);
        receiver
    }

    /// Look at the queue again now (after moving a manual clock).
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
        self.inner.wake.notify_one();
    }

    /// Add or replace an endpoint (validated; the URL is checked by the SSRF
    /// guard when its host is an IP address).
    pub async fn add_endpoint(&self, endpoint: Endpoint) -> Result<()> {
        endpoint.validate()?;
        let url = url::Url::parse(&endpoint.url)
            .map_err(|e| Error::invalid_input(format!("endpoint {}: url: {e}", endpoint.id)))?;
        self.inner.config.ssrf.check_url(&url)?;
        self.inner.store.save_endpoint(&endpoint).await?;
        self.inner.install(endpoint);
        Ok(())
    }

    /// Remove an endpoint; its pending deliveries end as `endpoint_disabled`.
    pub async fn remove_endpoint(&self, id: &str) -> Result<bool> {
        let existed = self.inner.store.delete_endpoint(id).await?;
        let rt = self
            .inner
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(rt) = rt {
            rt.update(|ep| ep.enabled = false);
            let rest: Vec<DeliveryRecord> = lock(&self.inner.work)
                .pending
                .values()
                .filter(|e| e.record.endpoint_id == id && !e.running)
                .map(|e| (*e.record).clone())
                .collect();
            self.inner
                .finish_many(rest, DeliveryStatus::EndpointDisabled)
                .await;
        }
        Ok(existed)
    }

    /// An endpoint as it stands now.
    pub fn endpoint(&self, id: &str) -> Option<Endpoint> {
        self.inner.runtime(id).map(|rt| (*rt.snapshot()).clone())
    }

    /// The state of an endpoint's circuit breaker.
    pub fn circuit_state(&self, id: &str) -> Option<CircuitState> {
        self.inner.runtime(id).map(|rt| rt.breaker.state())
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut v: Vec<Endpoint> = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|rt| (*rt.snapshot()).clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Enable an endpoint (clears its failure history and closes its breaker).
    pub async fn enable_endpoint(&self, id: &str) -> Result<()> {
        let rt = self
            .inner
            .runtime(id)
            .ok_or_else(|| Error::not_found(format!("no endpoint {id:?}")))?;
        let ep = rt.update(|ep| {
            ep.enabled = true;
            ep.disabled_reason = None;
            ep.failing_since = None;
        });
        rt.breaker.reset();
        self.inner.store.save_endpoint(&ep).await?;
        self.inner.emit(DispatcherEvent::EndpointEnabled {
            endpoint_id: id.to_owned(),
        });
        Ok(())
    }

    /// Disable an endpoint by hand; its pending deliveries end as `endpoint_disabled`.
    pub async fn disable_endpoint(&self, id: &str) -> Result<()> {
        let rt = self
            .inner
            .runtime(id)
            .ok_or_else(|| Error::not_found(format!("no endpoint {id:?}")))?;
        self.inner.disable(&rt, DisableReason::Manual).await;
        Ok(())
    }

    /// Rotate an endpoint's secret: `new` (or a fresh random one) signs from
    /// now on, the previous ones keep signing for the rotation grace period.
    /// Returns the new secret.
    pub async fn rotate_secret(&self, id: &str, new: Option<Secret>) -> Result<Secret> {
        let rt = self
            .inner
            .runtime(id)
            .ok_or_else(|| Error::not_found(format!("no endpoint {id:?}")))?;
        let new = new.unwrap_or_else(|| generate_secret(32));
        let ep = {
            let mut state = lock(&rt.state);
            let ep = Arc::make_mut(&mut state.endpoint);
            ep.rotate(
                new.clone(),
                self.inner.clock.now(),
                self.inner.config.rotation_grace,
            )?;
            ep.clone()
        };
        self.inner.store.save_endpoint(&ep).await?;
        Ok(new)
    }

    /// Fan `event` out to every enabled endpoint whose filter takes its type.
    /// Returns once the deliveries are in the store.
    pub async fn send(&self, event: &Envelope) -> Result<SendReceipt> {
        let mut v = self.send_batch(std::slice::from_ref(event)).await?;
        v.pop()
            .ok_or_else(|| Error::internal("send_batch returned nothing"))
    }

    /// [`Dispatcher::send`] for many events, with one store write.
    pub async fn send_batch(&self, events: &[Envelope]) -> Result<Vec<SendReceipt>> {
        if lock(&self.inner.work).pending.len() + events.len() > self.inner.config.max_pending {
            return Err(Error::rate_limited(
                format!(
                    "{} deliveries are pending already (max_pending)",
                    self.inner.config.max_pending
                ),
                Some(Duration::from_secs(1)),
            ));
        }
        let endpoints = self.endpoints();
        let now = self.inner.clock.now();
        let first_delay = self.inner.config.schedule.delay(0).unwrap_or_default();
        let mut receipts = Vec::with_capacity(events.len());
        let mut records = Vec::new();
        // Shared by every record of the batch: the endpoint ids and the
        // structured content type are counted references, not copies.
        let endpoint_ids: Vec<SharedText> = endpoints
            .iter()
            .map(|ep| SharedText::from(&ep.id))
            .collect();
        let structured_type = SharedText::from(flextime_core::envelope::STRUCTURED_CONTENT_TYPE);
        // One scratch buffer for the batch's JSON bodies: each body is then
        // copied once into an allocation of exactly its size.
        let mut scratch = String::new();
        for event in events {
            // Writing the structured body validates the event; an event
            // sent to no structured endpoint is validated on its own below.
            let mut validated = false;
            let message_id = new_message_id();
            let (event_id, event_type) = (
                SharedText::from(event.id()),
                SharedText::from(event.event_type()),
            );
            let mut structured: Option<SharedText> = None;
            let mut deliveries = Vec::new();
            for (ep, endpoint_id) in endpoints
                .iter()
                .zip(&endpoint_ids)
                .filter(|(ep, _)| ep.enabled && ep.filter.matches(event.event_type()))
            {
                let (body, body_base64, content_type) = match ep.body {
                    BodyMode::Structured => {
                        if structured.is_none() {
                            scratch.clear();
                            event.write_json(&mut scratch)?;
                            validated = true;
                            structured = Some(SharedText::from(scratch.as_str()));
                        }
                        (
                            structured.clone().unwrap_or_default(),
                            false,
                            structured_type.clone(),
                        )
                    }
                    BodyMode::Raw => {
                        let (b, b64, ct) = raw_body(event);
                        (SharedText::from(b), b64, SharedText::from(ct))
                    }
                };
                let id = DeliveryRecord::id_for(&message_id, &ep.id);
                deliveries.push(id.clone());
                records.push(DeliveryRecord {
                    id,
                    message_id: message_id.clone(),
                    endpoint_id: endpoint_id.clone(),
                    event_id: event_id.clone(),
                    event_type: event_type.clone(),
                    body,
                    body_base64,
                    content_type,
                    status: DeliveryStatus::Pending,
                    created_at: now,
                    seq: self.inner.seq.fetch_add(1, Ordering::Relaxed),
                    next_attempt_at: Some(add(now, first_delay)),
                    attempt_count: 0,
                    round_start: 0,
                    attempts: Vec::new(),
                    finished_at: None,
                });
            }
            if !validated {
                event.validate()?;
            }
            receipts.push(SendReceipt {
                message_id,
                deliveries,
            });
        }
        if !records.is_empty() {
            self.inner.store.save_deliveries(records.clone()).await?;
        }
        self.inner.enqueue(records);
        Ok(receipts)
    }

    /// A delivery, from the store.
    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        Ok(self
            .inner
            .store
            .get_deliveries(&[id.to_owned()])
            .await?
            .pop())
    }

    /// The deliveries of a message, from the store.
    pub async fn deliveries_of_message(&self, message_id: &str) -> Result<Vec<DeliveryRecord>> {
        let mut ids: Vec<String> = self
            .inner
            .store
            .endpoints()
            .await?
            .iter()
            .map(|ep| DeliveryRecord::id_for(message_id, &ep.id).into())
            .collect();
        ids.sort();
        let found = self.inner.store.get_deliveries(&ids).await?;
        if found.is_empty() {
            // Endpoints removed since: fall back to a scan.
            return self
                .inner
                .store
                .scan(&DeliveryQuery {
                    message_id: Some(message_id.to_owned()),
                    ..DeliveryQuery::default()
                })
                .await;
        }
        Ok(found)
    }

    /// Every logged attempt of a message, to every endpoint, oldest first.
    pub async fn attempts_of_message(&self, message_id: &str) -> Result<Vec<AttemptEntry>> {
        Ok(entries(self.deliveries_of_message(message_id).await?))
    }

    /// The logged attempts to an endpoint (of deliveries created at or after
    /// `since`, if given), oldest first.
    pub async fn attempts_of_endpoint(
        &self,
        endpoint_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<AttemptEntry>> {
        let deliveries = self
            .inner
            .store
            .scan(&DeliveryQuery {
                endpoint_id: Some(endpoint_id.to_owned()),
                created_since: since,
                ..DeliveryQuery::default()
            })
            .await?;
        Ok(entries(deliveries))
    }

    /// Deliveries matching a query, from the store.
    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        self.inner.store.scan(query).await
    }

    /// Send a finished delivery again (same message id), starting the
    /// schedule over. `Conflict` if it is still pending.
    pub async fn resend(&self, delivery_id: &str) -> Result<()> {
        let d = self
            .delivery(delivery_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no delivery {delivery_id:?}")))?;
        self.resend_records(vec![d]).await.map(drop)
    }

    /// Resend every delivery to `endpoint_id` created at or after `since`
    /// that ended exhausted or endpoint-disabled. Returns how many.
    pub async fn recover(&self, endpoint_id: &str, since: DateTime<Utc>) -> Result<usize> {
        let failed = self
            .inner
            .store
            .scan(&DeliveryQuery {
                endpoint_id: Some(endpoint_id.to_owned()),
                statuses: vec![DeliveryStatus::Exhausted, DeliveryStatus::EndpointDisabled],
                created_since: Some(since),
                limit: 0,
                ..DeliveryQuery::default()
            })
            .await?;
        self.resend_records(failed).await
    }

    async fn resend_records(&self, records: Vec<DeliveryRecord>) -> Result<usize> {
        let now = self.inner.clock.now();
        let first_delay = self.inner.config.schedule.delay(0).unwrap_or_default();
        let mut out = Vec::with_capacity(records.len());
        for mut d in records {
            if d.status == DeliveryStatus::Pending
                || lock(&self.inner.work).pending.contains_key(&d.id)
            {
                return Err(Error::conflict(format!(
                    "delivery {:?} is still pending",
                    d.id
                )));
            }
            d.status = DeliveryStatus::Pending;
            d.round_start = d.attempt_count;
            d.next_attempt_at = Some(add(now, first_delay));
            d.finished_at = None;
            out.push(d);
        }
        let n = out.len();
        self.inner.store.save_deliveries(out.clone()).await?;
        self.inner.enqueue(out);
        Ok(n)
    }
}

/// A new message id: `msg_` and a UUIDv7 in lower-case hex (time-ordered).
fn new_message_id() -> SharedText {
    let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
    let hex = uuid::Uuid::now_v7().simple().encode_lower(&mut hex);
    SharedText::concat(&["msg_", hex])
}

fn entries(deliveries: Vec<DeliveryRecord>) -> Vec<AttemptEntry> {
    let mut v: Vec<AttemptEntry> = deliveries
        .into_iter()
        .flat_map(|d| {
            let DeliveryRecord {
                id,
                message_id,
                endpoint_id,
                attempts,
                ..
            } = d;
            attempts.into_iter().map(move |attempt| AttemptEntry {
                delivery_id: id.clone(),
                message_id: message_id.clone(),
                endpoint_id: endpoint_id.clone(),
                attempt,
            })
        })
        .collect();
    v.sort_by_key(|e| e.attempt.at);
    v
}

/// The raw body of an event: its data with its content type.
fn raw_body(event: &Envelope) -> (String, bool, String) {
    let ct = event.datacontenttype().map(str::to_owned);
    match event.data() {
        Some(Data::Json(v)) => (
            v.to_string(),
            false,
            ct.unwrap_or_else(|| "application/json".into()),
        ),
        Some(Data::Text(t)) => (
            t.clone(),
            false,
            ct.unwrap_or_else(|| "text/plain; charset=utf-8".into()),
        ),
        Some(data) => {
            let bytes = data.to_bytes();
            (
                crate::verify::encode_base64(&bytes),
                true,
                ct.unwrap_or_else(|| "application/octet-stream".into()),
            )
        }
        None => (
            String::new(),
            false,
            ct.unwrap_or_else(|| "application/json".into()),
        ),
    }
}

#[cfg(test)]
mod due_queue_tests {
    use super::DueQueue;

    #[test]
    fn pops_in_due_then_generation_order_whatever_the_push_order() {
        let mut q = DueQueue::default();
        let now = 100;
        // Due now in order (the FIFO), a later retry, an earlier due one
        // pushed out of order, and a tie on due broken by generation.
        for (due, generation) in [
            (90, 1),
            (95, 2),
            (500, 3),
            (80, 4),
            (95, 5),
            (100, 6),
            (99, 7),
        ] {
            q.push((due, generation, format!("d{generation}").into()), now);
        }
        assert_eq!(q.next_due(), Some(80));
        let mut got = Vec::new();
        while let Some((due, generation, _)) = q.pop() {
            got.push((due, generation));
        }
        assert_eq!(
            got,
            vec![
                (80, 4),
                (90, 1),
                (95, 2),
                (95, 5),
                (99, 7),
                (100, 6),
                (500, 3)
            ]
        );
        assert_eq!(q.next_due(), None);
    }
}
