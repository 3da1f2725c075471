//! [`MappingStore`]: local id <-> external ids per system.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use flextime_core::{Error, ErrorKind, Result, SharedClock, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::part;
use crate::{Adapter, Expect, WriteOp};

/// How a local record is known in one external system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The record's id in that system.
    pub external_id: String,
    /// The system's etag / version of the record when last synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The copy both sides agreed on at the last sync (the base of a
    /// three-way merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Value>,
    /// When it was last synced.
    pub synced_at: DateTime<Utc>,
}

/// Every link of one local record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Mapping {
    /// The local id.
    pub local_id: String,
    /// System name -> link.
    pub links: BTreeMap<String, Link>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reverse {
    local_id: String,
}

/// Mappings kept as records of one collection (default `_ft_mappings`): one
/// record per local id holding its links, and one reverse record per
/// `(system, external id)`, written together atomically with version
/// preconditions, so concurrent linkers cannot map one external id to two
/// local ids.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use flextime_db::{connect, stores::MappingStore, DbOptions};
/// use serde_json::json;
///
/// let maps = MappingStore::new(connect("sqlite::memory:", DbOptions::default()).await.unwrap());
/// maps.link("bk_1", "google", "evt_9", Some("\"etag1\"".into()), Some(json!({"title": "A"}))).await.unwrap();
/// assert_eq!(maps.local_id("google", "evt_9").await.unwrap().as_deref(), Some("bk_1"));
/// assert_eq!(maps.link_of("bk_1", "google").await.unwrap().unwrap().external_id, "evt_9");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct MappingStore {
    adapter: Arc<dyn Adapter>,
    collection: String,
    clock: SharedClock,
}

impl MappingStore {
    /// A store in collection `_ft_mappings`.
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        Self {
            adapter,
            collection: "_ft_mappings".into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Use another collection.
    #[must_use]
    pub fn with_collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    /// Set the clock for `synced_at`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn local_key(local_id: &str) -> String {
        format!("l/{local_id}")
    }

    fn reverse_key(system: &str, external_id: &str) -> String {
        format!("x/{}/{external_id}", part(system))
    }

    async fn load(&self, local_id: &str) -> Result<(Option<u64>, Mapping)> {
        match self
            .adapter
            .get(&self.collection, &Self::local_key(local_id))
            .await?
        {
            Some(r) if !r.is_deleted() => Ok((Some(r.version), r.data_as()?)),
            Some(r) => Ok((
                Some(r.version),
                Mapping {
                    local_id: local_id.to_owned(),
                    ..Mapping::default()
                },
            )),
            None => Ok((
                None,
                Mapping {
                    local_id: local_id.to_owned(),
                    ..Mapping::default()
                },
            )),
        }
    }

    /// Every link of a local record.
    pub async fn get(&self, local_id: &str) -> Result<Option<Mapping>> {
        let (version, mapping) = self.load(local_id).await?;
        Ok(version
            .filter(|_| !mapping.links.is_empty())
            .map(|_| mapping))
    }

    /// The link of a local record in `system`.
    pub async fn link_of(&self, local_id: &str, system: &str) -> Result<Option<Link>> {
        Ok(self
            .get(local_id)
            .await?
            .and_then(|mut m| m.links.remove(system)))
    }

    /// The local id that `(system, external_id)` maps to.
    pub async fn local_id(&self, system: &str, external_id: &str) -> Result<Option<String>> {
        match self
            .adapter
            .get(&self.collection, &Self::reverse_key(system, external_id))
            .await?
        {
            Some(r) if !r.is_deleted() => Ok(Some(r.data_as::<Reverse>()?.local_id)),
            _ => Ok(None),
        }
    }

    /// Link (or re-sync) `local_id` with `external_id` in `system`, storing
    /// the etag and base copy. `Conflict` when the external id is already
    /// linked to another local id.
    pub async fn link(
        &self,
        local_id: &str,
        system: &str,
        external_id: &str,
        etag: Option<String>,
        base: Option<Value>,
    ) -> Result<Link> {
        for _ in 0..16 {
            let (version, mut mapping) = self.load(local_id).await?;
            let reverse_key = Self::reverse_key(system, external_id);
            let reverse = self.adapter.get(&self.collection, &reverse_key).await?;
            if let Some(r) = reverse.as_ref().filter(|r| !r.is_deleted()) {
                let owner = r.data_as::<Reverse>()?.local_id;
                if owner != local_id {
                    return Err(Error::conflict(format!(
                        "{system} id {external_id:?} is already linked to local id {owner:?}"
                    )));
                }
            }
            let link = Link {
                external_id: external_id.to_owned(),
                etag: etag.clone(),
                base: base.clone(),
                synced_at: self.clock.now(),
            };
            let mut ops = Vec::new();
            if let Some(old) = mapping.links.insert(system.to_owned(), link.clone())
                && old.external_id != external_id
            {
                ops.push(WriteOp::delete(
                    &self.collection,
                    Self::reverse_key(system, &old.external_id),
                ));
            }
            let expect = version.map_or(Expect::Absent, Expect::Version);
            ops.push(
                WriteOp::upsert(
                    &self.collection,
                    Self::local_key(local_id),
                    serde_json::to_value(&mapping)?,
                )
                .expect(expect),
            );
            let reverse_expect = match &reverse {
                Some(r) => Expect::Version(r.version),
                None => Expect::Absent,
            };
            ops.push(
                WriteOp::upsert(
                    &self.collection,
                    reverse_key,
                    serde_json::to_value(Reverse {
                        local_id: local_id.to_owned(),
                    })?,
                )
                .expect(reverse_expect),
            );
            match self.adapter.write(ops).await {
                Ok(_) => return Ok(link),
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::unavailable(format!(
            "mapping of {local_id:?} is contended; retry"
        )))
    }

    /// Remove the link of `local_id` in `system`; whether there was one.
    pub async fn unlink(&self, local_id: &str, system: &str) -> Result<bool> {
        for _ in 0..16 {
            let (version, mut mapping) = self.load(local_id).await?;
            let (Some(version), Some(old)) = (version, mapping.links.remove(system)) else {
                return Ok(false);
            };
            let ops = vec![
                WriteOp::upsert(
                    &self.collection,
                    Self::local_key(local_id),
                    serde_json::to_value(&mapping)?,
                )
                .expect(Expect::Version(version)),
                WriteOp::delete(
                    &self.collection,
                    Self::reverse_key(system, &old.external_id),
                ),
            ];
            match self.adapter.write(ops).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::unavailable(format!(
            "mapping of {local_id:?} is contended; retry"
        )))
    }
}
