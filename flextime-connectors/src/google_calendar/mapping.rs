//! Google Calendar v3 event resources <-> [`ScheduleItem`].
//!
//! - `start` / `end`: `{"date"}` is an all-day date; `{"dateTime", "timeZone"}`
//!   a zoned time (a `timeZone` that is not an IANA name falls back to the
//!   instant in UTC, so a bad zone never loses the time).
//! - `recurrence`: the `RRULE`, `RDATE` and `EXDATE` lines of RFC 5545.
//! - Modified instances are separate events with `recurringEventId` and
//!   `originalStartTime`; they become [`Override`]s of their master, and a
//!   cancelled instance a cancellation.
//! - `extendedProperties.private` carries `flextime-id`, `flextime-kind` and
//!   `flextime-origin`: Flextime's id and kind survive a round trip, and the
//!   origin marker lets a pipeline recognise its own writes.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use flextime_core::schedule::{
    Attendee, ExternalRef, ItemKind, ItemTime, Organizer, Override, ParticipationStatus, Role,
    ScheduleItem, Status,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `extendedProperties.private` key holding Flextime's item id.
pub const PRIVATE_ID: &str = "flextime-id";
/// `extendedProperties.private` key holding the item kind.
pub const PRIVATE_KIND: &str = "flextime-kind";
/// `extendedProperties.private` key holding the writer's origin marker.
pub const PRIVATE_ORIGIN: &str = "flextime-origin";

/// A Google `EventDateTime`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GTime {
    /// An all-day date (`yyyy-mm-dd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// An RFC 3339 date-time with offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    /// The IANA zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A person (`organizer`, `attendees[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GPerson {
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Optional attendee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// `needsAction`, `declined`, `tentative`, `accepted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<String>,
}

/// `extendedProperties`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GExtended {
    /// Properties private to this copy of the event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub private: BTreeMap<String, String>,
    /// Properties shared with attendees.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shared: BTreeMap<String, String>,
}

/// The subset of the Events resource the connector reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GEvent {
    /// Event id.
    pub id: String,
    /// Entity tag.
    #[serde(default)]
    pub etag: Option<String>,
    /// `confirmed`, `tentative`, `cancelled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Title.
    #[serde(default)]
    pub summary: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Location.
    #[serde(default)]
    pub location: Option<String>,
    /// Start.
    #[serde(default)]
    pub start: Option<GTime>,
    /// End.
    #[serde(default)]
    pub end: Option<GTime>,
    /// RRULE / RDATE / EXDATE lines.
    #[serde(default)]
    pub recurrence: Option<Vec<String>>,
    /// Set on an instance of a recurring event.
    #[serde(default)]
    pub recurring_event_id: Option<String>,
    /// The instance's original start (its RECURRENCE-ID).
    #[serde(default)]
    pub original_start_time: Option<GTime>,
    /// Attendees.
    #[serde(default)]
    pub attendees: Option<Vec<GPerson>>,
    /// Organizer.
    #[serde(default)]
    pub organizer: Option<GPerson>,
    /// Sequence.
    #[serde(default)]
    pub sequence: Option<i64>,
    /// Last modification (RFC 3339).
    #[serde(default)]
    pub updated: Option<String>,
    /// The iCalendar UID.
    #[serde(rename = "iCalUID", default)]
    pub ical_uid: Option<String>,
    /// Extended properties.
    #[serde(default)]
    pub extended_properties: Option<GExtended>,
}

impl GEvent {
    /// Whether the event (or instance) was deleted.
    pub fn is_cancelled(&self) -> bool {
        self.status.as_deref() == Some("cancelled")
    }

    fn private(&self, key: &str) -> Option<&str> {
        self.extended_properties
            .as_ref()
            .and_then(|e| e.private.get(key))
            .map(String::as_str)
    }

    /// The origin marker a writer left, if any.
    pub fn origin(&self) -> Option<String> {
        self.private(PRIVATE_ORIGIN).map(str::to_owned)
    }
}

