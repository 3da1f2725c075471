//! Writing iCalendar text: components as folded CRLF lines, and whole
//! calendars of [`ScheduleItem`]s with the VTIMEZONEs they need.

use std::collections::BTreeMap;

use flextime_core::ScheduleItem;

use super::mapping::{item_to_vevents, zones_used};
use super::parser::{Component, Property, push_folded};
use super::timezone::vtimezone;

/// The `PRODID` written on every calendar.
pub const PRODID: &str = "-//Flextime//flextime-connectors//EN";

/// Appends `c` to `out`: one folded, CRLF-terminated line per content line.
pub fn write_component(out: &mut String, c: &Component) {
    out.push_str("BEGIN:");
    out.push_str(&c.name);
    out.push_str("\r\n");
    for p in &c.properties {
        write_property(out, p);
    }
    for sub in &c.components {
        write_component(out, sub);
    }
    out.push_str("END:");
    out.push_str(&c.name);
    out.push_str("\r\n");
}

/// Appends one property, folded at 75 octets, CRLF-terminated. A line
/// break inside a value that is not TEXT-escaped (a calendar address taken
/// from an unvalidated item, say) is written as a space, so the output is
/// always well-formed.
pub fn write_property(out: &mut String, p: &Property) {
    let line = p.to_line();
    if line.contains(['\r', '\n']) {
        push_folded(out, &line.replace(['\r', '\n'], " "));
    } else {
        push_folded(out, &line);
    }
}

/// A VCALENDAR (VERSION 2.0, GREGORIAN) holding `items`: one VTIMEZONE per
/// zone the items use (UTC excluded), then each item's VEVENTs (the master
/// and one per override). `properties` are added after the standard ones
/// (`X-WR-CALNAME` ...).
pub fn calendar_component(items: &[ScheduleItem], properties: &[Property]) -> Component {
    let mut cal = Component::new("VCALENDAR");
    cal.properties.push(Property::new("VERSION", "2.0"));
    cal.properties.push(Property::new("PRODID", PRODID));
    cal.properties.push(Property::new("CALSCALE", "GREGORIAN"));
    cal.properties.extend(
        properties
            .iter()
            .filter(|p| !matches!(p.name.as_str(), "VERSION" | "PRODID" | "CALSCALE"))
            .cloned(),
    );
    let mut zones = BTreeMap::new();
    for item in items {
        zones_used(item, &mut zones);
    }
    for (tz, first, last) in zones.values() {
        cal.components.push(vtimezone(*tz, *first, *last));
    }
    for item in items {
        cal.components.extend(item_to_vevents(item));
    }
    cal
}

/// `items` as an iCalendar stream (see [`calendar_component`]).
///
/// ```
/// use chrono::{NaiveDate, TimeZone, Utc};
/// use flextime_core::schedule::{ItemKind, ItemTime, ScheduleItem};
/// use flextime_connectors::ics::{parse_calendar, write_calendar};
///
/// let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
/// let item = ScheduleItem::new(
///     "evt-1",
///     ItemKind::Event,
///     "Planning; Q2, EMEA",
///     ItemTime::zoned(day.and_hms_opt(9, 0, 0).unwrap(), chrono_tz::Europe::Paris),
///     ItemTime::zoned(day.and_hms_opt(10, 0, 0).unwrap(), chrono_tz::Europe::Paris),
///     Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
/// );
/// let ics = write_calendar(&[item.clone()]);
/// assert!(ics.contains("SUMMARY:Planning\\; Q2\\, EMEA\r\n"));
/// assert!(ics.contains("BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\n"));
/// assert_eq!(parse_calendar(&ics).unwrap().events().unwrap(), [item]);
/// ```
pub fn write_calendar(items: &[ScheduleItem]) -> String {
    let mut out = String::with_capacity(items.len() * 512 + 1024);
    write_component(&mut out, &calendar_component(items, &[]));
    out
}

/// One calendar object resource (as CalDAV stores it): a VCALENDAR with the
/// item's VTIMEZONEs, its master VEVENT and one VEVENT per override, all
/// with the item's UID.
pub fn item_to_ics(item: &ScheduleItem) -> String {
    write_calendar(std::slice::from_ref(item))
}
