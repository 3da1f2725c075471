//! Round trips on the examples of RFC 5545 itself (sections 3.6.1, 3.6.5,
//! 3.8.4.4, 3.8.5.2, 3.8.5.3 and 4).

mod ics_support;

use chrono::{NaiveDate, TimeZone, Utc};
use flextime_connectors::ics::parse_calendar;
use flextime_core::ErrorKind;
use flextime_core::schedule::{ItemTime, Status};
use ics_support::{by_id, fixture, kept, round_trip, tree_round_trip};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn vevent_examples_3_6_1() {
    let ics = fixture("rfc5545_3_6_1_vevent.ics");
    tree_round_trip(&parse_calendar(&ics).unwrap());
    let (items, _) = round_trip(&ics);
    assert_eq!(items.len(), 4);

    let review = by_id(&items, "19970901T130000Z-123401@example.com");
    assert_eq!(review.title, "Annual Employee Review");
    assert_eq!(
        review.start,
        ItemTime::utc(Utc.with_ymd_and_hms(1997, 9, 3, 16, 30, 0).unwrap())
    );
    assert_eq!(
        review.end,
        ItemTime::utc(Utc.with_ymd_and_hms(1997, 9, 3, 19, 0, 0).unwrap())
    );
    assert_eq!(
        review.updated_at,
        Utc.with_ymd_and_hms(1997, 9, 1, 13, 0, 0).unwrap()
    );
    assert_eq!(
        kept(review),
        ["CLASS:PRIVATE", "CATEGORIES:BUSINESS,HUMAN RESOURCES"]
    );

    // All-day with no DTEND: one day; yearly.
    let anniversary = by_id(&items, "19970901T130000Z-123403@example.com");
    assert_eq!(anniversary.start, ItemTime::AllDay(date(1997, 11, 2)));
    assert_eq!(anniversary.end, ItemTime::AllDay(date(1997, 11, 3)));
    assert_eq!(anniversary.recurrence.rrule, ["FREQ=YEARLY"]);
    assert!(
        kept(anniversary).contains(&"CATEGORIES:ANNIVERSARY,PERSONAL,SPECIAL OCCASION".to_owned())
    );

    let jazz = by_id(&items, "20070423T123432Z-541111@example.com");
    assert_eq!(jazz.start, ItemTime::AllDay(date(2007, 6, 28)));
    assert_eq!(jazz.end, ItemTime::AllDay(date(2007, 7, 9)));
    assert_eq!(kept(jazz), ["TRANSP:TRANSPARENT"]);
}

#[test]
fn vtimezone_examples_3_6_5() {
    let ics = fixture("rfc5545_3_6_5_vtimezone.ics");
    let cal = parse_calendar(&ics).unwrap();
    assert_eq!(
        cal.components
            .iter()
            .filter(|c| c.name == "VTIMEZONE")
            .count(),
        3
    );
    let fictitious = cal
        .components
        .iter()
        .find(|c| c.property("TZID").is_some_and(|p| p.value == "Fictitious"))
        .unwrap();
    assert_eq!(fictitious.components.len(), 2);
    assert_eq!(
        fictitious.components[1].property("RRULE").unwrap().value,
        "FREQ=YEARLY;BYDAY=1SU;BYMONTH=4;UNTIL=19980404T070000Z"
    );
    tree_round_trip(&cal);

    let (items, written) = round_trip(&ics);
    assert_eq!(items[0].start.tz(), Some(chrono_tz::America::New_York));
    assert_eq!(
        items[0].start.to_utc(),
        Utc.with_ymd_and_hms(2008, 3, 12, 12, 30, 0).unwrap()
    );
    // One VTIMEZONE written, for the zone used, with US rules.
    assert_eq!(written.matches("BEGIN:VTIMEZONE").count(), 1);
    assert!(written.contains("TZID:America/New_York\r\n"));
    assert!(written.contains("RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\n"));
    assert!(written.contains("RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\n"));

    // An event in the Fictitious zone (no X-LIC-LOCATION, not a known name)
    // is a clear error naming the TZID and the line.
    let bad = ics.replace(
        "DTSTART;TZID=America/New_York:20080312T083000",
        "DTSTART;TZID=Fictitious:20080312T083000",
    );
    let err = parse_calendar(&bad).unwrap().events().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("\"Fictitious\""), "{err}");
    assert!(err.message().contains("line 62"), "{err}");
}

