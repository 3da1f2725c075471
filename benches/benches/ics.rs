//! ICS import: parse + map a 10,000-event calendar into ScheduleItems with
//! flextime-connectors, next to the `icalendar` crate's parser alone
//! (`unfold` + `read_calendar`, no mapping) on the same file.
//!
//! The file mixes zoned events (TZID), UTC events, all-day events and
//! weekly series with EXDATEs and overrides (separate VEVENTs with a
//! RECURRENCE-ID), with attendees, escaped text, unknown X- properties,
//! VALARMs and folded lines. Prints events/s and peak heap bytes of each
//! side (measured with a counting global allocator, `peak_alloc`: the
//! workspace forbids `unsafe`, which a hand-written `GlobalAlloc` needs),
//! and the time ratio.

use std::time::Instant;

use flextime_benches::{compare, keep};
use flextime_connectors::ics::parse_calendar;
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const EVENTS: usize = 10_000;

/// Folds one content line at 75 octets (ASCII input here).
fn push_line(out: &mut String, line: &str) {
    let mut rest = line;
    let mut first = true;
    while !rest.is_empty() {
        let room = if first { 75 } else { 74 };
        let cut = rest.len().min(room);
        if !first {
            out.push(' ');
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n");
        rest = &rest[cut..];
        first = false;
    }
}

/// The calendar: `EVENTS` VEVENTs in total (masters plus overrides).
fn generate() -> String {
    let mut out = String::with_capacity(EVENTS * 700);
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Flextime//bench//EN",
        "X-WR-CALNAME:Bench",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Berlin",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "DTSTART:19700329T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "DTSTART:19701025T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "END:STANDARD",
        "END:VTIMEZONE",
    ] {
        push_line(&mut out, l);
    }
    let mut written = 0;
    let mut n = 0;
    while written < EVENTS {
        let day = 1 + n % 28;
        let month = 1 + (n / 28) % 12;
        let hour = 8 + n % 9;
        let ev = |out: &mut String, lines: &[String]| {
            push_line(out, "BEGIN:VEVENT");
            for l in lines {
                push_line(out, l);
            }
            push_line(out, "END:VEVENT");
        };
        let mut lines = vec![
            format!("UID:evt-{n:06}@bench.flextime.example"),
            "DTSTAMP:20240101T000000Z".to_owned(),
            format!("LAST-MODIFIED:20240102T{:02}0000Z", n % 24),
            format!("SUMMARY:Meeting {n}\\, room {}\\; floor {}", n % 40, n % 7),
            format!(
                "DESCRIPTION:Agenda for meeting {n}:\\n1. Status\\n2. Next steps\\nJoin at https://meet.example.com/{n:08x} before the start of the call please"
            ),
            format!("LOCATION:Building {}\\, Room {}", n % 5, n % 100),
            "STATUS:CONFIRMED".to_owned(),
            format!("SEQUENCE:{}", n % 4),
            "X-MICROSOFT-CDO-BUSYSTATUS:BUSY".to_owned(),
            "TRANSP:OPAQUE".to_owned(),
            "ORGANIZER;CN=Ana Lima:mailto:ana@example.com".to_owned(),
        ];
        for a in 0..n % 4 {
            lines.push(format!(
                "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Person {a}:mailto:p{a}-{n}@example.com"
            ));
        }
        match n % 5 {
            0 | 1 => {
                lines.push(format!(
                    "DTSTART;TZID=Europe/Berlin:2024{month:02}{day:02}T{hour:02}0000"
                ));
                lines.push(format!(
                    "DTEND;TZID=Europe/Berlin:2024{month:02}{day:02}T{hour:02}4500"
                ));
            }
            2 => {
                lines.push(format!("DTSTART:2024{month:02}{day:02}T{hour:02}3000Z"));
                lines.push(format!("DTEND:2024{month:02}{day:02}T{:02}0000Z", hour + 1));
            }
            3 => {
                lines.push(format!("DTSTART;VALUE=DATE:2024{month:02}{day:02}"));
                lines.push(format!("DTEND;VALUE=DATE:2024{month:02}{:02}", day + 1));
            }
            _ => {
                // A weekly series from 1 Jan 2024 (a Monday) with an EXDATE
                // and two overrides.
                lines.push(format!("DTSTART;TZID=Europe/Berlin:20240101T{hour:02}0000"));
                lines.push(format!("DTEND;TZID=Europe/Berlin:20240101T{hour:02}3000"));
                lines.push("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=20".to_owned());
                lines.push(format!("EXDATE;TZID=Europe/Berlin:20240108T{hour:02}0000"));
                lines.push("BEGIN:VALARM".to_owned());
                lines.push("ACTION:DISPLAY".to_owned());
                lines.push("TRIGGER:-PT10M".to_owned());
                lines.push("END:VALARM".to_owned());
            }
        }
        // VALARM lines must be a component, not properties: split them off.
        let alarm_at = lines.iter().position(|l| l == "BEGIN:VALARM");
        let alarm: Vec<String> = alarm_at.map(|i| lines.split_off(i)).unwrap_or_default();
        push_line(&mut out, "BEGIN:VEVENT");
        for l in &lines {
            push_line(&mut out, l);
        }
        for l in &alarm {
            push_line(&mut out, l);
        }
        push_line(&mut out, "END:VEVENT");
        written += 1;
        if n % 5 == 4 && written + 2 <= EVENTS {
            let uid = format!("UID:evt-{n:06}@bench.flextime.example");
            ev(
                &mut out,
                &[
                    uid.clone(),
                    "DTSTAMP:20240101T000000Z".to_owned(),
                    format!("RECURRENCE-ID;TZID=Europe/Berlin:20240115T{hour:02}0000"),
                    format!("DTSTART;TZID=Europe/Berlin:20240115T{:02}0000", hour + 1),
                    format!("DTEND;TZID=Europe/Berlin:20240115T{:02}3000", hour + 1),
                    format!("SUMMARY:Meeting {n} (moved)"),
                ],
            );
            ev(
                &mut out,
                &[
                    uid,
                    "DTSTAMP:20240101T000000Z".to_owned(),
                    format!("RECURRENCE-ID;TZID=Europe/Berlin:20240122T{hour:02}0000"),
                    format!("DTSTART;TZID=Europe/Berlin:20240122T{hour:02}0000"),
                    format!("DTEND;TZID=Europe/Berlin:20240122T{hour:02}3000"),
                    "STATUS:CANCELLED".to_owned(),
                ],
            );
            written += 2;
        }
        n += 1;
    }
    push_line(&mut out, "END:VCALENDAR");
    out
}

