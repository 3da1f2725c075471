//! [`Envelope`]: an event in CloudEvents 1.0 shape.
//!
//! An envelope carries the CloudEvents context attributes (`id`, `source`,
//! `specversion`, `type`, and the optional `subject`, `time`,
//! `datacontenttype`, `dataschema`), extension attributes ([`ExtensionValue`])
//! and the event payload ([`Data`]: JSON, text or binary, or none).
//!
//! It converts to and from:
//! - the structured JSON format (single events and batches), also through
//!   `serde` ([`Envelope::to_json_bytes`], [`Envelope::from_json_slice`],
//!   [`Envelope::batch_from_json_slice`] ...);
//! - the binary mode of the HTTP binding ([`Envelope::to_http_binary`],
//!   [`Envelope::from_http`]);
//! - the binary mode of the Kafka binding ([`Envelope::to_kafka_binary`],
//!   [`KafkaRecord`]);
//! - the binary mode of the AMQP binding ([`Envelope::to_amqp_binary`],
//!   [`AmqpMessage`], [`AmqpValue`]).
//!
//! # Validation
//!
//! Every parser validates: a missing or malformed attribute is an
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error whose
//! message names the attribute, and no input makes a parser panic.
//!
//! On the producing side, [`Envelope::with_extension`] checks the extension
//! name at once (it returns a `Result`). The other builders accept any value;
//! [`Envelope::validate`] checks the whole envelope and is called by the JSON
//! emitters (which return a `Result`). The binary emitters
//! ([`Envelope::to_http_binary`], [`Envelope::to_kafka_binary`],
//! [`Envelope::to_amqp_binary`]) never fail and do not validate: call
//! [`Envelope::validate`] first when attribute values come from outside.
//!
//! # Binary mode and types
//!
//! HTTP and Kafka headers are untyped strings, so extension values read from
//! them are always [`ExtensionValue::String`] holding the canonical string
//! form; [`ExtensionValue::as_integer`] and [`ExtensionValue::as_bool`] accept
//! that form. AMQP application properties are typed and keep the type.
//!
//! In binary mode the payload is the message body and `datacontenttype` is the
//! content type. Reading it back, a JSON content type (`application/json`,
//! `text/json`, `*/*+json`) gives [`Data::Json`], a textual one (`text/*`,
//! `application/xml`, `*/*+xml`, or any with a `charset` parameter) with a
//! UTF-8 body gives [`Data::Text`], anything else [`Data::Binary`]; an empty
//! body is no data. When emitting, JSON data without a `datacontenttype` is
//! sent as `application/json` and text data as `text/plain; charset=utf-8`.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Utc};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

mod amqp;
mod binary;
mod http;
mod json;
mod kafka;

pub use amqp::{AMQP_PREFIX, AMQP_PREFIX_ALT, AmqpMessage, AmqpValue};
pub use http::{HTTP_PREFIX, decode_header_value, encode_header_value};
pub use kafka::{KAFKA_PREFIX, KafkaRecord};

/// The only CloudEvents spec version supported: `1.0`.
pub const SPEC_VERSION: &str = "1.0";

/// Media type of a structured-mode CloudEvent in JSON.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Media type of a batch of CloudEvents in JSON.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// Names of the context attributes defined by the CloudEvents 1.0 core spec,
/// plus the JSON members `data` and `data_base64`: none of them can be used as
/// an extension name.
pub const RESERVED_NAMES: &[&str] = &[
    "id",
    "source",
    "specversion",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// The name of the Kafka partition key extension (`partitionkey`).
pub const PARTITION_KEY: &str = "partitionkey";

/// The payload of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A JSON value (`data` member in structured JSON mode).
    Json(serde_json::Value),
    /// Text that is not JSON, e.g. with a `text/plain` or `text/xml` content
    /// type (a JSON string `data` member in structured JSON mode).
    Text(String),
    /// Arbitrary bytes (`data_base64` member in structured JSON mode).
    Binary(Bytes),
}

