//! Validation of schedule items: every violation, with path and code.

use flextime_core::schedule::{ScheduleItem, ScheduleItemValidator};
use flextime_core::{ErrorKind, Validator};
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "id": "evt_1",
        "kind": "event",
        "title": "Planning",
        "start": {"date_time": "2024-03-25T09:00:00", "tz": "Europe/Berlin"},
        "end": {"date_time": "2024-03-25T10:00:00", "tz": "Europe/Berlin"},
        "updated_at": "2024-03-20T12:00:00Z"
    })
}

fn parse(v: &Value) -> Result<ScheduleItem, Vec<(String, String)>> {
    ScheduleItem::parse_json(v.to_string().as_bytes())
        .map_err(|found| found.into_iter().map(|v| (v.path, v.code)).collect())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect()
}

#[test]
fn a_valid_item_passes() {
    let item = parse(&base()).unwrap();
    assert!(item.validate().is_empty());
    assert!(item.check().is_ok());
    assert!(ScheduleItemValidator.check(&item).is_ok());
}

#[test]
fn many_violations_at_once_each_with_path_and_code() {
    let mut v = base();
    v["id"] = json!("");
    v["title"] = json!("  ");
    v["end"] = json!({"date_time": "2024-03-25T08:00:00", "tz": "Europe/Berlin"});
    v["recurrence"] = json!({
        "rrule": ["FREQ=WEEKLY;COUNT=4", "FREQ=FORTNIGHTLY", "FREQ=DAILY;BYHOUR=25"],
        "rdate": [{"date": "2024-04-01"}],
        "overrides": [
            {"recurrence_id": {"date_time": "2024-03-25T09:00:00", "tz": "Europe/Berlin"}, "title": ""}
        ]
    });
    v["attendees"] = json!([
        {"email": "ana@example.com"},
        {"email": "bo@example.com", "role": "optional"},
        {"email": "not an email"},
        {"email": "ANA@example.com"}
    ]);
    v["organizer"] = json!({"email": "@nobody"});
    v["external_refs"] = json!({"google": {"id": ""}});
    let found = ScheduleItem::parse_json(v.to_string().as_bytes()).unwrap_err();
    let got: Vec<(String, String)> = found
        .iter()
        .map(|v| (v.path.clone(), v.code.clone()))
        .collect();
    assert_eq!(
        got,
        pairs(&[
            ("id", "required"),
            ("title", "required"),
            ("end", "end_before_start"),
            ("recurrence.rdate[0]", "mismatched_value_type"),
            ("recurrence.rrule[1]", "invalid_rrule"),
            ("recurrence.rrule[2]", "invalid_rrule"),
            ("recurrence.overrides[0].title", "required"),
            ("attendees[2].email", "invalid_email"),
            ("attendees[3].email", "duplicate_attendee"),
            ("organizer.email", "invalid_email"),
            ("external_refs.google.id", "required"),
        ])
    );
    // The rrule crate's own message is kept.
    let rrule_msg = &found
        .iter()
        .find(|v| v.path == "recurrence.rrule[2]")
        .unwrap()
        .message;
    assert!(rrule_msg.contains("BYHOUR"), "{rrule_msg}");
    // check() lists them all in one invalid-input error.
    let item: ScheduleItem = serde_json::from_value(v).unwrap();
    let err = item.check().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().starts_with("invalid input: 11 violations"),
        "{err}"
    );
    assert!(err.to_string().contains("attendees[2].email"), "{err}");
    assert_eq!(ScheduleItemValidator.validate(&item).len(), 11);
}

#[test]
fn mixing_all_day_and_timed() {
    let mut v = base();
    v["end"] = json!({"date": "2024-03-26"});
    assert_eq!(parse(&v).unwrap_err(), pairs(&[("end", "mixed_all_day")]));
    let mut v = base();
    v["start"] = json!({"date": "2024-03-26"});
    v["end"] = json!({"date": "2024-03-26"});
    assert_eq!(
        parse(&v).unwrap_err(),
        pairs(&[("end", "end_before_start")])
    );
}

#[test]
fn unknown_time_zones_are_reported_with_their_paths() {
    let mut v = base();
    v["start"]["tz"] = json!("Europe/Berlinn");
    v["recurrence"] = json!({
        "rrule": ["FREQ=DAILY"],
        "exdate": [
            {"date_time": "2024-03-26T09:00:00", "tz": "Europe/Berlin"},
            {"date_time": "2024-03-27T09:00:00", "tz": "Nowhere/Town"}
        ]
    });
    v["attendees"] = json!([{"email": "x"}]);
    assert_eq!(
        parse(&v).unwrap_err(),
        pairs(&[
            ("start.tz", "unknown_time_zone"),
            ("recurrence.exdate[1].tz", "unknown_time_zone"),
            ("attendees[0].email", "invalid_email"),
        ])
    );
}

