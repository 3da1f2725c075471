//! `queue_produce` and `queue_consume`, run as a user would run them,
//! against the Redis test peer.

use std::io::Write;
use std::process::{Command, Stdio};

fn unique(name: &str) -> String {
    flextime_testkit::unique_name(name)
}

#[test]
fn produce_then_consume_over_redis() {
    let url = flextime_testkit::require_peer!(Redis);
    let topic = unique("examples");
    let out = Command::new(env!("CARGO_BIN_EXE_queue_produce"))
        .args(["--url", &url, "--topic", &topic, "--count", "2"])
        .output()
        .expect("run queue_produce");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    let mut child = Command::new(env!("CARGO_BIN_EXE_queue_produce"))
        .args(["--url", &url, "--topic", &topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run queue_produce");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            br#"{"id":"m-3","key":"room-1","headers":{"tenant":"acme"},"payload":{"booking":3}}
"plain text"
"#,
        )
        .expect("write stdin");
    let out = child.wait_with_output().expect("queue_produce ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(env!("CARGO_BIN_EXE_queue_consume"))
        .args([
            "--url", &url, "--topic", &topic, "--group", "g", "--max", "4",
        ])
        .output()
        .expect("run queue_consume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["payload"]["n"], 0);
    assert_eq!(lines[1]["payload"]["n"], 1);
    assert_eq!(lines[2]["id"], "m-3");
    assert_eq!(lines[2]["key"], "room-1");
    assert_eq!(lines[2]["headers"]["tenant"], "acme");
    assert_eq!(lines[2]["payload"]["booking"], 3);
    assert_eq!(lines[2]["attempt"], 1);
    assert_eq!(lines[3]["payload"], "plain text");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_queue_produce"))
        .args(["--url", "memory://", "--topic", "t"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run queue_produce");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"{not json\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("ends");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1: not JSON"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_queue_consume"))
        .args([
            "--url",
            "gopher://u:secret@h",
            "--topic",
            "t",
            "--group",
            "g",
        ])
        .output()
        .expect("run queue_consume");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not supported"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}
