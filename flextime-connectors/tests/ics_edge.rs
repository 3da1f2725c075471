//! Edge cases: items built in code round-trip through ICS, unicode and
//! escaping, folding, overrides across VEVENTs, one-object helpers and
//! malformed input.

mod ics_support;

use chrono::{NaiveDate, TimeZone, Utc};
use flextime_connectors::ics::{
    item_from_ics, item_to_ics, items_from_ics, parse_calendar, write_calendar,
};
use flextime_core::ErrorKind;
use flextime_core::schedule::{
    Attendee, ExternalRef, ItemKind, ItemTime, Organizer, Override, ParticipationStatus, Role,
    ScheduleItem, Status,
};
use ics_support::round_trip;

fn local(y: i32, m: u32, d: u32, h: u32, mi: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
}

fn rich_item() -> ScheduleItem {
    let berlin = chrono_tz::Europe::Berlin;
    let mut item = ScheduleItem::new(
        "booking-42",
        ItemKind::Booking,
        "Beratung: Müller, Jörg; Raum 3 \\ Nord",
        ItemTime::zoned(local(2024, 3, 25, 9, 0), berlin),
        ItemTime::zoned(local(2024, 3, 25, 9, 45), berlin),
        Utc.with_ymd_and_hms(2024, 3, 20, 12, 0, 0).unwrap(),
    );
    item.description = Some("Zeile 1\nZeile 2, mit Komma; und Semikolon\n\n日本語 🎉".into());
    item.location = Some("Friedrichstraße 1, Berlin".into());
    item.recurrence.rrule = vec!["FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6".into()];
    item.recurrence.rdate = vec![ItemTime::zoned(local(2024, 3, 30, 10, 0), berlin)];
    item.recurrence.exdate = vec![ItemTime::zoned(local(2024, 3, 27, 9, 0), berlin)];
    let mut moved = Override::new(ItemTime::zoned(local(2024, 4, 1, 9, 0), berlin));
    moved.start = Some(ItemTime::zoned(local(2024, 4, 1, 11, 0), berlin));
    moved.title = Some("Beratung (verschoben)".into());
    moved.location = Some(String::new());
    let mut longer = Override::new(ItemTime::zoned(local(2024, 4, 3, 9, 0), berlin));
    longer.end = Some(ItemTime::zoned(local(2024, 4, 3, 10, 30), berlin));
    longer.status = Some(Status::Confirmed);
    item.recurrence.overrides = vec![
        moved,
        longer,
        Override::cancel(ItemTime::zoned(local(2024, 4, 8, 9, 0), berlin)),
    ];
    item.attendees = vec![
        Attendee {
            email: "joerg@example.com".into(),
            name: Some("Müller, Jörg \"JM\"".into()),
            role: Role::Chair,
            participation_status: ParticipationStatus::Accepted,
        },
        Attendee::new("team@example.com"),
    ];
    item.organizer = Some(Organizer {
        email: "desk@example.com".into(),
        name: Some("Front desk".into()),
    });
    item.status = Status::Tentative;
    item.sequence = 7;
    item.external_refs.insert(
        "google".into(),
        ExternalRef {
            id: "abc123".into(),
            etag: Some("\"3312\"".into()),
        },
    );
    item.external_refs.insert(
        "notion".into(),
        ExternalRef {
            id: "page-9".into(),
            etag: None,
        },
    );
    item.extensions
        .insert("color".into(), serde_json::json!("blue"));
    item.extensions.insert(
        "meta".into(),
        serde_json::json!({"priority": 2, "tags": ["a,b", "c;d"], "note": "line\nbreak"}),
    );
    item
}

#[test]
fn an_item_built_in_code_survives_ics_unchanged() {
    let item = rich_item();
    assert!(item.check().is_ok(), "{:?}", item.validate());
    let ics = item_to_ics(&item);
    assert_eq!(item_from_ics(&ics).unwrap(), item);
    // The override VEVENTs carry the master's people (not from ICS).
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 4);
    assert_eq!(ics.matches("UID:booking-42\r\n").count(), 4);
    assert!(ics.contains("X-FLEXTIME-KIND:booking\r\n"));
    assert!(ics.contains("STATUS:CANCELLED\r\n"));
    assert!(ics.contains("SUMMARY:Beratung: Müller\\, Jörg\\; Raum 3 \\\\ Nord\r\n"));
    // RFC 6868 for the DQUOTE in CN and the ETag.
    let unfolded = ics.replace("\r\n ", "");
    assert!(
        unfolded.contains("CN=\"Müller, Jörg ^'JM^'\""),
        "{unfolded}"
    );
    assert!(
        unfolded.contains("X-FLEXTIME-REF;X-SYSTEM=google;X-ETAG=^'3312^':abc123\r\n"),
        "{unfolded}"
    );
    // And the whole thing is stable through a second round.
    round_trip(&ics);
}