/// Peak heap bytes above the level before `op`, while `op` runs (its
/// result included, as it is dropped after the measurement).
fn peak_bytes<T>(op: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let out = op();
    (ALLOC.peak_usage().saturating_sub(before), out)
}

fn main() {
    println!(
        "ICS import benchmark ({} cores)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let ics = generate();
    let vevents = ics.matches("BEGIN:VEVENT").count();
    #[allow(clippy::cast_precision_loss)]
    let mib = |b: usize| b as f64 / 1_048_576.0;
    println!("file: {vevents} VEVENTs, {:.1} MiB", mib(ics.len()));

    // Correctness first: both parse the file; ours maps every UID.
    let items = parse_calendar(&ics)
        .expect("flextime parses")
        .events()
        .expect("flextime maps");
    let overrides: usize = items.iter().map(|i| i.recurrence.overrides.len()).sum();
    assert_eq!(items.len() + overrides, vevents);
    let unfolded = icalendar::parser::unfold(&ics);
    let theirs = icalendar::parser::read_calendar(&unfolded).expect("icalendar parses");
    let their_events = theirs
        .components
        .iter()
        .filter(|c| c.name == "VEVENT")
        .count();
    assert_eq!(their_events, vevents);
    drop((items, theirs));
    drop(unfolded);
    println!(
        "flextime: {} items ({overrides} overrides folded in); icalendar: {their_events} components",
        vevents - overrides
    );

    let (our_peak, _) = peak_bytes(|| {
        parse_calendar(&ics)
            .and_then(|c| c.events())
            .map(|items| items.len())
    });
    let (tree_peak, _) = peak_bytes(|| parse_calendar(&ics).map(|c| c.components.len()));
    let (their_peak, _) = peak_bytes(|| {
        let unfolded = icalendar::parser::unfold(&ics);
        icalendar::parser::read_calendar(&unfolded).map(|c| c.components.len())
    });

    let ratio = compare(
        "parse+map 10k events vs icalendar parse",
        3,
        || keep(parse_calendar(&ics).and_then(|c| c.events()).expect("ours")),
        || {
            let unfolded = icalendar::parser::unfold(&ics);
            keep(
                icalendar::parser::read_calendar(&unfolded)
                    .map(|c| c.components.len())
                    .expect("theirs"),
            );
        },
    );
    // Events per second from one timed run each (after the warm-up above).
    let t = Instant::now();
    keep(parse_calendar(&ics).and_then(|c| c.events()).expect("ours"));
    let ours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let unfolded = icalendar::parser::unfold(&ics);
    keep(icalendar::parser::read_calendar(&unfolded).map(|c| c.components.len()));
    let raw = t.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let per_sec = |secs: f64| vevents as f64 / secs;
    println!(
        "{:<40} flextime {:>10.0} events/s   icalendar {:>10.0} events/s",
        "throughput (one run)",
        per_sec(ours),
        per_sec(raw)
    );
    println!(
        "{:<40} flextime {:>8.1} MiB     icalendar {:>8.1} MiB   (file {:.1} MiB)",
        "peak heap above baseline",
        mib(our_peak),
        mib(their_peak),
        mib(ics.len())
    );
    println!(
        "{:<40} flextime {:>8.1} MiB (the component tree alone, before mapping)",
        "peak heap of parse_calendar",
        mib(tree_peak)
    );
    println!(
        "ratio (icalendar parse time / flextime parse+map time): {ratio:.2} (above 1.0: flextime faster although it also maps)"
    );
}
