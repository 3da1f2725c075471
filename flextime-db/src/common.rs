//! Helpers shared by every backend: input validation, URL redaction,
//! metrics, and the backend-independent planning of a batch of writes.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flextime_core::telemetry::{DB_OPERATION_SECONDS, DB_OPERATIONS};
use flextime_core::{Error, Result};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{
    Expect, MAX_BATCH, MAX_COLLECTION_CHARS, MAX_ID_CHARS, MAX_KEY_CHARS, MAX_PAGE,
    MAX_RECORD_BYTES, WriteOp, Written,
};

/// `url` with any password replaced by `***` (and unparseable URLs reduced
/// to their scheme), safe for logs and errors.
///
/// ```
/// assert_eq!(
///     flextime_db::redact_url("postgres://app:hunter2@db:5432/x"),
///     "postgres://app:***@db:5432/x"
/// );
/// assert_eq!(flextime_db::redact_url("sqlite::memory:"), "sqlite::memory:");
/// ```
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            for (k, _) in parsed.query_pairs() {
                if k.eq_ignore_ascii_case("password") {
                    parsed.set_query(Some("***"));
                    break;
                }
            }
            parsed.to_string()
        }
        Err(_) => {
            if url.contains('@') {
                let scheme = url.split(':').next().unwrap_or_default();
                format!("{scheme}://***")
            } else {
                url.to_owned()
            }
        }
    }
}

fn check_name(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_input(format!("{what} is empty")));
    }
    if value.contains('\0') {
        return Err(Error::invalid_input(format!(
            "{what} contains a NUL character"
        )));
    }
    // at most `max` bytes is at most `max` characters: count only beyond
    if value.len() > max {
        let chars = value.chars().count();
        if chars > max {
            return Err(Error::invalid_input(format!(
                "{what} has {chars} characters, more than {max}"
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_collection(collection: &str) -> Result<()> {
    check_name("collection name", collection, MAX_COLLECTION_CHARS)
}

pub(crate) fn check_id(id: &str) -> Result<()> {
    check_name("record id", id, MAX_ID_CHARS)
}

pub(crate) fn check_key(key: &str) -> Result<()> {
    check_name("key", key, MAX_KEY_CHARS)
}

pub(crate) fn check_value(len: usize) -> Result<()> {
    if len > MAX_RECORD_BYTES {
        return Err(Error::invalid_input(format!(
            "value of {len} bytes exceeds the limit of {MAX_RECORD_BYTES}"
        )));
    }
    Ok(())
}

pub(crate) fn check_ids(collection: &str, ids: &[String]) -> Result<()> {
    check_collection(collection)?;
    if ids.len() > MAX_PAGE {
        return Err(Error::invalid_input(format!(
            "{} ids requested, more than {MAX_PAGE}",
            ids.len()
        )));
    }
    ids.iter().try_for_each(|id| check_id(id))
}

pub(crate) fn page_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE)
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

pub(crate) fn ttl_deadline(now: DateTime<Utc>, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| micros(now).saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)))
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Run `fut`, recording `flextime_db_operations_total` and
/// `flextime_db_operation_seconds`.
pub(crate) async fn observe<T>(
    backend: &'static str,
    op: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let started = Instant::now();
    let result = fut.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    };
    metrics::counter!(DB_OPERATIONS, "backend" => backend, "op" => op, "outcome" => outcome)
        .increment(1);
    metrics::histogram!(DB_OPERATION_SECONDS, "backend" => backend, "op" => op)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        tracing::debug!(backend, op, error = %e, "db operation failed");
    }
    result
}

/// An upsert's data as the caller handed it over: a `Value`, or JSON text
/// it serialized itself ([`Adapter::upsert_batch_json`](crate::Adapter::upsert_batch_json)).
#[derive(Debug, Clone)]
pub(crate) enum Data {
    Value(Value),
    Json(Box<RawValue>),
}

impl Data {
    /// The JSON text to store for record `collection/id`, size-checked. A
    /// `Value` is serialized and dropped here (while it is still in cache);
    /// JSON text is stored as it is when it reads back as the `Value` it
    /// parses to ([`json_text`]).
    pub(crate) fn into_text(self, collection: &str, id: &str) -> Result<String> {
        let text = match self {
            Self::Value(value) => serde_json::to_string(&value)?,
            Self::Json(raw) => json_text(collection, id, raw)?,
        };
        check_value(text.len())?;
        Ok(text)
    }
}

/// One write to a record of a collection (the collection is its group's).
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub id: String,
    pub expect: Expect,
    /// `None` for a delete.
    pub data: Option<Data>,
}