#[test]
fn rrule_examples_3_8_5_3() {
    let ics = fixture("rfc5545_3_8_5_3_rrule.ics");
    let (items, _) = round_trip(&ics);
    assert_eq!(items.len(), 10);
    let from = Utc.with_ymd_and_hms(1996, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let until = Utc.with_ymd_and_hms(2002, 1, 1, 0, 0, 0).unwrap();
    let count = |id: &str| {
        by_id(&items, id)
            .occurrences(from, until, 1000)
            .unwrap()
            .len()
    };
    assert_eq!(count("rrule-daily-10@example.com"), 10);
    // 2 Sep .. 23 Dec 1997 inclusive.
    assert_eq!(count("rrule-daily-until@example.com"), 113);
    assert_eq!(count("rrule-every-10-days@example.com"), 5);
    // The RFC lists 25 occurrences.
    assert_eq!(count("rrule-biweekly-mwf@example.com"), 25);
    assert_eq!(count("rrule-first-friday@example.com"), 10);
    assert_eq!(count("rrule-june-july@example.com"), 10);

    // Friday the 13th: DTSTART excluded by EXDATE; the RFC's first ones.
    let f13 = by_id(&items, "rrule-friday-13th@example.com");
    assert_eq!(f13.recurrence.exdate, [f13.start]);
    let starts: Vec<String> = f13
        .occurrences(
            from,
            Utc.with_ymd_and_hms(1998, 12, 1, 0, 0, 0).unwrap(),
            10,
        )
        .unwrap()
        .iter()
        .map(|o| o.start.to_string())
        .collect();
    assert_eq!(
        starts,
        [
            "1998-02-13T09:00:00 America/New_York",
            "1998-03-13T09:00:00 America/New_York",
            "1998-11-13T09:00:00 America/New_York",
        ]
    );
    let election = by_id(&items, "rrule-election-day@example.com");
    let e: Vec<String> = election
        .occurrences(from, Utc.with_ymd_and_hms(2005, 1, 1, 0, 0, 0).unwrap(), 10)
        .unwrap()
        .iter()
        .map(|o| o.start.date().to_string())
        .collect();
    assert_eq!(e, ["1996-11-05", "2000-11-07", "2004-11-02"]);

    // RDATE list across a folded line; DATE values.
    let holidays = by_id(&items, "rdate-examples@example.com");
    assert_eq!(holidays.recurrence.rdate.len(), 11);
    assert_eq!(
        holidays.recurrence.rdate[10],
        ItemTime::AllDay(date(1997, 12, 25))
    );

    // EXDATE list; RDATE;VALUE=PERIOD is kept as an unmapped property.
    let ex = by_id(&items, "exdate-examples@example.com");
    assert_eq!(ex.recurrence.exdate.len(), 3);
    assert_eq!(ex.recurrence.rdate.len(), 1);
    assert_eq!(
        kept(ex),
        ["RDATE;VALUE=PERIOD:19960403T020000Z/19960403T040000Z,19960404T010000Z/PT3H"]
    );
    let days: Vec<String> = ex
        .occurrences(from, to, 100)
        .unwrap()
        .iter()
        .map(|o| o.start.date().to_string())
        .collect();
    assert_eq!(days, ["1996-04-01", "1996-04-05", "1996-04-10"]);
}

#[test]
fn recurrence_id_examples() {
    let ics = fixture("rfc5545_recurrence_id.ics");
    let (items, written) = round_trip(&ics);
    assert_eq!(items.len(), 2, "one item per UID");

    let weekly = by_id(&items, "weekly-review@example.com");
    assert_eq!(weekly.recurrence.overrides.len(), 1);
    let ov = &weekly.recurrence.overrides[0];
    assert_eq!(ov.recurrence_id, ItemTime::AllDay(date(1996, 4, 1)));
    assert_eq!(ov.start, Some(ItemTime::AllDay(date(1996, 4, 2))));
    // Same one-day length as the master: no explicit end.
    assert_eq!(ov.end, None);
    assert_eq!(
        ov.title.as_deref(),
        Some("Weekly review (moved to Tuesday)")
    );
    assert!(written.contains("RECURRENCE-ID;VALUE=DATE:19960401\r\n"));

    let call = by_id(&items, "noon-call@example.com");
    let ov = &call.recurrence.overrides[0];
    assert!(ov.is_cancellation());
    assert_eq!(ov.start, None);
    assert_eq!(ov.title, None);
    let from = Utc.with_ymd_and_hms(1996, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(1996, 3, 1, 0, 0, 0).unwrap();
    assert_eq!(call.occurrences(from, to, 10).unwrap().len(), 3);
    assert_eq!(call.status, Status::Confirmed);
}

#[test]
fn section_4_examples_with_vtodo_and_attendees() {
    let ics = fixture("rfc5545_4_examples.ics");
    let cal = parse_calendar(&ics).unwrap();
    tree_round_trip(&cal);
    // The VTODO (with its VALARM) is parsed and kept in the tree ...
    let todo = cal.components.iter().find(|c| c.name == "VTODO").unwrap();
    assert_eq!(todo.components[0].name, "VALARM");
    assert_eq!(
        todo.components[0].property("ATTACH").unwrap().value,
        "http://example.com/pub/audio-files/ssbanner.aud"
    );
    // ... but is not an event.
    let (items, _) = round_trip(&ics);
    assert_eq!(items.len(), 2);

    let review = by_id(&items, "guid-1.example.com");
    assert_eq!(
        review.organizer.as_ref().unwrap().email,
        "mrbig@example.com"
    );
    assert_eq!(review.attendees.len(), 1);
    assert_eq!(review.attendees[0].email, "employee-A@example.com");
    assert_eq!(review.location.as_deref(), Some("1CP Conference Room 4350"));
    assert_eq!(review.start.tz(), Some(chrono_tz::America::New_York));
    assert!(kept(review).contains(&"CREATED:19980309T130000Z".to_owned()));

    let conference = by_id(&items, "uid1@example.com");
    assert_eq!(
        conference.description.as_deref(),
        Some(
            "Networld+Interop Conference and Exhibit\nAtlanta World Congress Center\nAtlanta, Georgia"
        )
    );
    assert_eq!(conference.status, Status::Confirmed);
}