#[test]
fn structural_errors_name_the_field() {
    let mut v = base();
    v["titel"] = json!("typo");
    assert_eq!(parse(&v).unwrap_err(), pairs(&[("titel", "unknown_field")]));

    let mut v = base();
    v["attendees"] = json!([{"email": "a@example.com", "rsvp": true}]);
    assert_eq!(
        parse(&v).unwrap_err(),
        pairs(&[("attendees[0].rsvp", "unknown_field")])
    );

    let mut v = base();
    v.as_object_mut().unwrap().remove("updated_at");
    assert_eq!(parse(&v).unwrap_err(), pairs(&[("updated_at", "required")]));

    let mut v = base();
    v["start"] = json!({"date_time": "2024-03-25T09:00:00"});
    assert_eq!(parse(&v).unwrap_err(), pairs(&[("start.tz", "required")]));

    let mut v = base();
    v["kind"] = json!("meeting");
    assert_eq!(parse(&v).unwrap_err(), pairs(&[("kind", "invalid_value")]));

    let mut v = base();
    v["end"]["date_time"] = json!("yesterday");
    assert_eq!(
        parse(&v).unwrap_err(),
        pairs(&[("end.date_time", "invalid_value")])
    );

    assert_eq!(
        ScheduleItem::parse_json(b"{not json").unwrap_err()[0].code,
        "invalid_json"
    );
}

#[test]
fn overrides_must_target_real_instances() {
    let mut v = base();
    v["recurrence"] = json!({
        "rrule": ["FREQ=WEEKLY;BYDAY=MO;COUNT=4"],
        "overrides": [
            {"recurrence_id": {"date_time": "2024-04-01T09:00:00", "tz": "Europe/Berlin"}, "title": "ok"},
            {"recurrence_id": {"date_time": "2024-04-02T09:00:00", "tz": "Europe/Berlin"}, "title": "Tuesday?"},
            {"recurrence_id": {"date_time": "2024-04-01T09:00:00", "tz": "Europe/Berlin"}, "status": "cancelled"},
            {"recurrence_id": {"date_time": "2024-04-22T09:00:00", "tz": "Europe/Berlin"}, "status": "cancelled"},
            {"recurrence_id": {"date_time": "2024-04-15T09:00:00", "tz": "Europe/Berlin"},
             "start": {"date_time": "2024-04-15T12:00:00", "tz": "Europe/Berlin"},
             "end": {"date_time": "2024-04-15T11:00:00", "tz": "Europe/Berlin"}}
        ]
    });
    assert_eq!(
        parse(&v).unwrap_err(),
        pairs(&[
            (
                "recurrence.overrides[2].recurrence_id",
                "duplicate_override"
            ),
            ("recurrence.overrides[4].end", "end_before_start"),
            // 2 Apr is a Tuesday; 22 Apr is after COUNT=4 ended (25 Mar .. 15 Apr).
            (
                "recurrence.overrides[1].recurrence_id",
                "unknown_recurrence_id"
            ),
            (
                "recurrence.overrides[3].recurrence_id",
                "unknown_recurrence_id"
            ),
        ])
    );
}

#[test]
fn overrides_on_a_single_item_and_all_day_type_checks() {
    let mut v = base();
    v["recurrence"] = json!({
        "overrides": [
            {"recurrence_id": {"date_time": "2024-03-25T09:00:00", "tz": "Europe/Berlin"}, "title": "fine"},
            {"recurrence_id": {"date": "2024-03-26"}, "title": "wrong type"}
        ]
    });
    assert_eq!(
        parse(&v).unwrap_err(),
        pairs(&[
            (
                "recurrence.overrides[1].recurrence_id",
                "mismatched_value_type"
            ),
            (
                "recurrence.overrides[1].recurrence_id",
                "unknown_recurrence_id"
            ),
        ])
    );
}

#[test]
fn titles_are_optional_for_time_off_and_availability() {
    for kind in ["time_off", "availability"] {
        let mut v = base();
        v["kind"] = json!(kind);
        v.as_object_mut().unwrap().remove("title");
        assert!(parse(&v).is_ok(), "{kind}");
    }
    for kind in ["event", "booking", "shift"] {
        let mut v = base();
        v["kind"] = json!(kind);
        v.as_object_mut().unwrap().remove("title");
        assert_eq!(
            parse(&v).unwrap_err(),
            pairs(&[("title", "required")]),
            "{kind}"
        );
    }
}

#[test]
fn rrule_until_must_be_utc_for_zoned_starts() {
    let mut v = base();
    v["recurrence"] = json!({"rrule": ["FREQ=DAILY;UNTIL=20240401T090000", "RRULE:FREQ=DAILY;UNTIL=20240401T090000Z"]});
    assert_eq!(
        parse(&v).unwrap_err(),
        pairs(&[("recurrence.rrule[0]", "invalid_rrule")])
    );
}

#[test]
fn out_of_range_years() {
    let mut item = parse(&base()).unwrap();
    let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
    item.start = flextime_core::ItemTime::zoned(far.and_hms_opt(9, 0, 0).unwrap(), chrono_tz::UTC);
    item.recurrence
        .exdate
        .push(flextime_core::ItemTime::all_day(far));
    let got: Vec<(String, String)> = item
        .validate()
        .into_iter()
        .map(|v| (v.path, v.code))
        .collect();
    assert_eq!(
        got,
        pairs(&[
            ("start", "out_of_range"),
            ("recurrence.exdate[0]", "out_of_range")
        ])
    );
    // Expansion refuses rather than guessing.
    let from = chrono::Utc::now();
    assert!(
        item.occurrences(from, from + chrono::Duration::days(1), 10)
            .is_err()
    );
}
