//! The `ics_tool` example, run as a user would run it.

use std::io::Write;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> String {
    format!(
        "{}/../flextime-connectors/tests/fixtures/ics/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ics_tool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ics_tool");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "ics_tool_{}_{}_{name}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

#[test]
fn import_export_import_gives_the_same_items() {
    let (code, stdout, stderr) = run(&["import", &fixture("google_export.ics")], b"");
    assert_eq!(code, 0, "{stderr}");
    let items = json_lines(&stdout);
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], "7kukuqrfedlm2f9t0vr42qlm4s@google.com");
    assert_eq!(items[0]["start"]["tz"], "Europe/Berlin");
    assert_eq!(
        items[0]["recurrence"]["overrides"][1]["status"],
        "cancelled"
    );
    assert_eq!(items[1]["start"]["date"], "2024-03-29");

    // Export to a file, import that file: the same JSON lines.
    let out = temp_path("out.ics");
    let (code, written, stderr) = run(&["export", out.to_str().unwrap()], stdout.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    assert!(written.is_empty());
    let ics = std::fs::read_to_string(&out).unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
    assert!(ics.contains("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"));
    let (code, again, stderr) = run(&["import", out.to_str().unwrap()], b"");
    std::fs::remove_file(&out).ok();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json_lines(&again), items);

    // Export to stdout, import from stdin.
    let (code, ics_out, _) = run(&["export"], stdout.as_bytes());
    assert_eq!(code, 0);
    let (code, again, _) = run(&["import", "-"], ics_out.as_bytes());
    assert_eq!(code, 0);
    assert_eq!(json_lines(&again), items);
}

#[test]
fn bad_input_exits_2_and_names_the_line() {
    let (code, stdout, stderr) = run(
        &["import", "-"],
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("line 3"), "{stderr}");

    // One bad event: the good ones are printed, the bad one reported.
    let text = std::fs::read_to_string(fixture("rfc5545_3_6_1_vevent.ics"))
        .unwrap()
        .replace("DTSTART:19970903T163000Z", "DTSTART:19970903T163000Q");
    let (code, stdout, stderr) = run(&["import", "-"], text.as_bytes());
    assert_eq!(code, 2);
    assert_eq!(json_lines(&stdout).len(), 3);
    assert!(stderr.contains("line 7"), "{stderr}");

    let (code, _, stderr) = run(&["export"], b"{\"id\": 1}\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("stdin line 1"), "{stderr}");
    let (code, _, stderr) = run(&["import", "/nonexistent/x.ics"], b"");
    assert_eq!(code, 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_from_a_url() {
    let body = std::fs::read_to_string(fixture("apple_export.ics")).unwrap();
    let router = axum::Router::new().route(
        "/home.ics",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "text/calendar")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let url = format!("http://{addr}/home.ics");
    let out = tokio::task::spawn_blocking(move || run(&["import", &url], b""))
        .await
        .unwrap();
    let (code, stdout, stderr) = out;
    assert_eq!(code, 0, "{stderr}");
    let items = json_lines(&stdout);
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["title"], "Dinner 🍝 with Zoë");
}
