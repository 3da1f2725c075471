//! Signatures made by the providers' own SDKs (PyPI standardwebhooks,
//! slack_sdk, twilio, stripe, in the virtualenv `scripts/services` makes)
//! verify with ours, and signatures we make verify with theirs.

use std::io::Write;
use std::process::{Command, Stdio};

use flextime_webhooks::verify::{
    Slack, StandardWebhooks, Stripe, Tolerance, Twilio, Verifier, WebhookRequest,
};
use http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import json, sys, datetime
from standardwebhooks.webhooks import Webhook
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator
import stripe

cfg = json.load(sys.stdin)
now = cfg["now"]
out = {}

sw = Webhook(cfg["sw_secret"])
out["sw_sdk_signature"] = sw.sign(cfg["sw_id"], datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc), cfg["body"])
try:
    sw.verify(cfg["body"], {"webhook-id": cfg["sw_id"], "webhook-timestamp": str(now), "webhook-signature": cfg["sw_ours"]})
    out["sw_sdk_accepts_ours"] = True
except Exception as e:
    out["sw_sdk_accepts_ours"] = repr(e)

slack = SignatureVerifier(cfg["slack_secret"])
out["slack_sdk_signature"] = slack.generate_signature(timestamp=str(now), body=cfg["body"])
out["slack_sdk_accepts_ours"] = slack.is_valid(cfg["body"], str(now), cfg["slack_ours"])

rv = RequestValidator(cfg["twilio_token"])
params = dict(cfg["twilio_params"])
out["twilio_sdk_signature"] = rv.compute_signature(cfg["twilio_url"], params)
out["twilio_sdk_accepts_ours"] = rv.validate(cfg["twilio_url"], params, cfg["twilio_ours"])
json_url = cfg["twilio_json_url_base"] + "?bodySHA256=" + rv.compute_hash(cfg["body"])
out["twilio_json_url"] = json_url
out["twilio_sdk_json_signature"] = rv.compute_signature(json_url, {})

out["stripe_sdk_header"] = stripe.WebhookSignature.generate_signature_header(cfg["body"], cfg["stripe_secret"], timestamp=now)
try:
    stripe.WebhookSignature.verify_header(cfg["body"], cfg["stripe_ours"], cfg["stripe_secret"], tolerance=300)
    out["stripe_sdk_accepts_ours"] = True
except Exception as e:
    out["stripe_sdk_accepts_ours"] = repr(e)

json.dump(out, sys.stdout)
"#;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

fn verify(v: &dyn Verifier, uri: &str, h: &HeaderMap, body: &[u8], now: i64) -> bool {
    let uri: Uri = uri.parse().unwrap();
    v.verify(
        &WebhookRequest {
            method: &Method::POST,
            uri: &uri,
            headers: h,
            body,
        },
        now,
    )
    .map_err(|e| eprintln!("{}: {e}", v.scheme()))
    .is_ok()
}

#[test]
fn provider_sdks_and_flextime_agree_both_ways() {
    let Some(python) =
        flextime_testkit::require_python("provider_sdks_and_flextime_agree_both_ways")
    else {
        return;
    };
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"id":"evt_sdk_1","type":"invoice.paid","data":{"object":{"amount_paid":4200}}}"#;
    let sw_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sw = StandardWebhooks::new([sw_secret.into()], Tolerance::DEFAULT).unwrap();
    let slack = Slack::new(
        ["8f742231b10e8888abcd99yyyzzz85a5".into()],
        Tolerance::DEFAULT,
    )
    .unwrap();
    let stripe = Stripe::new(["whsec_stripe_sdk".into()], Tolerance::DEFAULT).unwrap();
    let twilio_url = "https://example.com/hooks/twilio?campaign=7";
    let twilio = Twilio::new(["twilio-token".into()], "https://example.com/hooks/twilio").unwrap();
    let params = vec![
        ("MessageSid".to_owned(), "SM42".to_owned()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
        ("To".to_owned(), "+15551234567".to_owned()),
    ];
    let cfg = json!({
        "now": now,
        "body": body,
        "sw_secret": sw_secret,
        "sw_id": "msg_sdk_1",
        "sw_ours": sw.sign("msg_sdk_1", now, body.as_bytes()),
        "slack_secret": "8f742231b10e8888abcd99yyyzzz85a5",
        "slack_ours": slack.sign(now, body.as_bytes()),
        "twilio_token": "twilio-token",
        "twilio_url": twilio_url,
        "twilio_params": params,
        "twilio_ours": twilio.sign(twilio_url, &params),
        "twilio_json_url_base": "https://example.com/hooks/twilio",
        "stripe_secret": "whsec_stripe_sdk",
        "stripe_ours": stripe.sign(now, body.as_bytes()),
    });
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python SDKs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cfg.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    // Theirs accept ours.
    for key in [
        "sw_sdk_accepts_ours",
        "slack_sdk_accepts_ours",
        "twilio_sdk_accepts_ours",
        "stripe_sdk_accepts_ours",
    ] {
        assert_eq!(out[key], true, "{key}: {}", out[key]);
    }

    // Ours accept theirs.
    let h = headers(&[
        ("webhook-id", "msg_sdk_1"),
        ("webhook-timestamp", &now.to_string()),
        (
            "webhook-signature",
            out["sw_sdk_signature"].as_str().unwrap(),
        ),
    ]);
    assert!(
        verify(&sw, "/h", &h, body.as_bytes(), now),
        "standard webhooks SDK signature"
    );

    let h = headers(&[
        ("x-slack-request-timestamp", &now.to_string()),
        (
            "x-slack-signature",
            out["slack_sdk_signature"].as_str().unwrap(),
        ),
    ]);
    assert!(
        verify(&slack, "/h", &h, body.as_bytes(), now),
        "slack_sdk signature"
    );

    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let h = headers(&[(
        "x-twilio-signature",
        out["twilio_sdk_signature"].as_str().unwrap(),
    )]);
    assert!(
        verify(&twilio, "/internal?campaign=7", &h, form.as_bytes(), now),
        "twilio SDK signature (form)"
    );
    let json_url = out["twilio_json_url"].as_str().unwrap();
    let query = json_url.split_once('?').unwrap().1;
    let h = headers(&[(
        "x-twilio-signature",
        out["twilio_sdk_json_signature"].as_str().unwrap(),
    )]);
    assert!(
        verify(
            &twilio,
            &format!("/internal?{query}"),
            &h,
            body.as_bytes(),
            now
        ),
        "twilio SDK signature (JSON body, bodySHA256)"
    );

    let h = headers(&[(
        "stripe-signature",
        out["stripe_sdk_header"].as_str().unwrap(),
    )]);
    assert!(
        verify(&stripe, "/h", &h, body.as_bytes(), now),
        "stripe SDK signature"
    );
}
