//! The Kafka protocol binding: binary mode (`ce_` headers) and structured mode.

use super::binary::{RawAttributes, RawValue, batch_not_supported, is_batch, is_structured};
use super::{Envelope, ExtensionValue, PARTITION_KEY, invalid_attr};
use crate::error::Result;

/// Prefix of the Kafka headers that carry CloudEvents attributes in binary mode.
pub const KAFKA_PREFIX: &str = "ce_";

/// The Kafka header that carries the content type.
const CONTENT_TYPE: &str = "content-type";

/// A Kafka record as the binding sees it: key, headers and value, independent
/// of any Kafka client crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaRecord {
    /// The record key: the `partitionkey` extension, when the event has one.
    pub key: Option<Vec<u8>>,
    /// The record headers, in order (Kafka allows repeated names).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record value: the event data in binary mode, the JSON event in
    /// structured mode.
    pub value: Vec<u8>,
}

impl KafkaRecord {
    /// The value of the first header with this name, if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

impl Envelope {
    /// The event as a Kafka record in binary mode: `ce_` headers with UTF-8
    /// values, `content-type` from `datacontenttype`, the data as the value,
    /// and the `partitionkey` extension (if any) as the key instead of a
    /// header.
    ///
    /// Does not validate; see the [module docs](super#validation).
    pub fn to_kafka_binary(&self) -> KafkaRecord {
        let mut record = KafkaRecord::default();
        for (name, value) in self.binary_attributes() {
            if name == PARTITION_KEY {
                record.key = Some(value.to_canonical_string().into_bytes());
                continue;
            }
            record.headers.push((
                format!("{KAFKA_PREFIX}{name}"),
                value.to_canonical_string().into_bytes(),
            ));
        }
        let (content_type, body) = self.binary_body();
        if let Some(ct) = content_type {
            record
                .headers
                .push((CONTENT_TYPE.to_owned(), ct.into_bytes()));
        }
        record.value = body.to_vec();
        record
    }

    /// The event as a Kafka record in structured mode (`content-type:
    /// application/cloudevents+json; charset=utf-8`, JSON value), with the
    /// `partitionkey` extension (if any) as the key. Validates first.
    pub fn to_kafka_structured(&self) -> Result<KafkaRecord> {
        Ok(KafkaRecord {
            key: self
                .extension(PARTITION_KEY)
                .map(|v| v.to_canonical_string().into_bytes()),
            headers: vec![(
                CONTENT_TYPE.to_owned(),
                b"application/cloudevents+json; charset=utf-8".to_vec(),
            )],
            value: self.to_json_bytes()?,
        })
    }

    /// Read an event from a Kafka record in binary mode.
    ///
    /// Every `ce_` header is an attribute (values must be UTF-8);
    /// `content-type` is the `datacontenttype`; the value is the data. A key
    /// that is UTF-8 becomes the `partitionkey` extension (a non-UTF-8 key is
    /// left alone).
    pub fn from_kafka_binary(
        key: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
        value: &[u8],
    ) -> Result<Self> {
        let mut attrs = RawAttributes::default();
        let mut content_type = None;
        for (name, raw) in headers {
            if name.eq_ignore_ascii_case(CONTENT_TYPE) {
                if content_type.is_some() {
                    return Err(invalid_attr(
                        "datacontenttype",
                        "more than one content-type header",
                    ));
                }
                let ct = std::str::from_utf8(raw).map_err(|_| {
                    invalid_attr("datacontenttype", "content-type header is not UTF-8")
                })?;
                content_type = Some(ct.trim().to_owned()).filter(|ct| !ct.is_empty());
                continue;
            }
            let Some(attr) = name.strip_prefix(KAFKA_PREFIX) else {
                continue;
            };
            let text = String::from_utf8(raw.clone()).map_err(|_| {
                invalid_attr(
                    attr,
                    &format!("header `{}` is not UTF-8", name.escape_debug()),
                )
            })?;
            attrs.insert(attr.to_owned(), RawValue::Str(text), name)?;
        }
        if let Some(ct) = content_type {
            attrs.replace("datacontenttype", RawValue::Str(ct));
        }
        let mut envelope = attrs.into_envelope()?;
        envelope.set_data_from_body(value)?;
        apply_key(&mut envelope, key);
        Ok(envelope)
    }

    /// Read an event from a Kafka record in either mode: structured when the
    /// `content-type` header is `application/cloudevents+json`, binary
    /// otherwise. The key maps to `partitionkey` in both modes.
    pub fn from_kafka(
        key: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
        value: &[u8],
    ) -> Result<Self> {
        let content_type = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(CONTENT_TYPE))
            .and_then(|(_, v)| std::str::from_utf8(v).ok());
        match content_type {
            Some(ct) if is_structured(ct) => {
                let mut envelope = Self::from_json_slice(value)?;
                apply_key(&mut envelope, key);
                Ok(envelope)
            }
            Some(ct) if is_batch(ct) => Err(batch_not_supported()),
            _ => Self::from_kafka_binary(key, headers, value),
        }
    }

    /// Read an event from a [`KafkaRecord`] in either mode; see [`Envelope::from_kafka`].
    pub fn from_kafka_record(record: &KafkaRecord) -> Result<Self> {
        Self::from_kafka(record.key.as_deref(), &record.headers, &record.value)
    }
}

fn apply_key(envelope: &mut Envelope, key: Option<&[u8]>) {
    if let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) {
        envelope.extensions.insert(
            PARTITION_KEY.to_owned(),
            ExtensionValue::String(key.to_owned()),
        );
    }
}
