//! iTIP (RFC 5546) scheduling messages: a VCALENDAR with a `METHOD`, as
//! sent by email to invite people to an event (`REQUEST`) or to call it off
//! (`CANCEL`).
//!
//! - [`request`]: `METHOD:REQUEST`, the item's VEVENTs with the given
//!   `ORGANIZER`, every attendee other than the organizer (and other than a
//!   `NON-PARTICIPANT`) with `RSVP=TRUE`, and the item's `SEQUENCE`.
//! - [`cancel`]: `METHOD:CANCEL`, the master VEVENT only (the whole event is
//!   cancelled, overrides included) with `STATUS:CANCELLED` and `SEQUENCE`
//!   one above the item's, so clients apply it over the last invitation.
//! - [`Calendar::method`](super::Calendar::method) reads the method back.
//!
//! ```
//! use chrono::{NaiveDate, TimeZone, Utc};
//! use flextime_core::schedule::{Attendee, ItemKind, ItemTime, Organizer, ScheduleItem};
//! use flextime_connectors::ics::{itip, parse_calendar};
//!
//! let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
//! let mut item = ScheduleItem::new(
//!     "booking-7",
//!     ItemKind::Booking,
//!     "Haircut",
//!     ItemTime::zoned(day.and_hms_opt(9, 0, 0).unwrap(), chrono_tz::Europe::Paris),
//!     ItemTime::zoned(day.and_hms_opt(10, 0, 0).unwrap(), chrono_tz::Europe::Paris),
//!     Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
//! );
//! item.attendees.push(Attendee::new("ana@example.com"));
//! item.sequence = 2;
//! let organizer = Organizer { email: "desk@example.com".into(), name: None };
//!
//! let invite = parse_calendar(&itip::request(&item, &organizer).unwrap()).unwrap();
//! assert_eq!(invite.method(), Some(itip::Method::Request));
//! let event = invite.vevents().next().unwrap();
//! assert_eq!(event.property("SEQUENCE").unwrap().value, "2");
//! assert_eq!(event.property("ATTENDEE").unwrap().param("RSVP"), Some("TRUE"));
//!
//! item.organizer = Some(organizer);
//! let cancel = parse_calendar(&itip::cancel(&item).unwrap()).unwrap();
//! assert_eq!(cancel.method(), Some(itip::Method::Cancel));
//! let event = cancel.vevents().next().unwrap();
//! assert_eq!(event.property("STATUS").unwrap().value, "CANCELLED");
//! assert_eq!(event.property("SEQUENCE").unwrap().value, "3");
//! ```

use std::fmt;
use std::str::FromStr;

use flextime_core::schedule::{Organizer, ScheduleItem, Status};
use flextime_core::{Error, Result};

use super::parser::{Component, Property};
use super::writer::{calendar_component, write_component};

/// An iTIP method (RFC 5546 section 1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Publishes a calendar; no interaction expected.
    Publish,
    /// Invites attendees, or updates an invitation.
    Request,
    /// An attendee's answer.
    Reply,
    /// Adds instances to a recurring event.
    Add,
    /// Cancels an event or some of its instances.
    Cancel,
    /// An attendee asks for the latest version.
    Refresh,
    /// An attendee proposes a change.
    Counter,
    /// The organizer declines a counter-proposal.
    DeclineCounter,
}

impl Method {
    /// The `METHOD` value (`REQUEST`, `CANCEL` ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "PUBLISH",
            Self::Request => "REQUEST",
            Self::Reply => "REPLY",
            Self::Add => "ADD",
            Self::Cancel => "CANCEL",
            Self::Refresh => "REFRESH",
            Self::Counter => "COUNTER",
            Self::DeclineCounter => "DECLINECOUNTER",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Error;

    /// Parses a `METHOD` value, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self> {
        let all = [
            Self::Publish,
            Self::Request,
            Self::Reply,
            Self::Add,
            Self::Cancel,
            Self::Refresh,
            Self::Counter,
            Self::DeclineCounter,
        ];
        all.into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::invalid_input(format!("iCalendar: unknown METHOD {s:?}")))
    }
}

impl super::Calendar {
    /// The calendar's `METHOD` (iTIP), if it has a known one.
    pub fn method(&self) -> Option<Method> {
        self.property("METHOD").and_then(|p| p.value.parse().ok())
    }
}

fn check_item(item: &ScheduleItem) -> Result<()> {
    let violations = item.validate();
    if violations.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    Err(Error::invalid_input(format!(
        "iTIP: the item cannot be sent: {}",
        list.join("; ")
    )))
}

fn check_address(what: &str, email: &str) -> Result<()> {
    if email_address::EmailAddress::is_valid(email) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "iTIP: the {what} {email:?} is not an email address"
        )))
    }
}

fn is_address(value: &str, email: &str) -> bool {
    let value = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("mailto:"))
        .map_or(value, |_| &value[7..]);
    value.eq_ignore_ascii_case(email)
}

/// The item as an iTIP `REQUEST` from `organizer` (see the [module](self)
/// docs). The item must be valid and have at least one attendee; the
/// organizer replaces the item's own.
pub fn request(item: &ScheduleItem, organizer: &Organizer) -> Result<String> {
    check_address("organizer", &organizer.email)?;
    if item.attendees.is_empty() {
        return Err(Error::invalid_input(
            "iTIP: a REQUEST needs at least one attendee",
        ));
    }
    let mut item = item.clone();
    item.organizer = Some(organizer.clone());
    check_item(&item)?;
    let mut cal = calendar_component(
        std::slice::from_ref(&item),
        &[Property::new("METHOD", Method::Request.as_str())],
    );
    for event in cal.components.iter_mut().filter(|c| c.name == "VEVENT") {
        for p in event.properties.iter_mut().filter(|p| p.name == "ATTENDEE") {
            let asks = p.param("RSVP").is_none()
                && !is_address(&p.value, &organizer.email)
                && p.param("ROLE") != Some("NON-PARTICIPANT");
            if asks {
                p.params.push(super::parser::Param::new("RSVP", "TRUE"));
            }
        }
    }
    Ok(to_text(&cal))
}