impl Data {
    /// The payload as bytes, as it is sent in a binary-mode message body
    /// (JSON is serialized compactly, text as UTF-8).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Data::Json(value) => Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            Data::Text(text) => Bytes::copy_from_slice(text.as_bytes()),
            Data::Binary(bytes) => bytes.clone(),
        }
    }
}

/// The value of a CloudEvents extension attribute: one of the CloudEvents
/// types String, Integer or Boolean.
///
/// CloudEvents' Integer is a 32-bit signed integer; values outside that range
/// are accepted here (a 64-bit integer) so that events from lenient producers
/// are not rejected, but producers should stay within 32 bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
}

impl ExtensionValue {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ExtensionValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer or a string holding the canonical
    /// decimal form of one (as read from HTTP or Kafka headers).
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            ExtensionValue::Integer(i) => Some(*i),
            ExtensionValue::String(s) => s.parse().ok().filter(|i: &i64| i.to_string() == *s),
            ExtensionValue::Boolean(_) => None,
        }
    }

    /// The boolean, if this is a boolean or the string `true` or `false`
    /// (as read from HTTP or Kafka headers).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ExtensionValue::Boolean(b) => Some(*b),
            ExtensionValue::String(s) if s == "true" => Some(true),
            ExtensionValue::String(s) if s == "false" => Some(false),
            _ => None,
        }
    }

    /// The canonical string form (what binary-mode headers carry).
    pub fn to_canonical_string(&self) -> String {
        self.to_string()
    }

    /// This value as a string extension holding its canonical string form,
    /// which is what it becomes after a trip through HTTP or Kafka headers.
    #[must_use]
    pub fn into_canonical_string_value(self) -> Self {
        match self {
            ExtensionValue::String(_) => self,
            other => ExtensionValue::String(other.to_string()),
        }
    }
}

impl fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionValue::String(s) => f.write_str(s),
            ExtensionValue::Integer(i) => write!(f, "{i}"),
            ExtensionValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

impl From<String> for ExtensionValue {
    fn from(value: String) -> Self {
        ExtensionValue::String(value)
    }
}

impl From<&str> for ExtensionValue {
    fn from(value: &str) -> Self {
        ExtensionValue::String(value.to_owned())
    }
}

impl From<i64> for ExtensionValue {
    fn from(value: i64) -> Self {
        ExtensionValue::Integer(value)
    }
}

impl From<i32> for ExtensionValue {
    fn from(value: i32) -> Self {
        ExtensionValue::Integer(i64::from(value))
    }
}

impl From<bool> for ExtensionValue {
    fn from(value: bool) -> Self {
        ExtensionValue::Boolean(value)
    }
}

/// An event in CloudEvents 1.0 shape.
///
/// ```
/// use flextime_core::envelope::{Data, Envelope};
/// use serde_json::json;
///
/// # fn main() -> flextime_core::Result<()> {
/// let event = Envelope::new("/flextime/bookings", "com.flextime.booking.created")
///     .with_subject("booking/42")
///     .with_data_json(json!({"booking": 42, "room": "Ada"}))
///     .with_extension("tenant", "acme")?
///     .with_extension("attempt", 1)?;
/// assert_eq!(event.specversion(), "1.0");
/// assert_eq!(event.datacontenttype(), Some("application/json"));
///
/// // Structured JSON mode.
/// let bytes = event.to_json_bytes()?;
/// let back = Envelope::from_json_slice(&bytes)?;
/// assert_eq!(back, event);
///
/// // Typed access to the payload.
/// #[derive(serde::Deserialize)]
/// struct Booking { booking: u32, room: String }
/// let booking: Booking = back.data_as()?;
/// assert_eq!((booking.booking, booking.room.as_str()), (42, "Ada"));
///
/// // Binary mode over HTTP.
/// let (headers, body) = event.to_http_binary();
/// assert_eq!(headers["ce-type"], "com.flextime.booking.created");
/// assert_eq!(headers["content-type"], "application/json");
/// let from_http = Envelope::from_http(&headers, &body)?;
/// assert_eq!(from_http.data(), Some(&Data::Json(json!({"booking": 42, "room": "Ada"}))));
/// // Headers are untyped: the integer extension comes back as its string form.
/// assert_eq!(from_http.extension("attempt").and_then(|v| v.as_integer()), Some(1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Envelope {
    id: String,
    source: String,
    event_type: String,
    subject: Option<String>,
    time: Option<DateTime<FixedOffset>>,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    extensions: BTreeMap<String, ExtensionValue>,
    data: Option<Data>,
}

