//! Deliveries verified by the official Standard Webhooks library (PyPI
//! `standardwebhooks`) in a small Python HTTP receiver, including a rotated
//! endpoint whose requests each secret must verify on its own.

use std::process::Stdio;
use std::time::Duration;

use flextime_core::Envelope;
use flextime_webhooks::dispatch::{
    BodyMode, DeliveryStatus, Dispatcher, DispatcherConfig, DispatcherEvent, Endpoint,
    RetrySchedule, SsrfGuard,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const RECEIVER: &str = r#"
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks.webhooks import Webhook

secrets = json.loads(sys.argv[1])
out = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = []
        for s in secrets:
            try:
                Webhook(s).verify(body, headers)
                verified.append(True)
            except Exception as e:
                verified.append(repr(e))
        line = json.dumps({"path": self.path, "id": headers.get("webhook-id"),
                          "signatures": headers.get("webhook-signature", "").count("v1,"),
                          "content_type": headers.get("content-type"),
                          "body": body.decode("utf-8"), "verified": verified})
        with out:
            print(line, flush=True)
        ok = any(v is True for v in verified)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
"#;

const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_dGhpcyBpcyBhIDMyIGJ5dGUgc2VjcmV0IGtleSEhIQ==";
const RAW: &str = "whsec_cmF3IGVuZHBvaW50IHNlY3JldCBvZiAyNCBi";

#[tokio::test]
async fn the_official_standardwebhooks_library_verifies_deliveries() {
    let Some(python) = flextime_testkit::require_python(
        "the_official_standardwebhooks_library_verifies_deliveries",
    ) else {
        return;
    };
    let mut child = Command::new(python)
        .arg("-c")
        .arg(RECEIVER)
        .arg(json!([OLD, NEW, RAW]).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async move || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a line from the python receiver within 30 s")
            .unwrap()
            .expect("python receiver running");
        serde_json::from_str(&line).unwrap()
    };
    let port = next().await["port"].as_u64().unwrap();

    let d = Dispatcher::builder()
        .config(DispatcherConfig {
            schedule: RetrySchedule::from_millis(&[0]),
            ssrf: SsrfGuard::default().allow("127.0.0.0/8".parse().unwrap()),
            ..DispatcherConfig::default()
        })
        .start()
        .await
        .unwrap();
    d.add_endpoint(
        Endpoint::new("rotated", format!("http://127.0.0.1:{port}/rotated"))
            .with_secret(OLD)
            .ordered(true),
    )
    .await
    .unwrap();
    d.rotate_secret("rotated", Some(NEW.into())).await.unwrap();
    d.add_endpoint(
        Endpoint::new("raw", format!("http://127.0.0.1:{port}/raw"))
            .with_secret(RAW)
            .with_body(BodyMode::Raw)
            .ordered(true),
    )
    .await
    .unwrap();
    let mut events = d.subscribe();
    let mut sent = Vec::new();
    for n in 0..3 {
        let e = Envelope::new("/tests", "booking.created")
            .with_id(format!("evt-{n}"))
            .with_data_json(json!({"n": n, "title": "Standup ✓"}));
        sent.push(d.send(&e).await.unwrap().message_id);
    }
    let mut outcomes = Vec::new();
    while outcomes.len() < 6 {
        let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .unwrap()
            .unwrap();
        if let DispatcherEvent::Finished(o) = e {
            outcomes.push(o);
        }
    }
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == DeliveryStatus::Delivered),
        "{outcomes:#?}"
    );
    let mut rotated = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..6 {
        let seen = next().await;
        if seen["path"] == "/rotated" {
            rotated.push(seen);
        } else {
            raw.push(seen);
        }
    }
    for (i, seen) in rotated.iter().enumerate() {
        assert_eq!(seen["id"], sent[i].as_str());
        assert_eq!(seen["signatures"], 2, "one v1 entry per active secret");
        assert_eq!(seen["verified"][0], true, "the old secret verifies: {seen}");
        assert_eq!(seen["verified"][1], true, "the new secret verifies: {seen}");
        assert_ne!(seen["verified"][2], true, "an unrelated secret does not");
        assert_eq!(seen["content_type"], "application/cloudevents+json");
        let e = Envelope::from_json_slice(seen["body"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(e.id(), format!("evt-{i}"));
    }
    for (i, seen) in raw.iter().enumerate() {
        assert_eq!(seen["id"], sent[i].as_str());
        assert_eq!(seen["signatures"], 1);
        assert_eq!(seen["verified"][2], true, "{seen}");
        assert_ne!(seen["verified"][0], true);
        let data: Value = serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
        assert_eq!(data, json!({"n": i, "title": "Standup ✓"}));
    }
}
