//! ICS the way Google Calendar, Outlook and Apple Calendar export it.

mod ics_support;

use chrono::{NaiveDate, TimeZone, Utc};
use flextime_connectors::ics::parse_calendar;
use flextime_core::schedule::{ItemTime, ParticipationStatus, Role, Status};
use ics_support::{by_id, fixture, kept, round_trip, tree_round_trip};

fn local(y: i32, m: u32, d: u32, h: u32, mi: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
}

#[test]
fn google_calendar_export() {
    let ics = fixture("google_export.ics");
    let cal = parse_calendar(&ics).unwrap();
    assert_eq!(cal.name().as_deref(), Some("Team Berlin"));
    assert_eq!(cal.default_tz(), Some(chrono_tz::Europe::Berlin));
    tree_round_trip(&cal);
    let (items, written) = round_trip(&ics);
    assert_eq!(items.len(), 3, "master + 2 overrides fold into one item");

    let sync = by_id(&items, "7kukuqrfedlm2f9t0vr42qlm4s@google.com");
    let berlin = chrono_tz::Europe::Berlin;
    assert_eq!(
        sync.start,
        ItemTime::zoned(local(2024, 3, 4, 10, 0), berlin)
    );
    assert_eq!(
        sync.recurrence.rrule,
        ["FREQ=WEEKLY;WKST=MO;UNTIL=20240429T075959Z;BYDAY=MO"]
    );
    assert_eq!(
        sync.recurrence.exdate,
        [ItemTime::zoned(local(2024, 4, 1, 10, 0), berlin)]
    );
    assert_eq!(sync.sequence, 2);
    assert_eq!(
        sync.updated_at,
        Utc.with_ymd_and_hms(2024, 3, 20, 10, 15, 0).unwrap()
    );
    assert_eq!(sync.location.as_deref(), Some(""));
    assert!(sync.description.as_deref().unwrap().starts_with("Weekly sync of the Berlin team.\nJoin with Google Meet: https://meet.google.com/abc-defg-hij\n\n-::~"));
    assert_eq!(
        sync.organizer.as_ref().unwrap().name.as_deref(),
        Some("Ana Lima")
    );
    assert_eq!(sync.attendees.len(), 3);
    assert_eq!(
        sync.attendees[0].participation_status,
        ParticipationStatus::Accepted
    );
    assert_eq!(sync.attendees[1].email, "bo@example.com");
    assert_eq!(sync.attendees[2].name.as_deref(), Some("Chloé Dubois"));
    assert_eq!(sync.attendees[2].role, Role::Optional);
    assert_eq!(
        sync.attendees[2].participation_status,
        ParticipationStatus::Tentative
    );
    // Attendee parameters beyond CN / ROLE / PARTSTAT are kept per address.
    assert_eq!(
        sync.extensions["ics"]["attendee_params"]["bo@example.com"],
        "CUTYPE=INDIVIDUAL;X-NUM-GUESTS=0"
    );
    assert!(written.replace("\r\n ", "").contains(
        "ATTENDEE;CN=bo@example.com;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CUTYPE=INDIVIDUAL;X-NUM-GUESTS=0:mailto:bo@example.com\r\n"
    ));
    // Google's own properties and the reminder are kept and written back.
    let k = kept(sync);
    assert!(
        k.contains(&"X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij".to_owned()),
        "{k:?}"
    );
    assert!(k.contains(&"TRANSP:OPAQUE".to_owned()));
    assert!(
        k.contains(&"DTSTAMP:20240405T120000Z".to_owned()),
        "DTSTAMP differs from LAST-MODIFIED: kept"
    );
    assert_eq!(
        sync.extensions["ics"]["components"][0],
        serde_json::json!([
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:This is an event reminder",
            "TRIGGER:-P0DT0H10M0S",
            "END:VALARM"
        ])
    );
    assert!(written.contains("X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij\r\n"));
    assert!(written.contains("BEGIN:VALARM\r\nACTION:DISPLAY\r\n"));

    // Both overrides: one moved (and retitled), one cancelled.
    let ovs = &sync.recurrence.overrides;
    assert_eq!(ovs.len(), 2);
    assert_eq!(
        ovs[0].recurrence_id,
        ItemTime::zoned(local(2024, 3, 11, 10, 0), berlin)
    );
    assert_eq!(
        ovs[0].start,
        Some(ItemTime::zoned(local(2024, 3, 11, 14, 0), berlin))
    );
    assert_eq!(ovs[0].end, None, "same 30 minutes as the master");
    assert_eq!(ovs[0].title.as_deref(), Some("Weekly sync (afternoon)"));
    assert_eq!(ovs[0].description, None, "same as the master");
    assert!(ovs[1].is_cancellation());
    // The override's own attendee list and SEQUENCE are kept for it.
    let ov_extra =
        &sync.extensions["ics"]["overrides"]["2024-03-11T10:00:00 Europe/Berlin"]["properties"];
    assert_eq!(ov_extra[0], "SEQUENCE:3");
    assert!(
        ov_extra
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_str().unwrap().starts_with("ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Ana Lima;X-NUM-GUESTS=0"))
    );
    // Written back as three VEVENTs with the same UID.
    assert_eq!(
        written
            .matches("UID:7kukuqrfedlm2f9t0vr42qlm4s@google.com\r\n")
            .count(),
        3
    );

    let from = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    let starts: Vec<String> = sync
        .occurrences(from, to, 20)
        .unwrap()
        .iter()
        .map(|o| o.start.to_string())
        .collect();
    assert_eq!(
        starts,
        [
            "2024-03-04T10:00:00 Europe/Berlin",
            "2024-03-11T14:00:00 Europe/Berlin",
            "2024-03-25T10:00:00 Europe/Berlin",
            "2024-04-08T10:00:00 Europe/Berlin",
            "2024-04-15T10:00:00 Europe/Berlin",
            "2024-04-22T10:00:00 Europe/Berlin",
        ]
    );

    let friday = by_id(&items, "20240329_60o30d1l6go30c1g60o30dr56k@google.com");
    assert!(friday.is_all_day());
    assert_eq!(
        friday.end,
        ItemTime::AllDay(NaiveDate::from_ymd_opt(2024, 3, 30).unwrap())
    );
    let lunch = by_id(&items, "0a1b2c3d4e5f6g7h8i9j0k1l2m@google.com");
    assert_eq!(lunch.start.tz(), Some(chrono_tz::UTC));
    assert_eq!(lunch.status, Status::Tentative);
    assert_eq!(
        lunch.location.as_deref(),
        Some("Alexanderplatz 1, 10178 Berlin, Germany")
    );
    assert!(written.contains("LOCATION:Alexanderplatz 1\\, 10178 Berlin\\, Germany\r\n"));
}

