#![doc = include_str!("docs.md")]

mod config;
mod consumer;
mod producer;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use config::MemoryConfig;
pub use consumer::MemoryConsumer;
pub use producer::MemoryProducer;

use crate::{Broker, Consumer, ConsumerOptions, Message, Producer, ProducerOptions, Result};

/// The in-process broker. Clones share the same topics.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use flextime_queues::{Broker, ConsumerOptions, Message, memory::MemoryBroker};
/// let broker = MemoryBroker::default();
/// let mut consumer = broker.consumer(ConsumerOptions::new("t", "g")).await.unwrap();
/// broker.producer(Default::default()).await.unwrap().send("t", Message::new("hi")).await.unwrap();
/// let d = consumer.next().await.unwrap().unwrap();
/// assert_eq!(&d.message().payload[..], b"hi");
/// d.ack().await.unwrap();
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    config: MemoryConfig,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

impl MemoryBroker {
    /// A broker with this configuration.
    pub fn new(config: MemoryConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                topics: Mutex::default(),
            }),
        }
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = lock(&self.inner.topics);
        topics
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Topic {
                    name: Arc::from(name),
                    state: Mutex::default(),
                    changed: Notify::new(),
                    space: Notify::new(),
                })
            })
            .clone()
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn producer(&self, _options: ProducerOptions) -> Result<Box<dyn Producer>> {
        Ok(Box::new(MemoryProducer::new(self.clone())))
    }

    async fn consumer(&self, options: ConsumerOptions) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(MemoryConsumer::new(self.clone(), options)))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Topic {
    name: Arc<str>,
    state: Mutex<TopicState>,
    /// Woken when messages become ready.
    changed: Notify,
    /// Woken when a group has room again.
    space: Notify,
}

#[derive(Default)]
struct TopicState {
    /// Messages sent before any group existed.
    backlog: Group,
    groups: HashMap<String, Group>,
}

impl TopicState {
    fn is_full(&self, capacity: usize) -> bool {
        if self.groups.is_empty() {
            self.backlog.len() >= capacity
        } else {
            self.groups.values().any(|g| g.len() >= capacity)
        }
    }

    fn each_group(&mut self) -> Vec<&mut Group> {
        if self.groups.is_empty() {
            vec![&mut self.backlog]
        } else {
            self.groups.values_mut().collect()
        }
    }

    fn group(&mut self, name: &str) -> &mut Group {
        if !self.groups.contains_key(name) {
            let group = std::mem::take(&mut self.backlog);
            self.groups.insert(name.to_owned(), group);
        }
        self.groups.entry(name.to_owned()).or_default()
    }
}

#[derive(Default)]
struct Group {
    ready: VecDeque<Message>,
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed_messages: HashMap<u64, Message>,
    in_flight: HashMap<u64, (Message, Instant)>,
    next_token: u64,
}

impl Group {
    fn len(&self) -> usize {
        self.ready.len() + self.delayed_messages.len() + self.in_flight.len()
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn push_delayed(&mut self, due: Instant, message: Message) {
        let token = self.token();
        self.delayed.push(Reverse((due, token)));
        self.delayed_messages.insert(token, message);
    }

    /// Move due delayed messages and expired deliveries to `ready`; the
    /// earliest instant something else becomes due.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((due, token))) = self.delayed.peek().copied() {
            if due > now {
                break;
            }
            self.delayed.pop();
            if let Some(m) = self.delayed_messages.remove(&token) {
                self.ready.push_back(m);
            }
        }
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            if let Some((m, _)) = self.in_flight.remove(&token) {
                tracing::debug!(id = %m.id, "memory: ack deadline passed, redelivering");
                self.ready.push_front(m);
            }
        }
        let next_delayed = self.delayed.peek().map(|Reverse((due, _))| *due);
        let next_deadline = self.in_flight.values().map(|(_, d)| *d).min();
        match (next_delayed, next_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
