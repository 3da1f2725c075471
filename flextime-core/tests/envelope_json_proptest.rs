//! Property test: the structured JSON `Envelope::to_json_bytes` writes (its
//! own fast writer) is byte for byte what serde_json writes through the
//! `Serialize` implementation, for arbitrary attributes and data: strings
//! with quotes, backslashes, every control character and any Unicode;
//! times of every year, offset and fraction width (leap seconds too);
//! integers, floats, nested arrays and objects; extensions; text and binary
//! data.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use flextime_core::Envelope;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Text heavy in the characters JSON must escape, with clean runs long
/// enough to take the eight- and the 32-bytes-at-a-time paths (so an escape
/// lands at every offset of a block), and any Unicode besides.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        (0u8..0x20).prop_map(|b| char::from(b).to_string()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\u{7f}".to_owned()),
        "[a-zA-Z0-9 ]{0,24}",
        "[a-zA-Z0-9 ]{24,80}",
        "[éß€😀]{1,4}",
    ];
    vec(piece, 0..12).prop_map(|parts| parts.concat())
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-1e6f64..1e6).prop_filter_map("finite", Number::from_f64),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum DataCase {
    None,
    Json(Value),
    Text(String),
    Binary(Vec<u8>),
}

fn data() -> impl Strategy<Value = DataCase> {
    prop_oneof![
        Just(DataCase::None),
        json().prop_map(DataCase::Json),
        text().prop_map(DataCase::Text),
        vec(any::<u8>(), 0..64).prop_map(DataCase::Binary),
    ]
}

#[derive(Debug, Clone)]
enum Ext {
    Text(String),
    Int(i64),
    Bool(bool),
}

fn extensions() -> impl Strategy<Value = Vec<(String, Ext)>> {
    vec(
        (
            "[a-z][a-z0-9]{0,8}",
            prop_oneof![
                text().prop_map(Ext::Text),
                any::<i64>().prop_map(Ext::Int),
                any::<bool>().prop_map(Ext::Bool),
            ],
        ),
        0..4,
    )
}

/// Any time of years 0000-9999 in any offset (UTC often), with fractions of
/// every width the writer chooses between and leap seconds.
fn time() -> impl Strategy<Value = DateTime<FixedOffset>> {
    let nanos = prop_oneof![
        Just(0u32),
        (1u32..1000).prop_map(|ms| ms * 1_000_000),
        (1u32..1_000_000).prop_map(|us| us * 1000),
        0u32..1_000_000_000,
        1_000_000_000u32..2_000_000_000,
    ];
    let offset = prop_oneof![Just(0i32), Just(3600), -86_399i32..=86_399];
    (
        (0i32..=9999, 1u32..=12, 1u32..=28),
        (0u32..24, 0u32..60, 0u32..60),
        nanos,
        offset,
    )
        .prop_map(|((y, mo, d), (h, mi, s), nano, off)| {
            // chrono keeps a leap second only at second 59.
            let s = if nano >= 1_000_000_000 { 59 } else { s };
            let local = NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|date| date.and_hms_nano_opt(h, mi, s, nano))
                .expect("a valid date and time");
            FixedOffset::east_opt(off)
                .expect("offset")
                .from_local_datetime(&local)
                .single()
                .expect("a fixed offset maps one to one")
        })
}

/// An event's generated parts: id, type, subject, its time (the time of
/// creation when none), data, extensions.
type Parts = (
    String,
    String,
    Option<String>,
    Option<DateTime<FixedOffset>>,
    DataCase,
    Vec<(String, Ext)>,
);

fn envelope((id, ty, subject, time, data, extensions): Parts) -> Envelope {
    let mut e = Envelope::new("/bookings/a?x=1", ty).with_id(id);
    if let Some(subject) = subject.filter(|s| !s.is_empty()) {
        e = e.with_subject(subject);
    }
    if let Some(time) = time {
        e = e.with_time(time);
    }
    e = match data {
        DataCase::None => e,
        DataCase::Json(v) => e.with_data_json(v),
        DataCase::Text(t) => e.with_data_text(t, "text/plain; charset=\"utf-8\""),
        DataCase::Binary(b) => e.with_data_binary(b, "application/octet-stream"),
    };
    for (name, value) in extensions {
        let value = match value {
            Ext::Text(s) => flextime_core::envelope::ExtensionValue::String(s),
            Ext::Int(i) => flextime_core::envelope::ExtensionValue::Integer(i),
            Ext::Bool(b) => flextime_core::envelope::ExtensionValue::Boolean(b),
        };
        // Reserved names are refused; the rest are kept.
        let _ = e.set_extension(name, value);
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fast_writer_writes_what_serde_json_writes(
        parts in ("[^\u{0}]{1,16}", text().prop_filter("non-empty", |t| !t.is_empty()),
                  proptest::option::of(text()), proptest::option::of(time()), data(), extensions())
    ) {
        let e = envelope(parts);
        prop_assume!(e.validate().is_ok());
        let fast = e.to_json_bytes().expect("valid envelope");
        let serde = serde_json::to_vec(&e).expect("serde_json");
        prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
    }
}