/// Equality compares every attribute; `time` must be the same instant with the
/// same UTC offset.
impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        let same_time = match (&self.time, &other.time) {
            (Some(a), Some(b)) => a == b && a.offset() == b.offset(),
            (None, None) => true,
            _ => false,
        };
        same_time
            && self.id == other.id
            && self.source == other.source
            && self.event_type == other.event_type
            && self.subject == other.subject
            && self.datacontenttype == other.datacontenttype
            && self.dataschema == other.dataschema
            && self.extensions == other.extensions
            && self.data == other.data
    }
}

impl Eq for Envelope {}

impl Envelope {
    /// A new event from `source` (a URI-reference) of type `event_type`, with a
    /// fresh UUIDv7 `id`, `time` set to now (UTC) and no data.
    pub fn new(source: impl Into<String>, event_type: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            source: source.into(),
            event_type: event_type.into(),
            subject: None,
            time: Some(Utc::now().fixed_offset()),
            datacontenttype: None,
            dataschema: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// A bare event with exactly the three given required attributes and
    /// nothing else (no time, no data).
    pub fn with_required(
        id: impl Into<String>,
        source: impl Into<String>,
        event_type: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            event_type: event_type.into(),
            subject: None,
            time: None,
            datacontenttype: None,
            dataschema: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    // ----- builders -------------------------------------------------------

    /// Replace the `id`.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Replace the `source`.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Replace the `type`.
    #[must_use]
    pub fn with_event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = event_type.into();
        self
    }

    /// Set the `subject`.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Set the `time`; the UTC offset is kept and emitted as given.
    #[must_use]
    pub fn with_time(mut self, time: impl Into<DateTime<FixedOffset>>) -> Self {
        self.time = Some(time.into());
        self
    }

    /// Remove the `time`.
    #[must_use]
    pub fn without_time(mut self) -> Self {
        self.time = None;
        self
    }

    /// Set the `datacontenttype` (RFC 2046 media type) without touching the data.
    #[must_use]
    pub fn with_datacontenttype(mut self, content_type: impl Into<String>) -> Self {
        self.datacontenttype = Some(content_type.into());
        self
    }

    /// Set the `dataschema` (an absolute URI).
    #[must_use]
    pub fn with_dataschema(mut self, schema: impl Into<String>) -> Self {
        self.dataschema = Some(schema.into());
        self
    }

    /// Set JSON data. Unless `datacontenttype` already names a JSON media
    /// type, it becomes `application/json`. JSON `null` means no data (the
    /// JSON format treats a `null` member as absent) and clears the data.
    #[must_use]
    pub fn with_data_json(mut self, value: serde_json::Value) -> Self {
        if value.is_null() {
            self.data = None;
            return self;
        }
        if !self
            .datacontenttype
            .as_deref()
            .is_some_and(is_json_media_type)
        {
            self.datacontenttype = Some("application/json".to_owned());
        }
        self.data = Some(Data::Json(value));
        self
    }

    /// Set binary data with its content type (`data_base64` in JSON mode).
    #[must_use]
    pub fn with_data_binary(
        mut self,
        bytes: impl Into<Bytes>,
        content_type: impl Into<String>,
    ) -> Self {
        self.data = Some(Data::Binary(bytes.into()));
        self.datacontenttype = Some(content_type.into());
        self
    }

    /// Set text data (not JSON) with its content type, e.g. `text/plain` or
    /// `text/xml`. Use a non-JSON content type: with a JSON one the text reads
    /// back as a JSON string ([`Data::Json`]).
    #[must_use]
    pub fn with_data_text(
        mut self,
        text: impl Into<String>,
        content_type: impl Into<String>,
    ) -> Self {
        self.data = Some(Data::Text(text.into()));
        self.datacontenttype = Some(content_type.into());
        self
    }

    /// Remove the data (the `datacontenttype` is kept).
    #[must_use]
    pub fn without_data(mut self) -> Self {
        self.data = None;
        self
    }

    /// Add or replace an extension attribute.
    ///
    /// Fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// when `name` is not a valid extension name: it must be non-empty, only
    /// `a-z` and `0-9`, and not one of [`RESERVED_NAMES`]. (The spec also
    /// recommends at most 20 characters; that is not enforced.)
    pub fn with_extension(
        mut self,
        name: impl Into<String>,
        value: impl Into<ExtensionValue>,
    ) -> Result<Self> {
        self.set_extension(name, value)?;
        Ok(self)
    }

    /// Add or replace an extension attribute in place; see [`Envelope::with_extension`].
    pub fn set_extension(
        &mut self,
        name: impl Into<String>,
        value: impl Into<ExtensionValue>,
    ) -> Result<()> {
        let name = name.into();
        validate_extension_name(&name)?;
        self.extensions.insert(name, value.into());
        Ok(())
    }

    /// Remove an extension attribute, returning its value.
    pub fn remove_extension(&mut self, name: &str) -> Option<ExtensionValue> {
        self.extensions.remove(name)
    }

    // ----- accessors ------------------------------------------------------

    /// The `id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `source` (a URI-reference).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `specversion`: always `1.0`.
    pub fn specversion(&self) -> &'static str {
        SPEC_VERSION
    }