/// Reads a Google time; `None` if it has neither a date nor a date-time.
pub fn time_from_google(t: &GTime) -> Option<ItemTime> {
    if let Some(date) = &t.date {
        return NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .map(ItemTime::AllDay);
    }
    let instant = DateTime::parse_from_rfc3339(t.date_time.as_deref()?).ok()?;
    let utc = instant.with_timezone(&Utc);
    match t.time_zone.as_deref().and_then(|z| z.parse::<Tz>().ok()) {
        Some(tz) => Some(ItemTime::zoned(utc.with_timezone(&tz).naive_local(), tz)),
        None => Some(ItemTime::utc(utc)),
    }
}

/// Writes a time the way Google expects it.
pub fn time_to_google(t: &ItemTime) -> GTime {
    match t {
        ItemTime::AllDay(date) => GTime {
            date: Some(date.format("%Y-%m-%d").to_string()),
            ..GTime::default()
        },
        ItemTime::Zoned { tz, .. } => GTime {
            date_time: Some(
                t.to_zoned()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            time_zone: Some(tz.name().to_owned()),
            ..GTime::default()
        },
    }
}

/// An RFC 5545 `DATE-TIME`/`DATE` value list of an `EXDATE` or `RDATE` line
/// (`EXDATE;TZID=Europe/Paris:20240101T090000,20240108T090000`).
fn parse_date_list(line: &str) -> Vec<ItemTime> {
    let Some((head, values)) = line.split_once(':') else {
        return Vec::new();
    };
    let mut tz: Option<Tz> = None;
    for param in head.split(';').skip(1) {
        if let Some(("TZID", zone)) = param.split_once('=') {
            tz = zone.trim_matches('"').parse().ok();
        }
    }
    values
        .split(',')
        .filter_map(|v| {
            let v = v.trim();
            if v.len() == 8 {
                return NaiveDate::parse_from_str(v, "%Y%m%d")
                    .ok()
                    .map(ItemTime::AllDay);
            }
            if let Some(utc) = v.strip_suffix('Z') {
                let local = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok()?;
                return Some(ItemTime::utc(Utc.from_utc_datetime(&local)));
            }
            let local = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok()?;
            Some(ItemTime::zoned(local, tz.unwrap_or(Tz::UTC)))
        })
        .collect()
}

fn format_date_line(name: &str, times: &[ItemTime]) -> Vec<String> {
    // One line per zone / kind, since a line has one TZID.
    times
        .iter()
        .map(|t| match t {
            ItemTime::AllDay(d) => format!("{name};VALUE=DATE:{}", d.format("%Y%m%d")),
            ItemTime::Zoned { local, tz } if *tz == Tz::UTC => {
                format!("{name}:{}Z", local.format("%Y%m%dT%H%M%S"))
            }
            ItemTime::Zoned { local, tz } => {
                format!(
                    "{name};TZID={}:{}",
                    tz.name(),
                    local.format("%Y%m%dT%H%M%S")
                )
            }
        })
        .collect()
}

fn status_from(s: Option<&str>) -> Status {
    match s {
        Some("tentative") => Status::Tentative,
        Some("cancelled") => Status::Cancelled,
        _ => Status::Confirmed,
    }
}

const fn status_to(s: Status) -> &'static str {
    match s {
        Status::Confirmed => "confirmed",
        Status::Tentative => "tentative",
        Status::Cancelled => "cancelled",
    }
}

fn partstat_from(s: Option<&str>) -> ParticipationStatus {
    match s {
        Some("accepted") => ParticipationStatus::Accepted,
        Some("declined") => ParticipationStatus::Declined,
        Some("tentative") => ParticipationStatus::Tentative,
        _ => ParticipationStatus::NeedsAction,
    }
}

const fn partstat_to(s: ParticipationStatus) -> &'static str {
    match s {
        ParticipationStatus::Accepted => "accepted",
        ParticipationStatus::Declined => "declined",
        ParticipationStatus::Tentative => "tentative",
        ParticipationStatus::NeedsAction | ParticipationStatus::Delegated => "needsAction",
    }
}