#[test]
fn all_day_items_and_utc_times() {
    let day = |d| NaiveDate::from_ymd_opt(2024, 12, d).unwrap();
    let mut item = ScheduleItem::new(
        "holiday",
        ItemKind::TimeOff,
        "",
        ItemTime::AllDay(day(24)),
        ItemTime::AllDay(day(27)),
        Utc.with_ymd_and_hms(2024, 11, 1, 8, 30, 0).unwrap(),
    );
    item.recurrence.rrule = vec!["FREQ=YEARLY;UNTIL=20301231".into()];
    item.recurrence.exdate = vec![ItemTime::AllDay(
        NaiveDate::from_ymd_opt(2025, 12, 24).unwrap(),
    )];
    let utc = ScheduleItem::new(
        "call",
        ItemKind::Event,
        "Call",
        ItemTime::utc(Utc.with_ymd_and_hms(2024, 5, 1, 7, 0, 0).unwrap()),
        ItemTime::utc(Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap()),
        Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
    );
    let ics = write_calendar(&[item.clone(), utc.clone()]);
    assert!(ics.contains("DTSTART;VALUE=DATE:20241224\r\nDTEND;VALUE=DATE:20241227\r\n"));
    assert!(ics.contains("EXDATE;VALUE=DATE:20251224\r\n"));
    assert!(ics.contains("DTSTART:20240501T070000Z\r\n"));
    assert!(
        !ics.contains("BEGIN:VTIMEZONE"),
        "UTC and all-day need no VTIMEZONE"
    );
    assert_eq!(items_from_ics(&ics).unwrap(), [item, utc]);
}

#[test]
fn long_multibyte_lines_fold_on_char_boundaries() {
    let mut item = rich_item();
    item.title = "会議".repeat(60) + "🎉🎉🎉";
    item.description = Some("é".repeat(200));
    let ics = item_to_ics(&item);
    for line in ics.split("\r\n") {
        assert!(line.len() <= 75, "{} octets: {line}", line.len());
    }
    // Continuation lines exist, and each is valid UTF-8 by construction
    // (the output is a String); unfolding gives the title back.
    assert!(ics.contains("\r\n "));
    assert_eq!(item_from_ics(&ics).unwrap().title, item.title);
    // A file folded by someone else in the middle of a multibyte sequence
    // would not be valid UTF-8 as &str, so the parser never sees one; a
    // fold between characters is unfolded exactly.
    let folded = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTART:20240101T000000Z\r\nSUMMARY:会\r\n 議\r\n\tです\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    assert_eq!(item_from_ics(folded).unwrap().title, "会議です");
}

#[test]
fn lf_only_and_mixed_case_input() {
    let ics = "begin:vcalendar\nversion:2.0\nbegin:vevent\nuid:lower\ndtstart;value=date:20240101\nsummary:lower case\\, LF only\nend:vevent\nend:vcalendar\n";
    let item = item_from_ics(ics).unwrap();
    assert_eq!(item.title, "lower case, LF only");
    assert_eq!(
        item.end,
        ItemTime::AllDay(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap())
    );
}

#[test]
fn duration_and_floating_times() {
    let ics = "BEGIN:VCALENDAR\r\nX-WR-TIMEZONE:America/Chicago\r\nBEGIN:VEVENT\r\nUID:d\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240309T230000\r\nDURATION:P1DT2H30M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let item = item_from_ics(ics).unwrap();
    let chicago = chrono_tz::America::Chicago;
    // Floating time read in X-WR-TIMEZONE; one nominal day then 2h30 exact
    // (the DST change on 10 March falls inside: 01:30 + 2h30 = 05:00 CDT).
    assert_eq!(
        item.start,
        ItemTime::zoned(local(2024, 3, 9, 23, 0), chicago)
    );
    assert_eq!(
        item.end,
        ItemTime::zoned(local(2024, 3, 11, 1, 30), chicago)
    );
    let week = ics.replace("DURATION:P1DT2H30M", "DURATION:P2W");
    assert_eq!(
        item_from_ics(&week).unwrap().end,
        ItemTime::zoned(local(2024, 3, 23, 23, 0), chicago)
    );
}

