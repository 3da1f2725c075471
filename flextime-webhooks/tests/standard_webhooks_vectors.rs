//! The Standard Webhooks test vectors from ../shared/webhook-vectors, both
//! directions: our verifier accepts every valid vector and refuses every
//! invalid one, and our signer reproduces each valid signature.

use std::path::PathBuf;

use flextime_webhooks::verify::{Rejection, StandardWebhooks, Tolerance, Verifier, WebhookRequest};
use http::{HeaderMap, Method, Uri};
use serde_json::Value;

fn vectors() -> Value {
    let shared = std::env::var_os("FLEXTIME_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    );
    let path = shared.join("webhook-vectors/standard-webhooks.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set FLEXTIME_SHARED_DIR)", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn headers(v: &Value, prefix: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::HeaderName::from_bytes(format!("{prefix}-id").as_bytes()).unwrap(),
        v["webhook_id"].as_str().unwrap().parse().unwrap(),
    );
    h.insert(
        http::HeaderName::from_bytes(format!("{prefix}-timestamp").as_bytes()).unwrap(),
        v["webhook_timestamp"]
            .as_str()
            .map_or_else(|| v["webhook_timestamp"].to_string(), str::to_owned)
            .parse()
            .unwrap(),
    );
    h.insert(
        http::HeaderName::from_bytes(format!("{prefix}-signature").as_bytes()).unwrap(),
        v["signature"].as_str().unwrap().parse().unwrap(),
    );
    h
}

fn verify(v: &Value, prefix: &str) -> Result<(), Rejection> {
    let verifier =
        StandardWebhooks::new([v["secret"].as_str().unwrap().into()], Tolerance::DEFAULT).unwrap();
    let headers = headers(v, prefix);
    let uri = Uri::from_static("/hooks");
    let req = WebhookRequest {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: v["payload"].as_str().unwrap().as_bytes(),
    };
    // The vectors' timestamps are historic: verify with the clock at that time.
    verifier
        .verify(&req, v["webhook_timestamp"].as_i64().unwrap_or(0))
        .map(|_| ())
}

#[test]
fn every_valid_vector_verifies_with_both_header_spellings() {
    let all = vectors();
    let valid = all["valid"].as_array().unwrap();
    assert!(valid.len() >= 4);
    for v in valid {
        for prefix in ["webhook", "svix"] {
            verify(v, prefix).unwrap_or_else(|e| panic!("{} ({prefix}): {e}", v["name"]));
        }
    }
}

#[test]
fn every_invalid_vector_is_refused() {
    let all = vectors();
    let invalid = all["invalid"].as_array().unwrap();
    assert!(!invalid.is_empty());
    for v in invalid {
        assert!(verify(v, "webhook").is_err(), "{} was accepted", v["name"]);
    }
}

#[test]
fn signing_reproduces_every_single_signature_vector() {
    let all = vectors();
    for v in all["valid"].as_array().unwrap() {
        let expected = v["signature"].as_str().unwrap();
        if expected.contains(' ') {
            continue; // the multi-signature header is not one secret's output
        }
        let signer =
            StandardWebhooks::new([v["secret"].as_str().unwrap().into()], Tolerance::DISABLED)
                .unwrap();
        let got = signer.sign(
            v["webhook_id"].as_str().unwrap(),
            v["webhook_timestamp"].as_i64().unwrap(),
            v["payload"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(got, expected, "{}", v["name"]);
    }
}

#[test]
fn timestamp_window_as_the_vectors_describe() {
    let all = vectors();
    let v = &all["valid"][0];
    let t = v["webhook_timestamp"].as_i64().unwrap();
    let verifier =
        StandardWebhooks::new([v["secret"].as_str().unwrap().into()], Tolerance::DEFAULT).unwrap();
    let headers = headers(v, "webhook");
    let uri = Uri::from_static("/hooks");
    let req = WebhookRequest {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: v["payload"].as_str().unwrap().as_bytes(),
    };
    // Clock at `now`: the timestamp is now - 301 (too old) ... now + 301 (too new).
    assert_eq!(
        verifier.verify(&req, t + 301).unwrap_err(),
        Rejection::TimestampTooOld
    );
    assert_eq!(
        verifier.verify(&req, t - 301).unwrap_err(),
        Rejection::TimestampTooNew
    );
    assert!(verifier.verify(&req, t + 299).is_ok());
    assert!(verifier.verify(&req, t - 299).is_ok());
    let disabled =
        StandardWebhooks::new([v["secret"].as_str().unwrap().into()], Tolerance::DISABLED).unwrap();
    assert!(disabled.verify(&req, t + 10_000_000).is_ok());
}

#[test]
fn bad_secrets_are_refused_at_construction() {
    let all = vectors();
    for bad in all["bad_secrets"].as_array().unwrap() {
        let err =
            StandardWebhooks::new([bad.as_str().unwrap().into()], Tolerance::DEFAULT).unwrap_err();
        assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("whsec_M"), "{err}");
    }
    assert!(StandardWebhooks::new(["whsec_!!!!".into()], Tolerance::DEFAULT).is_err());
    assert!(
        StandardWebhooks::new(Vec::<flextime_core::Secret>::new(), Tolerance::DEFAULT).is_err()
    );
}
