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
    // every change once, in order: each item's creation, then the moved
    // first item (version 2) and the cancelled last one (a tombstone)
    assert_eq!(feed.len() as u64, count + 2);
    for (n, line) in feed
        .iter()
        .take(usize::try_from(count).unwrap())
        .enumerate()
    {
        assert_eq!(line["id"], format!("item-{:04}", n + 1));
        assert_eq!(line["op"], "upsert");
    }
    let seqs: Vec<u64> = feed.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let last = &feed[feed.len() - 1];
    assert_eq!(last["op"], "delete");
    assert_eq!(last["id"], format!("item-{count:04}"));
    let moved = &feed[feed.len() - 2];
    assert_eq!(moved["id"], "item-0001");
    assert_eq!(moved["title"], "Booking 1 (moved)");
    assert_eq!(moved["version"], updated_version);
    assert_eq!(summary["changes"], count + 2);
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
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[test]
fn postgres_when_available() {
    use sqlx::Connection;
    let url = flextime_testkit::require_peer!(Postgres);
    // A schema of its own (dropped afterwards), picked through the URL.
    let schema = flextime_testkit::unique_name("db_demo");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = |sql: String| {
        let url = url.clone();
        runtime.block_on(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        });
    };
    // unique_name yields [a-z0-9_]: safe in the statement
    admin(format!("CREATE SCHEMA \"{schema}\""));
    let sep = if url.contains('?') { '&' } else { '?' };
    let in_schema = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let (code, lines, stderr) = run(&["--url", &in_schema, "--count", "4"]);
    admin(format!("DROP SCHEMA \"{schema}\" CASCADE"));
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