/// The item as an iTIP `CANCEL` of the whole event (see the [module](self)
/// docs). The item must be valid and have an organizer; its `SEQUENCE` must
/// leave room for one more.
pub fn cancel(item: &ScheduleItem) -> Result<String> {
    let Some(organizer) = &item.organizer else {
        return Err(Error::invalid_input(
            "iTIP: a CANCEL needs the item's organizer",
        ));
    };
    check_address("organizer", &organizer.email)?;
    check_item(item)?;
    let mut item = item.clone();
    item.status = Status::Cancelled;
    item.sequence = item
        .sequence
        .checked_add(1)
        .ok_or_else(|| Error::invalid_input("iTIP: SEQUENCE is at its maximum"))?;
    // The whole event goes: no instance survives, so no override is sent.
    item.recurrence.overrides.clear();
    let cal = calendar_component(
        std::slice::from_ref(&item),
        &[Property::new("METHOD", Method::Cancel.as_str())],
    );
    Ok(to_text(&cal))
}

fn to_text(cal: &Component) -> String {
    let mut out = String::new();
    write_component(&mut out, cal);
    out
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use flextime_core::ErrorKind;
    use flextime_core::schedule::{Attendee, ItemKind, ItemTime, Override, Role};

    use super::*;
    use crate::ics::parse_calendar;

    fn item() -> ScheduleItem {
        let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        let mut item = ScheduleItem::new(
            "booking-7@flextime",
            ItemKind::Booking,
            "Haircut",
            ItemTime::zoned(day.and_hms_opt(9, 0, 0).unwrap(), chrono_tz::Europe::Paris),
            ItemTime::zoned(day.and_hms_opt(10, 0, 0).unwrap(), chrono_tz::Europe::Paris),
            Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        );
        item.attendees.push(Attendee::new("ana@example.com"));
        let mut watcher = Attendee::new("room@example.com");
        watcher.role = Role::NonParticipant;
        item.attendees.push(watcher);
        item.attendees.push(Attendee::new("desk@example.com"));
        item.sequence = 4;
        item
    }

    fn desk() -> Organizer {
        Organizer {
            email: "desk@example.com".into(),
            name: Some("Front desk".into()),
        }
    }

    #[test]
    fn request_has_method_organizer_rsvp_and_sequence() {
        let text = request(&item(), &desk()).unwrap();
        let cal = parse_calendar(&text).unwrap();
        assert_eq!(cal.method(), Some(Method::Request));
        assert_eq!(cal.property("METHOD").unwrap().value, "REQUEST");
        let ev = cal.vevents().next().unwrap();
        assert_eq!(ev.property("UID").unwrap().value, "booking-7@flextime");
        assert_eq!(ev.property("SEQUENCE").unwrap().value, "4");
        let org = ev.property("ORGANIZER").unwrap();
        assert_eq!(org.value, "mailto:desk@example.com");
        assert_eq!(org.param("CN"), Some("Front desk"));
        let rsvp: Vec<_> = ev
            .properties_named("ATTENDEE")
            .map(|p| (p.value.as_str(), p.param("RSVP")))
            .collect();
        assert_eq!(
            rsvp,
            [
                ("mailto:ana@example.com", Some("TRUE")),
                ("mailto:room@example.com", None),
                ("mailto:desk@example.com", None),
            ]
        );
        // The item reads back as itself, with the organizer set.
        let back = cal.events().unwrap().remove(0);
        assert_eq!(back.organizer, Some(desk()));
        assert_eq!(back.sequence, 4);
    }

    #[test]
    fn cancel_bumps_sequence_and_drops_overrides() {
        let mut it = item();
        it.organizer = Some(desk());
        it.recurrence.rrule.push("FREQ=DAILY;COUNT=3".into());
        let day = NaiveDate::from_ymd_opt(2024, 5, 2).unwrap();
        it.recurrence
            .overrides
            .push(Override::cancel(ItemTime::zoned(
                day.and_hms_opt(9, 0, 0).unwrap(),
                chrono_tz::Europe::Paris,
            )));
        let cal = parse_calendar(&cancel(&it).unwrap()).unwrap();
        assert_eq!(cal.method(), Some(Method::Cancel));
        let events: Vec<_> = cal.vevents().collect();
        assert_eq!(events.len(), 1, "only the master VEVENT");
        assert_eq!(events[0].property("STATUS").unwrap().value, "CANCELLED");
        assert_eq!(events[0].property("SEQUENCE").unwrap().value, "5");
        assert!(events[0].property("ORGANIZER").is_some());
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let mut no_one = item();
        no_one.attendees.clear();
        assert_eq!(
            request(&no_one, &desk()).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let bad = Organizer {
            email: "not an address".into(),
            name: None,
        };
        assert_eq!(
            request(&item(), &bad).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(cancel(&item()).unwrap_err().kind(), ErrorKind::InvalidInput);
        let mut max = item();
        max.organizer = Some(desk());
        max.sequence = u32::MAX;
        assert_eq!(cancel(&max).unwrap_err().kind(), ErrorKind::InvalidInput);
        let mut invalid = item();
        invalid.attendees[0].email = "nope".into();
        assert_eq!(
            request(&invalid, &desk()).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!("cancel".parse::<Method>().unwrap(), Method::Cancel);
        assert!("FOO".parse::<Method>().is_err());
    }
}
