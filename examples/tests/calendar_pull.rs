//! The `calendar_pull` example against Radicale, run as a user would run it:
//! a first run prints everything and saves the state, the next prints only
//! what changed since.

use std::path::Path;
use std::process::Command;

use chrono::{NaiveDate, TimeZone, Utc};
use flextime_connectors::caldav::CalDavConnector;
use flextime_connectors::calendar::CalendarProvider;
use flextime_connectors::http::Auth;
use flextime_core::{ItemKind, ItemTime, Override, ScheduleItem};
use serde_json::Value;

const USER: &str = "flextime-tests";

fn run(url: &str, state: &Path, calendar: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_calendar_pull"))
        .args([
            "--caldav",
            url,
            "--user",
            USER,
            "--password",
            "pw-not-printed",
        ])
        .arg("--state")
        .arg(state)
        .args(["--calendar", calendar])
        .output()
        .expect("run calendar_pull");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("pw-not-printed"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("pw-not-printed"));
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn at(day: u32, hour: u32) -> ItemTime {
    let local = NaiveDate::from_ymd_opt(2030, 6, day)
        .unwrap()
        .and_hms_opt(hour, 0, 0)
        .unwrap();
    ItemTime::zoned(local, chrono_tz::Europe::Paris)
}

fn event(uid: &str, title: &str, day: u32) -> ScheduleItem {
    ScheduleItem::new(
        uid,
        ItemKind::Event,
        title,
        at(day, 9),
        at(day, 10),
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
    )
}

fn by_uid<'a>(lines: &'a [Value], uid: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["uid"] == uid)
        .unwrap_or_else(|| panic!("no line for {uid} in {lines:?}"))
}

#[test]
fn pulls_everything_then_only_changes() {
    let url = flextime_testkit::require_peer!(Caldav);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let caldav = CalDavConnector::new(&url, Auth::basic(USER, "x")).unwrap();
    let name = flextime_testkit::unique_name("calendar_pull").replace('_', "-");
    let calendar = runtime
        .block_on(caldav.make_calendar(&name, "calendar_pull test"))
        .unwrap();
    let state = std::env::temp_dir().join(format!("{name}.json"));

    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut weekly = event("pull-weekly", "Weekly", 3);
        weekly.recurrence.rrule.push("FREQ=WEEKLY;COUNT=4".into());
        let mut moved = Override::new(at(10, 9));
        moved.start = Some(at(11, 14));
        moved.end = Some(at(11, 16)); // longer than the master: kept
        weekly.recurrence.overrides.push(moved);
        weekly
            .recurrence
            .overrides
            .push(Override::cancel(at(17, 9)));
        let single = event("pull-single", "Single", 5);
        let gone = event("pull-gone", "Gone soon", 6);
        let refs: Vec<_> = [&weekly, &single, &gone]
            .into_iter()
            .map(|item| {
                runtime
                    .block_on(caldav.create_event(&calendar, item))
                    .unwrap()
            })
            .collect();

        // first run: every event, with recurrence and overrides
        let first = run(&url, &state, &calendar);
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first.iter().all(|l| l["op"] == "upsert"));
        let line = by_uid(&first, "pull-weekly");
        let item: ScheduleItem = serde_json::from_value(line["item"].clone()).unwrap();
        assert_eq!(item.recurrence, weekly.recurrence);
        assert_eq!(item.title, "Weekly");
        assert_eq!(line["href"], refs[0].id);

        // nothing changed: nothing printed
        assert_eq!(run(&url, &state, &calendar), Vec::<Value>::new());

        // one changed, one deleted, one added
        let mut changed = single.clone();
        changed.title = "Single (renamed)".into();
        runtime
            .block_on(caldav.update_event(
                &calendar,
                &refs[1].id,
                &changed,
                refs[1].etag.as_deref(),
            ))
            .unwrap();
        runtime
            .block_on(caldav.delete_event(&calendar, &refs[2].id, None))
            .unwrap();
        runtime
            .block_on(caldav.create_event(&calendar, &event("pull-new", "New", 7)))
            .unwrap();
        let second = run(&url, &state, &calendar);
        assert_eq!(second.len(), 3, "{second:?}");
        assert_eq!(
            by_uid(&second, "pull-single")["item"]["title"],
            "Single (renamed)"
        );
        assert_eq!(by_uid(&second, "pull-new")["op"], "upsert");
        let deleted = by_uid(&second, "pull-gone");
        assert_eq!(deleted["op"], "delete");
        assert_eq!(deleted["href"], refs[2].id);
        assert!(deleted.get("item").is_none());

        // a state whose token the server rejects: a full listing, and the
        // event the state knew but the server lost is reported deleted
        let mut saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        let entry = &mut saved["calendars"][calendar.as_str()];
        entry["token"] = Value::from("http://radicale.org/ns/sync/000000");
        entry["uids"]["/elsewhere/lost.ics"] = Value::from("pull-lost");
        std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();
        let third = run(&url, &state, &calendar);
        assert_eq!(third.len(), 4, "{third:?}");
        assert_eq!(by_uid(&third, "pull-lost")["op"], "delete");
        assert_eq!(
            third.iter().filter(|l| l["op"] == "upsert").count(),
            3,
            "{third:?}"
        );
    }));
    runtime.block_on(caldav.delete_calendar(&calendar)).unwrap();
    let _ = std::fs::remove_file(&state);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
