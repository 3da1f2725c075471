//! The scheduling domain record: [`ScheduleItem`].
//!
//! A schedule item is an event, a booking, a shift, time off or an
//! availability window. It has a start and an end that are either zoned
//! date-times (a wall-clock time plus an IANA zone, see [`ItemTime`]) or
//! all-day dates (end exclusive, as in iCalendar), an optional
//! [`Recurrence`] (RRULE, RDATE, EXDATE and per-occurrence overrides keyed by
//! RECURRENCE-ID), [`Attendee`]s, an [`Organizer`], a [`Status`], references
//! to the same item in external systems ([`ExternalRef`]), an update time, an
//! iCalendar `SEQUENCE` and free-form `extensions`.
//!
//! - [`ScheduleItem::occurrences`] expands the item into the [`Occurrence`]s
//!   that overlap a window, DST-correct in the item's zone, bounded by a
//!   caller limit and by [`MAX_OCCURRENCES`].
//! - [`ScheduleItem::validate`] (and [`ScheduleItemValidator`]) report every
//!   broken rule at once, each with its field path and a stable code.
//! - [`ScheduleItem::parse_json`] parses the JSON shape below and reports
//!   problems as [`Violation`](crate::validate::Violation)s with field paths (an unknown zone is
//!   `start.tz` / `unknown_time_zone`), then validates.
//!
//! # JSON shape (stable)
//!
//! Field names are snake_case; enum values are snake_case strings. Optional
//! fields and empty lists/maps are omitted when serializing and may be left
//! out when deserializing (`title` defaults to empty, `status` to
//! `confirmed`, `sequence` to 0, attendee `role` to `required` and
//! `participation_status` to `needs_action`).
//!
//! **Unknown fields are rejected** (at every level) with an `unknown_field`
//! violation naming the path, so typos such as `"titel"` never pass silently.
//! Extra data belongs in `extensions`, an object of arbitrary JSON values that
//! is kept as is.
//!
//! A time is `{"date_time": "YYYY-MM-DDTHH:MM:SS", "tz": "<IANA zone>"}` (a
//! wall-clock time; `"tz": "UTC"` for UTC) or `{"date": "YYYY-MM-DD"}` for an
//! all-day date. The same shape is used for `rdate`, `exdate` and an
//! override's `recurrence_id`, `start` and `end`. An override whose `status`
//! is `cancelled` removes that occurrence.
//!
//! ```
//! use flextime_core::schedule::{ItemKind, ItemTime, Role, ScheduleItem, Status};
//!
//! let json = r#"{
//!   "id": "evt_42",
//!   "kind": "event",
//!   "title": "Team stand-up",
//!   "description": "Daily sync",
//!   "location": "Room 3",
//!   "start": {"date_time": "2024-03-25T09:00:00", "tz": "Europe/Berlin"},
//!   "end": {"date_time": "2024-03-25T09:15:00", "tz": "Europe/Berlin"},
//!   "recurrence": {
//!     "rrule": ["FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=12"],
//!     "rdate": [{"date_time": "2024-03-30T10:00:00", "tz": "Europe/Berlin"}],
//!     "exdate": [{"date_time": "2024-03-27T09:00:00", "tz": "Europe/Berlin"}],
//!     "overrides": [
//!       {
//!         "recurrence_id": {"date_time": "2024-03-29T09:00:00", "tz": "Europe/Berlin"},
//!         "start": {"date_time": "2024-03-29T11:00:00", "tz": "Europe/Berlin"},
//!         "end": {"date_time": "2024-03-29T11:15:00", "tz": "Europe/Berlin"},
//!         "title": "Stand-up (moved)"
//!       },
//!       {
//!         "recurrence_id": {"date_time": "2024-04-01T09:00:00", "tz": "Europe/Berlin"},
//!         "status": "cancelled"
//!       }
//!     ]
//!   },
//!   "attendees": [
//!     {"email": "ana@example.com", "name": "Ana", "role": "chair", "participation_status": "accepted"},
//!     {"email": "bo@example.com", "role": "optional", "participation_status": "tentative"}
//!   ],
//!   "organizer": {"email": "ana@example.com", "name": "Ana"},
//!   "status": "confirmed",
//!   "external_refs": {
//!     "google": {"id": "abc123", "etag": "\"3312\""},
//!     "notion": {"id": "page-9"}
//!   },
//!   "updated_at": "2024-03-20T12:00:00Z",
//!   "sequence": 3,
//!   "extensions": {"color": "blue", "priority": 2}
//! }"#;
//!
//! let item = ScheduleItem::parse_json(json.as_bytes()).expect("valid item");
//! assert_eq!(item.kind, ItemKind::Event);
//! assert_eq!(item.start.tz(), Some(chrono_tz::Europe::Berlin));
//! assert_eq!(item.attendees[0].role, Role::Chair);
//! assert_eq!(item.status, Status::Confirmed);
//! assert_eq!(item.external_refs["google"].etag.as_deref(), Some("\"3312\""));
//! assert_eq!(item.extensions["priority"], 2);
//!
//! // Serializing gives the same JSON back.
//! let again: serde_json::Value = serde_json::to_value(&item).unwrap();
//! assert_eq!(again, serde_json::from_str::<serde_json::Value>(json).unwrap());
//!
//! // 25 Mar .. 5 Apr: Mon/Wed/Fri at 09:00, minus the EXDATE (27th), the
//! // 29th moved to 11:00, the 30 Mar RDATE, the 1 Apr occurrence cancelled.
//! let from = "2024-03-25T00:00:00Z".parse().unwrap();
//! let to = "2024-04-06T00:00:00Z".parse().unwrap();
//! let occ = item.occurrences(from, to, 100).unwrap();
//! let starts: Vec<String> = occ.iter().map(|o| o.start.to_string()).collect();
//! assert_eq!(starts, [
//!     "2024-03-25T09:00:00 Europe/Berlin",
//!     "2024-03-29T11:00:00 Europe/Berlin",
//!     "2024-03-30T10:00:00 Europe/Berlin",
//!     "2024-04-03T09:00:00 Europe/Berlin",
//!     "2024-04-05T09:00:00 Europe/Berlin",
//! ]);
//! assert!(occ[1].overridden);
//! assert_eq!(occ[1].title, "Stand-up (moved)");
//!
//! // Problems come back as violations with paths.
//! let bad = json.replacen("Europe/Berlin", "Europe/Berlinn", 1);
//! let found = ScheduleItem::parse_json(bad.as_bytes()).unwrap_err();
//! assert_eq!(found[0].path, "start.tz");
//! assert_eq!(found[0].code, "unknown_time_zone");
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod parse;
mod recurrence;
mod time;
mod validate;

