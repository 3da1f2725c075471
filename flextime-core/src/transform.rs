//! [`Transformer`]: turn one change into another (or drop it), and the
//! declarative [`FieldMapping`] transformer loaded from TOML or JSON.
//!
//! Transformers compose: `a.then(b)` runs `b` on what `a` produced, and a
//! change dropped by `a` never reaches `b`.
//!
//! ```
//! use flextime_core::transform::{FieldMapping, Transformer, TransformerExt, FnTransformer};
//! use flextime_core::{Change, ChangeKey};
//! use serde_json::json;
//!
//! let mapping = FieldMapping::from_toml_str(r#"
//!     [[rule]]
//!     op = "rename"
//!     from = "summary"
//!     to = "title"
//!
//!     [[rule]]
//!     op = "convert_timezone"
//!     field = "start"
//!     to = "Europe/Berlin"
//!
//!     [[rule]]
//!     op = "default"
//!     to = "status"
//!     value = "confirmed"
//! "#).unwrap();
//! let only_upserts = FnTransformer::new(|c: Change| Ok(c.is_upsert().then_some(c)));
//! let pipeline = only_upserts.then(mapping);
//!
//! let change = Change::upsert(
//!     ChangeKey::new("google", "events", "1"),
//!     json!({"summary": "Standup", "start": "2026-03-02T08:00:00Z"}),
//! );
//! let out = pipeline.transform(change).unwrap().unwrap();
//! assert_eq!(
//!     out.data.unwrap(),
//!     json!({"title": "Standup", "start": "2026-03-02T09:00:00+01:00", "status": "confirmed"})
//! );
//! ```

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::change::Change;
use crate::error::{Error, Result};
use crate::validate::Violation;

/// Turns a change into another, or drops it (`Ok(None)`).
///
/// An `Err` means this change cannot be transformed (bad data); a pipeline
/// reports it for that change and carries on with the others.
pub trait Transformer: Send + Sync {
    /// Transform one change.
    fn transform(&self, change: Change) -> Result<Option<Change>>;
}

impl<T: Transformer + ?Sized> Transformer for Box<T> {
    fn transform(&self, change: Change) -> Result<Option<Change>> {
        (**self).transform(change)
    }
}

impl<T: Transformer + ?Sized> Transformer for std::sync::Arc<T> {
    fn transform(&self, change: Change) -> Result<Option<Change>> {
        (**self).transform(change)
    }
}

/// Composition for every [`Transformer`].
pub trait TransformerExt: Transformer + Sized {
    /// Run `next` on what this transformer produces.
    fn then<N: Transformer>(self, next: N) -> Then<Self, N> {
        Then(self, next)
    }
}

impl<T: Transformer> TransformerExt for T {}

/// Two transformers in sequence; see [`TransformerExt::then`].
#[derive(Debug, Clone)]
pub struct Then<A, B>(A, B);

impl<A: Transformer, B: Transformer> Transformer for Then<A, B> {
    fn transform(&self, change: Change) -> Result<Option<Change>> {
        match self.0.transform(change)? {
            Some(c) => self.1.transform(c),
            None => Ok(None),
        }
    }
}

/// Any number of transformers in sequence, chosen at run time.
#[derive(Default)]
pub struct Chain(Vec<Box<dyn Transformer>>);

impl Chain {
    /// An empty chain (passes every change through).
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Append a transformer.
    #[must_use]
    pub fn with(mut self, t: impl Transformer + 'static) -> Self {
        self.0.push(Box::new(t));
        self
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chain({} transformers)", self.0.len())
    }
}

