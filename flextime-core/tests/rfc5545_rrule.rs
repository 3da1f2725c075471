//! The worked RRULE examples of RFC 5545 section 3.8.5.3, expanded through
//! `ScheduleItem::occurrences` and compared with the results the RFC lists
//! (data in `tests/data/rfc5545/examples.txt`).

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use flextime_core::schedule::{ItemKind, ItemTime, ScheduleItem};

const DATA: &str = include_str!("data/rfc5545/examples.txt");

#[derive(Debug)]
struct Example {
    title: String,
    tz: Tz,
    dtstart: NaiveDateTime,
    rrules: Vec<String>,
    exdates: Vec<NaiveDateTime>,
    forever: bool,
    expected: Vec<NaiveDateTime>,
}

fn parse_local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `TZID=America/New_York:19970902T090000` -> (zone, local times).
fn parse_zoned_prop(rest: &str) -> (Tz, Vec<NaiveDateTime>) {
    let rest = rest.strip_prefix(";TZID=").expect("TZID parameter");
    let (zone, values) = rest.split_once(':').expect("value");
    let tz: Tz = zone.parse().expect("zone");
    (tz, values.split(',').map(parse_local).collect())
}

fn expand_days(spec: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().unwrap()),
            None => (part, 1),
        };
        match range.split_once('-') {
            Some((a, b)) => {
                out.extend((a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()).step_by(step));
            }
            None => out.push(range.parse().unwrap()),
        }
    }
    out
}

fn parse_examples() -> Vec<Example> {
    let mut examples = Vec::new();
    for block in DATA.split("\n\n") {
        let lines: Vec<&str> = block
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .collect();
        if lines.is_empty() {
            continue;
        }
        let mut title = String::new();
        let mut start = None;
        let mut rrules = Vec::new();
        let mut exdates = Vec::new();
        let mut forever = false;
        let mut expected = Vec::new();
        for line in lines {
            if let Some(t) = line.strip_prefix("# ") {
                t.clone_into(&mut title);
            } else if let Some(rest) = line.strip_prefix("DTSTART") {
                let (tz, mut times) = parse_zoned_prop(rest);
                start = Some((tz, times.remove(0)));
            } else if let Some(rest) = line.strip_prefix("EXDATE") {
                exdates.extend(parse_zoned_prop(rest).1);
            } else if let Some(rule) = line.strip_prefix("RRULE:") {
                rrules.push(rule.to_owned());
            } else if line == "FOREVER" {
                forever = true;
            } else if line.starts_with("NOTE ") {
            } else if let Some(rest) = line.strip_prefix("EXPECT ") {
                let (_, dtstart) = start.expect("DTSTART before EXPECT");
                let parts: Vec<&str> = rest.split_whitespace().collect();
                let (year, month) = parts[0].split_once('-').unwrap();
                let (year, month) = (year.parse::<i32>().unwrap(), month.parse::<u32>().unwrap());
                let times: Vec<NaiveTime> = match parts.get(2) {
                    Some(list) => list
                        .split(',')
                        .map(|t| NaiveTime::parse_from_str(t, "%H:%M").unwrap())
                        .collect(),
                    None => vec![dtstart.time()],
                };
                for day in expand_days(parts[1]) {
                    let date = NaiveDate::from_ymd_opt(year, month, day)
                        .unwrap_or_else(|| panic!("{title}: bad date {year}-{month}-{day}"));
                    for t in &times {
                        expected.push(date.and_time(*t));
                    }
                }
            } else {
                panic!("unexpected line in examples.txt: {line}");
            }
        }
        let (tz, dtstart) = start.unwrap_or_else(|| panic!("{title}: no DTSTART"));
        examples.push(Example {
            title,
            tz,
            dtstart,
            rrules,
            exdates,
            forever,
            expected,
        });
    }
    examples
}

