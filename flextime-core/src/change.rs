//! [`Change`]: an upsert or a delete of one keyed record.
//!
//! Changes are what flows between a [`crate::Source`] and a [`crate::Sink`].
//! A change names its record with a [`ChangeKey`] (system, collection, id),
//! carries the record's [`Version`] in the system it came from, and for an
//! upsert the record's data as JSON.
//!
//! ```
//! use flextime_core::{Change, ChangeKey, Version};
//! use serde_json::json;
//!
//! let key = ChangeKey::new("google", "events", "evt_1");
//! let change = Change::upsert(key.clone(), json!({"title": "Standup"}))
//!     .with_version(Version::Sequence(4))
//!     .with_origin("flextime");
//! assert!(change.is_upsert());
//! let json = serde_json::to_value(&change).unwrap();
//! assert_eq!(json["op"], "upsert");
//! assert_eq!(json["version"], json!({"sequence": 4}));
//! let back: Change = serde_json::from_value(json).unwrap();
//! assert_eq!(back, change);
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::hlc::HlcTimestamp;

/// Which record a change is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeKey {
    /// The system the id belongs to (`flextime`, `google`, `notion` ...).
    pub system: String,
    /// The collection within that system (`events`, `bookings`, a calendar id ...).
    pub collection: String,
    /// The record's id within the collection.
    pub id: String,
}

impl ChangeKey {
    /// A key from its parts.
    pub fn new(
        system: impl Into<String>,
        collection: impl Into<String>,
        id: impl Into<String>,
    ) -> Self {
        Self {
            system: system.into(),
            collection: collection.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.system, self.collection, self.id)
    }
}

/// The version of a record in the system it lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    /// An opaque entity tag (HTTP ETag, CalDAV getetag, Google etag). Only
    /// equality is meaningful.
    Etag(String),
    /// A monotonically increasing number (database row version, Kafka offset, sequence).
    Sequence(u64),
    /// A hybrid-logical-clock timestamp.
    Hlc(HlcTimestamp),
}

impl Version {
    /// Order two versions where that means something: two sequences or two
    /// HLC timestamps. Two etags compare `Equal` when identical and `None`
    /// otherwise, as do versions of different kinds.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match (self, other) {
            (Self::Sequence(a), Self::Sequence(b)) => Some(a.cmp(b)),
            (Self::Hlc(a), Self::Hlc(b)) => Some(a.cmp(b)),
            (Self::Etag(a), Self::Etag(b)) if a == b => Some(Ordering::Equal),
            _ => None,
        }
    }

    /// Whether `self` is known to be newer than `other`.
    pub fn is_newer_than(&self, other: &Version) -> bool {
        self.compare(other) == Some(Ordering::Greater)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Etag(e) => write!(f, "etag:{e}"),
            Self::Sequence(n) => write!(f, "seq:{n}"),
            Self::Hlc(ts) => write!(f, "hlc:{ts}"),
        }
    }
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Create or replace the record.
    Upsert,
    /// Delete the record.
    Delete,
}

/// An upsert or delete of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The record.
    pub key: ChangeKey,
    /// Upsert or delete.
    pub op: Operation,
    /// The record's version after this change, in the key's system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The record's data (upserts); `None` for deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// When the change happened in its system, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// The system that first wrote this change, for echo suppression: a sync
    /// pipeline drops changes that come back to the system they started in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Free-form string metadata (trace ids, idempotency keys ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Change {
    /// An upsert of `key` with `data`.
    pub fn upsert(key: ChangeKey, data: serde_json::Value) -> Self {
        Self {
            key,
            op: Operation::Upsert,
            version: None,
            data: Some(data),
            changed_at: None,
            origin: None,
            metadata: BTreeMap::new(),
        }
    }

    /// A delete of `key`.
    pub fn delete(key: ChangeKey) -> Self {
        Self {
            key,
            op: Operation::Delete,
            version: None,
            data: None,
            changed_at: None,
            origin: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Set the version.
    #[must_use]
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }

    /// Set when the change happened.
    #[must_use]
    pub fn with_changed_at(mut self, at: DateTime<Utc>) -> Self {
        self.changed_at = Some(at);
        self
    }

    /// Set the origin system.
    #[must_use]
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Add a metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Whether this is an upsert.
    pub fn is_upsert(&self) -> bool {
        self.op == Operation::Upsert
    }

    /// Whether this is a delete.
    pub fn is_delete(&self) -> bool {
        self.op == Operation::Delete
    }

    /// The data deserialized into `T` (upserts only).
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        let data = self.data.as_ref().ok_or_else(|| {
            crate::Error::invalid_input(format!("change to {} carries no data", self.key))
        })?;
        T::deserialize(data).map_err(|e| {
            crate::Error::invalid_input(format!("change to {}: {e}", self.key)).with_source(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ordering() {
        assert!(Version::Sequence(2).is_newer_than(&Version::Sequence(1)));
        assert!(!Version::Sequence(1).is_newer_than(&Version::Sequence(1)));
        let a = Version::Hlc(HlcTimestamp::new(1, 0, 0));
        let b = Version::Hlc(HlcTimestamp::new(1, 1, 0));
        assert!(b.is_newer_than(&a));
        assert_eq!(
            Version::Etag("x".into()).compare(&Version::Etag("x".into())),
            Some(Ordering::Equal)
        );
        assert_eq!(
            Version::Etag("x".into()).compare(&Version::Etag("y".into())),
            None
        );
        assert_eq!(
            Version::Etag("1".into()).compare(&Version::Sequence(1)),
            None
        );
    }

    #[test]
    fn delete_json_shape() {
        let change = Change::delete(ChangeKey::new("a", "b", "c"));
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key": {"system": "a", "collection": "b", "id": "c"}, "op": "delete"})
        );
        assert!(change.data_as::<serde_json::Value>().is_err());
    }

    #[test]
    fn typed_data() {
        #[derive(Deserialize)]
        struct T {
            n: u32,
        }
        let c = Change::upsert(ChangeKey::new("a", "b", "c"), serde_json::json!({"n": 3}));
        assert_eq!(c.data_as::<T>().unwrap().n, 3);
        let bad = Change::upsert(ChangeKey::new("a", "b", "c"), serde_json::json!({"n": "x"}));
        let err = bad.data_as::<T>().unwrap_err();
        assert!(err.to_string().contains("a/b/c"), "{err}");
    }
}