impl Transformer for Chain {
    fn transform(&self, change: Change) -> Result<Option<Change>> {
        let mut current = change;
        for t in &self.0 {
            match t.transform(current)? {
                Some(c) => current = c,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }
}

/// A transformer from a closure.
pub struct FnTransformer<F>(F);

impl<F> FnTransformer<F> {
    /// Wrap `f`.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F> fmt::Debug for FnTransformer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnTransformer")
    }
}

impl<F: Fn(Change) -> Result<Option<Change>> + Send + Sync> Transformer for FnTransformer<F> {
    fn transform(&self, change: Change) -> Result<Option<Change>> {
        (self.0)(change)
    }
}

// ---------------------------------------------------------------------------
// JSON path helpers

/// The value at a dotted path (`start.tz`, `attendees.0.email`) in a JSON value.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Set the value at a dotted path, creating intermediate objects. Fails when
/// a segment on the way is a scalar or an array index is out of range.
pub fn set_path(value: &mut Value, path: &str, new: Value) -> Result<()> {
    let mut segments = path.split('.').peekable();
    let mut current = value;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if current.is_null() {
            *current = Value::Object(Map::new());
        }
        current = match current {
            Value::Object(map) => {
                if last {
                    map.insert(seg.to_owned(), new);
                    return Ok(());
                }
                map.entry(seg.to_owned()).or_insert(Value::Null)
            }
            Value::Array(items) => {
                let slot = seg
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or_else(|| {
                        Error::invalid_input(format!("`{path}`: no array element `{seg}`"))
                    })?;
                if last {
                    *slot = new;
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(Error::invalid_input(format!(
                    "`{path}`: cannot descend into a non-object at `{seg}`"
                )));
            }
        };
    }
    Ok(())
}

/// Remove and return the value at a dotted path.
pub fn remove_path(value: &mut Value, path: &str) -> Option<Value> {
    let (parent, leaf) = match path.rsplit_once('.') {
        Some((parent, leaf)) => (get_path_mut(value, parent)?, leaf),
        None => (value, path),
    };
    match parent {
        Value::Object(map) => map.remove(leaf),
        _ => None,
    }
}

fn get_path_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get_mut(seg),
        Value::Array(items) => seg
            .parse::<usize>()
            .ok()
            .and_then(move |i| items.get_mut(i)),
        _ => None,
    })
}

// ---------------------------------------------------------------------------
// Declarative field mapping

/// A date/time representation for [`MappingRule::FormatDate`].
///
/// In TOML/JSON: `"rfc3339"`, `"rfc2822"`, `"unix"` (seconds, a number),
/// `"unix_ms"` (milliseconds, a number), `"date"` (`YYYY-MM-DD`), or any other
/// string, taken as a `chrono` strftime pattern (`"%d/%m/%Y %H:%M"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DateFormat {
    /// RFC 3339 (`2026-03-02T09:00:00+01:00`).
    Rfc3339,
    /// RFC 2822 (`Mon, 02 Mar 2026 09:00:00 +0100`).
    Rfc2822,
    /// Seconds since the Unix epoch, as a JSON number.
    Unix,
    /// Milliseconds since the Unix epoch, as a JSON number.
    UnixMs,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A strftime pattern.
    Pattern(String),
}

impl From<String> for DateFormat {
    fn from(s: String) -> Self {
        match s.as_str() {
            "rfc3339" => Self::Rfc3339,
            "rfc2822" => Self::Rfc2822,
            "unix" => Self::Unix,
            "unix_ms" => Self::UnixMs,
            "date" => Self::Date,
            _ => Self::Pattern(s),
        }
    }
}

impl From<DateFormat> for String {
    fn from(f: DateFormat) -> Self {
        match f {
            DateFormat::Rfc3339 => "rfc3339".into(),
            DateFormat::Rfc2822 => "rfc2822".into(),
            DateFormat::Unix => "unix".into(),
            DateFormat::UnixMs => "unix_ms".into(),
            DateFormat::Date => "date".into(),
            DateFormat::Pattern(p) => p,
        }
    }
}

/// One rule of a [`FieldMapping`]. Field names are dotted paths into the
/// change's JSON data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MappingRule {
    /// Move a field to a new name (nothing happens if `from` is absent).
    Rename {
        /// Source path.
        from: String,
        /// Target path.
        to: String,
    },
    /// Copy a field (nothing happens if `from` is absent).
    Copy {
        /// Source path.
        from: String,
        /// Target path.
        to: String,
    },
    /// Always set a field to a value.
    Constant {
        /// Target path.
        to: String,
        /// The value.
        value: Value,
    },
    /// Set a field to a value when it is absent or null.
    Default {
        /// Target path.
        to: String,
        /// The value.
        value: Value,
    },
    /// Remove a field.
    Drop {
        /// The path to remove.
        field: String,
    },
    /// Convert an RFC 3339 timestamp to another IANA zone (same instant, new
    /// offset). A timestamp without offset is read in `from` (required then).
    ConvertTimezone {
        /// The field holding the timestamp.
        field: String,
        /// IANA zone of offset-less inputs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Target IANA zone.
        to: String,
    },
    /// Reformat a date/time field.
    FormatDate {
        /// The field.
        field: String,
        /// The input format.
        from: DateFormat,
        /// The output format.
        to: DateFormat,
        /// IANA zone for reading offset-less inputs and writing outputs
        /// (default UTC).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tz: Option<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default, rename = "rule")]
    rules: Vec<MappingRule>,
}

