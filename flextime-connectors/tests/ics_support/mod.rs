//! Helpers shared by the ICS tests.
#![allow(dead_code)]

use flextime_connectors::ics::{Calendar, parse_calendar, write_calendar};
use flextime_core::ScheduleItem;

/// A fixture's text.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/ics/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses, maps, writes, parses and maps again; asserts both mappings are
/// equal and returns the items and the written text.
pub fn round_trip(ics: &str) -> (Vec<ScheduleItem>, String) {
    let first = parse_calendar(ics).expect("parse").events().expect("map");
    let written = write_calendar(&first);
    assert!(written.ends_with("END:VCALENDAR\r\n"));
    for line in written.split("\r\n") {
        assert!(line.len() <= 75, "line longer than 75 octets: {line:?}");
        assert!(!line.contains('\n'), "bare LF in output: {line:?}");
    }
    let second = parse_calendar(&written)
        .expect("parse written")
        .events()
        .expect("map written");
    assert_eq!(first, second, "parse -> write -> parse changed the items");
    // And writing again gives the same text.
    assert_eq!(write_calendar(&second), written);
    (first, written)
}

/// The raw tree written back as parsed: parse(to_ics(x)) writes the same.
pub fn tree_round_trip(cal: &Calendar) {
    let text = cal.to_ics();
    let again = parse_calendar(&text).expect("parse to_ics");
    assert_eq!(again.to_ics(), text);
    assert_eq!(again.components.len(), cal.components.len());
}

/// The item with `id`.
pub fn by_id<'a>(items: &'a [ScheduleItem], id: &str) -> &'a ScheduleItem {
    items
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no item {id}"))
}

/// The kept iCalendar properties of an item (`extensions.ics.properties`).
pub fn kept(item: &ScheduleItem) -> Vec<String> {
    item.extensions
        .get("ics")
        .and_then(|e| e.get("properties"))
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