/// Maps a master event and its modified instances to one item. `provider`
/// names the key of `external_refs`.
pub fn item_from_google(master: &GEvent, instances: &[GEvent], provider: &str) -> ScheduleItem {
    let start = master
        .start
        .as_ref()
        .and_then(time_from_google)
        .unwrap_or_else(|| ItemTime::utc(DateTime::UNIX_EPOCH));
    let end = master
        .end
        .as_ref()
        .and_then(time_from_google)
        .unwrap_or(start);
    let updated = master
        .updated
        .as_deref()
        .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
        .map_or(DateTime::UNIX_EPOCH, |d| d.with_timezone(&Utc));
    let kind = master
        .private(PRIVATE_KIND)
        .and_then(|k| serde_json::from_value::<ItemKind>(Value::String(k.to_owned())).ok())
        .unwrap_or(ItemKind::Event);
    let id = master
        .private(PRIVATE_ID)
        .map(str::to_owned)
        .or_else(|| master.ical_uid.clone())
        .unwrap_or_else(|| master.id.clone());
    let mut item = ScheduleItem::new(
        id,
        kind,
        master.summary.clone().unwrap_or_default(),
        start,
        end,
        updated,
    );
    item.description.clone_from(&master.description);
    item.location.clone_from(&master.location);
    item.status = status_from(master.status.as_deref());
    item.sequence = master
        .sequence
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or_default();
    for line in master.recurrence.iter().flatten() {
        let upper = line.to_ascii_uppercase();
        if let Some(rule) = line.strip_prefix("RRULE:") {
            item.recurrence.rrule.push(rule.to_owned());
        } else if upper.starts_with("EXDATE") {
            item.recurrence.exdate.extend(parse_date_list(line));
        } else if upper.starts_with("RDATE") {
            item.recurrence.rdate.extend(parse_date_list(line));
        }
    }
    for instance in instances {
        let Some(recurrence_id) = instance
            .original_start_time
            .as_ref()
            .and_then(time_from_google)
        else {
            continue;
        };
        if instance.is_cancelled() {
            item.recurrence
                .overrides
                .push(Override::cancel(recurrence_id));
            continue;
        }
        let mut o = Override::new(recurrence_id);
        o.start = instance.start.as_ref().and_then(time_from_google);
        o.end = instance.end.as_ref().and_then(time_from_google);
        o.title = instance
            .summary
            .clone()
            .filter(|s| Some(s) != master.summary.as_ref());
        o.description = instance
            .description
            .clone()
            .filter(|s| Some(s) != master.description.as_ref());
        o.location = instance
            .location
            .clone()
            .filter(|s| Some(s) != master.location.as_ref());
        o.status = Some(status_from(instance.status.as_deref())).filter(|s| *s != item.status);
        item.recurrence.overrides.push(o);
    }
    item.recurrence
        .overrides
        .sort_by_key(|o| o.recurrence_id.to_utc());
    for a in master.attendees.iter().flatten() {
        let Some(email) = a.email.clone() else {
            continue;
        };
        let mut attendee = Attendee::new(email);
        attendee.name.clone_from(&a.display_name);
        attendee.role = if a.optional == Some(true) {
            Role::Optional
        } else {
            Role::Required
        };
        attendee.participation_status = partstat_from(a.response_status.as_deref());
        item.attendees.push(attendee);
    }
    item.organizer = master.organizer.as_ref().and_then(|o| {
        o.email.clone().map(|email| Organizer {
            email,
            name: o.display_name.clone(),
        })
    });
    if let Some(uid) = &master.ical_uid {
        item.extensions
            .insert("ical_uid".into(), Value::String(uid.clone()));
    }
    item.external_refs.insert(
        provider.to_owned(),
        ExternalRef {
            id: master.id.clone(),
            etag: master.etag.clone(),
        },
    );
    item
}