/// The ops of one write call grouped by collection (sorted, so counters are
/// always taken in the same order and writers cannot deadlock), each op with
/// its position in the call.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// How many ops the call has.
    pub len: usize,
    pub groups: BTreeMap<String, Vec<(usize, Op)>>,
}

pub(crate) fn check_batch_len(len: usize) -> Result<()> {
    if len > MAX_BATCH {
        return Err(Error::invalid_input(format!(
            "{len} writes in one call, more than {MAX_BATCH}"
        )));
    }
    Ok(())
}

/// Validate (names, the batch bound) and group the ops of a `write` call.
pub(crate) fn group(ops: Vec<WriteOp>) -> Result<Batch> {
    check_batch_len(ops.len())?;
    ops.iter().try_for_each(|op| {
        check_collection(op.collection())?;
        check_id(op.id())
    })?;
    let len = ops.len();
    let mut groups: BTreeMap<String, Vec<(usize, Op)>> = BTreeMap::new();
    for (i, op) in ops.into_iter().enumerate() {
        let (collection, id, expect, data) = match op {
            WriteOp::Upsert {
                collection,
                id,
                data,
                expect,
            } => (collection, id, expect, Some(Data::Value(data))),
            WriteOp::Delete {
                collection,
                id,
                expect,
            } => (collection, id, expect, None),
        };
        groups
            .entry(collection)
            .or_default()
            .push((i, Op { id, expect, data }));
    }
    Ok(Batch { len, groups })
}

