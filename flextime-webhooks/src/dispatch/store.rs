//! Dispatcher state: endpoints and deliveries (with their attempt log),
//! behind [`DeliveryStore`]; [`MemoryStore`] keeps them in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use flextime_core::{ErrorKind, Result};
use serde::{Deserialize, Serialize};

use super::endpoint::Endpoint;

/// Bytes of the response body kept per attempt.
pub const RESPONSE_BODY_KEPT: usize = 4096;
/// Attempts kept per delivery (the oldest are dropped beyond this).
pub const ATTEMPTS_KEPT: usize = 64;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// More attempts will be made.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed.
    Exhausted,
    /// The endpoint was disabled (410 Gone, failing too long, or by hand).
    EndpointDisabled,
}

impl DeliveryStatus {
    /// Whether no more attempts will be made.
    pub fn is_final(self) -> bool {
        self != Self::Pending
    }

    /// `pending`, `delivered`, `exhausted`, `endpoint_disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Exhausted => "exhausted",
            Self::EndpointDisabled => "endpoint_disabled",
        }
    }
}

/// One attempt of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt of the delivery.
    pub attempt: u32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// The HTTP status, when a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// The first [`RESPONSE_BODY_KEPT`] bytes of the response body (lossy UTF-8).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response_body: String,
    /// The kind of failure, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// What went wrong, when it failed (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Attempt {
    /// Whether the endpoint accepted it.
    pub fn succeeded(&self) -> bool {
        self.error_kind.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One message to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// `<message id>.<endpoint id>`.
    pub id: SharedText,
    /// The message id: the `webhook-id` header of every attempt.
    pub message_id: SharedText,
    /// The endpoint.
    pub endpoint_id: SharedText,
    /// The CloudEvents id of the event.
    pub event_id: SharedText,
    /// The CloudEvents type of the event.
    pub event_type: SharedText,
    /// The request body (UTF-8, or base64 when `body_base64`).
    pub body: SharedText,
    /// Whether `body` is base64 of binary data.
    #[serde(default)]
    pub body_base64: bool,
    /// The request's content type.
    pub content_type: SharedText,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Creation order within the dispatcher that created it (ties in `created_at`).
    #[serde(default)]
    pub seq: u64,
    /// When the next attempt is due (pending deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Attempts made in total.
    #[serde(default)]
    pub attempt_count: u32,
    /// Attempts made before the current round (a resend starts a new round
    /// of the schedule).
    #[serde(default)]
    pub round_start: u32,
    /// The latest attempts, oldest first (at most [`ATTEMPTS_KEPT`]).
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// When it reached its final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl DeliveryRecord {
    /// The delivery id of a message to an endpoint.
    pub fn id_for(message_id: &str, endpoint_id: &str) -> SharedText {
        SharedText::concat(&[message_id, ".", endpoint_id])
    }

    /// The body bytes (shared with the record, not copied, for UTF-8 bodies).
    pub fn body_bytes(&self) -> bytes::Bytes {
        if self.body_base64 {
            bytes::Bytes::from(crate::verify::decode_base64(&self.body).unwrap_or_default())
        } else {
            bytes::Bytes::from_owner(self.body.clone())
        }
    }

    pub(crate) fn push_attempt(&mut self, attempt: Attempt) {
        self.attempt_count = attempt.attempt;
        // Most deliveries take one attempt: room for exactly one at first
        // (a first push would make room for four), doubling after that.
        if self.attempts.capacity() == 0 {
            self.attempts.reserve_exact(1);
        }
        self.attempts.push(attempt);
        let excess = self.attempts.len().saturating_sub(ATTEMPTS_KEPT);
        self.attempts.drain(..excess);
    }
}

/// Immutable text shared between copies of a record: ids, names and request
/// bodies are copied into the store, the queue, the attempt and the events
/// by a reference count, never by duplicating the text. It reads as a `str`
/// (`Deref`, `Display`, comparisons with `str` and `String`), and is written
/// and read as a plain JSON string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedText(Arc<str>);

impl SharedText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parts one after the other, in one allocation (no intermediate
    /// `String` for short texts such as ids).
    pub fn concat(parts: &[&str]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut buf = [0u8; 256];
        if len <= buf.len() {
            let mut at = 0;
            for p in parts {
                buf[at..at + p.len()].copy_from_slice(p.as_bytes());
                at += p.len();
            }
            // Whole UTF-8 strings end to end are UTF-8.
            if let Ok(text) = std::str::from_utf8(&buf[..len]) {
                return Self::from(text);
            }
        }
        Self::from(parts.concat())
    }
}