/// The request body of an insert or patch for `item` (overrides that are
/// cancellations become `EXDATE`s; changed instances are patched separately).
pub fn item_to_google(item: &ScheduleItem, origin: &str) -> Value {
    let mut recurrence: Vec<String> = item
        .recurrence
        .rrule
        .iter()
        .map(|r| format!("RRULE:{}", r.trim_start_matches("RRULE:")))
        .collect();
    recurrence.extend(format_date_line("RDATE", &item.recurrence.rdate));
    let mut exdates = item.recurrence.exdate.clone();
    exdates.extend(
        item.recurrence
            .overrides
            .iter()
            .filter(|o| o.is_cancellation())
            .map(|o| o.recurrence_id),
    );
    recurrence.extend(format_date_line("EXDATE", &exdates));
    let attendees: Vec<Value> = item
        .attendees
        .iter()
        .map(|a| {
            let mut v = json!({
                "email": a.email,
                "responseStatus": partstat_to(a.participation_status),
            });
            if let Some(name) = &a.name {
                v["displayName"] = json!(name);
            }
            if a.role == Role::Optional {
                v["optional"] = json!(true);
            }
            v
        })
        .collect();
    let kind = serde_json::to_value(item.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "event".to_owned());
    let mut body = json!({
        "summary": item.title,
        "start": time_to_google(&item.start),
        "end": time_to_google(&item.end),
        "status": status_to(item.status),
        "extendedProperties": {"private": {
            PRIVATE_ID: item.id,
            PRIVATE_KIND: kind,
            PRIVATE_ORIGIN: origin,
        }},
    });
    if let Some(d) = &item.description {
        body["description"] = json!(d);
    }
    if let Some(l) = &item.location {
        body["location"] = json!(l);
    }
    if !recurrence.is_empty() {
        body["recurrence"] = json!(recurrence);
    }
    if !attendees.is_empty() {
        body["attendees"] = json!(attendees);
    }
    body
}

/// The patch body of one changed instance.
pub fn override_to_google(o: &Override, origin: &str) -> Value {
    let mut body = json!({"extendedProperties": {"private": {PRIVATE_ORIGIN: origin}}});
    if let Some(s) = &o.start {
        body["start"] = json!(time_to_google(s));
    }
    if let Some(e) = &o.end {
        body["end"] = json!(time_to_google(e));
    }
    if let Some(t) = &o.title {
        body["summary"] = json!(t);
    }
    if let Some(d) = &o.description {
        body["description"] = json!(d);
    }
    if let Some(l) = &o.location {
        body["location"] = json!(l);
    }
    if let Some(s) = o.status {
        body["status"] = json!(status_to(s));
    }
    body
}

/// The id Google gives instance `recurrence_id` of event `id`: the event id,
/// `_`, and the original start in UTC (`20240105T090000Z`) or the date.
pub fn instance_id(event_id: &str, recurrence_id: &ItemTime) -> String {
    match recurrence_id {
        ItemTime::AllDay(d) => format!("{event_id}_{}", d.format("%Y%m%d")),
        zoned @ ItemTime::Zoned { .. } => {
            format!("{event_id}_{}", zoned.to_utc().format("%Y%m%dT%H%M%SZ"))
        }
    }
}

