//! The structured JSON event format (and its batch form), also used by the
//! `serde` implementations.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::binary::{RawAttributes, RawValue};
use super::{Data, Envelope, ExtensionValue, SPEC_VERSION, format_time, invalid_attr};
use crate::error::{Error, Result};

/// Standard base64 that accepts input with or without padding.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Envelope {
    /// The event in the structured JSON format, as a JSON object.
    ///
    /// Validates first ([`Envelope::validate`]). Extensions become top-level
    /// members; JSON and text data go in `data`, binary data in `data_base64`.
    pub fn to_json_value(&self) -> Result<Value> {
        self.validate()?;
        Ok(Value::Object(self.to_json_map()))
    }

    /// The event in the structured JSON format, as bytes
    /// (media type `application/cloudevents+json`). Validates first.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        let mut out = String::with_capacity(256);
        self.write_json(&mut out)?;
        Ok(out.into_bytes())
    }

    /// [`Envelope::to_json_bytes`], appended to `out` (a buffer reused
    /// across events saves growing a new one for each). Validates first;
    /// on an error `out` is left as it was.
    pub fn write_json(&self, out: &mut String) -> Result<()> {
        self.validate()?;
        fast::write_structured(self, out);
        Ok(())
    }

    fn to_json_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("specversion".into(), SPEC_VERSION.into());
        map.insert("id".into(), self.id.clone().into());
        map.insert("source".into(), self.source.clone().into());
        map.insert("type".into(), self.event_type.clone().into());
        if let Some(subject) = &self.subject {
            map.insert("subject".into(), subject.clone().into());
        }
        if let Some(time) = &self.time {
            map.insert("time".into(), format_time(time).into());
        }
        if let Some(ct) = &self.datacontenttype {
            map.insert("datacontenttype".into(), ct.clone().into());
        }
        if let Some(schema) = &self.dataschema {
            map.insert("dataschema".into(), schema.clone().into());
        }
        for (name, value) in &self.extensions {
            let value = match value {
                ExtensionValue::String(s) => Value::String(s.clone()),
                ExtensionValue::Integer(i) => Value::from(*i),
                ExtensionValue::Boolean(b) => Value::Bool(*b),
            };
            map.insert(name.clone(), value);
        }
        match &self.data {
            None => {}
            Some(Data::Json(value)) => {
                map.insert("data".into(), value.clone());
            }
            Some(Data::Text(text)) => {
                map.insert("data".into(), text.clone().into());
            }
            Some(Data::Binary(bytes)) => {
                map.insert(
                    "data_base64".into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(bytes)
                        .into(),
                );
            }
        }
        map
    }

    /// Parse one event in the structured JSON format.
    ///
    /// Members other than the core attributes, `data` and `data_base64` are
    /// extensions (strings, integers or booleans); a `null` member counts as
    /// absent. `data` and `data_base64` together are an error. A JSON string
    /// `data` with a non-JSON `datacontenttype` becomes [`Data::Text`].
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)?;
        Self::from_json_value(value)
    }

    /// Parse one event from a JSON value in the structured format; see
    /// [`Envelope::from_json_slice`].
    pub fn from_json_value(value: Value) -> Result<Self> {
        match value {
            Value::Object(map) => Self::from_json_map(map),
            other => Err(Error::invalid_input(format!(
                "a structured CloudEvent must be a JSON object, got {}",
                json_type_name(&other)
            ))),
        }
    }

    fn from_json_map(mut map: Map<String, Value>) -> Result<Self> {
        let data = map.remove("data").filter(|v| !v.is_null());
        let data_base64 = map.remove("data_base64").filter(|v| !v.is_null());
        let mut attrs = RawAttributes::default();
        for (name, value) in map {
            let raw = match value {
                Value::Null => continue,
                Value::String(s) => RawValue::Str(s),
                Value::Bool(b) => RawValue::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => RawValue::Int(i),
                    None => {
                        return Err(invalid_attr(
                            &name,
                            &format!("the number {n} is not a CloudEvents integer"),
                        ));
                    }
                },
                other => {
                    return Err(invalid_attr(
                        &name,
                        &format!(
                            "must be a string, integer or boolean, got {}",
                            json_type_name(&other)
                        ),
                    ));
                }
            };
            attrs.insert(name.clone(), raw, &name)?;
        }
        let mut envelope = attrs.into_envelope()?;
        envelope.data = match (data, data_base64) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_input(
                    "a CloudEvent must not have both `data` and `data_base64`",
                ));
            }
            (None, None) => None,
            (None, Some(Value::String(encoded))) => {
                let bytes = BASE64_LENIENT.decode(encoded.as_bytes()).map_err(|err| {
                    invalid_attr("data_base64", &format!("not valid base64 ({err})"))
                })?;
                Some(Data::Binary(Bytes::from(bytes)))
            }
            (None, Some(other)) => {
                return Err(invalid_attr(
                    "data_base64",
                    &format!("must be a base64 string, got {}", json_type_name(&other)),
                ));
            }
            (Some(Value::String(text)), None)
                if envelope
                    .datacontenttype
                    .as_deref()
                    .is_some_and(|ct| !super::is_json_media_type(ct)) =>
            {
                Some(Data::Text(text))
            }
            (Some(value), None) => Some(Data::Json(value)),
        };
        Ok(envelope)
    }

    /// Parse a batch (a JSON array of structured events, media type
    /// `application/cloudevents-batch+json`). An error names the index of the
    /// offending event.
    pub fn batch_from_json_slice(bytes: &[u8]) -> Result<Vec<Self>> {
        let value: Value = serde_json::from_slice(bytes)?;
        Self::batch_from_json_value(value)
    }

    /// Parse a batch from a JSON value; see [`Envelope::batch_from_json_slice`].
    pub fn batch_from_json_value(value: Value) -> Result<Vec<Self>> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    Self::from_json_value(item).map_err(|e| e.context(format!("batch event [{i}]")))
                })
                .collect(),
            other => Err(Error::invalid_input(format!(
                "a CloudEvents batch must be a JSON array, got {}",
                json_type_name(&other)
            ))),
        }
    }

    /// A batch of events as a JSON array value. Validates every event.
    pub fn batch_to_json_value(events: &[Self]) -> Result<Value> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.to_json_value()
                    .map_err(|err| err.context(format!("batch event [{i}]")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Value::Array)
    }

    /// A batch of events as JSON bytes (media type
    /// `application/cloudevents-batch+json`). Validates every event.
    pub fn batch_to_json_bytes(events: &[Self]) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&Self::batch_to_json_value(events)?)?)
    }
}