/// A declarative transformer: an ordered list of [`MappingRule`]s applied to
/// each upsert's data. Deletes pass through untouched.
///
/// Rules are checked when loaded (zones exist, patterns parse), and every
/// problem is reported at once with its rule index.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMapping {
    rules: Vec<MappingRule>,
}

impl FieldMapping {
    /// A mapping from rules, validated.
    pub fn new(rules: Vec<MappingRule>) -> Result<Self> {
        let violations = validate_rules(&rules);
        crate::validate::violations_to_result(&violations)
            .map_err(|e| e.context("field mapping"))?;
        Ok(Self { rules })
    }

    /// Load from TOML: an array of tables named `rule`, each with an `op`.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let file: MappingFile = toml::from_str(text).map_err(|e| {
            Error::invalid_input(format!("field mapping TOML: {}", e.message())).with_source(e)
        })?;
        Self::new(file.rules)
    }

    /// Load from JSON: `{"rule": [{"op": "rename", ...}, ...]}` or a bare array of rules.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)?;
        let rules: Vec<MappingRule> = if value.is_array() {
            serde_json::from_value(value)?
        } else {
            serde_json::from_value::<MappingFile>(value)?.rules
        };
        Self::new(rules)
    }

    /// The rules.
    pub fn rules(&self) -> &[MappingRule] {
        &self.rules
    }

    /// Apply the rules to a JSON value.
    pub fn apply(&self, mut data: Value) -> Result<Value> {
        for (i, rule) in self.rules.iter().enumerate() {
            apply_rule(rule, &mut data).map_err(|e| e.context(format!("mapping rule {i}")))?;
        }
        Ok(data)
    }
}

impl Transformer for FieldMapping {
    fn transform(&self, mut change: Change) -> Result<Option<Change>> {
        if let Some(data) = change.data.take() {
            change.data = Some(self.apply(data).map_err(|e| e.context(&change.key))?);
        }
        Ok(Some(change))
    }
}

fn parse_tz(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

fn validate_rules(rules: &[MappingRule]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = |field: &str| format!("rule[{i}].{field}");
        let mut zone = |field: &str, name: &Option<String>| {
            if let Some(name) = name
                && parse_tz(name).is_none()
            {
                out.push(Violation::new(
                    at(field),
                    "unknown_time_zone",
                    format!("unknown IANA time zone {name:?}"),
                ));
            }
        };
        match rule {
            MappingRule::ConvertTimezone { from, to, .. } => {
                zone("from", from);
                zone("to", &Some(to.clone()));
            }
            MappingRule::FormatDate { tz, from, to, .. } => {
                zone("tz", tz);
                for (name, fmt) in [("from", from), ("to", to)] {
                    if let DateFormat::Pattern(p) = fmt
                        && chrono::format::StrftimeItems::new(p)
                            .any(|item| matches!(item, chrono::format::Item::Error))
                    {
                        out.push(Violation::new(
                            at(name),
                            "invalid_date_format",
                            format!("invalid strftime pattern {p:?}"),
                        ));
                    }
                }
            }
            _ => {}
        }
        let paths: Vec<&String> = match rule {
            MappingRule::Rename { from, to } | MappingRule::Copy { from, to } => vec![from, to],
            MappingRule::Constant { to, .. } | MappingRule::Default { to, .. } => vec![to],
            MappingRule::Drop { field }
            | MappingRule::ConvertTimezone { field, .. }
            | MappingRule::FormatDate { field, .. } => vec![field],
        };
        for p in paths {
            if p.is_empty() || p.split('.').any(str::is_empty) {
                out.push(Violation::new(
                    at("field"),
                    "invalid_path",
                    format!("invalid field path {p:?}"),
                ));
            }
        }
    }
    out
}

