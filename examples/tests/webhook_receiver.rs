//! The `webhook_receiver` example over real HTTP, as a user runs it.

use std::process::Stdio;
use std::time::Duration;

use flextime_webhooks::verify::{StandardWebhooks, Stripe, Tolerance, Twilio};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Running {
    child: Child,
    base: String,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

async fn start(config: &str) -> Running {
    let path = std::env::temp_dir().join(format!(
        "webhook_receiver_{}_{}.toml",
        std::process::id(),
        flextime_testkit::next_sequence()
    ));
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_webhook_receiver"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = next(&mut stderr).await;
    let addr = first["listening"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    Running {
        child,
        base: format!("http://{addr}"),
        stdout,
        stderr,
    }
}

async fn next<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .unwrap()
        .expect("stream open");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
[[source]]
name = "billing"
path = "/hooks/sw"
scheme = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]

[[source]]
name = "stripe"
path = "/hooks/stripe"
scheme = "stripe"
secrets = ["whsec_stripe_test"]
tolerance_secs = 300

[[source]]
name = "twilio"
path = "/hooks/twilio"
scheme = "twilio"
secrets = ["twilio-token"]
public_url = "https://example.com/hooks/twilio"
"#;

#[tokio::test]
async fn prints_accepted_events_and_refusals_and_ignores_duplicates() {
    let mut run = start(CONFIG).await;
    let http = reqwest::Client::new();

    // Standard Webhooks.
    let sw = StandardWebhooks::new([SW_SECRET.into()], Tolerance::DEFAULT).unwrap();
    let body = r#"{"type":"booking.created","data":{"id":"bk_1"}}"#;
    let ts = now();
    let send_sw = |id: &'static str| {
        http.post(format!("{}/hooks/sw", run.base))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sw.sign(id, ts, body.as_bytes()))
            .body(body)
            .send()
    };
    assert_eq!(send_sw("msg_1").await.unwrap().status(), 200);
    let event = next(&mut run.stdout).await;
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["source"], "billing");
    assert_eq!(event["type"], "booking.created");
    assert_eq!(event["id"], "msg_1");
    assert_eq!(event["data"]["data"]["id"], "bk_1");
    // A duplicate: 200, nothing printed.
    assert_eq!(send_sw("msg_1").await.unwrap().status(), 200);

    // Stripe, with a bad signature first.
    let stripe = Stripe::new(["whsec_stripe_test".into()], Tolerance::DEFAULT).unwrap();
    let sbody = r#"{"id":"evt_9","type":"invoice.paid","data":{"object":{"amount_paid":100}}}"#;
    let bad = http
        .post(format!("{}/hooks/stripe", run.base))
        .header("content-type", "application/json")
        .header("stripe-signature", format!("t={},v1=00ff", now()))
        .body(sbody)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let refused = next(&mut run.stderr).await;
    assert_eq!(refused["source"], "stripe");
    assert_eq!(refused["reason"], "signature_mismatch");
    assert_eq!(refused["status"], 401);
    let ok = http
        .post(format!("{}/hooks/stripe", run.base))
        .header("content-type", "application/json")
        .header("stripe-signature", stripe.sign(now(), sbody.as_bytes()))
        .body(sbody)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // The duplicate above printed nothing: the next stdout line is Stripe's.
    let event = next(&mut run.stdout).await;
    assert_eq!(event["id"], "evt_9");
    assert_eq!(event["type"], "invoice.paid");

    // Twilio: signed for the public URL, received on localhost.
    let twilio = Twilio::new(["twilio-token".into()], "https://example.com/hooks/twilio").unwrap();
    let params = vec![
        ("MessageSid".to_owned(), "SM123".to_owned()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
    ];
    let sig = twilio.sign("https://example.com/hooks/twilio?x=1", &params);
    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let ok = http
        .post(format!("{}/hooks/twilio?x=1", run.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let event = next(&mut run.stdout).await;
    assert_eq!(event["source"], "twilio");
    assert_eq!(event["type"], "webhook.received");
    assert_eq!(event["data"]["MessageStatus"], "delivered");
    run.child.kill().await.unwrap();
}

#[tokio::test]
async fn a_bad_config_is_one_clear_error_line() {
    let path =
        std::env::temp_dir().join(format!("webhook_receiver_bad_{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[[source]]\nname = \"t\"\npath = \"/t\"\nscheme = \"twilio\"\nsecrets = [\"supersecret\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_webhook_receiver"))
        .arg("--config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("public_url"), "{stderr}");
    assert!(!stderr.contains("supersecret"), "{stderr}");
}