#[test]
fn outlook_export_with_windows_zones() {
    let ics = fixture("outlook_export.ics");
    let cal = parse_calendar(&ics).unwrap();
    tree_round_trip(&cal);
    let (items, written) = round_trip(&ics);
    assert_eq!(items.len(), 3);
    let uid = "040000008200E00074C5B7101A82E00800000000D0C8F1A2D06BDA01000000000000000010000000A1B2C3D4E5F60718293A4B5C6D7E8F90";
    let budget = by_id(&items, uid);
    // "W. Europe Standard Time" is Europe/Berlin.
    let berlin = chrono_tz::Europe::Berlin;
    assert_eq!(
        budget.start,
        ItemTime::zoned(local(2024, 3, 5, 10, 0), berlin)
    );
    assert_eq!(
        budget.end,
        ItemTime::zoned(local(2024, 3, 5, 11, 0), berlin)
    );
    assert_eq!(budget.title, "Budget review");
    assert_eq!(
        budget.extensions["ics"]["params"]["SUMMARY"],
        "LANGUAGE=en-us"
    );
    assert!(written.contains("SUMMARY;LANGUAGE=en-us:Budget review\r\n"));
    assert_eq!(
        budget.description.as_deref(),
        Some("Agenda:\n1. Budget\n2. Hiring\n\n")
    );
    assert_eq!(budget.attendees[1].name.as_deref(), Some("Lee, Sam"));
    assert_eq!(budget.attendees[1].email, "sam.lee@example.com");
    assert_eq!(budget.attendees[1].role, Role::Optional);
    assert_eq!(budget.exdate_count(), 1);
    let k = kept(budget);
    for expected in [
        "X-MICROSOFT-CDO-BUSYSTATUS:BUSY",
        "X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY",
        "X-MS-OLK-CONFTYPE:0",
        "PRIORITY:5",
        "CLASS:PUBLIC",
        "X-ALT-DESC;FMTTYPE=text/html:<html><body><p>Agenda:</p><ol><li>Budget</li><li>Hiring</li></ol></body></html>",
    ] {
        assert!(k.contains(&expected.to_owned()), "{expected} not in {k:?}");
    }
    let ov = &budget.recurrence.overrides[0];
    assert_eq!(
        ov.recurrence_id,
        ItemTime::zoned(local(2024, 3, 12, 10, 0), berlin)
    );
    assert_eq!(
        ov.start,
        Some(ItemTime::zoned(local(2024, 3, 12, 14, 0), berlin))
    );
    assert_eq!(ov.location.as_deref(), Some("Room 2.01"));
    assert_eq!(ov.title, None);
    // Written with IANA TZIDs and one VTIMEZONE per zone.
    assert!(written.contains("DTSTART;TZID=Europe/Berlin:20240305T100000\r\n"));
    assert!(written.contains("DTSTART;TZID=America/Los_Angeles:20240322T090000\r\n"));
    assert_eq!(written.matches("BEGIN:VTIMEZONE").count(), 2);
    // The long UID is folded on output and unfolded on input.
    assert!(written.contains(&format!("UID:{}\r\n {}\r\n", &uid[..71], &uid[71..])));

    let easter = items.iter().find(|i| i.title == "Easter Monday").unwrap();
    assert!(easter.is_all_day());
    assert!(kept(easter).contains(&"X-MICROSOFT-CDO-ALLDAYEVENT:TRUE".to_owned()));
    let seattle = items
        .iter()
        .find(|i| i.title == "Call with the Seattle office")
        .unwrap();
    assert_eq!(seattle.start.tz(), Some(chrono_tz::America::Los_Angeles));
    assert_eq!(
        seattle.start.to_utc(),
        Utc.with_ymd_and_hms(2024, 3, 22, 16, 0, 0).unwrap()
    );
    assert!(kept(seattle).contains(&"X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0".to_owned()));
}