/// Serializes in the structured JSON format; an invalid envelope
/// ([`Envelope::validate`]) is a serialization error.
impl serde::Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.validate().map_err(serde::ser::Error::custom)?;
        Structured(self).serialize(serializer)
    }
}

/// Deserializes from the structured JSON format, with the same checks as
/// [`Envelope::from_json_value`].
impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Envelope::from_json_value(value).map_err(serde::de::Error::custom)
    }
}

/// The structured format written straight into a byte buffer: the same
/// bytes `serde_json` writes for [`Structured`] (a property test holds the
/// two together), but strings are scanned for characters to escape eight
/// bytes at a time instead of one, which is most of the work for an event
/// whose data is mostly text.
mod fast {
    use std::fmt::Write as _;

    use serde_json::Value;

    use chrono::{DateTime, Datelike as _, FixedOffset, Timelike as _};

    use super::super::{Data, Envelope, ExtensionValue, SPEC_VERSION, format_time};

    pub(super) fn write_structured(e: &Envelope, out: &mut String) {
        // The attribute names and the spec version need no escaping: they
        // go out as written here.
        out.push_str("{\"specversion\":\"");
        out.push_str(SPEC_VERSION);
        out.push('"');
        let mut members = Members { out, first: false };
        members.string_at("\"id\":", &e.id);
        members.string_at("\"source\":", &e.source);
        members.string_at("\"type\":", &e.event_type);
        if let Some(subject) = &e.subject {
            members.string_at("\"subject\":", subject);
        }
        if let Some(time) = &e.time {
            members.key_at("\"time\":");
            write_time(members.out, time);
        }
        if let Some(ct) = &e.datacontenttype {
            members.string_at("\"datacontenttype\":", ct);
        }
        if let Some(schema) = &e.dataschema {
            members.string_at("\"dataschema\":", schema);
        }
        for (name, value) in &e.extensions {
            match value {
                ExtensionValue::String(s) => members.string(name, s),
                ExtensionValue::Integer(i) => {
                    members.key(name);
                    members.out.push_str(itoa::Buffer::new().format(*i));
                }
                ExtensionValue::Boolean(b) => {
                    members.key(name);
                    members.out.push_str(if *b { "true" } else { "false" });
                }
            }
        }
        match &e.data {
            None => {}
            Some(Data::Json(value)) => {
                members.key_at("\"data\":");
                write_value(members.out, value);
            }
            Some(Data::Text(text)) => members.string_at("\"data\":", text),
            Some(Data::Binary(bytes)) => {
                use base64::Engine as _;
                members.string_at(
                    "\"data_base64\":",
                    &base64::engine::general_purpose::STANDARD.encode(bytes),
                );
            }
        }
        out.push('}');
    }