pub use recurrence::{MAX_OCCURRENCES, MAX_SCANNED_INSTANCES, Occurrence, Override, Recurrence};
pub use time::{ItemTime, parse_tz};
pub use validate::{ScheduleItemValidator, codes};

/// What kind of thing a [`ScheduleItem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A calendar event (meeting, appointment).
    Event,
    /// A booking of a resource or a service slot.
    Booking,
    /// A work shift.
    Shift,
    /// Leave, holiday, sick day.
    TimeOff,
    /// A window in which someone or something is available.
    Availability,
}

impl ItemKind {
    /// Whether items of this kind must have a non-empty title
    /// (events, bookings and shifts do; time off and availability need not).
    pub const fn requires_title(self) -> bool {
        matches!(self, Self::Event | Self::Booking | Self::Shift)
    }
}

/// The status of an item or of one occurrence (iCalendar `STATUS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It happens (the default).
    #[default]
    Confirmed,
    /// It may happen.
    Tentative,
    /// It does not happen.
    Cancelled,
}

/// An attendee's role (iCalendar `ROLE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Chairs the meeting.
    Chair,
    /// Required participant (the default).
    #[default]
    Required,
    /// Optional participant.
    Optional,
    /// Copied for information only.
    NonParticipant,
}

/// An attendee's answer (iCalendar `PARTSTAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipationStatus {
    /// Has not answered yet (the default).
    #[default]
    NeedsAction,
    /// Will attend.
    Accepted,
    /// Will not attend.
    Declined,
    /// May attend.
    Tentative,
    /// Passed the invitation on to someone else.
    Delegated,
}