/// Validate the items of an `upsert_batch_json` call as one batch of
/// unconditional upserts to `collection`.
pub(crate) fn group_json(collection: &str, items: Vec<(String, Box<RawValue>)>) -> Result<Batch> {
    check_batch_len(items.len())?;
    let len = items.len();
    if len == 0 {
        // as `upsert_batch` (a `write` of no ops): nothing to check
        return Ok(Batch {
            len,
            groups: BTreeMap::new(),
        });
    }
    check_collection(collection)?;
    let ops = items
        .into_iter()
        .enumerate()
        .map(|(i, (id, raw))| {
            check_id(&id)?;
            Ok((
                i,
                Op {
                    id,
                    expect: Expect::Any,
                    data: Some(Data::Json(raw)),
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Batch {
        len,
        groups: BTreeMap::from([(collection.to_owned(), ops)]),
    })
}

/// `raw` parsed into a `Value` (what `upsert_batch_json`'s default hands
/// to `upsert_batch`), or an `InvalidInput` error naming the record: JSON
/// text can hold what a `Value` cannot (a number out of `f64` range, an
/// escaped lone surrogate).
pub(crate) fn parse_json(collection: &str, id: &str, raw: &RawValue) -> Result<Value> {
    serde_json::from_str(raw.get()).map_err(|e| {
        Error::invalid_input(format!("record {collection}/{id}: JSON: {e}")).with_source(e)
    })
}

/// The text to store for `raw` so that every backend reads back the value
/// `upsert_batch` would have stored for it (the text of its parsed
/// `Value`). Most text is stored as it is: whitespace, key order, escapes
/// and duplicate keys read back the same. What might not is rewritten as
/// its parsed `Value` (and so refused, with [`parse_json`]'s error, when it
/// does not parse into one): numbers JSONB spells otherwise than serde_json
/// (`1e2` comes back from PostgreSQL as the integer `100`, `100.0` from
/// serde_json's `100.0` as a float), numbers `f64` cannot hold or serde_json
/// may round differently, and escaped surrogates (a lone one is no string).
fn json_text(collection: &str, id: &str, raw: Box<RawValue>) -> Result<String> {
    if reads_back_as_parsed(raw.get()) {
        return Ok(String::from(Box::<str>::from(raw)));
    }
    let value = parse_json(collection, id, &raw)?;
    drop(raw);
    Ok(serde_json::to_string(&value)?)
}

/// Whether valid JSON `text` reads back, stored as it is (as text, or as
/// JSONB), as the `Value` it parses to. Conservative: `false` says only
/// "look closer". Numbers outside strings must be integers of at most 18
/// digits (19 when positive) other than `-0`, or decimals of at most 15
/// digits without an exponent: those serde_json parses exactly, JSONB
/// keeps as integers or decimals, and serde_json writes back alike. In
/// strings, no `\uD...` escape (a surrogate, maybe a lone one).
fn reads_back_as_parsed(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        Some(b'"') | None => break,
                        Some(b'\\') => {
                            if bytes.get(i + 1) == Some(&b'u')
                                && matches!(bytes.get(i + 2), Some(b'd' | b'D'))
                            {
                                return false;
                            }
                            i += 2;
                        }
                        Some(_) => i += 1,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    i += 1;
                }
                if !plain_number(&bytes[start..i]) {
                    return false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// See [`reads_back_as_parsed`].
fn plain_number(token: &[u8]) -> bool {
    let (negative, unsigned) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    if unsigned.iter().any(|c| matches!(c, b'e' | b'E')) {
        return false;
    }
    let digits = unsigned.iter().filter(|c| c.is_ascii_digit()).count();
    if unsigned.contains(&b'.') {
        digits <= 15
    } else {
        !(negative && unsigned == b"0") && digits <= if negative { 18 } else { 19 }
    }
}

/// One planned change of a record (one op of a write): a change-log entry,
/// and, when it is the record's last change in the call, its new state.
#[derive(Debug, Clone)]
pub(crate) struct RowWrite {
    pub id: String,
    pub version: u64,
    pub seq: u64,
    /// JSON text; `None` for a tombstone.
    pub data: Option<String>,
    pub updated_at_us: i64,
    pub deleted_at_us: Option<i64>,
}

/// The planned changes (one per op, in `seq` order) and the per-op results.
pub(crate) type Planned = (Vec<RowWrite>, Vec<(usize, Written)>);

/// The last change of each id among `changes` (the records' new states,
/// for backends with a record table next to the log).
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "mongodb", test))]
pub(crate) fn latest(changes: &[RowWrite]) -> Vec<&RowWrite> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(changes.len());
    let mut out: Vec<&RowWrite> = Vec::with_capacity(changes.len());
    for change in changes {
        if let Some(&i) = index.get(change.id.as_str()) {
            out[i] = change;
        } else {
            index.insert(change.id.as_str(), out.len());
            out.push(change);
        }
    }
    out
}

/// Plan the writes to one collection: check every precondition against
/// `existing` (id -> (version, deleted)) and the earlier ops of the call,
/// number the changes `base_seq + 1 ..`, and return one change per op plus
/// one [`Written`] per op (tagged with its position in the call).
pub(crate) fn plan(
    collection: &str,
    ops: Vec<(usize, Op)>,
    existing: &HashMap<String, (u64, bool)>,
    base_seq: u64,
    now: DateTime<Utc>,
) -> Result<Planned> {
    let now_us = micros(now);
    let mut changes: Vec<RowWrite> = Vec::with_capacity(ops.len());
    let mut state: HashMap<String, (u64, bool)> = HashMap::with_capacity(ops.len());
    let mut out = Vec::with_capacity(ops.len());
    for (n, (pos, op)) in ops.into_iter().enumerate() {
        let Op { id, expect, data } = op;
        let current = match state.get(&id) {
            Some(&s) => Some(s),
            None => existing.get(&id).copied(),
        };
        if !expect.admits(current) {
            return Err(conflict(collection, &id, expect, current));
        }
        let version = current.map_or(1, |(v, _)| v + 1);
        let seq = base_seq + n as u64 + 1;
        let data = data.map(|d| d.into_text(collection, &id)).transpose()?;
        let deleted = data.is_none();
        state.insert(id.clone(), (version, deleted));
        out.push((
            pos,
            Written {
                collection: collection.to_owned(),
                id: id.clone(),
                version,
                seq,
                updated_at: now,
                deleted,
            },
        ));
        changes.push(RowWrite {
            id,
            version,
            seq,
            deleted_at_us: deleted.then_some(now_us),
            data,
            updated_at_us: now_us,
        });
    }
    Ok((changes, out))
}

pub(crate) fn conflict(
    collection: &str,
    id: &str,
    expect: Expect,
    current: Option<(u64, bool)>,
) -> Error {
    let found = match current {
        None => "no record".to_owned(),
        Some((v, true)) => format!("a tombstone at version {v}"),
        Some((v, false)) => format!("version {v}"),
    };
    let wanted = match expect {
        Expect::Any => "any version".to_owned(),
        Expect::Absent => "no record".to_owned(),
        Expect::Version(v) => format!("version {v}"),
    };
    Error::conflict(format!(
        "{collection}/{id}: expected {wanted}, found {found}"
    ))
}

/// Put per-op results back in call order.
pub(crate) fn in_order(n: usize, parts: Vec<(usize, Written)>) -> Result<Vec<Written>> {
    let mut slots: Vec<Option<Written>> = vec![None; n];
    for (pos, w) in parts {
        if let Some(slot) = slots.get_mut(pos) {
            *slot = Some(w);
        }
    }
    slots
        .into_iter()
        .map(|w| w.ok_or_else(|| Error::internal("a write produced no result")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("mysql://root:pw@127.0.0.1:3306/test"),
            "mysql://root:***@127.0.0.1:3306/test"
        );
        assert_eq!(
            redact_url("redis://:secret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert!(!redact_url("postgres://h/db?password=abc").contains("abc"));
        assert!(!redact_url("not a url user:pw@host").contains("pw"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_id("").is_err());
        assert!(check_id("a\0b").is_err());
        assert!(check_id(&"x".repeat(256)).is_err());
        assert!(check_id(&"é".repeat(255)).is_ok());
        assert!(check_collection("'; DROP TABLE ft_records; --").is_ok());
    }

    /// The ops of `ops` (all of collection `c`), as `plan` takes them.
    fn ops_of_c(ops: Vec<WriteOp>) -> Vec<(usize, Op)> {
        let mut batch = group(ops).unwrap();
        batch.groups.remove("c").unwrap()
    }

    #[test]
    fn plan_follows_earlier_ops_of_the_call() {
        let existing = HashMap::from([("a".to_owned(), (3, false))]);
        let ops = ops_of_c(vec![
            WriteOp::upsert("c", "a", json!(1)).expect(Expect::Version(3)),
            WriteOp::delete("c", "a").expect(Expect::Version(4)),
            WriteOp::upsert("c", "a", json!(2)).expect(Expect::Absent),
            WriteOp::upsert("c", "b", json!(3)),
        ]);
        let (changes, out) = plan("c", ops, &existing, 10, Utc::now()).unwrap();
        assert_eq!(changes.len(), 4, "one change per op");
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.version, c.seq))
                .collect::<Vec<_>>(),
            [(4, 11), (5, 12), (6, 13), (1, 14)]
        );
        assert!(changes[1].data.is_none() && changes[1].deleted_at_us.is_some());
        let rows = latest(&changes);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].version, rows[0].seq), (6, 13));
        assert_eq!(rows[0].data.as_deref(), Some("2"));
        assert_eq!(
            out.iter().map(|(_, w)| w.version).collect::<Vec<_>>(),
            [4, 5, 6, 1]
        );
        let bad = ops_of_c(vec![
            WriteOp::upsert("c", "a", json!(1)).expect(Expect::Absent),
        ]);
        let err = plan("c", bad, &existing, 0, Utc::now()).unwrap_err();
        assert_eq!(err.kind(), flextime_core::ErrorKind::Conflict);
        assert!(err.to_string().contains("found version 3"), "{err}");
    }

    #[test]
    fn json_text_is_kept_where_it_reads_back_alike() {
        let raw = |t: &str| RawValue::from_string(t.to_owned()).unwrap();
        let text = |t: &str| json_text("c", "id", raw(t));
        for kept in [
            r#"{ "a" : [1, -2, 3.25, -0.5, 1234567.125, 18446744073, true, null] }"#,
            r#"{"t":"2026-01-05T08:00:00+01:00","s":"x-0e1 \" \u00e9 \/","a":1,"a":2}"#,
            "9999999999999999999",
            "-999999999999999999",
            "-0.0",
            "[]",
        ] {
            assert!(reads_back_as_parsed(kept), "{kept}");
            assert_eq!(text(kept).unwrap(), kept);
        }
        // rewritten as `upsert_batch` would store them
        for given in [
            "1e2",
            "[1E2, 2]",
            "-0",
            "12345678901234567.0",
            "0.1234567890123456",
            "18446744073709551616",
            "-9223372036854775808",
            r#""\ud83d\ude00""#,
        ] {
            assert!(!reads_back_as_parsed(given), "{given}");
            let parsed: Value = serde_json::from_str(given).unwrap();
            assert_eq!(
                text(given).unwrap(),
                serde_json::to_string(&parsed).unwrap()
            );
        }
        assert_eq!(text("[1E2, -0]").unwrap(), "[100.0,-0.0]");
        assert_eq!(text(r#""\ud83d\ude00""#).unwrap(), r#""😀""#);
        for bad in ["1e400", "[-1e400]", r#""\udc00""#, r#"{"a":"\ud800"}"#] {
            let err = text(bad).unwrap_err();
            assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput, "{bad}");
            assert!(err.to_string().contains("c/id"), "{err}");
        }
    }

    #[test]
    fn batches_are_bounded() {
        let ops = (0..=MAX_BATCH)
            .map(|i| WriteOp::upsert("c", i.to_string(), json!(null)))
            .collect();
        assert!(group(ops).is_err());
    }
}
