//! The calendar capability: [`CalendarProvider`], implemented by the CalDAV,
//! Google Calendar and Microsoft Graph connectors, and its adapters to the
//! core [`Source`] ([`CalendarSource`]) and [`Sink`] ([`CalendarSink`]).
//!
//! The provider's own incremental token (a CalDAV sync-token, a Google
//! `nextSyncToken`, a Graph delta link) is the core [`Checkpoint`]: a host that
//! stores it resumes exactly where it stopped.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use flextime_core::{
    ApplyOutcome, ApplyResult, Batch, BatchStream, Change, ChangeKey, Checkpoint, Error, Operation,
    Result, ScheduleItem, Sink, Source, Version,
};
use serde::{Deserialize, Serialize};

use crate::Connector;

/// A calendar as a provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarInfo {
    /// The provider's id of the calendar (a CalDAV collection href, a Google
    /// calendar id, a Graph calendar id).
    pub id: String,
    /// The display name.
    pub name: String,
    /// The description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The calendar's time zone (IANA name), if the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The calendar's colour, if any (`#rrggbb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// A tag that changes whenever anything in the calendar changes (CalDAV
    /// CTag / sync-token, Google etag), if the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_tag: Option<String>,
    /// Whether the authenticated user can only read it.
    #[serde(default)]
    pub read_only: bool,
}

/// An event as stored by a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteEvent {
    /// The provider's id of the event (CalDAV: the object's href; Google and
    /// Graph: the event id).
    pub id: String,
    /// The provider's version tag, used as `If-Match` on update and delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The event as a schedule item, with recurrence and overrides. Its
    /// `external_refs[provider name]` holds `id` and `etag`.
    pub item: ScheduleItem,
    /// Who wrote this version, when the provider keeps an origin marker
    /// (Google `extendedProperties.private`): lets a sync pipeline drop the
    /// echo of its own writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// One change read from a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EventChange {
    /// The event was created or changed.
    Upsert(Box<RemoteEvent>),
    /// The event was removed.
    Delete {
        /// The provider's id of the removed event.
        id: String,
    },
}

impl EventChange {
    /// The provider's id of the event.
    pub fn id(&self) -> &str {
        match self {
            Self::Upsert(event) => &event.id,
            Self::Delete { id } => id,
        }
    }
}

/// The result of one incremental read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSync {
    /// Every change since the token given, oldest first where the provider
    /// orders them.
    pub changes: Vec<EventChange>,
    /// The token to pass next time.
    pub next_token: String,
    /// `true` when the token given was missing, expired or rejected and this
    /// is a full listing: the caller should treat events it knows but that are
    /// not in `changes` as deleted.
    pub full_resync: bool,
    /// Events reported but not readable; they are left out of `changes`
    /// and the token still advances, so one bad event cannot stall a sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedEvent>,
}

/// An event a provider reported but that could not be read as a schedule
/// item (a malformed object, a missing start). It is not in
/// [`EventSync::changes`]; the caller decides whether to alert on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedEvent {
    /// The provider's id of the event.
    pub id: String,
    /// Why it could not be read.
    pub reason: String,
}

/// A busy interval from a free/busy query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyPeriod {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

/// Where a write landed: the event's provider id and new version tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    /// The provider's id of the event.
    pub id: String,
    /// The new version tag, when the provider returns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// A calendar service: list calendars, read events incrementally, write with
/// version preconditions, and answer free/busy.
#[async_trait::async_trait]
pub trait CalendarProvider: Connector {
    /// The calendars the authenticated user can see.
    async fn list_calendars(&self) -> Result<Vec<CalendarInfo>>;

    /// Every change in `calendar` since `token` (all of them when `None`).
    /// An expired or invalid token is not an error: the provider runs a full
    /// listing and sets [`EventSync::full_resync`].
    async fn sync_events(&self, calendar: &str, token: Option<&str>) -> Result<EventSync>;

    /// Creates an event; fails with a `Conflict` if one with the same
    /// identity already exists.
    async fn create_event(&self, calendar: &str, item: &ScheduleItem) -> Result<EventRef>;

    /// Replaces event `id`; with `etag`, only if it is still that version
    /// (otherwise a `Conflict`).
    async fn update_event(
        &self,
        calendar: &str,
        id: &str,
        item: &ScheduleItem,
        etag: Option<&str>,
    ) -> Result<EventRef>;

    /// Deletes event `id`; with `etag`, only if it is still that version
    /// (otherwise a `Conflict`). Deleting an event that is already gone is
    /// not an error.
    async fn delete_event(&self, calendar: &str, id: &str, etag: Option<&str>) -> Result<()>;

