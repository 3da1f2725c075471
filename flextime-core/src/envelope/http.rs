//! The HTTP protocol binding: binary mode (`ce-` headers) and structured mode.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::binary::{RawAttributes, RawValue, batch_not_supported, is_batch, is_structured};
use super::{Envelope, invalid_attr};
use crate::error::{Error, Result};

/// Prefix of the HTTP headers that carry CloudEvents attributes in binary mode.
pub const HTTP_PREFIX: &str = "ce-";

/// Percent-encode a header value per the HTTP binding (section 3.1.3.2):
/// space, `"`, `%` and every character outside printable ASCII
/// (U+0021..U+007E) become `%XX` escapes of their UTF-8 bytes.
///
/// ```
/// use flextime_core::envelope::encode_header_value;
/// assert_eq!(encode_header_value("Euro € \"quoted\" 100%"), "Euro%20%E2%82%AC%20%22quoted%22%20100%25");
/// ```
pub fn encode_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode a percent-encoded header value; the result must be UTF-8.
///
/// Fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
/// when a `%` is not followed by two hex digits or the bytes are not UTF-8.
///
/// ```
/// use flextime_core::envelope::decode_header_value;
/// assert_eq!(decode_header_value(b"Euro%20%E2%82%AC").unwrap(), "Euro €");
/// assert!(decode_header_value(b"100%").is_err());
/// ```
pub fn decode_header_value(value: &[u8]) -> Result<String> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'%' {
            let hi = value.get(i + 1).copied().and_then(hex_digit);
            let lo = value.get(i + 2).copied().and_then(hex_digit);
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    return Err(Error::invalid_input(format!(
                        "bad percent-encoding at byte {i}: `%` must be followed by two hex digits"
                    )));
                }
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::invalid_input("percent-decoded value is not valid UTF-8"))
}

impl Envelope {
    /// The event in HTTP binary mode: `ce-` headers (percent-encoded values)
    /// and `Content-Type` from `datacontenttype`, and the data as the body.
    ///
    /// Does not validate; see the [module docs](super#validation).
    pub fn to_http_binary(&self) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        for (name, value) in self.binary_attributes() {
            let Ok(name) = HeaderName::from_bytes(format!("{HTTP_PREFIX}{name}").as_bytes()) else {
                continue;
            };
            let encoded = encode_header_value(&value.to_canonical_string());
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(name, value);
            }
        }
        let (content_type, body) = self.binary_body();
        if let Some(ct) = content_type {
            let value = HeaderValue::from_str(&ct)
                .or_else(|_| HeaderValue::from_str(&encode_header_value(&ct)));
            if let Ok(value) = value {
                headers.insert(CONTENT_TYPE, value);
            }
        }
        (headers, body)
    }

    /// The event in HTTP structured mode: `Content-Type:
    /// application/cloudevents+json; charset=utf-8` and the JSON event as the
    /// body. Validates first.
    pub fn to_http_structured(&self) -> Result<(HeaderMap, Bytes)> {
        let body = self.to_json_bytes()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json; charset=utf-8"),
        );
        Ok((headers, Bytes::from(body)))
    }

    /// Read an event in HTTP binary mode.
    ///
    /// Every `ce-` header is an attribute (header names are case-insensitive;
    /// values are percent-decoded); `Content-Type` is the `datacontenttype`;
    /// the body is the data. Header values that decode badly, repeat, or are
    /// missing give an error naming the attribute.
    pub fn from_http_binary(headers: &HeaderMap, body: &[u8]) -> Result<Self> {
        let mut attrs = RawAttributes::default();
        for (name, value) in headers {
            let Some(attr) = name.as_str().strip_prefix(HTTP_PREFIX) else {
                continue;
            };
            let decoded = decode_header_value(value.as_bytes())
                .map_err(|e| invalid_attr(attr, &format!("header `{name}`: {}", e.message())))?;
            attrs.insert(attr.to_owned(), RawValue::Str(decoded), name.as_str())?;
        }
        if let Some(ct) = content_type(headers)? {
            attrs.replace("datacontenttype", RawValue::Str(ct));
        }
        let mut envelope = attrs.into_envelope()?;
        envelope.set_data_from_body(body)?;
        Ok(envelope)
    }

    /// Read an event from an HTTP request or response in either mode:
    /// structured when `Content-Type` is `application/cloudevents+json`,
    /// binary otherwise. A batch content type is an error (use
    /// [`Envelope::batch_from_json_slice`]).
    pub fn from_http(headers: &HeaderMap, body: &[u8]) -> Result<Self> {
        match content_type(headers)? {
            Some(ct) if is_structured(&ct) => Self::from_json_slice(body),
            Some(ct) if is_batch(&ct) => Err(batch_not_supported()),
            _ => Self::from_http_binary(headers, body),
        }
    }
}

fn content_type(headers: &HeaderMap) -> Result<Option<String>> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid_attr(
            "datacontenttype",
            "more than one Content-Type header",
        ));
    }
    match first.to_str() {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(_) => Err(invalid_attr(
            "datacontenttype",
            "Content-Type header is not printable ASCII",
        )),
    }
}
