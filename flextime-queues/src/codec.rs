//! Payload codecs.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Encodes typed values into payload bytes and back.
///
/// ```
/// use flextime_queues::{Codec, Json};
/// let bytes = Json::encode(&vec![1, 2]).unwrap();
/// assert_eq!(&bytes[..], b"[1,2]");
/// let back: Vec<u32> = Json::decode(&bytes).unwrap();
/// assert_eq!(back, [1, 2]);
/// ```
pub trait Codec {
    /// The `content-type` header value of payloads this codec writes.
    const CONTENT_TYPE: &'static str;

    /// Encode a value.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes>;

    /// Decode a value; an [`ErrorKind::InvalidInput`](crate::ErrorKind) error
    /// when the bytes are not a valid `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

/// JSON through `serde_json` (the default codec).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const CONTENT_TYPE: &'static str = "application/json";

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::invalid_input(format!("JSON encode: {e}")))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::invalid_input(format!("JSON decode: {e}")))
    }
}
