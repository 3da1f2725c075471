//! RFC 5545 iCalendar: parse and write VCALENDAR with VEVENT and VTIMEZONE,
//! map VEVENTs to [`ScheduleItem`]s and back, and import ICS feeds.
//!
//! - [`parse_calendar`] reads a whole stream into a [`Calendar`];
//!   [`Calendar::events`] maps its VEVENTs to one item per UID (overrides
//!   folded into the master's recurrence).
//! - [`write_calendar`] writes items back, with a VTIMEZONE per zone.
//! - [`item_from_ics`] / [`item_to_ics`]: one calendar object resource
//!   (CalDAV's unit: every VEVENT of one UID) <-> one item.
//! - [`feed::IcsFeed`]: import from a URL with ETag / Last-Modified caching.
//!
//! The [`mapping`] module documents which properties map to which fields
//! and how everything else is kept (in `extensions["ics"]`) and written
//! back; [`timezone`] documents how TZIDs (IANA, Windows, custom) resolve;
//! [`parser`] says why the parser is written here rather than taken from
//! the `icalendar` crate.
//!
//! ```
//! use flextime_connectors::ics::{parse_calendar, write_calendar};
//!
//! let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
//! BEGIN:VEVENT\r\nUID:a1\r\nDTSTAMP:20240101T000000Z\r\n\
//! DTSTART;TZID=W. Europe Standard Time:20240301T090000\r\n\
//! DURATION:PT30M\r\nSUMMARY:Stand-up\\, daily\r\nRRULE:FREQ=DAILY;COUNT=5\r\n\
//! CATEGORIES:work\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
//! let items = parse_calendar(ics).unwrap().events().unwrap();
//! assert_eq!(items[0].title, "Stand-up, daily");
//! assert_eq!(items[0].start.tz(), Some(chrono_tz::Europe::Berlin));
//! assert_eq!(items[0].end.to_string(), "2024-03-01T09:30:00 Europe/Berlin");
//! assert_eq!(items[0].extensions["ics"]["properties"][0], "CATEGORIES:work");
//!
//! // Written and read again: the same items.
//! let again = parse_calendar(&write_calendar(&items)).unwrap().events().unwrap();
//! assert_eq!(again, items);
//! ```

pub mod feed;
pub mod itip;
pub mod mapping;
pub mod parser;
pub mod timezone;
pub mod writer;

use chrono_tz::Tz;
use flextime_core::{Error, Result, ScheduleItem};

pub use mapping::{ICS_EXTENSION, item_to_vevents};
pub use parser::{Component, Param, Property, escape_text, parse_components, unescape_text};
pub use timezone::{TzResolver, resolve_known, vtimezone};
pub use writer::{calendar_component, item_to_ics, write_calendar, write_component};

use mapping::{ReadCtx, group_by_uid, map_group};
use parser::error_at;

/// A parsed VCALENDAR: its properties and components (VEVENT, VTIMEZONE,
/// VTODO, ...). Several VCALENDARs in one stream are merged (the
/// properties of the first one are kept).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    /// Calendar properties (`VERSION`, `PRODID`, `X-WR-CALNAME` ...).
    pub properties: Vec<Property>,
    /// Top-level components in order.
    pub components: Vec<Component>,
}

/// Parses an iCalendar stream. Malformed input is an `InvalidInput` error
/// that names the line.
pub fn parse_calendar(input: &str) -> Result<Calendar> {
    let roots = parse_components(input)?;
    let mut cal = Calendar::default();
    let mut seen = false;
    for root in roots {
        if root.name != "VCALENDAR" {
            return Err(error_at(
                root.line,
                format!("expected BEGIN:VCALENDAR, found BEGIN:{}", root.name),
            ));
        }
        if !seen {
            cal.properties = root.properties;
            seen = true;
        }
        cal.components.extend(root.components);
    }
    if !seen {
        return Err(Error::invalid_input("iCalendar: no VCALENDAR in the input"));
    }
    Ok(cal)
}

impl Calendar {
    /// The calendar's name (`X-WR-CALNAME`, as Google and Apple write it).
    pub fn name(&self) -> Option<String> {
        self.property("X-WR-CALNAME").map(Property::text)
    }

    /// The calendar's default zone (`X-WR-TIMEZONE`), used for floating
    /// times; `None` when absent or unknown.
    pub fn default_tz(&self) -> Option<Tz> {
        self.property("X-WR-TIMEZONE")
            .and_then(|p| resolve_known(&p.text()))
    }

    /// The first calendar property called `name`.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The VEVENT components.
    pub fn vevents(&self) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(|c| c.name == "VEVENT")
    }

    /// One result per UID, in order of first appearance: the item built
    /// from the master VEVENT and every VEVENT with a `RECURRENCE-ID` for
    /// the same UID. A bad event fails alone.
    pub fn event_results(&self) -> Vec<Result<ScheduleItem>> {
        let mut resolver = TzResolver::new(&self.components);
        let floating = self.default_tz().unwrap_or(Tz::UTC);
        let mut ctx = ReadCtx {
            tz: &mut resolver,
            floating,
        };
        group_by_uid(&self.components)
            .into_iter()
            .map(|(master, overrides)| map_group(master, &overrides, &mut ctx))
            .collect()
    }

    /// Every event as an item (one per UID); the first bad event fails the
    /// whole call. See [`events_lossy`](Self::events_lossy) to keep the good
    /// ones.
    pub fn events(&self) -> Result<Vec<ScheduleItem>> {
        self.event_results().into_iter().collect()
    }

    /// The good events, and an error for each bad one.
    pub fn events_lossy(&self) -> (Vec<ScheduleItem>, Vec<Error>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for r in self.event_results() {
            match r {
                Ok(item) => good.push(item),
                Err(e) => bad.push(e),
            }
        }
        (good, bad)
    }

    /// The calendar as iCalendar text, component by component as parsed
    /// (no mapping).
    pub fn to_ics(&self) -> String {
        let mut cal = Component::new("VCALENDAR");
        cal.properties.clone_from(&self.properties);
        cal.components.clone_from(&self.components);
        let mut out = String::new();
        write_component(&mut out, &cal);
        out
    }
}

/// Every item of an iCalendar stream (one per UID).
pub fn items_from_ics(input: &str) -> Result<Vec<ScheduleItem>> {
    parse_calendar(input)?.events()
}

/// One calendar object resource (CalDAV's unit: the VEVENTs of exactly one
/// UID, with overrides) as one item; an object with no VEVENT or with
/// several UIDs is an `InvalidInput` error.
pub fn item_from_ics(input: &str) -> Result<ScheduleItem> {
    let mut items = items_from_ics(input)?;
    match items.len() {
        1 => Ok(items.remove(0)),
        0 => Err(Error::invalid_input("iCalendar: the object has no VEVENT")),
        n => Err(Error::invalid_input(format!(
            "iCalendar: a calendar object must hold one UID, this one holds {n}"
        ))),
    }
}
