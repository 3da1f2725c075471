//! The AMQP protocol binding: binary mode (`cloudEvents:` application
//! properties) and structured mode.

use std::collections::BTreeMap;

use chrono::DateTime;

use super::binary::{RawAttributes, RawValue, batch_not_supported, is_batch, is_structured};
use super::{Envelope, ExtensionValue, invalid_attr};
use crate::error::Result;

/// Prefix of the AMQP application properties that carry CloudEvents attributes.
pub const AMQP_PREFIX: &str = "cloudEvents:";

/// The alternative prefix the AMQP binding allows (for JMS-style property
/// names); accepted on read, never written.
pub const AMQP_PREFIX_ALT: &str = "cloudEvents_";

/// An AMQP application property value, limited to the types CloudEvents uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmqpValue {
    /// AMQP `string`.
    String(String),
    /// AMQP `long` (CloudEvents Integer).
    Integer(i64),
    /// AMQP `boolean`.
    Boolean(bool),
    /// AMQP `timestamp`: milliseconds since the Unix epoch, UTC. Accepted for
    /// `time` on read; `time` is written as an RFC 3339 string so that
    /// sub-millisecond precision and the UTC offset survive.
    Timestamp(i64),
}

impl From<ExtensionValue> for AmqpValue {
    fn from(value: ExtensionValue) -> Self {
        match value {
            ExtensionValue::String(s) => AmqpValue::String(s),
            ExtensionValue::Integer(i) => AmqpValue::Integer(i),
            ExtensionValue::Boolean(b) => AmqpValue::Boolean(b),
        }
    }
}

/// An AMQP message as the binding sees it, independent of any AMQP client
/// crate: the `content-type` property, the application properties and the
/// body (a single data section).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmqpMessage {
    /// The message's `content-type` property.
    pub content_type: Option<String>,
    /// The application properties.
    pub application_properties: BTreeMap<String, AmqpValue>,
    /// The body.
    pub body: Vec<u8>,
}

impl Envelope {
    /// The event as an AMQP message in binary mode: `cloudEvents:`
    /// application properties (extension types kept), `content-type` from
    /// `datacontenttype`, the data as the body.
    ///
    /// Does not validate; see the [module docs](super#validation).
    pub fn to_amqp_binary(&self) -> AmqpMessage {
        let mut message = AmqpMessage::default();
        for (name, value) in self.binary_attributes() {
            message
                .application_properties
                .insert(format!("{AMQP_PREFIX}{name}"), value.into());
        }
        let (content_type, body) = self.binary_body();
        message.content_type = content_type;
        message.body = body.to_vec();
        message
    }

    /// The event as an AMQP message in structured mode (`content-type:
    /// application/cloudevents+json; charset=utf-8`, JSON body). Validates first.
    pub fn to_amqp_structured(&self) -> Result<AmqpMessage> {
        Ok(AmqpMessage {
            content_type: Some("application/cloudevents+json; charset=utf-8".to_owned()),
            application_properties: BTreeMap::new(),
            body: self.to_json_bytes()?,
        })
    }

    /// Read an event from an AMQP message in binary mode.
    ///
    /// Application properties prefixed `cloudEvents:` or `cloudEvents_` are
    /// attributes (giving the same attribute under both prefixes is an
    /// error); `content-type` is the `datacontenttype`; the body is the data.
    /// `time` may be a string or an AMQP timestamp.
    pub fn from_amqp_binary(message: &AmqpMessage) -> Result<Self> {
        let mut attrs = RawAttributes::default();
        for (name, value) in &message.application_properties {
            let Some(attr) = name
                .strip_prefix(AMQP_PREFIX)
                .or_else(|| name.strip_prefix(AMQP_PREFIX_ALT))
            else {
                continue;
            };
            let raw = match value {
                AmqpValue::String(s) => RawValue::Str(s.clone()),
                AmqpValue::Integer(i) => RawValue::Int(*i),
                AmqpValue::Boolean(b) => RawValue::Bool(*b),
                AmqpValue::Timestamp(ms) => {
                    let time = DateTime::from_timestamp_millis(*ms).ok_or_else(|| {
                        invalid_attr(attr, &format!("timestamp {ms} ms is out of range"))
                    })?;
                    RawValue::Time(time.fixed_offset())
                }
            };
            attrs.insert(attr.to_owned(), raw, name)?;
        }
        if let Some(ct) = message
            .content_type
            .as_deref()
            .map(str::trim)
            .filter(|ct| !ct.is_empty())
        {
            attrs.replace("datacontenttype", RawValue::Str(ct.to_owned()));
        }
        let mut envelope = attrs.into_envelope()?;
        envelope.set_data_from_body(&message.body)?;
        Ok(envelope)
    }

    /// Read an event from an AMQP message in either mode: structured when
    /// `content-type` is `application/cloudevents+json`, binary otherwise.
    pub fn from_amqp(message: &AmqpMessage) -> Result<Self> {
        match message.content_type.as_deref() {
            Some(ct) if is_structured(ct) => Self::from_json_slice(&message.body),
            Some(ct) if is_batch(ct) => Err(batch_not_supported()),
            _ => Self::from_amqp_binary(message),
        }
    }
}