/// A person invited to an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attendee {
    /// Email address (validated by [`ScheduleItem::validate`]).
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Role; `required` when absent.
    #[serde(default)]
    pub role: Role,
    /// Answer; `needs_action` when absent.
    #[serde(default)]
    pub participation_status: ParticipationStatus,
}

impl Attendee {
    /// A required attendee who has not answered yet.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: None,
            role: Role::Required,
            participation_status: ParticipationStatus::NeedsAction,
        }
    }
}

/// Who organizes an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organizer {
    /// Email address (validated by [`ScheduleItem::validate`]).
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The identity of the same item in an external system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalRef {
    /// The item's id in that system.
    pub id: String,
    /// That system's version tag (HTTP ETag, change key), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The domain record: an event, booking, shift, time off or availability.
///
/// See the [module documentation](self) for the JSON shape.
///
/// ```
/// use chrono::{NaiveDate, TimeZone, Utc};
/// use flextime_core::schedule::{ItemKind, ItemTime, ScheduleItem};
///
/// let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
/// let item = ScheduleItem::new(
///     "shift-1",
///     ItemKind::Shift,
///     "Early shift",
///     ItemTime::zoned(day.and_hms_opt(6, 0, 0).unwrap(), chrono_tz::Europe::Paris),
///     ItemTime::zoned(day.and_hms_opt(14, 0, 0).unwrap(), chrono_tz::Europe::Paris),
///     Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
/// );
/// assert!(item.validate().is_empty());
/// assert!(item.check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleItem {
    /// Flextime's id of the item.
    pub id: String,
    /// What kind of item this is.
    pub kind: ItemKind,
    /// Title (summary); required for events, bookings and shifts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where it happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Start (of the first occurrence, for a recurring item): iCalendar `DTSTART`.
    pub start: ItemTime,
    /// End, exclusive (`DTEND`); must be of the same kind (all-day or zoned) as `start`.
    pub end: ItemTime,
    /// Recurrence rules, dates, exceptions and overrides; empty for a single item.
    #[serde(default, skip_serializing_if = "Recurrence::is_empty")]
    pub recurrence: Recurrence,
    /// Invited people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attendees: Vec<Attendee>,
    /// Who organizes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Organizer>,
    /// Status of the item as a whole; `confirmed` when absent.
    #[serde(default)]
    pub status: Status,
    /// The same item in other systems, keyed by system name (`google`, `notion` ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_refs: BTreeMap<String, ExternalRef>,
    /// When the item last changed.
    pub updated_at: DateTime<Utc>,
    /// iCalendar `SEQUENCE`: revision number, bumped on significant changes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sequence: u32,
    /// Free-form extra data, kept as is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ScheduleItem {
    /// A confirmed, non-recurring item with no attendees.
    pub fn new(
        id: impl Into<String>,
        kind: ItemKind,
        title: impl Into<String>,
        start: ItemTime,
        end: ItemTime,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            kind,
            title: title.into(),
            description: None,
            location: None,
            start,
            end,
            recurrence: Recurrence::default(),
            attendees: Vec::new(),
            organizer: None,
            status: Status::Confirmed,
            external_refs: BTreeMap::new(),
            updated_at,
            sequence: 0,
            extensions: BTreeMap::new(),
        }
    }

    /// Whether the item recurs (has an RRULE or an RDATE).
    pub fn is_recurring(&self) -> bool {
        !self.recurrence.rrule.is_empty() || !self.recurrence.rdate.is_empty()
    }

    /// Whether start and end are all-day dates.
    pub fn is_all_day(&self) -> bool {
        self.start.is_all_day()
    }

    /// The JSON form (see the module documentation).
    pub fn to_json(&self) -> crate::Result<String> {
        Ok(serde_json::to_string(self)?)
    }
}
