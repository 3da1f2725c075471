//! The `db_demo` example, run as a user would run it.

use std::process::Command;

fn run(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_db_demo"))
        .args(args)
        .output()
        .expect("run db_demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_feed(lines: &[serde_json::Value], count: u64, updated_version: u64) {
    let (summary, feed) = lines.split_last().expect("a summary line");
    let summary = &summary["summary"];
    assert_eq!(summary["upserted"], count);
    assert_eq!(summary["updated_version"], updated_version);
    assert_eq!(summary["live"], count - 1);
    // every item once, at its latest state: the moved first item and the
    // cancelled last one come after the untouched ones
    assert_eq!(feed.len() as u64, count);
    let seqs: Vec<u64> = feed.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let last = &feed[feed.len() - 1];
    assert_eq!(last["op"], "delete");
    assert_eq!(last["id"], format!("item-{count:04}"));
    let moved = &feed[feed.len() - 2];
    assert_eq!(moved["id"], "item-0001");
    assert_eq!(moved["title"], "Booking 1 (moved)");
    assert_eq!(summary["changes"], count);
}

#[test]
fn sqlite_file() {
    let path =
        std::env::temp_dir().join(format!("{}.db", flextime_testkit::unique_name("db_demo")));
    let url = format!("sqlite://{}", path.display());
    let (code, lines, stderr) = run(&["--url", &url, "--count", "7"]);
    assert_eq!(code, 0, "{stderr}");
    check_feed(&lines, 7, 2);
    assert_eq!(lines.last().unwrap()["summary"]["backend"], "sqlite");
    // a second run against the same file prints only its own changes
    let (code, lines, stderr) = run(&["--url", &url, "--count", "7"]);
    assert_eq!(code, 0, "{stderr}");
    check_feed(&lines, 7, 4);
    let _ = std::fs::remove_file(path);
}

#[test]
fn postgres_when_available() {
    let url = flextime_testkit::require_peer!(Postgres);
    let collection = flextime_testkit::unique_name("db_demo");
    let (code, lines, stderr) = run(&["--url", &url, "--collection", &collection, "--count", "4"]);
    assert_eq!(code, 0, "{stderr}");
    check_feed(&lines, 4, 2);
    assert_eq!(lines.last().unwrap()["summary"]["backend"], "postgres");
}

#[test]
fn bad_url_fails_without_leaking_the_password() {
    let (code, lines, stderr) = run(&["--url", "postgres://app:s3cr3tpw@127.0.0.1:1/x"]);
    assert_eq!(code, 1);
    assert!(lines.is_empty());
    assert!(stderr.contains("app:***@"), "{stderr}");
    assert!(!stderr.contains("s3cr3tpw"), "{stderr}");
    let (code, _, stderr) = run(&["--url", "ftp://x"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unsupported"), "{stderr}");
}