    /// The `type`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The `subject`, if set.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The `time`, if set, with the UTC offset it was given or parsed with.
    pub fn time(&self) -> Option<DateTime<FixedOffset>> {
        self.time
    }

    /// The `time` in UTC, if set.
    pub fn time_utc(&self) -> Option<DateTime<Utc>> {
        self.time.map(|t| t.with_timezone(&Utc))
    }

    /// The `datacontenttype`, if set.
    pub fn datacontenttype(&self) -> Option<&str> {
        self.datacontenttype.as_deref()
    }

    /// The `dataschema`, if set.
    pub fn dataschema(&self) -> Option<&str> {
        self.dataschema.as_deref()
    }

    /// All extension attributes, by name.
    pub fn extensions(&self) -> &BTreeMap<String, ExtensionValue> {
        &self.extensions
    }

    /// One extension attribute.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.extensions.get(name)
    }

    /// The data, if any.
    pub fn data(&self) -> Option<&Data> {
        self.data.as_ref()
    }

    /// Take the data out, leaving none.
    pub fn take_data(&mut self) -> Option<Data> {
        self.data.take()
    }

    /// Decode the data into `T`: JSON data directly, text data as a JSON
    /// string value, binary data parsed as JSON bytes.
    ///
    /// Fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// naming `data` and the event id when there is no data or it does not
    /// decode.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T> {
        let decoded = match &self.data {
            None => {
                return Err(Error::invalid_input(format!(
                    "CloudEvent `{}` has no `data` to decode",
                    self.id
                )));
            }
            Some(Data::Json(value)) => T::deserialize(value),
            Some(Data::Text(text)) => {
                serde_json::from_value(serde_json::Value::String(text.clone()))
            }
            Some(Data::Binary(bytes)) => serde_json::from_slice(bytes),
        };
        decoded.map_err(|err| {
            Error::invalid_input(format!(
                "cannot decode `data` of CloudEvent `{}`: {err}",
                self.id
            ))
            .with_source(err)
        })
    }

    // ----- validation -----------------------------------------------------

    /// Check every attribute against the CloudEvents 1.0 rules: `id`,
    /// `source` and `type` non-empty; `source` a URI-reference (no whitespace
    /// or control characters); `subject`, if set, non-empty;
    /// `datacontenttype`, if set, non-empty printable ASCII; `dataschema`, if
    /// set, an absolute URI; `time`, if set, in the years 0000 to 9999;
    /// extension names valid.
    ///
    /// The error is [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
    /// and names the attribute.
    pub fn validate(&self) -> Result<()> {
        non_empty("id", &self.id)?;
        validate_uri_reference("source", &self.source)?;
        non_empty("type", &self.event_type)?;
        if let Some(subject) = &self.subject {
            non_empty("subject", subject)?;
        }
        if let Some(ct) = &self.datacontenttype {
            validate_content_type(ct)?;
        }
        if let Some(schema) = &self.dataschema {
            validate_absolute_uri("dataschema", schema)?;
        }
        if let Some(time) = &self.time {
            if !(0..=9999).contains(&time.year()) {
                return Err(invalid_attr(
                    "time",
                    "the year must be between 0000 and 9999 to be written in RFC 3339",
                ));
            }
        }
        for name in self.extensions.keys() {
            validate_extension_name(name)?;
        }
        Ok(())
    }
}

