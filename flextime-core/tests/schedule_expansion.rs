//! Occurrence expansion: overrides, EXDATE, RDATE, DST, all-day, window and limit.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use flextime_core::ErrorKind;
use flextime_core::schedule::{
    ItemKind, ItemTime, MAX_OCCURRENCES, Override, ScheduleItem, Status,
};

fn local(y: i32, m: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
}

fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn berlin(y: i32, m: u32, d: u32, h: u32, mi: u32) -> ItemTime {
    ItemTime::zoned(local(y, m, d, h, mi), Berlin)
}

/// Daily 09:00-10:00 Europe/Berlin from Monday 2024-03-25.
fn daily_berlin() -> ScheduleItem {
    let mut item = ScheduleItem::new(
        "daily",
        ItemKind::Event,
        "Stand-up",
        berlin(2024, 3, 25, 9, 0),
        berlin(2024, 3, 25, 10, 0),
        utc(2024, 3, 1, 0, 0),
    );
    item.recurrence.rrule.push("FREQ=DAILY".into());
    item
}

fn starts(occ: &[flextime_core::Occurrence]) -> Vec<String> {
    occ.iter().map(|o| o.start.to_string()).collect()
}

#[test]
fn dst_spring_forward_keeps_nine_local() {
    // Berlin switches to summer time on 2024-03-31.
    let item = daily_berlin();
    let occ = item
        .occurrences(utc(2024, 3, 29, 0, 0), utc(2024, 4, 3, 0, 0), 100)
        .unwrap();
    assert_eq!(occ.len(), 5);
    for o in &occ {
        match o.start {
            ItemTime::Zoned { local, tz } => {
                assert_eq!(tz, Berlin);
                assert_eq!(local.format("%H:%M").to_string(), "09:00");
            }
            ItemTime::AllDay(_) => panic!("zoned expected"),
        }
        match o.end {
            ItemTime::Zoned { local, .. } => assert_eq!(local.format("%H:%M").to_string(), "10:00"),
            ItemTime::AllDay(_) => panic!("zoned expected"),
        }
    }
    let utc_starts: Vec<DateTime<Utc>> = occ.iter().map(|o| o.start_utc).collect();
    assert_eq!(
        utc_starts,
        [
            utc(2024, 3, 29, 8, 0),
            utc(2024, 3, 30, 8, 0),
            utc(2024, 3, 31, 7, 0),
            utc(2024, 4, 1, 7, 0),
            utc(2024, 4, 2, 7, 0),
        ]
    );
}

#[test]
fn dst_fall_back_keeps_nine_local() {
    let mut item = daily_berlin();
    item.start = berlin(2024, 10, 25, 9, 0);
    item.end = berlin(2024, 10, 25, 10, 0);
    let occ = item
        .occurrences(utc(2024, 10, 26, 0, 0), utc(2024, 10, 29, 0, 0), 100)
        .unwrap();
    let utc_starts: Vec<DateTime<Utc>> = occ.iter().map(|o| o.start_utc).collect();
    assert_eq!(
        utc_starts,
        [
            utc(2024, 10, 26, 7, 0),
            utc(2024, 10, 27, 8, 0),
            utc(2024, 10, 28, 8, 0)
        ]
    );
}

#[test]
fn exdate_removes_and_rdate_adds() {
    let mut item = daily_berlin();
    item.recurrence.rrule = vec!["FREQ=DAILY;COUNT=5".into()];
    item.recurrence.exdate.push(berlin(2024, 3, 26, 9, 0));
    item.recurrence.rdate.push(berlin(2024, 3, 27, 15, 30));
    item.recurrence.rdate.push(berlin(2024, 4, 10, 8, 0));
    let occ = item
        .occurrences(utc(2024, 1, 1, 0, 0), utc(2025, 1, 1, 0, 0), 100)
        .unwrap();
    assert_eq!(
        starts(&occ),
        [
            "2024-03-25T09:00:00 Europe/Berlin",
            "2024-03-27T09:00:00 Europe/Berlin",
            "2024-03-27T15:30:00 Europe/Berlin",
            "2024-03-28T09:00:00 Europe/Berlin",
            "2024-03-29T09:00:00 Europe/Berlin",
            "2024-04-10T08:00:00 Europe/Berlin",
        ]
    );
    // The RDATE keeps the item's length.
    assert_eq!(occ[2].end, berlin(2024, 3, 27, 16, 30));
    assert!(item.validate().is_empty(), "{:?}", item.validate());
}

#[test]
fn exdate_can_remove_dtstart() {
    let mut item = daily_berlin();
    item.recurrence.rrule = vec!["FREQ=DAILY;COUNT=3".into()];
    item.recurrence.exdate.push(item.start);
    let occ = item
        .occurrences(utc(2024, 1, 1, 0, 0), utc(2025, 1, 1, 0, 0), 100)
        .unwrap();
    assert_eq!(
        starts(&occ),
        [
            "2024-03-26T09:00:00 Europe/Berlin",
            "2024-03-27T09:00:00 Europe/Berlin"
        ]
    );
}