fn apply_rule(rule: &MappingRule, data: &mut Value) -> Result<()> {
    match rule {
        MappingRule::Rename { from, to } => {
            if let Some(v) = remove_path(data, from) {
                set_path(data, to, v)?;
            }
        }
        MappingRule::Copy { from, to } => {
            if let Some(v) = get_path(data, from).cloned() {
                set_path(data, to, v)?;
            }
        }
        MappingRule::Constant { to, value } => set_path(data, to, value.clone())?,
        MappingRule::Default { to, value } => {
            if get_path(data, to).is_none_or(Value::is_null) {
                set_path(data, to, value.clone())?;
            }
        }
        MappingRule::Drop { field } => {
            remove_path(data, field);
        }
        MappingRule::ConvertTimezone { field, from, to } => {
            let Some(v) = get_path(data, field) else {
                return Ok(());
            };
            let from_tz = from.as_deref().and_then(parse_tz);
            let to_tz = parse_tz(to)
                .ok_or_else(|| Error::invalid_input(format!("unknown time zone {to:?}")))?;
            let instant = read_date(v, &DateFormat::Rfc3339, from_tz, field)?;
            let converted = instant.with_timezone(&to_tz).fixed_offset();
            set_path(data, field, Value::String(converted.to_rfc3339()))?;
        }
        MappingRule::FormatDate {
            field,
            from,
            to,
            tz,
        } => {
            let Some(v) = get_path(data, field) else {
                return Ok(());
            };
            let zone = tz.as_deref().and_then(parse_tz);
            let instant = read_date(v, from, zone, field)?;
            let out = write_date(instant, to, zone.unwrap_or(Tz::UTC));
            set_path(data, field, out)?;
        }
    }
    Ok(())
}

fn localize(naive: NaiveDateTime, zone: Tz, field: &str) -> Result<DateTime<FixedOffset>> {
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|dt| dt.fixed_offset())
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "`{field}`: {naive} does not exist in {zone} (DST gap)"
            ))
        })
}

fn read_date(
    v: &Value,
    format: &DateFormat,
    zone: Option<Tz>,
    field: &str,
) -> Result<DateTime<FixedOffset>> {
    let bad = |what: &str| Error::invalid_input(format!("`{field}`: {what}"));
    let text = || v.as_str().ok_or_else(|| bad("expected a string"));
    match format {
        DateFormat::Unix | DateFormat::UnixMs => {
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| bad("expected a Unix timestamp number"))?;
            let dt = if *format == DateFormat::Unix {
                DateTime::from_timestamp(n, 0)
            } else {
                DateTime::from_timestamp_millis(n)
            };
            dt.map(|d| d.fixed_offset())
                .ok_or_else(|| bad("timestamp out of range"))
        }
        DateFormat::Rfc3339 => {
            let s = text()?;
            if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
                return Ok(dt);
            }
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|_| bad(&format!("{s:?} is not an RFC 3339 timestamp")))?;
            let zone = zone.ok_or_else(|| {
                bad(&format!(
                    "{s:?} has no UTC offset and the rule names no `from` zone"
                ))
            })?;
            localize(naive, zone, field)
        }
        DateFormat::Rfc2822 => DateTime::parse_from_rfc2822(text()?)
            .map_err(|e| bad(&format!("not an RFC 2822 date: {e}"))),
        DateFormat::Date => {
            let d = NaiveDate::parse_from_str(text()?, "%Y-%m-%d")
                .map_err(|e| bad(&format!("not a YYYY-MM-DD date: {e}")))?;
            localize(
                d.and_time(chrono::NaiveTime::MIN),
                zone.unwrap_or(Tz::UTC),
                field,
            )
        }
        DateFormat::Pattern(p) => {
            let s = text()?;
            if let Ok(dt) = DateTime::parse_from_str(s, p) {
                return Ok(dt);
            }
            if let Ok(naive) = NaiveDateTime::parse_from_str(s, p) {
                return localize(naive, zone.unwrap_or(Tz::UTC), field);
            }
            let d = NaiveDate::parse_from_str(s, p)
                .map_err(|e| bad(&format!("{s:?} does not match {p:?}: {e}")))?;
            localize(
                d.and_time(chrono::NaiveTime::MIN),
                zone.unwrap_or(Tz::UTC),
                field,
            )
        }
    }
}