    /// The members of one JSON object, comma separated.
    struct Members<'a> {
        out: &'a mut String,
        first: bool,
    }

    impl Members<'_> {
        fn key(&mut self, name: &str) {
            self.comma();
            write_str(self.out, name);
            self.out.push(':');
        }

        /// The separator before every member but the first.
        fn comma(&mut self) {
            if !std::mem::take(&mut self.first) {
                self.out.push(',');
            }
        }

        fn string(&mut self, name: &str, value: &str) {
            self.key(name);
            write_str(self.out, value);
        }

        /// A key given quoted and followed by its colon, as it goes out.
        fn key_at(&mut self, quoted: &str) {
            self.comma();
            self.out.push_str(quoted);
        }

        fn string_at(&mut self, quoted: &str, value: &str) {
            self.key_at(quoted);
            write_str(self.out, value);
        }
    }

    /// `time` as a JSON string, exactly as [`format_time`] writes it (RFC
    /// 3339; fractions of 0, 3, 6 or 9 digits, the fewest that hold it
    /// exactly; `Z` for UTC, else `+hh:mm` rounded to the minute), without
    /// going through a formatter and a temporary string.
    fn write_time(out: &mut String, time: &DateTime<FixedOffset>) {
        let local = time.naive_local();
        let year = u32::try_from(local.year()).unwrap_or(u32::MAX);
        if year > 9999 {
            // Out of RFC 3339's range (validation refuses it): as chrono writes it.
            return write_str(out, &format_time(time));
        }
        let mut w = Ascii::default();
        w.byte(b'"');
        w.digits(year, 4);
        w.byte(b'-');
        w.digits(local.month(), 2);
        w.byte(b'-');
        w.digits(local.day(), 2);
        w.byte(b'T');
        let (mut sec, mut nano) = (local.second(), local.nanosecond());
        if nano >= 1_000_000_000 {
            // A leap second.
            sec += 1;
            nano -= 1_000_000_000;
        }
        w.digits(local.hour(), 2);
        w.byte(b':');
        w.digits(local.minute(), 2);
        w.byte(b':');
        w.digits(sec, 2);
        if nano != 0 {
            w.byte(b'.');
            if nano % 1_000_000 == 0 {
                w.digits(nano / 1_000_000, 3);
            } else if nano % 1_000 == 0 {
                w.digits(nano / 1_000, 6);
            } else {
                w.digits(nano, 9);
            }
        }
        let offset = time.offset().local_minus_utc();
        if offset == 0 {
            w.byte(b'Z');
        } else {
            w.byte(if offset < 0 { b'-' } else { b'+' });
            let minutes = (offset.unsigned_abs() + 30) / 60;
            w.digits(minutes / 60, 2);
            w.byte(b':');
            w.digits(minutes % 60, 2);
        }
        w.byte(b'"');
        out.push_str(w.as_str());
    }

    /// A short ASCII text built in place.
    struct Ascii {
        buf: [u8; 40],
        len: usize,
    }

    impl Default for Ascii {
        fn default() -> Self {
            Self {
                buf: [0; 40],
                len: 0,
            }
        }
    }

    impl Ascii {
        fn byte(&mut self, b: u8) {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }

        /// `value` in exactly `width` decimal digits (zero padded).
        fn digits(&mut self, value: u32, width: u32) {
            let mut div = 10u32.pow(width - 1);
            for _ in 0..width {
                self.byte(b'0' + u8::try_from(value / div % 10).unwrap_or(0));
                div /= 10;
            }
        }

        fn as_str(&self) -> &str {
            // Only ASCII bytes are ever written.
            std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
        }
    }

    pub(super) fn write_value(out: &mut String, value: &Value) {
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            // Integers as serde_json writes them (itoa); a float through
            // `Number`'s Display, which is serde_json's own float output.
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    out.push_str(itoa::Buffer::new().format(u));
                } else if let Some(i) = n.as_i64() {
                    out.push_str(itoa::Buffer::new().format(i));
                } else {
                    let _ = write!(out, "{n}");
                }
            }
            Value::String(s) => write_str(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_value(out, item);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                let mut members = Members { out, first: true };
                for (name, item) in map {
                    members.key(name);
                    write_value(members.out, item);
                }
                out.push('}');
            }
        }
    }

    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

    /// Whether any byte of `word` is below 0x20, a quote or a backslash
    /// (exact: a word it clears holds none of them).
    fn needs_escape(word: u64) -> bool {
        escape_bits(word) & HIGH_BITS != 0
    }

    /// Bits that, masked with `HIGH_BITS`, flag the bytes of `word` that may
    /// need escaping (see [`needs_escape`]); several words' bits can be
    /// or-ed and tested once.
    fn escape_bits(word: u64) -> u64 {
        let below_space = word.wrapping_sub(LOW_BITS * 0x20) & !word;
        let quote = word ^ (LOW_BITS * u64::from(b'"'));
        let backslash = word ^ (LOW_BITS * u64::from(b'\\'));
        let has_zero = |x: u64| x.wrapping_sub(LOW_BITS) & !x;
        below_space | has_zero(quote) | has_zero(backslash)
    }

    /// The bytes JSON strings escape: control characters, `"` and `\\`.
    const ESCAPED: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = true;
            b += 1;
        }
        table[b'"' as usize] = true;
        table[b'\\' as usize] = true;
        table
    };

    /// How many leading bytes of `bytes`, in whole words of eight, need no
    /// escaping.
    fn clean_words(bytes: &[u8]) -> usize {
        let word_at = |b: &[u8]| u64::from_le_bytes(<[u8; 8]>::try_from(b).unwrap_or([0; 8]));
        let mut n = 0;
        // Long clean runs (the common case) 32 bytes per test...
        for block in bytes.chunks_exact(32) {
            let bits = escape_bits(word_at(&block[..8]))
                | escape_bits(word_at(&block[8..16]))
                | escape_bits(word_at(&block[16..24]))
                | escape_bits(word_at(&block[24..]));
            if bits & HIGH_BITS != 0 {
                break;
            }
            n += 32;
        }
        // ...then word by word up to the first word that needs a look.
        for word in bytes[n..].chunks_exact(8) {
            if needs_escape(word_at(word)) {
                break;
            }
            n += 8;
        }
        n
    }

    /// `s` as a JSON string, escaped as serde_json escapes it: `\"`, `\\`,
    /// the short forms of backspace, form feed, newline, carriage return and
    /// tab, `\u00XX` (lower-case hex) for the other control characters, and
    /// everything else as it is.
    pub(super) fn write_str(out: &mut String, s: &str) {
        let bytes = s.as_bytes();
        out.reserve(bytes.len() + 2);
        out.push('"');
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            // Whole clean words at once, then at most one word byte by byte.
            i += clean_words(&bytes[i..]);
            let word_end = (i + 8).min(bytes.len());
            while i < word_end {
                let b = bytes[i];
                i += 1;
                if !ESCAPED[usize::from(b)] {
                    continue;
                }
                let short = match b {
                    b'"' => "\\\"",
                    b'\\' => "\\\\",
                    0x08 => "\\b",
                    0x0c => "\\f",
                    b'\n' => "\\n",
                    b'\r' => "\\r",
                    b'\t' => "\\t",
                    _ => "",
                };
                // Escapes are ASCII: `start..i - 1` lies on character boundaries.
                out.push_str(&s[start..i - 1]);
                if short.is_empty() {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.push_str("\\u00");
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 0xf)]));
                } else {
                    out.push_str(short);
                }
                start = i;
            }
        }
        out.push_str(&s[start..]);
        out.push('"');
    }
}