impl Default for SharedText {
    fn default() -> Self {
        Self(Arc::from(""))
    }
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::borrow::Borrow<str> for SharedText {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for SharedText {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl From<&String> for SharedText {
    fn from(s: &String) -> Self {
        Self(Arc::from(s.as_str()))
    }
}

impl From<&str> for SharedText {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<SharedText> for String {
    fn from(s: SharedText) -> Self {
        s.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedText {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedText> for str {
    fn eq(&self, other: &SharedText) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SharedText> for &str {
    fn eq(&self, other: &SharedText) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SharedText> for String {
    fn eq(&self, other: &SharedText) -> bool {
        **self == *other.0
    }
}

impl Serialize for SharedText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(SharedTextVisitor)
    }
}

/// Reads a string straight into the shared allocation (one copy, no
/// intermediate `String` where the input lends its text).
struct SharedTextVisitor;

impl serde::de::Visitor<'_> for SharedTextVisitor {
    type Value = SharedText;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SharedText, E> {
        Ok(SharedText::from(v))
    }
}

/// Which deliveries [`DeliveryStore::scan`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only this endpoint's.
    pub endpoint_id: Option<String>,
    /// Only this message's.
    pub message_id: Option<String>,
    /// Only these statuses (empty: any).
    pub statuses: Vec<DeliveryStatus>,
    /// Only those created at or after this time.
    pub created_since: Option<DateTime<Utc>>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

impl DeliveryQuery {
    /// Whether `d` matches.
    pub fn matches(&self, d: &DeliveryRecord) -> bool {
        self.endpoint_id
            .as_ref()
            .is_none_or(|e| *e == d.endpoint_id)
            && self.message_id.as_ref().is_none_or(|m| *m == d.message_id)
            && (self.statuses.is_empty() || self.statuses.contains(&d.status))
            && self.created_since.is_none_or(|t| d.created_at >= t)
    }
}

/// Where a dispatcher keeps endpoints and deliveries. Writes are durable
/// when the call returns (for a durable store).
///
/// One dispatcher works on a store at a time; a new one started on the same
/// store resumes the pending deliveries.
#[async_trait]
pub trait DeliveryStore: Send + Sync + std::fmt::Debug {
    /// Create or replace an endpoint.
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()>;
    /// Remove an endpoint (its deliveries stay); whether it existed.
    async fn delete_endpoint(&self, id: &str) -> Result<bool>;
    /// Every endpoint.
    async fn endpoints(&self) -> Result<Vec<Endpoint>>;
    /// Create or replace deliveries (one atomic batch where the backend can).
    async fn save_deliveries(&self, deliveries: Vec<DeliveryRecord>) -> Result<()>;
    /// Create or replace one delivery (the dispatcher's per-attempt write).
    /// The default calls [`DeliveryStore::save_deliveries`] with it alone.
    async fn save_delivery(&self, delivery: DeliveryRecord) -> Result<()> {
        self.save_deliveries(vec![delivery]).await
    }
    /// The deliveries among `ids` that exist.
    async fn get_deliveries(&self, ids: &[String]) -> Result<Vec<DeliveryRecord>>;
    /// The deliveries matching `query`, oldest first.
    async fn scan(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>>;
    /// Whether concurrent `save_deliveries` calls are gathered into shared
    /// commits (then the dispatcher does not hold a worker while a final
    /// outcome is committed). Default false.
    fn group_commits(&self) -> bool {
        false
    }
}

/// State in memory: lost with the process. Keeps at most `max_finished`
/// finished deliveries (default 100 000), dropping the oldest.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    max_finished: usize,
}

#[derive(Debug, Default)]
struct MemoryInner {
    endpoints: HashMap<String, Endpoint>,
    deliveries: HashMap<SharedText, DeliveryRecord, foldhash::fast::RandomState>,
    finished: VecDeque<SharedText>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryStore {
    /// A store keeping at most `max_finished` finished deliveries.
    pub fn new(max_finished: usize) -> Self {
        Self {
            inner: Mutex::new(MemoryInner::default()),
            max_finished: max_finished.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drop the oldest finished deliveries beyond `max_finished`.
    fn evict(&self, inner: &mut MemoryInner) {
        while inner.finished.len() > self.max_finished {
            if let Some(id) = inner.finished.pop_front()
                && inner
                    .deliveries
                    .get(&id)
                    .is_some_and(|d| d.status.is_final())
            {
                inner.deliveries.remove(&id);
            }
        }
    }
}

impl MemoryInner {
    /// Create or replace one delivery.
    fn put(&mut self, d: DeliveryRecord) {
        if d.status.is_final() {
            self.finished.push_back(d.id.clone());
        }
        // An update (the common case) replaces in place, keeping the key.
        match self.deliveries.get_mut(&d.id) {
            Some(slot) => *slot = d,
            None => {
                self.deliveries.insert(d.id.clone(), d);
            }
        }
    }
}

#[async_trait]
impl DeliveryStore for MemoryStore {
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        self.lock()
            .endpoints
            .insert(endpoint.id.clone(), endpoint.clone());
        Ok(())
    }

    async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        Ok(self.lock().endpoints.remove(id).is_some())
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let mut v: Vec<Endpoint> = self.lock().endpoints.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    async fn save_deliveries(&self, deliveries: Vec<DeliveryRecord>) -> Result<()> {
        let mut inner = self.lock();
        for d in deliveries {
            inner.put(d);
        }
        self.evict(&mut inner);
        Ok(())
    }

    async fn save_delivery(&self, delivery: DeliveryRecord) -> Result<()> {
        let mut inner = self.lock();
        inner.put(delivery);
        self.evict(&mut inner);
        Ok(())
    }

    async fn get_deliveries(&self, ids: &[String]) -> Result<Vec<DeliveryRecord>> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| inner.deliveries.get(id.as_str()).cloned())
            .collect())
    }

    async fn scan(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        let mut v: Vec<DeliveryRecord> = self
            .lock()
            .deliveries
            .values()
            .filter(|d| query.matches(d))
            .cloned()
            .collect();
        v.sort_by_key(|d| (d.created_at, d.seq));
        if query.limit > 0 {
            v.truncate(query.limit);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod shared_text_tests {
    use std::collections::HashMap;

    use super::SharedText;

    #[test]
    fn concat_reads_and_compares_as_the_joined_text() {
        let id = SharedText::concat(&["msg_01", ".", "endpoint-é"]);
        assert_eq!(id, "msg_01.endpoint-é");
        assert_eq!(id.as_str(), "msg_01.endpoint-é");
        assert_eq!(id.to_string(), "msg_01.endpoint-é");
        assert_eq!(String::from(id.clone()), "msg_01.endpoint-é".to_owned());
        // Longer than the stack buffer: still whole.
        let long = "x".repeat(300);
        assert_eq!(SharedText::concat(&[&long, "-", &long]).len(), 601);
        assert_eq!(SharedText::concat(&[]), "");
    }

    #[test]
    fn clones_share_one_allocation_and_maps_find_it_by_str() {
        let a = SharedText::from("delivery-1");
        let b = a.clone();
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        let mut map = HashMap::new();
        map.insert(a, 1);
        assert_eq!(map.get("delivery-1"), Some(&1));
        assert_eq!(map.get("delivery-2"), None);
    }

    #[test]
    fn serializes_as_a_plain_json_string() {
        let text = SharedText::from("quote \" and \u{1}");
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, r#""quote \" and \u0001""#);
        let back: SharedText = serde_json::from_str(&json).unwrap();
        assert_eq!(back, text);
        // From a reader (no borrowed input) too.
        let back: SharedText = serde_json::from_reader(json.as_bytes()).unwrap();
        assert_eq!(back, text);
        assert!(serde_json::from_str::<SharedText>("12").is_err());
    }
}

#[cfg(test)]
mod memory_store_tests {
    use super::{DeliveryRecord, DeliveryStatus, DeliveryStore, MemoryStore};

    fn record(id: &str, status: DeliveryStatus) -> DeliveryRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "message_id": "msg", "endpoint_id": "ep",
            "event_id": "evt", "event_type": "booking.created", "body": "{}",
            "content_type": "application/json", "status": status,
            "created_at": chrono::Utc::now(),
        }))
        .unwrap()
    }

    async fn ids(store: &MemoryStore) -> Vec<String> {
        let mut ids: Vec<String> = store
            .scan(&super::DeliveryQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id.to_string())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_first_attempt_takes_room_for_one_and_later_ones_grow_it() {
        let attempt = |n| super::Attempt {
            attempt: n,
            at: chrono::Utc::now(),
            status: Some(200),
            latency_ms: 1,
            response_body: String::new(),
            error_kind: None,
            error: None,
        };
        let mut d = record("a", DeliveryStatus::Pending);
        d.push_attempt(attempt(1));
        assert_eq!(d.attempts.capacity(), 1);
        d.push_attempt(attempt(2));
        assert_eq!(
            (d.attempts.len(), d.attempt_count, d.attempts[1].attempt),
            (2, 2, 2)
        );
    }

    #[tokio::test]
    async fn one_or_many_at_a_time_the_oldest_finished_go_first_and_pending_stay() {
        let store = MemoryStore::new(2);
        store
            .save_deliveries(vec![
                record("a", DeliveryStatus::Pending),
                record("b", DeliveryStatus::Delivered),
            ])
            .await
            .unwrap();
        store
            .save_delivery(record("c", DeliveryStatus::Exhausted))
            .await
            .unwrap();
        // An update of a pending delivery replaces it in place.
        store
            .save_delivery(record("a", DeliveryStatus::Delivered))
            .await
            .unwrap();
        // Three finished, room for two: the oldest finished one (b) went.
        assert_eq!(ids(&store).await, ["a", "c"]);
        let a = store.get_deliveries(&["a".to_owned()]).await.unwrap();
        assert_eq!(a[0].status, DeliveryStatus::Delivered);
        store
            .save_delivery(record("d", DeliveryStatus::Pending))
            .await
            .unwrap();
        assert_eq!(ids(&store).await, ["a", "c", "d"]);
    }
}
