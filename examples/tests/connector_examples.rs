//! `notion_pull` and `track_event`, run as a user would run them, against
//! Prism serving the vendors' own OpenAPI documents.

use std::process::Command;

use flextime_testkit::{Peer, Vendor};

fn run(bin: &str, args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("run the example");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn notion_pull_runs_against_prism_and_keeps_its_state() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Notion), "notion_pull_prism")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("notion.state");
    let args = [
        "--base-url",
        url.as_str(),
        "--token",
        "ntn_prism",
        "--data-source",
        "1f0e7f4b-8a4c-4c2b-9f57-2f6f0c8a9d11",
        "--state",
        state.to_str().unwrap(),
    ];
    let (code, lines, stderr) = run(env!("CARGO_BIN_EXE_notion_pull"), &args);
    assert_eq!(code, 0, "{stderr}");
    // Prism answers the query with a bare object: no pages.
    assert_eq!(lines.last().unwrap()["summary"]["changes"], 0);
    assert!(std::fs::read_to_string(&state).unwrap().starts_with('{'));
    let (code, _, stderr) = run(env!("CARGO_BIN_EXE_notion_pull"), &args);
    assert_eq!(
        code, 0,
        "the second run resumes from the state file: {stderr}"
    );
}

#[test]
fn notion_pull_reports_a_bad_token_as_an_error() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Notion), "notion_pull_prism")
    else {
        return;
    };
    let (code, _, stderr) = run(
        env!("CARGO_BIN_EXE_notion_pull"),
        &["--base-url", &url, "--token", "t", "--data-source", " "],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("data source"), "{stderr}");
}

#[test]
fn track_event_sends_batches_through_mixpanel_track_and_import() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Mixpanel), "track_event_prism")
    else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_track_event");
    let (code, lines, stderr) = run(
        bin,
        &[
            "--base-url",
            &url,
            "--token",
            "proj",
            "--event",
            "booking_confirmed",
            "--distinct-id",
            "user-1",
            "--property",
            "amount=2500",
            "--property",
            "plan=pro",
            "--insert-id",
            "bk-1",
            "--count",
            "60",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 61);
    assert_eq!(lines[0]["queued"]["insert_id"], "bk-1-0");
    assert_eq!(lines[60]["summary"]["sent"], 60);
    let (code, lines, stderr) = run(
        bin,
        &[
            "--base-url",
            &url,
            "--import",
            "--project-id",
            "123",
            "--secret",
            "s3cr3t",
            "--event",
            "x",
            "--distinct-id",
            "u",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.last().unwrap()["summary"]["sent"], 1);
    let (code, _, stderr) = run(
        bin,
        &[
            "--base-url",
            &url,
            "--import",
            "--event",
            "x",
            "--distinct-id",
            "u",
        ],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("--project-id"), "{stderr}");
}