#[test]
fn overrides_across_several_vevents_and_orphans() {
    // Overrides may come before their master and be interleaved with other
    // events; all of them are collected.
    let ics = "BEGIN:VCALENDAR\r\n\
BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID:20240103T090000Z\r\nDTSTART:20240103T100000Z\r\nDTEND:20240103T110000Z\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:other\r\nDTSTART:20240101T120000Z\r\nSUMMARY:Other\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:s\r\nDTSTART:20240101T090000Z\r\nDTEND:20240101T091500Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID:20240104T090000Z\r\nDTSTART:20240104T090000Z\r\nDTEND:20240104T091500Z\r\nSTATUS:CANCELLED\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID:20240105T090000Z\r\nDTSTART:20240105T090000Z\r\nDTEND:20240105T091500Z\r\nSUMMARY:Standup\r\nDESCRIPTION:Demo day\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:lonely\r\nRECURRENCE-ID:20240201T090000Z\r\nDTSTART:20240201T093000Z\r\nDTEND:20240201T100000Z\r\nSUMMARY:Only this one was shared\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:lonely\r\nRECURRENCE-ID:20240208T090000Z\r\nDTSTART:20240208T090000Z\r\nDTEND:20240208T093000Z\r\nSUMMARY:And this one\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let (items, written) = round_trip(ics);
    assert_eq!(
        items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["s", "other", "lonely"]
    );
    let s = &items[0];
    assert_eq!(s.recurrence.overrides.len(), 3);
    let ov = &s.recurrence.overrides;
    assert_eq!(
        ov[0].start,
        Some(ItemTime::utc(
            Utc.with_ymd_and_hms(2024, 1, 3, 10, 0, 0).unwrap()
        ))
    );
    assert_eq!(
        ov[0].end,
        Some(ItemTime::utc(
            Utc.with_ymd_and_hms(2024, 1, 3, 11, 0, 0).unwrap()
        )),
        "an hour, not the master's 15 minutes"
    );
    assert!(ov[1].is_cancellation());
    assert_eq!(ov[2].start, None);
    assert_eq!(ov[2].description.as_deref(), Some("Demo day"));
    let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap();
    assert_eq!(s.occurrences(from, to, 10).unwrap().len(), 4);
    // Instances without their master: the first is the item (and keeps its
    // RECURRENCE-ID), the second one of its overrides.
    assert_eq!(items[2].title, "Only this one was shared");
    assert_eq!(items[2].recurrence.overrides.len(), 1);
    assert_eq!(
        items[2].recurrence.overrides[0].title.as_deref(),
        Some("And this one")
    );
    assert!(written.contains("RECURRENCE-ID:20240201T090000Z\r\n"));
    assert!(written.contains("RECURRENCE-ID:20240208T090000Z\r\n"));
    // No DTEND on a date-time event: zero length.
    assert_eq!(items[1].end, items[1].start);
}

#[test]
fn one_object_helpers_check_the_uid_count() {
    let two = ics_support::fixture("rfc5545_recurrence_id.ics");
    let err = item_from_ics(&two).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("holds 2"), "{err}");
    let none = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
    assert!(
        item_from_ics(none)
            .unwrap_err()
            .message()
            .contains("no VEVENT")
    );
}

fn expect_error(ics: &str, needle: &str) {
    let err = match parse_calendar(ics) {
        Err(e) => e,
        Ok(cal) => cal.events().expect_err(needle),
    };
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains(needle), "{needle:?} not in {err}");
}

