//! What the binary modes of all protocol bindings share: attributes as a flat
//! name/value list, the payload as the message body.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};

use super::{
    Data, Envelope, ExtensionValue, SPEC_VERSION, format_time, invalid_attr, is_json_media_type,
    is_text_media_type, missing_attr, parse_time, validate_absolute_uri, validate_content_type,
    validate_extension_name, validate_uri_reference,
};
use crate::error::{Error, Result};

/// An attribute value as it arrives from a wire format, before it is checked.
#[derive(Debug, Clone)]
pub(super) enum RawValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<FixedOffset>),
}

impl RawValue {
    fn type_name(&self) -> &'static str {
        match self {
            RawValue::Str(_) => "a string",
            RawValue::Int(_) => "an integer",
            RawValue::Bool(_) => "a boolean",
            RawValue::Time(_) => "a timestamp",
        }
    }
}

/// The attributes of one event as read from a wire format.
#[derive(Debug, Default)]
pub(super) struct RawAttributes {
    map: BTreeMap<String, RawValue>,
}

impl RawAttributes {
    /// Add an attribute; a second value for the same name is an error that
    /// says where it came from (`wire_name`).
    pub(super) fn insert(&mut self, name: String, value: RawValue, wire_name: &str) -> Result<()> {
        if self.map.contains_key(&name) {
            return Err(Error::invalid_input(format!(
                "CloudEvents attribute `{name}` is given more than once (`{}`)",
                wire_name.escape_debug()
            )));
        }
        self.map.insert(name, value);
        Ok(())
    }

    /// Set an attribute, replacing any earlier value.
    pub(super) fn replace(&mut self, name: &str, value: RawValue) {
        self.map.insert(name.to_owned(), value);
    }

    fn take_string(&mut self, name: &str) -> Result<Option<String>> {
        match self.map.remove(name) {
            None => Ok(None),
            Some(RawValue::Str(s)) => Ok(Some(s)),
            Some(other) => Err(invalid_attr(
                name,
                &format!("must be a string, got {}", other.type_name()),
            )),
        }
    }

    fn take_required(&mut self, name: &str) -> Result<String> {
        self.take_string(name)?.ok_or_else(|| missing_attr(name))
    }

    /// Check everything and build the envelope (without data).
    pub(super) fn into_envelope(mut self) -> Result<Envelope> {
        let specversion = self.take_required("specversion")?;
        if specversion != SPEC_VERSION {
            return Err(invalid_attr(
                "specversion",
                &format!("{specversion:?} is not supported (only \"1.0\" is)"),
            ));
        }
        let id = self.take_required("id")?;
        super::non_empty("id", &id)?;
        let source = self.take_required("source")?;
        validate_uri_reference("source", &source)?;
        let event_type = self.take_required("type")?;
        super::non_empty("type", &event_type)?;
        let subject = self.take_string("subject")?;
        if let Some(subject) = &subject {
            super::non_empty("subject", subject)?;
        }
        let datacontenttype = self.take_string("datacontenttype")?;
        if let Some(ct) = &datacontenttype {
            validate_content_type(ct)?;
        }
        let dataschema = self.take_string("dataschema")?;
        if let Some(schema) = &dataschema {
            validate_absolute_uri("dataschema", schema)?;
        }
        let time = match self.map.remove("time") {
            None => None,
            Some(RawValue::Str(s)) => Some(parse_time(&s)?),
            Some(RawValue::Time(t)) => Some(t),
            Some(other) => {
                return Err(invalid_attr(
                    "time",
                    &format!(
                        "must be an RFC 3339 timestamp string, got {}",
                        other.type_name()
                    ),
                ));
            }
        };
        let mut extensions = BTreeMap::new();
        for (name, value) in self.map {
            validate_extension_name(&name)?;
            let value = match value {
                RawValue::Str(s) => ExtensionValue::String(s),
                RawValue::Int(i) => ExtensionValue::Integer(i),
                RawValue::Bool(b) => ExtensionValue::Boolean(b),
                RawValue::Time(t) => ExtensionValue::String(format_time(&t)),
            };
            extensions.insert(name, value);
        }
        Ok(Envelope {
            id,
            source,
            event_type,
            subject,
            time,
            datacontenttype,
            dataschema,
            extensions,
            data: None,
        })
    }
}

impl Envelope {
    /// Every attribute except `datacontenttype` (which travels as the
    /// content type) as name/value pairs, core attributes first; core
    /// attributes are strings and `time` is in RFC 3339.
    pub(super) fn binary_attributes(&self) -> Vec<(&str, ExtensionValue)> {
        let mut out: Vec<(&str, ExtensionValue)> = vec![
            ("specversion", SPEC_VERSION.into()),
            ("id", self.id.as_str().into()),
            ("source", self.source.as_str().into()),
            ("type", self.event_type.as_str().into()),
        ];
        if let Some(subject) = &self.subject {
            out.push(("subject", subject.as_str().into()));
        }
        if let Some(time) = &self.time {
            out.push(("time", format_time(time).into()));
        }
        if let Some(schema) = &self.dataschema {
            out.push(("dataschema", schema.as_str().into()));
        }
        for (name, value) in &self.extensions {
            out.push((name.as_str(), value.clone()));
        }
        out
    }

    /// The content type and body of a binary-mode message.
    pub(super) fn binary_body(&self) -> (Option<String>, Bytes) {
        let body = self.data.as_ref().map(Data::to_bytes).unwrap_or_default();
        let content_type = match (&self.datacontenttype, &self.data) {
            (Some(ct), _) => Some(ct.clone()),
            (None, Some(Data::Json(_))) => Some("application/json".to_owned()),
            (None, Some(Data::Text(_))) => Some("text/plain; charset=utf-8".to_owned()),
            (None, _) => None,
        };
        (content_type, body)
    }

    /// Fill in the data from a binary-mode body, by the content type.
    pub(super) fn set_data_from_body(&mut self, body: &[u8]) -> Result<()> {
        if body.is_empty() {
            self.data = None;
            return Ok(());
        }
        let ct = self.datacontenttype.as_deref();
        self.data = Some(match ct {
            Some(ct) if is_json_media_type(ct) => {
                let value: serde_json::Value = serde_json::from_slice(body).map_err(|err| {
                    invalid_attr(
                        "data",
                        &format!("content type {ct:?} says JSON but the body is not JSON ({err})"),
                    )
                })?;
                Data::Json(value)
            }
            Some(ct) if is_text_media_type(ct) => match std::str::from_utf8(body) {
                Ok(text) => Data::Text(text.to_owned()),
                Err(_) => Data::Binary(Bytes::copy_from_slice(body)),
            },
            _ => Data::Binary(Bytes::copy_from_slice(body)),
        });
        Ok(())
    }
}

/// Whether a content type is the structured JSON mode of CloudEvents.
pub(super) fn is_structured(content_type: &str) -> bool {
    super::media_type(content_type) == super::STRUCTURED_CONTENT_TYPE
}

/// Whether a content type is the batch JSON mode of CloudEvents.
pub(super) fn is_batch(content_type: &str) -> bool {
    super::media_type(content_type) == super::BATCH_CONTENT_TYPE
}

pub(super) fn batch_not_supported() -> Error {
    Error::invalid_input(format!(
        "content type `{}` is a batch of CloudEvents; parse it with Envelope::batch_from_json_slice",
        super::BATCH_CONTENT_TYPE
    ))
}
