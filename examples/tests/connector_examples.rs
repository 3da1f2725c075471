//! `notion_pull` and `track_event`, run as a user would run them, against
//! Prism serving the vendors' own OpenAPI documents.

use std::process::Command;

use flextime_testkit::{Peer, Vendor};
use mailparse::MailHeaderMap as _;

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

/// A booking as ScheduleItem JSON, written to a file for `--invite-json`.
fn booking_file(dir: &std::path::Path, attendee: Option<&str>) -> std::path::PathBuf {
    let mut item = serde_json::json!({
        "id": "booking-77",
        "kind": "booking",
        "title": "Haircut",
        "start": {"date_time": "2030-05-06T09:00:00", "tz": "Europe/Paris"},
        "end": {"date_time": "2030-05-06T10:00:00", "tz": "Europe/Paris"},
        "sequence": 1,
        "updated_at": "2030-04-01T08:00:00Z"
    });
    if let Some(a) = attendee {
        item["attendees"] = serde_json::json!([{"email": a}]);
    }
    let path = dir.join("booking.json");
    std::fs::write(&path, item.to_string()).unwrap();
    path
}

#[test]
fn send_email_through_sendgrid_and_postmark_prism() {
    let Some(sendgrid) =
        flextime_testkit::require(Peer::Prism(Vendor::Sendgrid), "send_email_sendgrid_prism")
    else {
        return;
    };
    let Some(postmark) =
        flextime_testkit::require(Peer::Prism(Vendor::Postmark), "send_email_postmark_prism")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let invite = booking_file(dir.path(), None);
    let bin = env!("CARGO_BIN_EXE_send_email");
    let common = [
        "--from",
        "Desk <desk@example.com>",
        "--to",
        "ana@example.com",
        "--to",
        "bo@example.com",
        "--subject",
        "Invitation: Haircut",
        "--text",
        "You are invited.",
        "--html",
        "<p>You are invited.</p>",
        "--invite-json",
        invite.to_str().unwrap(),
    ];
    for transport in [
        vec![
            "--sendgrid-base-url",
            sendgrid.as_str(),
            "--sendgrid-key",
            "SG.prism",
        ],
        vec![
            "--postmark-base-url",
            postmark.as_str(),
            "--postmark-token",
            "pm-prism",
        ],
    ] {
        for cancel in [false, true] {
            let mut args: Vec<&str> = transport.clone();
            args.extend(common);
            if cancel {
                args.push("--cancel");
            }
            // A request Prism finds against the vendor's contract is answered
            // 400/422, which the binary reports with status 1.
            let (code, lines, stderr) = run(bin, &args);
            assert_eq!(code, 0, "{args:?}: {stderr}");
            let method = if cancel { "CANCEL" } else { "REQUEST" };
            assert_eq!(lines[0]["invitation"]["method"], method);
            assert_eq!(lines[0]["invitation"]["uid"], "booking-77");
            assert_eq!(
                lines[0]["invitation"]["sequence"],
                if cancel { 2 } else { 1 }
            );
            assert_eq!(lines[1]["sent"]["recipients"].as_array().unwrap().len(), 2);
        }
    }
}

#[test]
fn send_email_over_smtp_delivers_an_invitation() {
    let Some(url) = flextime_testkit::require(Peer::Smtp, "send_email_smtp") else {
        return;
    };
    let maildir = flextime_testkit::smtp_maildir().expect("FLEXTIME_TEST_SMTP_MAILDIR");
    let to = format!(
        "{}@example.test",
        flextime_testkit::unique_name("send_email")
    );
    let dir = tempfile::tempdir().unwrap();
    let invite = booking_file(dir.path(), Some(&to));
    let (code, lines, stderr) = run(
        env!("CARGO_BIN_EXE_send_email"),
        &[
            "--smtp",
            &url,
            "--from",
            "desk@example.com",
            "--to",
            &to,
            "--subject",
            "Invitation: Haircut",
            "--text",
            "You are invited.",
            "--invite-json",
            invite.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let id = lines[1]["sent"]["message_id"].as_str().unwrap().to_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(maildir.join("new")).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        let mail = mailparse::parse_mail(&bytes).unwrap();
        if mail.headers.get_first_value("Message-ID").as_deref() == Some(&format!("<{id}>")) {
            let mut parts = vec![&mail];
            let mut i = 0;
            while i < parts.len() {
                parts.extend(parts[i].subparts.iter());
                i += 1;
            }
            let cal = parts
                .iter()
                .find(|p| p.ctype.mimetype == "text/calendar")
                .expect("a text/calendar part");
            found.push(cal.get_body().unwrap());
            let _ = std::fs::remove_file(entry.path());
        }
    }
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("METHOD:REQUEST\r\n"), "{}", found[0]);
    assert!(found[0].contains("UID:booking-77\r\n"));
    let unfolded = found[0].replace("\r\n ", "");
    assert!(unfolded.contains(&format!("mailto:{to}")), "{unfolded}");
}

#[test]
fn send_email_refuses_a_bad_address_before_sending() {
    let (code, lines, stderr) = run(
        env!("CARGO_BIN_EXE_send_email"),
        &[
            "--smtp",
            "smtp://127.0.0.1:9",
            "--from",
            "desk@example.com",
            "--to",
            "not an address",
            "--subject",
            "s",
            "--text",
            "t",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(lines[0]["error"]["kind"], "invalid_input");
    assert!(stderr.contains("to[0]"), "{stderr}");
}