// ----- shared helpers ---------------------------------------------------------

/// Format a time the way every mode emits it (RFC 3339, `Z` for UTC).
fn format_time(time: &DateTime<FixedOffset>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(value: &str) -> Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(value).map_err(|err| {
        invalid_attr(
            "time",
            &format!("{value:?} is not an RFC 3339 timestamp ({err})"),
        )
    })
}

fn missing_attr(name: &str) -> Error {
    Error::invalid_input(format!("missing required CloudEvents attribute `{name}`"))
}

fn invalid_attr(name: &str, detail: &str) -> Error {
    Error::invalid_input(format!("invalid CloudEvents attribute `{name}`: {detail}"))
}

fn non_empty(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        Err(invalid_attr(name, "must be a non-empty string"))
    } else {
        Ok(())
    }
}

fn validate_uri_reference(name: &str, value: &str) -> Result<()> {
    non_empty(name, value)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid_attr(
            name,
            "must be a URI-reference (no whitespace or control characters)",
        ));
    }
    Ok(())
}

fn validate_absolute_uri(name: &str, value: &str) -> Result<()> {
    validate_uri_reference(name, value)?;
    let scheme_ok = value.split_once(':').is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme_ok {
        Ok(())
    } else {
        Err(invalid_attr(name, "must be an absolute URI with a scheme"))
    }
}

fn validate_content_type(value: &str) -> Result<()> {
    non_empty("datacontenttype", value)?;
    if value
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
    {
        Ok(())
    } else {
        Err(invalid_attr(
            "datacontenttype",
            "must be a media type in printable ASCII",
        ))
    }
}

/// Check an extension attribute name: non-empty, `a-z0-9` only, not reserved.
pub fn validate_extension_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_input(
            "invalid CloudEvents extension attribute name ``: must not be empty",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Error::invalid_input(format!(
            "invalid CloudEvents extension attribute name `{}`: only lowercase a-z and 0-9 are allowed",
            name.escape_debug()
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::invalid_input(format!(
            "invalid CloudEvents extension attribute name `{name}`: reserved for a core attribute"
        )));
    }
    Ok(())
}

/// The media type part of a content type, lowercased: `text/plain` for
/// `Text/Plain; charset=utf-8`.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether a content type names JSON (`application/json`, `text/json`, `*/*+json`).
pub fn is_json_media_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// Whether a content type names text that is not JSON (`text/*`,
/// `application/xml`, `*/*+xml`, or any media type with a `charset` parameter).
fn is_text_media_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    media.starts_with("text/")
        || media == "application/xml"
        || media.ends_with("+xml")
        || content_type
            .split(';')
            .skip(1)
            .any(|p| p.trim().to_ascii_lowercase().starts_with("charset="))
}