#[test]
fn overrides_move_change_and_cancel() {
    let mut item = daily_berlin();
    item.recurrence.rrule = vec!["FREQ=DAILY;COUNT=5".into()];
    // 26th: moved to the afternoon and retitled.
    let mut moved = Override::new(berlin(2024, 3, 26, 9, 0));
    moved.start = Some(berlin(2024, 3, 26, 14, 0));
    moved.title = Some("Stand-up (afternoon)".into());
    // 27th: only the status changes.
    let mut tentative = Override::new(berlin(2024, 3, 27, 9, 0));
    tentative.status = Some(Status::Tentative);
    tentative.location = Some("Room 7".into());
    // 28th: cancelled.
    let cancelled = Override::cancel(berlin(2024, 3, 28, 9, 0));
    // 29th: moved to a day after the window end of the second query below.
    let mut far = Override::new(berlin(2024, 3, 29, 9, 0));
    far.start = Some(berlin(2024, 5, 1, 12, 0));
    far.end = Some(berlin(2024, 5, 1, 12, 30));
    item.recurrence.overrides = vec![moved, tentative, cancelled, far];
    assert!(item.validate().is_empty(), "{:?}", item.validate());

    let occ = item
        .occurrences(utc(2024, 3, 1, 0, 0), utc(2024, 6, 1, 0, 0), 100)
        .unwrap();
    assert_eq!(
        starts(&occ),
        [
            "2024-03-25T09:00:00 Europe/Berlin",
            "2024-03-26T14:00:00 Europe/Berlin",
            "2024-03-27T09:00:00 Europe/Berlin",
            "2024-05-01T12:00:00 Europe/Berlin",
        ]
    );
    assert!(!occ[0].overridden);
    assert!(occ[1].overridden);
    assert_eq!(occ[1].title, "Stand-up (afternoon)");
    assert_eq!(occ[1].recurrence_id, berlin(2024, 3, 26, 9, 0));
    assert_eq!(
        occ[1].end,
        berlin(2024, 3, 26, 15, 0),
        "keeps the one-hour length"
    );
    assert_eq!(occ[2].status, Status::Tentative);
    assert_eq!(occ[2].location.as_deref(), Some("Room 7"));
    assert_eq!(occ[2].title, "Stand-up");
    assert_eq!(occ[3].recurrence_id, berlin(2024, 3, 29, 9, 0));
    assert_eq!(occ[3].end, berlin(2024, 5, 1, 12, 30));

    // A window that holds only the original time of the moved instance: it is gone.
    let occ = item
        .occurrences(utc(2024, 3, 29, 0, 0), utc(2024, 3, 30, 0, 0), 100)
        .unwrap();
    assert!(occ.is_empty(), "{:?}", starts(&occ));
    // A window that holds only its new time: it is there.
    let occ = item
        .occurrences(utc(2024, 5, 1, 0, 0), utc(2024, 5, 2, 0, 0), 100)
        .unwrap();
    assert_eq!(starts(&occ), ["2024-05-01T12:00:00 Europe/Berlin"]);

    // Cancelled instances can be asked for explicitly.
    let with = item
        .occurrences_including_cancelled(utc(2024, 3, 28, 0, 0), utc(2024, 3, 29, 0, 0), 100)
        .unwrap();
    assert_eq!(with.len(), 1);
    assert!(with[0].cancelled);
    assert_eq!(with[0].status, Status::Cancelled);
}

#[test]
fn all_day_recurring_weekly_with_until_date() {
    let mut item = ScheduleItem::new(
        "off",
        ItemKind::TimeOff,
        "",
        ItemTime::all_day(date(2024, 7, 1)),
        ItemTime::all_day(date(2024, 7, 3)), // two days, end exclusive
        utc(2024, 6, 1, 0, 0),
    );
    item.recurrence
        .rrule
        .push("FREQ=WEEKLY;UNTIL=20240722".into());
    item.recurrence
        .exdate
        .push(ItemTime::all_day(date(2024, 7, 8)));
    item.recurrence
        .rdate
        .push(ItemTime::all_day(date(2024, 7, 31)));
    item.recurrence
        .overrides
        .push(Override::cancel(ItemTime::all_day(date(2024, 7, 15))));
    assert!(item.validate().is_empty(), "{:?}", item.validate());
    let occ = item
        .occurrences(utc(2024, 1, 1, 0, 0), utc(2025, 1, 1, 0, 0), 100)
        .unwrap();
    let spans: Vec<(String, String)> = occ
        .iter()
        .map(|o| (o.start.to_string(), o.end.to_string()))
        .collect();
    assert_eq!(
        spans,
        [
            ("2024-07-01".into(), "2024-07-03".into()),
            ("2024-07-22".into(), "2024-07-24".into()),
            ("2024-07-31".into(), "2024-08-02".into()),
        ]
    );
    // A window starting on the second day of an instance still overlaps it.
    let occ = item
        .occurrences(utc(2024, 7, 2, 12, 0), utc(2024, 7, 3, 0, 0), 10)
        .unwrap();
    assert_eq!(occ.len(), 1);
    assert_eq!(occ[0].start, ItemTime::all_day(date(2024, 7, 1)));
    // ... but a window starting on the (exclusive) end date does not.
    let occ = item
        .occurrences(utc(2024, 7, 3, 0, 0), utc(2024, 7, 4, 0, 0), 10)
        .unwrap();
    assert!(occ.is_empty());
}