/// Serializes an envelope in the structured format without building an
/// intermediate `serde_json::Value` (borrows every attribute and the data).
struct Structured<'a>(&'a Envelope);

impl serde::Serialize for Structured<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPEC_VERSION)?;
        map.serialize_entry("id", &e.id)?;
        map.serialize_entry("source", &e.source)?;
        map.serialize_entry("type", &e.event_type)?;
        if let Some(subject) = &e.subject {
            map.serialize_entry("subject", subject)?;
        }
        if let Some(time) = &e.time {
            map.serialize_entry("time", &format_time(time))?;
        }
        if let Some(ct) = &e.datacontenttype {
            map.serialize_entry("datacontenttype", ct)?;
        }
        if let Some(schema) = &e.dataschema {
            map.serialize_entry("dataschema", schema)?;
        }
        for (name, value) in &e.extensions {
            match value {
                ExtensionValue::String(s) => map.serialize_entry(name, s)?,
                ExtensionValue::Integer(i) => map.serialize_entry(name, i)?,
                ExtensionValue::Boolean(b) => map.serialize_entry(name, b)?,
            }
        }
        match &e.data {
            None => {}
            Some(Data::Json(value)) => map.serialize_entry("data", value)?,
            Some(Data::Text(text)) => map.serialize_entry("data", text)?,
            Some(Data::Binary(bytes)) => map.serialize_entry(
                "data_base64",
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            )?,
        }
        map.end()
    }
}

#[cfg(test)]
mod write_json_tests {
    use crate::Envelope;

    #[test]
    fn appends_the_structured_bytes_and_leaves_the_buffer_alone_on_error() {
        let event = Envelope::new("/s", "booking.created")
            .with_id("e-1")
            .with_data_json(serde_json::json!({"room": "A-1"}));
        let mut out = "prefix".to_owned();
        event.write_json(&mut out).unwrap();
        assert_eq!(&out[..6], "prefix");
        assert_eq!(&out.as_bytes()[6..], event.to_json_bytes().unwrap());

        let invalid = Envelope::new("", "booking.created");
        let mut out = "prefix".to_owned();
        assert!(invalid.write_json(&mut out).is_err());
        assert_eq!(out, "prefix");
    }
}
