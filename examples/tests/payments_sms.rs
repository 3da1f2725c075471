//! `send_sms` and `stripe_checkout`, run as a user runs them, against Prism
//! serving Twilio's and Stripe's own OpenAPI documents. A recording
//! pass-through (`flextime_testkit::prism_form`) sits in front of Prism so
//! the test sees every request the binary made and every violation Prism
//! found; for Stripe it also checks `line_items` itself, which Prism 5
//! cannot read in a form body.

use flextime_testkit::prism_form::{self, PassThrough};
use flextime_testkit::{Peer, Vendor};
use serde_json::Value;
use tokio::process::Command;

const ACCOUNT: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

async fn run(bin: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .await
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_clean(pass: &PassThrough, expected: &[&str]) {
    let requests = pass.requests();
    let lines: Vec<&str> = requests.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(lines, expected);
    let bad: Vec<_> = requests.iter().filter(|(_, v)| v.is_some()).collect();
    assert!(bad.is_empty(), "Prism reported violations: {bad:?}");
}

#[tokio::test]
async fn send_sms_sends_once_per_dedup_key_through_prism() {
    let Some(prism) = flextime_testkit::require(Peer::Prism(Vendor::Twilio), "send_sms_prism")
    else {
        return;
    };
    let pass = prism_form::serve(&prism, Value::Null, &[]).await.unwrap();
    let (code, lines, stderr) = run(
        env!("CARGO_BIN_EXE_send_sms"),
        &[
            "--base-url",
            &pass.url,
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            "token",
            "--from",
            "+14155550000",
            "--to",
            "+14155552671",
            "--body",
            "Your booking is confirmed",
            "--status-callback",
            "https://hooks.example.com/twilio/status",
            "--dedup-key",
            "booking-42/confirmation",
            "--repeat",
            "2",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "sent");
    assert_eq!(lines[0]["status"], "queued");
    assert_eq!(lines[0]["deduplicated"], false);
    assert_eq!(lines[1]["deduplicated"], true);
    assert_eq!(lines[0]["sid"], lines[1]["sid"]);
    assert_clean(
        &pass,
        &[&format!(
            "POST /2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        )],
    );

    // Straight at Prism too, as a user would point it.
    let (code, lines, stderr) = run(
        env!("CARGO_BIN_EXE_send_sms"),
        &[
            "--base-url",
            &prism,
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            "token",
            "--messaging-service-sid",
            "MGcccccccccccccccccccccccccccccccc",
            "--to",
            "+14155552671",
            "--body",
            "Reminder",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1);
}

#[tokio::test]
async fn send_sms_refuses_a_number_that_is_not_e164() {
    let (code, lines, stderr) = run(
        env!("CARGO_BIN_EXE_send_sms"),
        &[
            "--base-url",
            "http://127.0.0.1:9",
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            "t",
            "--from",
            "+14155550000",
            "--to",
            "4155552671",
            "--body",
            "x",
        ],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(lines.is_empty());
    let error: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(error["kind"], "invalid_input");
    assert!(
        error["message"].as_str().unwrap().contains("E.164"),
        "{error}"
    );
}

#[tokio::test]
async fn stripe_checkout_creates_a_deposit_session_through_prism() {
    let Some(prism) =
        flextime_testkit::require(Peer::Prism(Vendor::Stripe), "stripe_checkout_prism")
    else {
        return;
    };
    let document = match prism_form::load_document("prism/stripe-spec3.2023-09-12.prism-slim.json")
    {
        Ok(doc) => doc,
        Err(e) => panic!("the Stripe document is needed with its Prism: {e}"),
    };
    let pass = prism_form::serve(&prism, document, &["line_items"])
        .await
        .unwrap();
    let (code, lines, stderr) = run(
        env!("CARGO_BIN_EXE_stripe_checkout"),
        &[
            "--base-url",
            &pass.url,
            "--secret-key",
            "sk_test_example",
            "--booking-id",
            "b-42",
            "--amount",
            "2500",
            "--currency",
            "EUR",
            "--success-url",
            "https://flextime.example/b-42/paid",
            "--cancel-url",
            "https://flextime.example/b-42",
            "--customer-email",
            "ada@example.com",
            "--manual-capture",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "request");
    assert_eq!(lines[0]["amount"], 2500);
    assert_eq!(lines[0]["currency"], "eur");
    assert_eq!(lines[0]["display"], "25.00 EUR");
    assert!(
        lines[0]["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with("flextime-checkout_session.create-")
    );
    assert_eq!(lines[1]["event"], "checkout_session");
    assert!(lines[1]["id"].is_string(), "{lines:?}");
    assert_clean(&pass, &["POST /v1/checkout/sessions"]);

    // The same booking again: the same idempotency key.
    let (_, again, _) = run(
        env!("CARGO_BIN_EXE_stripe_checkout"),
        &[
            "--base-url",
            &pass.url,
            "--secret-key",
            "sk_test_example",
            "--booking-id",
            "b-42",
            "--amount",
            "2500",
            "--currency",
            "eur",
            "--success-url",
            "https://flextime.example/b-42/paid",
            "--cancel-url",
            "https://flextime.example/b-42",
        ],
    )
    .await;
    assert_eq!(again[0]["idempotency_key"], lines[0]["idempotency_key"]);
}

#[tokio::test]
async fn stripe_checkout_refuses_bad_amounts_and_currencies() {
    for (amount, currency) in [("0", "eur"), ("-5", "eur"), ("2500", "euro")] {
        let (code, lines, stderr) = run(
            env!("CARGO_BIN_EXE_stripe_checkout"),
            &[
                "--base-url",
                "http://127.0.0.1:9",
                "--secret-key",
                "sk_test_x",
                "--booking-id",
                "b-1",
                "--amount",
                amount,
                "--currency",
                currency,
                "--success-url",
                "https://x.test/ok",
                "--cancel-url",
                "https://x.test/no",
            ],
        )
        .await;
        assert_eq!(code, 2, "{amount} {currency}: {stderr}");
        assert!(lines.is_empty());
        assert!(stderr.contains("invalid_input"), "{stderr}");
    }
}