/// A Google event id derived from a Flextime id: base32hex (`0-9a-v`) of its
/// bytes, which Google accepts as a client-chosen id, so inserting the same
/// item twice is a 409 instead of a duplicate.
pub fn event_id_for(item_id: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::from("ftid");
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in item_id.as_bytes() {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    if out.len() < 5 {
        // Only the empty id; any other encodes to two characters or more.
        out.push('0');
    }
    out.truncate(1024);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Paris;

    fn event(v: Value) -> GEvent {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn zoned_all_day_and_utc_times_round_trip() {
        let zoned = ItemTime::zoned(
            NaiveDate::from_ymd_opt(2024, 7, 1)
                .unwrap()
                .and_hms_opt(9, 30, 0)
                .unwrap(),
            Paris,
        );
        let g = time_to_google(&zoned);
        assert_eq!(g.date_time.as_deref(), Some("2024-07-01T09:30:00+02:00"));
        assert_eq!(g.time_zone.as_deref(), Some("Europe/Paris"));
        assert_eq!(time_from_google(&g), Some(zoned));
        let day = ItemTime::AllDay(NaiveDate::from_ymd_opt(2024, 12, 25).unwrap());
        assert_eq!(time_from_google(&time_to_google(&day)), Some(day));
        let odd = GTime {
            date_time: Some("2024-07-01T09:30:00+02:00".into()),
            time_zone: Some("Not/AZone".into()),
            date: None,
        };
        assert_eq!(
            time_from_google(&odd).unwrap().to_utc(),
            Utc.with_ymd_and_hms(2024, 7, 1, 7, 30, 0).unwrap()
        );
    }

    #[test]
    fn a_recurring_event_with_instances_maps_to_one_item_and_back() {
        let master = event(json!({
            "id": "abc", "etag": "\"1\"", "status": "confirmed", "summary": "Standup",
            "start": {"dateTime": "2024-01-01T09:00:00+01:00", "timeZone": "Europe/Paris"},
            "end": {"dateTime": "2024-01-01T09:15:00+01:00", "timeZone": "Europe/Paris"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=10", "EXDATE;TZID=Europe/Paris:20240103T090000"],
            "attendees": [{"email": "a@example.com", "displayName": "A", "responseStatus": "accepted"},
                          {"email": "b@example.com", "optional": true}],
            "organizer": {"email": "o@example.com"},
            "iCalUID": "uid-1@example.com",
            "updated": "2024-01-01T00:00:00Z",
            "extendedProperties": {"private": {"flextime-id": "item-1", "flextime-kind": "shift", "flextime-origin": "me"}}
        }));
        let moved = event(json!({
            "id": "abc_20240105T080000Z", "recurringEventId": "abc", "status": "confirmed",
            "summary": "Standup (moved)",
            "originalStartTime": {"dateTime": "2024-01-05T09:00:00+01:00", "timeZone": "Europe/Paris"},
            "start": {"dateTime": "2024-01-05T10:00:00+01:00", "timeZone": "Europe/Paris"},
            "end": {"dateTime": "2024-01-05T10:15:00+01:00", "timeZone": "Europe/Paris"}
        }));
        let cancelled = event(json!({
            "id": "abc_20240107T080000Z", "recurringEventId": "abc", "status": "cancelled",
            "originalStartTime": {"dateTime": "2024-01-07T09:00:00+01:00", "timeZone": "Europe/Paris"}
        }));
        let item = item_from_google(&master, &[cancelled, moved], "google-calendar");
        assert_eq!(item.id, "item-1");
        assert_eq!(item.kind, ItemKind::Shift);
        assert_eq!(item.recurrence.rrule, vec!["FREQ=DAILY;COUNT=10"]);
        assert_eq!(item.recurrence.exdate.len(), 1);
        assert_eq!(item.recurrence.overrides.len(), 2);
        assert_eq!(
            item.recurrence.overrides[0].title.as_deref(),
            Some("Standup (moved)")
        );
        assert!(item.recurrence.overrides[1].is_cancellation());
        assert_eq!(
            item.attendees[0].participation_status,
            ParticipationStatus::Accepted
        );
        assert_eq!(item.attendees[1].role, Role::Optional);
        assert_eq!(
            item.external_refs["google-calendar"].etag.as_deref(),
            Some("\"1\"")
        );
        assert_eq!(master.origin().as_deref(), Some("me"));

        let body = item_to_google(&item, "me");
        assert_eq!(
            body["extendedProperties"]["private"]["flextime-id"],
            "item-1"
        );
        assert_eq!(
            body["extendedProperties"]["private"]["flextime-kind"],
            "shift"
        );
        let rec: Vec<&str> = body["recurrence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(rec.contains(&"RRULE:FREQ=DAILY;COUNT=10"), "{rec:?}");
        assert!(
            rec.contains(&"EXDATE;TZID=Europe/Paris:20240103T090000"),
            "{rec:?}"
        );
        assert!(
            rec.contains(&"EXDATE;TZID=Europe/Paris:20240107T090000"),
            "{rec:?}"
        );
        let again = event(json!({
            "id": "abc", "summary": body["summary"], "start": body["start"], "end": body["end"],
            "recurrence": body["recurrence"], "attendees": body["attendees"], "status": body["status"],
            "extendedProperties": body["extendedProperties"], "organizer": {"email": "o@example.com"},
            "updated": "2024-01-01T00:00:00Z", "iCalUID": "uid-1@example.com", "etag": "\"1\""
        }));
        let back = item_from_google(&again, &[], "google-calendar");
        assert_eq!(back.start, item.start);
        assert_eq!(back.attendees, item.attendees);
        assert_eq!(back.recurrence.exdate.len(), 2);
        assert_eq!(
            instance_id("abc", &item.recurrence.overrides[0].recurrence_id),
            "abc_20240105T080000Z"
        );
    }

    #[test]
    fn derived_event_ids_use_only_base32hex() {
        for id in ["", "a", "booking/42", "émoji 🎉", "x".repeat(300).as_str()] {
            let e = event_id_for(id);
            assert!(e.len() >= 5 && e.len() <= 1024, "{e}");
            assert!(e.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')), "{e}");
        }
        assert_ne!(event_id_for("a"), event_id_for("b"));
    }
}