#[test]
fn single_item_overlapping_or_not() {
    let item = ScheduleItem::new(
        "one",
        ItemKind::Booking,
        "Haircut",
        berlin(2024, 5, 2, 10, 0),
        berlin(2024, 5, 2, 11, 0),
        utc(2024, 5, 1, 0, 0),
    );
    // 08:00Z..09:00Z
    let hit = item
        .occurrences(utc(2024, 5, 2, 8, 30), utc(2024, 5, 2, 8, 45), 10)
        .unwrap();
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0].recurrence_id, item.start);
    assert_eq!(hit[0].start_utc, utc(2024, 5, 2, 8, 0));
    assert_eq!(hit[0].end_utc, utc(2024, 5, 2, 9, 0));
    // Touching the end (exclusive) or the start does not overlap.
    assert!(
        item.occurrences(utc(2024, 5, 2, 9, 0), utc(2024, 5, 2, 10, 0), 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        item.occurrences(utc(2024, 5, 2, 7, 0), utc(2024, 5, 2, 8, 0), 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn limit_window_and_hard_cap() {
    let item = daily_berlin();
    let occ = item
        .occurrences(utc(2024, 4, 1, 0, 0), utc(2024, 5, 1, 0, 0), 3)
        .unwrap();
    assert_eq!(
        starts(&occ),
        [
            "2024-04-01T09:00:00 Europe/Berlin",
            "2024-04-02T09:00:00 Europe/Berlin",
            "2024-04-03T09:00:00 Europe/Berlin",
        ]
    );
    assert_eq!(
        item.occurrences(utc(2024, 4, 1, 0, 0), utc(2024, 5, 1, 0, 0), 100)
            .unwrap()
            .len(),
        30
    );
    assert!(
        item.occurrences(utc(2024, 4, 1, 0, 0), utc(2024, 5, 1, 0, 0), 0)
            .unwrap()
            .is_empty()
    );
    // Empty or reversed window.
    assert!(
        item.occurrences(utc(2024, 5, 1, 0, 0), utc(2024, 4, 1, 0, 0), 10)
            .unwrap()
            .is_empty()
    );
    // The limit is capped whatever the caller asks for.
    let occ = item
        .occurrences(utc(2024, 1, 1, 0, 0), utc(2100, 1, 1, 0, 0), usize::MAX)
        .unwrap();
    assert_eq!(occ.len(), MAX_OCCURRENCES);
}

#[test]
fn a_moved_override_earlier_than_plain_instances_respects_the_limit() {
    let mut item = daily_berlin();
    // The 30 March instance is moved to before everything else in the window.
    let mut o = Override::new(berlin(2024, 3, 30, 9, 0));
    o.start = Some(berlin(2024, 3, 27, 6, 0));
    item.recurrence.overrides.push(o);
    let occ = item
        .occurrences(utc(2024, 3, 27, 0, 0), utc(2024, 4, 30, 0, 0), 2)
        .unwrap();
    assert_eq!(
        starts(&occ),
        [
            "2024-03-27T06:00:00 Europe/Berlin",
            "2024-03-27T09:00:00 Europe/Berlin"
        ]
    );
}

#[test]
fn too_dense_rule_fails_instead_of_spinning() {
    let mut item = daily_berlin();
    item.recurrence.rrule = vec!["FREQ=SECONDLY".into()];
    let err = item
        .occurrences(utc(2030, 1, 1, 0, 0), utc(2030, 1, 2, 0, 0), 10)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("too dense"), "{err}");
}

#[test]
fn invalid_rrule_is_an_invalid_input_error() {
    let mut item = daily_berlin();
    item.recurrence.rrule = vec!["FREQ=SOMETIMES".into()];
    let err = item
        .occurrences(utc(2024, 1, 1, 0, 0), utc(2024, 2, 1, 0, 0), 10)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("recurrence.rrule[0]"), "{err}");
}

#[test]
fn zoned_utc_items() {
    let mut item = ScheduleItem::new(
        "u",
        ItemKind::Shift,
        "Night",
        ItemTime::utc(utc(2024, 1, 1, 22, 0)),
        ItemTime::utc(utc(2024, 1, 2, 6, 0)),
        utc(2024, 1, 1, 0, 0),
    );
    item.recurrence.rrule.push("FREQ=WEEKLY;COUNT=3".into());
    let occ = item
        .occurrences(utc(2024, 1, 2, 0, 0), utc(2024, 1, 20, 0, 0), 10)
        .unwrap();
    let s: Vec<DateTime<Utc>> = occ.iter().map(|o| o.start_utc).collect();
    // The first one started before the window but is still running in it.
    assert_eq!(
        s,
        [
            utc(2024, 1, 1, 22, 0),
            utc(2024, 1, 8, 22, 0),
            utc(2024, 1, 15, 22, 0)
        ]
    );
}
