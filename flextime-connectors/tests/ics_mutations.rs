//! Every fixture, cut short and with characters replaced at many places:
//! parsing never panics, errors are typed, and every event that still maps
//! survives write -> parse unchanged.

mod ics_support;

use flextime_connectors::ics::{parse_calendar, write_calendar};
use flextime_core::ErrorKind;

const FIXTURES: &[&str] = &[
    "rfc5545_3_6_1_vevent.ics",
    "rfc5545_3_6_5_vtimezone.ics",
    "rfc5545_3_8_5_3_rrule.ics",
    "rfc5545_recurrence_id.ics",
    "rfc5545_4_examples.ics",
    "google_export.ics",
    "outlook_export.ics",
    "apple_export.ics",
    "outlook_customized_tz.ics",
];

const REPLACEMENTS: &[&str] = &[
    ":", ";", "\"", "\r\n", " ", "é", "\\", ",", "=", "^", "Z", "9",
];

fn check(text: &str, mapped: &mut usize, rejected: &mut usize) {
    let cal = match parse_calendar(text) {
        Ok(cal) => cal,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            *rejected += 1;
            return;
        }
    };
    let (items, errors) = cal.events_lossy();
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    *rejected += errors.len();
    *mapped += items.len();
    if items.is_empty() {
        return;
    }
    let written = write_calendar(&items);
    let again = parse_calendar(&written)
        .unwrap_or_else(|e| panic!("our own output does not parse: {e}\n{written}"))
        .events()
        .unwrap_or_else(|e| panic!("our own output does not map: {e}\n{written}"));
    assert_eq!(again, items, "round trip changed a mutated input:\n{text}");
}

/// What the writer makes of an item with every field set (X-FLEXTIME-*
/// properties, overrides without ICS data, extensions).
fn written_by_us() -> String {
    let json = r#"{
      "id": "evt_42", "kind": "booking", "title": "Team stand-up",
      "description": "Daily sync", "location": "Room 3",
      "start": {"date_time": "2024-03-25T09:00:00", "tz": "Europe/Berlin"},
      "end": {"date_time": "2024-03-25T09:15:00", "tz": "Europe/Berlin"},
      "recurrence": {
        "rrule": ["FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=12"],
        "rdate": [{"date_time": "2024-03-30T10:00:00", "tz": "Europe/Berlin"}],
        "exdate": [{"date_time": "2024-03-27T09:00:00", "tz": "Europe/Berlin"}],
        "overrides": [
          {"recurrence_id": {"date_time": "2024-03-29T09:00:00", "tz": "Europe/Berlin"},
           "start": {"date_time": "2024-03-29T11:00:00", "tz": "Europe/Berlin"},
           "title": "Stand-up (moved)"},
          {"recurrence_id": {"date_time": "2024-04-01T09:00:00", "tz": "Europe/Berlin"},
           "status": "cancelled"}
        ]
      },
      "attendees": [{"email": "ana@example.com", "name": "Ana", "role": "chair", "participation_status": "accepted"}],
      "organizer": {"email": "ana@example.com", "name": "Ana"},
      "external_refs": {"google": {"id": "abc123", "etag": "\"3312\""}},
      "updated_at": "2024-03-20T12:00:00Z", "sequence": 3,
      "extensions": {"color": "blue", "priority": 2}
    }"#;
    let item = flextime_core::ScheduleItem::parse_json(json.as_bytes()).unwrap();
    flextime_connectors::ics::item_to_ics(&item)
}

#[test]
fn mutated_fixtures_never_panic_and_what_maps_round_trips() {
    let (mut mapped, mut rejected) = (0, 0);
    let inputs = FIXTURES
        .iter()
        .map(|name| ics_support::fixture(name))
        .chain([written_by_us()]);
    for text in inputs {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(3).collect();
        for (n, &i) in boundaries.iter().enumerate() {
            check(&text[..i], &mut mapped, &mut rejected);
            let next = text[i..].chars().next().map_or(i, |c| i + c.len_utf8());
            let with = REPLACEMENTS[n % REPLACEMENTS.len()];
            let mutated = format!("{}{with}{}", &text[..i], &text[next..]);
            check(&mutated, &mut mapped, &mut rejected);
        }
    }
    // Both outcomes happen a lot: the mutations are not all harmless.
    assert!(mapped > 1000, "mapped {mapped}");
    assert!(rejected > 500, "rejected {rejected}");
}