    /// The busy periods of `calendar` between `from` and `to`.
    async fn free_busy(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyPeriod>>;
}

/// Metadata key set on every change of a full resync (value `"true"`).
pub const FULL_RESYNC_METADATA: &str = "full_resync";
/// Metadata key carrying the version tag a delete must match (on a change
/// given to [`CalendarSink`]).
pub const ETAG_METADATA: &str = "etag";

/// One calendar of a [`CalendarProvider`] as a core [`Source`]: each call
/// yields one batch whose checkpoint is the provider's next token.
///
/// Change keys are `(provider name, calendar id, provider event id)`; an
/// upsert's data is the [`ScheduleItem`] as JSON and its version the etag.
pub struct CalendarSource<P: ?Sized> {
    provider: Arc<P>,
    calendar: String,
    name: String,
}

impl<P: CalendarProvider + ?Sized> CalendarSource<P> {
    /// A source reading `calendar` from `provider`.
    pub fn new(provider: Arc<P>, calendar: impl Into<String>) -> Self {
        let calendar = calendar.into();
        let name = format!("{}:{calendar}", provider.name());
        Self {
            provider,
            calendar,
            name,
        }
    }

    /// Converts one provider change to a core change.
    pub fn to_change(&self, change: EventChange, full_resync: bool) -> Result<Change> {
        let key = |id: String| ChangeKey::new(self.provider.name(), self.calendar.clone(), id);
        let mut out = match change {
            EventChange::Upsert(event) => {
                let data = serde_json::to_value(&event.item).map_err(|e| {
                    Error::internal("schedule item is not serialisable").with_source(e)
                })?;
                let mut change =
                    Change::upsert(key(event.id), data).with_changed_at(event.item.updated_at);
                if let Some(etag) = event.etag {
                    change = change.with_version(Version::Etag(etag));
                }
                if let Some(origin) = event.origin {
                    change = change.with_origin(origin);
                }
                change
            }
            EventChange::Delete { id } => Change::delete(key(id)),
        };
        if full_resync {
            out = out.with_metadata(FULL_RESYNC_METADATA, "true");
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl<P: CalendarProvider + ?Sized + 'static> Source for CalendarSource<P> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn changes(&self, since: Option<Checkpoint>) -> Result<BatchStream<'_>> {
        let sync = self
            .provider
            .sync_events(&self.calendar, since.as_ref().map(Checkpoint::as_str))
            .await?;
        let full = sync.full_resync;
        for skipped in &sync.skipped {
            tracing::warn!(
                source = %self.name,
                event = %skipped.id,
                reason = %skipped.reason,
                "calendar event skipped: it cannot be read as a schedule item"
            );
        }
        let changes = sync
            .changes
            .into_iter()
            .map(|c| self.to_change(c, full))
            .collect::<Result<Vec<_>>>()?;
        let batch = Batch {
            changes,
            checkpoint: Checkpoint::new(sync.next_token),
        };
        Ok(Box::pin(futures::stream::once(async move { Ok(batch) })))
    }
}

/// One calendar of a [`CalendarProvider`] as a core [`Sink`].
///
/// An upsert's data is a [`ScheduleItem`]. When the item carries an external
/// reference for this provider (`external_refs[provider name]`), the event is
/// updated with `If-Match` its etag; otherwise it is created. A delete
/// addresses the provider id in the change key, matching the etag in the
/// change's `etag` metadata when present. A version precondition that fails
/// is reported as [`ApplyOutcome::Conflict`], not as an error, so one stale
/// event does not stop a batch.
pub struct CalendarSink<P: ?Sized> {
    provider: Arc<P>,
    calendar: String,
    name: String,
}

impl<P: CalendarProvider + ?Sized> CalendarSink<P> {
    /// A sink writing to `calendar` of `provider`.
    pub fn new(provider: Arc<P>, calendar: impl Into<String>) -> Self {
        let calendar = calendar.into();
        let name = format!("{}:{calendar}", provider.name());
        Self {
            provider,
            calendar,
            name,
        }
    }

    async fn apply_one(&self, change: &Change) -> Result<ApplyOutcome> {
        let written = match change.op {
            Operation::Upsert => {
                let item: ScheduleItem = change.data_as()?;
                match item.external_refs.get(self.provider.name()) {
                    Some(remote) => {
                        self.provider
                            .update_event(&self.calendar, &remote.id, &item, remote.etag.as_deref())
                            .await
                    }
                    None => self.provider.create_event(&self.calendar, &item).await,
                }
                .map(|r| r.etag)
            }
            Operation::Delete => {
                let etag = change.metadata.get(ETAG_METADATA).map(String::as_str);
                self.provider
                    .delete_event(&self.calendar, &change.key.id, etag)
                    .await
                    .map(|()| None)
            }
        };
        crate::write_outcome(written)
    }
}

#[async_trait::async_trait]
impl<P: CalendarProvider + ?Sized + 'static> Sink for CalendarSink<P> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(&self, changes: &[Change]) -> Result<Vec<ApplyResult>> {
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let outcome = self.apply_one(change).await?;
            results.push(ApplyResult {
                key: change.key.clone(),
                outcome,
            });
        }
        Ok(results)
    }
}