fn write_date(instant: DateTime<FixedOffset>, format: &DateFormat, zone: Tz) -> Value {
    let local = instant.with_timezone(&zone);
    match format {
        DateFormat::Rfc3339 => Value::String(local.fixed_offset().to_rfc3339()),
        DateFormat::Rfc2822 => Value::String(local.to_rfc2822()),
        DateFormat::Unix => Value::from(instant.timestamp()),
        DateFormat::UnixMs => Value::from(instant.timestamp_millis()),
        DateFormat::Date => Value::String(local.format("%Y-%m-%d").to_string()),
        DateFormat::Pattern(p) => Value::String(local.format(p).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChangeKey;
    use serde_json::json;

    fn key() -> ChangeKey {
        ChangeKey::new("s", "c", "1")
    }

    #[test]
    fn each_rule() {
        let m = FieldMapping::from_json_str(
            r#"[
            {"op": "rename", "from": "a.b", "to": "x.y"},
            {"op": "copy", "from": "x.y", "to": "copy"},
            {"op": "constant", "to": "source", "value": "google"},
            {"op": "default", "to": "status", "value": "confirmed"},
            {"op": "default", "to": "kept", "value": 1},
            {"op": "drop", "field": "secret"},
            {"op": "format_date", "field": "day", "from": "%d/%m/%Y", "to": "date"},
            {"op": "format_date", "field": "ts", "from": "unix", "to": "rfc3339", "tz": "America/New_York"},
            {"op": "convert_timezone", "field": "local", "from": "Asia/Tokyo", "to": "UTC"}
        ]"#,
        )
        .unwrap();
        let out = m
            .apply(json!({
                "a": {"b": 5}, "kept": 0, "secret": "x", "day": "31/12/2025",
                "ts": 1_700_000_000, "local": "2026-01-01T09:00:00"
            }))
            .unwrap();
        assert_eq!(
            out,
            json!({
                "a": {}, "x": {"y": 5}, "copy": 5, "source": "google", "status": "confirmed",
                "kept": 0, "day": "2025-12-31", "ts": "2023-11-14T17:13:20-05:00",
                "local": "2026-01-01T00:00:00+00:00"
            })
        );
    }

    #[test]
    fn invalid_rules_report_every_problem() {
        let err = FieldMapping::from_toml_str(
            r#"
            [[rule]]
            op = "convert_timezone"
            field = "start"
            to = "Mars/Olympus"
            [[rule]]
            op = "format_date"
            field = "d"
            from = "%Q%"
            to = "date"
            tz = "Nowhere"
        "#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("3 violations"), "{text}");
        assert!(text.contains("rule[0].to"), "{text}");
        assert!(text.contains("rule[1].from"), "{text}");
        assert!(text.contains("rule[1].tz"), "{text}");
    }

    #[test]
    fn unknown_op_is_an_error() {
        let err = FieldMapping::from_toml_str("[[rule]]\nop = \"explode\"\n").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("explode"), "{err}");
    }

    #[test]
    fn bad_data_is_a_typed_error_naming_the_field() {
        let m = FieldMapping::new(vec![MappingRule::ConvertTimezone {
            field: "start".into(),
            from: None,
            to: "UTC".into(),
        }])
        .unwrap();
        let err = m
            .transform(Change::upsert(key(), json!({"start": "yesterday"})))
            .unwrap_err();
        assert!(err.to_string().contains("`start`"), "{err}");
        let err = m
            .transform(Change::upsert(
                key(),
                json!({"start": "2026-01-01T00:00:00"}),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("no UTC offset"), "{err}");
    }

    #[test]
    fn dst_gap_is_reported() {
        let m = FieldMapping::new(vec![MappingRule::ConvertTimezone {
            field: "t".into(),
            from: Some("Europe/Berlin".into()),
            to: "UTC".into(),
        }])
        .unwrap();
        let err = m.apply(json!({"t": "2026-03-29T02:30:00"})).unwrap_err();
        assert!(err.to_string().contains("DST gap"), "{err}");
    }

    #[test]
    fn deletes_pass_and_chain_stops_on_drop() {
        let m = FieldMapping::new(vec![MappingRule::Drop { field: "x".into() }]).unwrap();
        let d = Change::delete(key());
        assert_eq!(m.transform(d.clone()).unwrap(), Some(d.clone()));
        let chain = Chain::new()
            .with(FnTransformer::new(|_c: Change| Ok(None)))
            .with(FnTransformer::new(|_c: Change| {
                Err(Error::internal("must not run"))
            }));
        assert_eq!(chain.transform(d).unwrap(), None);
    }

    #[test]
    fn path_helpers() {
        let mut v = json!({"a": [1, {"b": 2}]});
        assert_eq!(get_path(&v, "a.1.b"), Some(&json!(2)));
        set_path(&mut v, "a.1.c.d", json!(3)).unwrap();
        assert_eq!(get_path(&v, "a.1.c.d"), Some(&json!(3)));
        assert!(set_path(&mut v, "a.0.x", json!(1)).is_err());
        assert!(set_path(&mut v, "a.9", json!(1)).is_err());
        assert_eq!(remove_path(&mut v, "a.1.b"), Some(json!(2)));
        assert_eq!(remove_path(&mut v, "nope.x"), None);
    }
}