#[test]
fn apple_calendar_export() {
    let ics = fixture("apple_export.ics");
    let cal = parse_calendar(&ics).unwrap();
    assert_eq!(cal.name().as_deref(), Some("Home"));
    assert_eq!(
        cal.property("X-APPLE-CALENDAR-COLOR").unwrap().value,
        "#1BADF8"
    );
    tree_round_trip(&cal);
    let (items, written) = round_trip(&ics);
    assert_eq!(items.len(), 3);

    let dinner = by_id(&items, "5A1F4C1E-7B0A-4E8E-9C1D-2F3E4A5B6C7D");
    assert_eq!(dinner.title, "Dinner 🍝 with Zoë");
    assert_eq!(
        dinner.location.as_deref(),
        Some("Café Reveille\n4076 18th St, San Francisco CA 94114, United States")
    );
    assert_eq!(dinner.sequence, 1);
    assert_eq!(dinner.attendees[0].name.as_deref(), Some("Zoë Park"));
    assert_eq!(
        dinner.attendees[0].participation_status,
        ParticipationStatus::Accepted
    );
    // A non-mailto calendar address is kept whole.
    assert_eq!(
        dinner.attendees[1].email,
        "urn:uuid:3C5E8F2A-1B4D-4E6F-8A9B-0C1D2E3F4A5B"
    );
    assert_eq!(dinner.attendees[1].role, Role::Chair);
    assert_eq!(
        dinner.extensions["ics"]["attendee_params"]["zoe@example.com"],
        "CUTYPE=INDIVIDUAL;EMAIL=\"zoe@example.com\""
    );
    assert_eq!(
        dinner.extensions["ics"]["organizer_params"],
        "EMAIL=\"me@example.com\""
    );
    assert!(
        written
            .replace("\r\n ", "")
            .contains(":urn:uuid:3C5E8F2A-1B4D-4E6F-8A9B-0C1D2E3F4A5B\r\n")
    );
    let k = kept(dinner);
    assert!(k.contains(&"X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC".to_owned()));
    assert!(k.contains(&r#"X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS="4076 18th St, San Francisco CA 94114, United States";X-APPLE-RADIUS=70.58;X-TITLE="Café Reveille":geo:37.760832,-122.434213"#.to_owned()), "{k:?}");
    let alarm = &dinner.extensions["ics"]["components"][0];
    assert_eq!(alarm[0], "BEGIN:VALARM");
    assert!(
        alarm
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("X-APPLE-DEFAULT-ALARM:TRUE"))
    );
    assert!(
        alarm
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("ACKNOWLEDGED:20240410T173000Z"))
    );

    let tax = by_id(&items, "B2C3D4E5-F6A7-4B8C-9D0E-1F2A3B4C5D6E");
    assert_eq!(
        tax.start,
        ItemTime::AllDay(NaiveDate::from_ymd_opt(2024, 4, 15).unwrap())
    );
    assert!(written.contains("DTSTART;VALUE=DATE:20240415\r\n"));

    let rent = by_id(&items, "C3D4E5F6-A7B8-4C9D-0E1F-2A3B4C5D6E7F");
    let la = chrono_tz::America::Los_Angeles;
    let ov = &rent.recurrence.overrides[0];
    assert_eq!(
        ov.recurrence_id,
        ItemTime::zoned(local(2024, 4, 1, 8, 0), la)
    );
    assert_eq!(ov.start, Some(ItemTime::zoned(local(2024, 4, 1, 9, 0), la)));
    assert_eq!(ov.title.as_deref(), Some("Pay rent (late)"));
}