fn item_for(ex: &Example) -> ScheduleItem {
    let mut item = ScheduleItem::new(
        "rfc",
        ItemKind::Event,
        ex.title.clone(),
        ItemTime::zoned(ex.dtstart, ex.tz),
        ItemTime::zoned(ex.dtstart + Duration::minutes(10), ex.tz),
        Utc.with_ymd_and_hms(1997, 1, 1, 0, 0, 0).unwrap(),
    );
    item.recurrence.rrule.clone_from(&ex.rrules);
    item.recurrence.exdate = ex
        .exdates
        .iter()
        .map(|t| ItemTime::zoned(*t, ex.tz))
        .collect();
    item
}

#[test]
fn rfc5545_examples_expand_to_the_listed_dates() {
    let examples = parse_examples();
    assert!(
        examples.len() >= 38,
        "only {} examples parsed",
        examples.len()
    );
    let window_start = Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).unwrap();
    let window_end = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap();
    let mut failures = Vec::new();
    for ex in &examples {
        let item = item_for(ex);
        assert!(
            item.validate().is_empty(),
            "{}: {:?}",
            ex.title,
            item.validate()
        );
        // For finite rules ask for more than the RFC lists: extra instances would show.
        let limit = if ex.forever {
            ex.expected.len()
        } else {
            ex.expected.len() + 20
        };
        let occ = item
            .occurrences(window_start, window_end, limit)
            .unwrap_or_else(|e| panic!("{}: {e}", ex.title));
        let got: Vec<NaiveDateTime> = occ
            .iter()
            .map(|o| match o.start {
                ItemTime::Zoned { local, tz } => {
                    assert_eq!(tz, ex.tz, "{}", ex.title);
                    local
                }
                ItemTime::AllDay(_) => panic!("{}: all-day occurrence", ex.title),
            })
            .collect();
        if got != ex.expected {
            failures.push(format!(
                "{}\n  expected {:?}\n  got      {:?}",
                ex.title, ex.expected, got
            ));
            continue;
        }
        // Each instance is 09:00 (etc.) New York time in EDT or EST: the UTC
        // instant must be that wall-clock time in the zone.
        for o in &occ {
            let local = o.start.to_zoned();
            assert_eq!(o.start_utc, local.with_timezone(&Utc), "{}", ex.title);
            assert_eq!(
                o.end_utc - o.start_utc,
                Duration::minutes(10),
                "{}",
                ex.title
            );
            assert_eq!(o.recurrence_id, o.start);
            assert!(!o.overridden && !o.cancelled);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples differ:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn daily_until_crosses_the_october_dst_change_at_nine_local() {
    let ex = parse_examples()
        .into_iter()
        .find(|e| e.title == "Daily until December 24, 1997")
        .unwrap();
    let item = item_for(&ex);
    let occ = item
        .occurrences(
            Utc.with_ymd_and_hms(1997, 10, 25, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1997, 10, 28, 0, 0, 0).unwrap(),
            100,
        )
        .unwrap();
    let utc_hours: Vec<String> = occ
        .iter()
        .map(|o| o.start_utc.format("%m-%d %H:%M").to_string())
        .collect();
    // 09:00 EDT (UTC-4) on the 25th, 09:00 EST (UTC-5) from the 26th.
    assert_eq!(utc_hours, ["10-25 13:00", "10-26 14:00", "10-27 14:00"]);
}

#[test]
fn window_in_the_middle_of_an_open_ended_rule() {
    let ex = parse_examples()
        .into_iter()
        .find(|e| e.title == "Every Friday the 13th, forever")
        .unwrap();
    let item = item_for(&ex);
    let occ = item
        .occurrences(
            Utc.with_ymd_and_hms(1998, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2000, 12, 31, 0, 0, 0).unwrap(),
            100,
        )
        .unwrap();
    let dates: Vec<String> = occ.iter().map(|o| o.start.date().to_string()).collect();
    assert_eq!(dates, ["1998-11-13", "1999-08-13", "2000-10-13"]);
}
