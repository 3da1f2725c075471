//! The `webhook_sender` example run as a user runs it, against real local
//! receivers that verify every request with flextime's Standard Webhooks
//! verifier.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use flextime_webhooks::verify::{StandardWebhooks, Tolerance, Verifier, WebhookRequest};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How a receiver answers: `fail_first` failures (503) per webhook-id, then
/// `then`; requests whose signature does not verify get 401.
#[derive(Clone)]
struct Behaviour {
    fail_first: usize,
    then: u16,
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

async fn handle(
    State(b): State<Behaviour>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let v = StandardWebhooks::new([SECRET.into()], Tolerance::DEFAULT).unwrap();
    let ok = v
        .verify(
            &WebhookRequest {
                method: &Method::POST,
                uri: &uri,
                headers: &headers,
                body: &body,
            },
            chrono::Utc::now().timestamp(),
        )
        .is_ok();
    if !ok {
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers["webhook-id"].to_str().unwrap().to_owned();
    let n = {
        let mut seen = b.seen.lock().unwrap();
        let n = seen.entry(id).or_default();
        *n += 1;
        *n
    };
    if n <= b.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::from_u16(b.then).unwrap()
    }
}

async fn receiver(fail_first: usize, then: u16) -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let app = axum::Router::new().fallback(handle).with_state(Behaviour {
        fail_first,
        then,
        seen: Arc::clone(&seen),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks"), seen)
}

struct Run {
    outcomes: Vec<Value>,
    stderr: String,
}

async fn run(config: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let path = std::env::temp_dir().join(format!(
        "webhook_sender_{}_{}.toml",
        std::process::id(),
        flextime_testkit::next_sequence()
    ));
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_webhook_sender"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("webhook_sender exits within 60 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let outcomes = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    Run { outcomes, stderr }
}

#[tokio::test]
async fn count_events_are_retried_until_delivered() {
    let (url, seen) = receiver(1, 200).await;
    let config = format!(
        r#"
store = "memory://"
retry_schedule_ms = [0, 10, 10]
timeout_ms = 5000
allow_subnets = ["127.0.0.0/8"]

[[endpoint]]
id = "crm"
url = "{url}"
secret = "{SECRET}"
"#
    );
    // Four events, each failing once: fewer failures in a row than open the
    // endpoint's breaker (five by default), which would hold the retries
    // back for its 30 s.
    let run = run(&config, &["--count", "4"], None).await;
    assert_eq!(run.outcomes.len(), 4, "{}", run.stderr);
    for o in &run.outcomes {
        assert_eq!(o["status"], "delivered", "{o}");
        assert_eq!(o["attempts"], 2);
        assert_eq!(o["endpoint"], "crm");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.values().all(|n| *n == 2),
        "same webhook-id on the retry"
    );
    for o in &run.outcomes {
        assert_eq!(seen[o["message_id"].as_str().unwrap()], 2);
    }
}

#[tokio::test]
async fn stdin_events_reach_every_final_status() {
    let (ok_url, ok_seen) = receiver(0, 200).await;
    let (gone_url, _) = receiver(0, 410).await;
    let (bad_url, bad_seen) = receiver(0, 500).await;
    let dir = std::env::temp_dir().join(flextime_testkit::unique_name("webhook_sender"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        r#"
store = "sqlite://{}"
retry_schedule_ms = [0, 5, 5]
allow_subnets = ["127.0.0.0/8"]

[[endpoint]]
id = "bookings"
url = "{ok_url}"
secret = "{SECRET}"
events = ["booking.*"]

[[endpoint]]
id = "gone"
url = "{gone_url}"
secret = "{SECRET}"
events = ["invoice.paid"]

[[endpoint]]
id = "broken"
url = "{bad_url}"
secret = "{SECRET}"
events = ["invoice.paid"]
"#,
        dir.join("sender.db").display()
    );
    let input = r#"{"type": "booking.created", "data": {"id": "b-1"}}
not json
{"type": "invoice.paid", "data": {"amount": 42}, "id": "inv-1"}
{"type": "shift.created", "data": {}}
{"type": "booking.moved", "data": {"id": "b-1", "room": "A"}}
"#;
    let run = run(&config, &[], Some(input)).await;
    let mut by: Vec<(String, String, u64)> = run
        .outcomes
        .iter()
        .map(|o| {
            (
                o["endpoint"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
                o["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    by.sort();
    assert_eq!(
        by,
        [
            ("bookings".into(), "delivered".into(), 1),
            ("bookings".into(), "delivered".into(), 1),
            ("broken".into(), "exhausted".into(), 3),
            ("gone".into(), "endpoint_disabled".into(), 1),
        ],
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(r#""line":2"#), "{}", run.stderr);
    assert!(run.stderr.contains("endpoint_disabled"), "{}", run.stderr);
    assert_eq!(ok_seen.lock().unwrap().len(), 2);
    assert_eq!(bad_seen.lock().unwrap().values().sum::<usize>(), 3);
}

#[tokio::test]
async fn private_destinations_are_refused_without_an_allow_list() {
    let (url, seen) = receiver(0, 200).await;
    let config = format!(
        r#"
[[endpoint]]
url = "{url}"
secret = "{SECRET}"
"#
    );
    let path =
        std::env::temp_dir().join(format!("webhook_sender_ssrf_{}.toml", std::process::id()));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_webhook_sender"))
        .arg("--config")
        .arg(&path)
        .args(["--count", "1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("destination address 127.0.0.1 is not allowed"),
        "{stderr}"
    );
    assert!(seen.lock().unwrap().is_empty());
}