trait ExdateCount {
    fn exdate_count(&self) -> usize;
}

impl ExdateCount for flextime_core::ScheduleItem {
    fn exdate_count(&self) -> usize {
        self.recurrence.exdate.len()
    }
}

#[test]
fn exchange_invite_with_a_customized_time_zone() {
    let ics = fixture("outlook_customized_tz.ics");
    let (items, written) = round_trip(&ics);
    let invite = &items[0];
    // "Customized Time Zone" has no location hint: its rules (last Sunday
    // of March / October, +01:00 / +02:00) are Central European time.
    assert_eq!(invite.start.tz(), Some(chrono_tz::Europe::Berlin));
    assert_eq!(
        invite.start.to_utc(),
        Utc.with_ymd_and_hms(2025, 6, 2, 12, 0, 0).unwrap()
    );
    assert_eq!(
        invite.end,
        ItemTime::zoned(local(2025, 6, 2, 15, 30), chrono_tz::Europe::Berlin)
    );
    assert_eq!(invite.description.as_deref(), Some("Quarterly planning\n"));
    assert_eq!(invite.attendees[0].name.as_deref(), Some("Bo Berg"));
    assert_eq!(
        invite.extensions["ics"]["attendee_params"]["bo@example.com"],
        "RSVP=TRUE"
    );
    assert!(kept(invite).contains(&"X-MICROSOFT-CDO-OWNERAPPTID:2118312345".to_owned()));
    assert!(written.contains("TZID:Europe/Berlin\r\n"));
    assert!(!written.contains("Customized Time Zone"));
}
