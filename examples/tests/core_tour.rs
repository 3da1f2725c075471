//! The `core_tour` example, run as a user would run it.

use std::io::Write;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_core_tour"))
        .args(args)
        .output()
        .expect("run core_tour");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sample_event_expands_with_exdate_and_override() {
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines[0]["envelope"]["type"], "booking.confirmed");
    let occurrences: Vec<_> = lines
        .iter()
        .filter(|l| l.get("occurrence").is_some())
        .collect();
    // COUNT=8 minus one EXDATE.
    assert_eq!(occurrences.len(), 7);
    assert!(
        !occurrences
            .iter()
            .any(|o| o["occurrence"] == "2026-12-03T09:00:00 Europe/Berlin")
    );
    let moved = occurrences
        .iter()
        .find(|o| o["overridden"] == true)
        .expect("the moved instance");
    assert_eq!(moved["start_utc"], "2026-12-07T13:00:00Z");
    assert_eq!(lines.last().unwrap()["summary"]["occurrences"], 7);
}

#[test]
fn invalid_item_reports_every_violation_and_exits_2() {
    let mut file = tempfile();
    file.1
        .write_all(
            br#"{"specversion":"1.0","id":"1","source":"/x","type":"t","data":{
                "id":"a","kind":"event","title":"x",
                "start":{"date_time":"2026-01-01T10:00:00","tz":"Mars/Base"},
                "end":{"date_time":"2026-01-01T09:00:00","tz":"UTC"},
                "attendees":[{"email":"not-an-email"}],
                "updated_at":"2026-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
    let (code, stdout, stderr) = run(&["--event", file.0.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("start.tz"), "{stderr}");
    assert!(stderr.contains("attendees[0].email"), "{stderr}");
}

#[test]
fn malformed_envelope_names_the_attribute() {
    let mut file = tempfile();
    file.1
        .write_all(br#"{"specversion":"1.0","id":"1","type":"t"}"#)
        .unwrap();
    let (code, _, stderr) = run(&["--event", file.0.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("source"), "{stderr}");
}

fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!(
        "core_tour_{}_{}.json",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}
