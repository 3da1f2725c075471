//! Property tests: JSON round trip of arbitrary items; expansion stays bounded.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use flextime_core::schedule::{
    Attendee, ExternalRef, ItemKind, ItemTime, Organizer, Override, ParticipationStatus,
    Recurrence, Role, ScheduleItem, Status,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::Value;

fn tz() -> impl Strategy<Value = Tz> {
    (0..TZ_VARIANTS.len()).prop_map(|i| TZ_VARIANTS[i])
}

fn naive_date() -> impl Strategy<Value = NaiveDate> {
    (1900i32..2100, 1u32..=12, 1u32..=28)
        .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).expect("valid date"))
}

fn naive_date_time() -> impl Strategy<Value = NaiveDateTime> {
    (
        naive_date(),
        0u32..24,
        0u32..60,
        0u32..60,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(d, h, m, s, n)| d.and_hms_nano_opt(h, m, s, n).expect("valid time"))
}

fn zoned() -> impl Strategy<Value = ItemTime> {
    (naive_date_time(), tz()).prop_map(|(l, z)| ItemTime::zoned(l, z))
}

fn all_day() -> impl Strategy<Value = ItemTime> {
    naive_date().prop_map(ItemTime::all_day)
}

fn item_time() -> impl Strategy<Value = ItemTime> {
    prop_oneof![zoned(), all_day()]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9 ]{1,12}", any::<String>()]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Confirmed),
        Just(Status::Tentative),
        Just(Status::Cancelled)
    ]
}

fn kind() -> impl Strategy<Value = ItemKind> {
    prop_oneof![
        Just(ItemKind::Event),
        Just(ItemKind::Booking),
        Just(ItemKind::Shift),
        Just(ItemKind::TimeOff),
        Just(ItemKind::Availability),
    ]
}

fn attendee() -> impl Strategy<Value = Attendee> {
    (
        text(),
        option::of(text()),
        prop_oneof![
            Just(Role::Chair),
            Just(Role::Required),
            Just(Role::Optional),
            Just(Role::NonParticipant)
        ],
        prop_oneof![
            Just(ParticipationStatus::NeedsAction),
            Just(ParticipationStatus::Accepted),
            Just(ParticipationStatus::Declined),
            Just(ParticipationStatus::Tentative),
            Just(ParticipationStatus::Delegated)
        ],
    )
        .prop_map(|(email, name, role, participation_status)| Attendee {
            email,
            name,
            role,
            participation_status,
        })
}

fn an_override() -> impl Strategy<Value = Override> {
    (
        item_time(),
        option::of(item_time()),
        option::of(item_time()),
        option::of(text()),
        option::of(text()),
        option::of(text()),
        option::of(status()),
    )
        .prop_map(
            |(recurrence_id, start, end, title, description, location, status)| Override {
                recurrence_id,
                start,
                end,
                title,
                description,
                location,
                status,
            },
        )
}

fn recurrence() -> impl Strategy<Value = Recurrence> {
    (
        vec(
            prop_oneof!["FREQ=(DAILY|WEEKLY|MONTHLY);COUNT=[1-9]", any::<String>()],
            0..3,
        ),
        vec(item_time(), 0..3),
        vec(item_time(), 0..3),
        vec(an_override(), 0..3),
    )
        .prop_map(|(rrule, rdate, exdate, overrides)| Recurrence {
            rrule,
            rdate,
            exdate,
            overrides,
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn updated_at() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
}

prop_compose! {
    fn schedule_item()(
        id in text(),
        kind in kind(),
        title in text(),
        description in option::of(text()),
        location in option::of(text()),
        times in prop_oneof![(zoned(), zoned()), (all_day(), all_day()), (item_time(), item_time())],
        recurrence in recurrence(),
        attendees in vec(attendee(), 0..4),
        organizer in option::of((text(), option::of(text())).prop_map(|(email, name)| Organizer { email, name })),
        status in status(),
        external_refs in btree_map(any::<String>(), (text(), option::of(text())).prop_map(|(id, etag)| ExternalRef { id, etag }), 0..3),
        updated_at in updated_at(),
        sequence in any::<u32>(),
        extensions in btree_map(any::<String>(), json_value(), 0..4),
    ) -> ScheduleItem {
        ScheduleItem {
            id, kind, title, description, location,
            start: times.0, end: times.1,
            recurrence, attendees, organizer, status, external_refs,
            updated_at, sequence,
            extensions: extensions.into_iter().collect::<BTreeMap<_, _>>(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_round_trip(item in schedule_item()) {
        let json = serde_json::to_string(&item).unwrap();
        let back: ScheduleItem = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &item);
        // Through a Value too, and via to_json.
        let value = serde_json::to_value(&item).unwrap();
        prop_assert_eq!(&serde_json::from_value::<ScheduleItem>(value).unwrap(), &item);
        prop_assert_eq!(item.to_json().unwrap(), json.clone());
        // parse_json never panics; when it accepts, it is the same item.
        match ScheduleItem::parse_json(json.as_bytes()) {
            Ok(parsed) => {
                prop_assert!(item.validate().is_empty());
                prop_assert_eq!(parsed, item);
            }
            Err(found) => {
                prop_assert!(!found.is_empty());
                prop_assert_eq!(found, item.validate());
            }
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn expansion_is_bounded_sorted_and_inside_the_window(
        item in schedule_item(),
        freq in prop_oneof![Just("DAILY"), Just("WEEKLY"), Just("MONTHLY"), Just("YEARLY"), Just("HOURLY")],
        interval in 1u32..5,
        from_offset_days in -30i64..400,
        window_days in 1i64..120,
        limit in 0usize..50,
    ) {
        let mut item = item;
        item.recurrence.rrule = vec![format!("FREQ={freq};INTERVAL={interval}")];
        let from = item.start.to_utc() + Duration::days(from_offset_days);
        let to = from + Duration::days(window_days);
        if let Ok(occ) = item.occurrences(from, to, limit) {
            prop_assert!(occ.len() <= limit);
            for pair in occ.windows(2) {
                prop_assert!(pair[0].start_utc <= pair[1].start_utc);
            }
            for o in &occ {
                prop_assert!(o.start_utc < to);
                prop_assert!(o.end_utc > from || (o.end_utc == o.start_utc && o.start_utc >= from));
                prop_assert!(!o.cancelled);
            }
        }
    }
}