#[test]
fn malformed_input_is_a_typed_error_with_a_line() {
    let head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n";
    let tail = "END:VEVENT\r\nEND:VCALENDAR\r\n";
    let with = |line: &str| format!("{head}{line}\r\n{tail}");
    expect_error("", "no VCALENDAR");
    expect_error("hello world", "line 1");
    expect_error("BEGIN:VEVENT\r\nEND:VEVENT\r\n", "expected BEGIN:VCALENDAR");
    expect_error(
        &format!("{head}END:VCALENDAR\r\n"),
        "line 5: END:VCALENDAR does not close BEGIN:VEVENT (line 3)",
    );
    expect_error(head, "ends inside BEGIN:VEVENT");
    expect_error(&with("DTSTART:2024-01-01"), "line 5: DTSTART");
    expect_error(&with("DTSTART:20240230T100000Z"), "line 5");
    expect_error(&with("DTSTART:20240101T250000Z"), "not a valid time");
    expect_error(
        &with("DTSTART;TZID=Mars/Olympus:20240101T100000"),
        "unknown TZID \"Mars/Olympus\"",
    );
    expect_error(
        &with("DTSTART;TZID=\"unterminated:20240101T100000"),
        "unterminated quoted value",
    );
    expect_error(&with("DTSTART;=x:20240101"), "expected a parameter name");
    expect_error(&with("DTSTART;VALUE:20240101"), "has no `=`");
    expect_error(&with("SUMMARY"), "has no `:`");
    expect_error(
        &with("DTSTART:20240101T100000Z\r\nSEQUENCE:-1"),
        "line 6: SEQUENCE",
    );
    expect_error(
        &with("DTSTART:20240101T100000Z\r\nDURATION:-PT1H"),
        "negative duration",
    );
    expect_error(
        &with("DTSTART:20240101T100000Z\r\nDURATION:P1Y"),
        "not a duration",
    );
    expect_error(
        &with("DTSTART:20240101T100000Z\r\nX-FLEXTIME-EXT;X-KEY=k:{not json"),
        "not JSON",
    );
    expect_error(&with("SUMMARY:no start"), "line 3: VEVENT has no DTSTART");
    expect_error(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20240101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        "line 2: VEVENT has no UID",
    );
    expect_error(
        &format!("{head}DTSTART:20240101T100000Z\r\n{tail}").replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20240102T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
        ),
        "a second VEVENT without RECURRENCE-ID",
    );
    expect_error(&"BEGIN:VCALENDAR\r\n".repeat(20), "nested deeper");
    expect_error(
        "BEGIN:VCALENDAR\r\nX-A:a\rb\r\nEND:VCALENDAR\r\n",
        "line 2: a carriage return inside a line",
    );
    // Arbitrary bytes never panic.
    for junk in [
        "\u{0}",
        ":",
        ";",
        "BEGIN",
        "BEGIN:",
        "END:",
        "BEGIN:VCALENDAR\r\n ",
        "\r\n\t",
        "X;A=\"",
        "X;A=b\"c:d",
    ] {
        let _ = parse_calendar(junk).map(|c| c.events());
    }
}

#[test]
fn a_bad_event_fails_alone_in_lossy_mode() {
    let ics = ics_support::fixture("rfc5545_3_6_1_vevent.ics")
        .replace("DTSTART:19970401T163000Z", "DTSTART:19970401T163000");
    // A floating time is fine (read as UTC without X-WR-TIMEZONE) ...
    let (good, bad) = parse_calendar(&ics).unwrap().events_lossy();
    assert_eq!((good.len(), bad.len()), (4, 0));
    // ... a broken one fails only its event.
    let broken = ics.replace("DTSTART:19970401T163000", "DTSTART:1997040");
    let (good, bad) = parse_calendar(&broken).unwrap().events_lossy();
    assert_eq!((good.len(), bad.len()), (3, 1));
    assert!(bad[0].message().contains("line 16"), "{}", bad[0]);
}

#[test]
fn tricky_strings_round_trip_exactly() {
    let pieces = [
        ",", ";", "\\", "\n", ":", "\"", "^", "é", "🎉", " ", "\t", "\\n", "^n", "^'", "a", "会議",
    ];
    let mut checked = 0;
    for (i, a) in pieces.iter().enumerate() {
        for (j, b) in pieces.iter().enumerate() {
            let s = format!("x{a}{b}{}y", pieces[(i * 7 + j) % pieces.len()]);
            let mut item = rich_item();
            item.title.clone_from(&s);
            item.description = Some(s.repeat(9));
            item.location = Some(s.clone());
            item.attendees[0].name = Some(s.clone());
            item.organizer.as_mut().unwrap().name = Some(s.clone());
            item.recurrence.overrides[0].title = Some(format!("{s}!"));
            item.extensions.insert(s.clone(), serde_json::json!(s));
            item.external_refs.insert(
                s.clone(),
                ExternalRef {
                    id: s.clone(),
                    etag: Some(s.clone()),
                },
            );
            let ics = item_to_ics(&item);
            assert!(ics.split("\r\n").all(|l| l.len() <= 75));
            assert_eq!(item_from_ics(&ics).unwrap(), item, "{s:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, pieces.len() * pieces.len());
    // A line break in a value that is not TEXT (an unvalidated address)
    // cannot break the output.
    let mut item = rich_item();
    item.attendees[1].email = "x@example.com\r\nBEGIN:VTODO".into();
    let ics = item_to_ics(&item);
    assert!(!ics.contains("\r\nBEGIN:VTODO"));
    assert_eq!(
        item_from_ics(&ics).unwrap().attendees[1].email,
        "x@example.com  BEGIN:VTODO"
    );
}
