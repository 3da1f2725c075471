//! Twilio Messages: every request shape against Prism serving Twilio's own
//! OpenAPI document, and the negative paths (401, 429 + Retry-After, 5xx,
//! a malformed body, Twilio's error object) against a peer that answers as
//! Twilio documents.
#![cfg(feature = "twilio")]

mod support;

use flextime_connectors::Connector;
use flextime_connectors::sms::twilio::{Twilio, TwilioCredentials};
use flextime_connectors::sms::{SmsMessage, SmsSender, SmsStatus};
use flextime_core::ErrorKind;
use flextime_core::resilience::RetryPolicy;
use flextime_testkit::{Peer, Vendor};
use serde_json::json;
use support::scripted::{self, Answer};

const ACCOUNT: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const API_KEY: &str = "SKbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SERVICE: &str = "MGcccccccccccccccccccccccccccccccc";
const TOKEN: &str = "auth-token-s3cret";

fn twilio(base: &str) -> Twilio {
    Twilio::builder(ACCOUNT, TwilioCredentials::auth_token(TOKEN))
        .base_url(base)
        .http(|h| h.retry(support::fast_retries(3)))
        .build()
        .unwrap()
}

fn message() -> SmsMessage {
    SmsMessage::new("+14155552671", "+14155550000", "Your booking is confirmed")
}

fn created(sid: &str) -> Answer {
    Answer::json(
        201,
        json!({"sid": sid, "status": "queued", "to": "+14155552671", "account_sid": ACCOUNT}),
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Every request the connector makes, validated by Prism against Twilio's
/// OpenAPI document: the test fails on any violation Prism reports.
#[tokio::test]
async fn every_request_passes_prism_validation_of_the_twilio_document() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Twilio), "twilio_prism") else {
        return;
    };
    let (observer, seen) = support::prism_recorder();
    let sender = Twilio::builder(ACCOUNT, TwilioCredentials::auth_token(TOKEN))
        .base_url(&url)
        .http(|h| h.observe(observer.clone()).retry(RetryPolicy::none()))
        .build()
        .unwrap();
    let receipt = sender
        .send(&message().with_status_callback("https://hooks.example.com/twilio/status"))
        .await
        .unwrap();
    assert!(receipt.id.starts_with("SM"), "{receipt:?}");
    assert_eq!(receipt.status, SmsStatus::Queued);
    let via_service = SmsMessage::via_service("+14155552671", SERVICE, "Reminder: tomorrow 9:00");
    sender.send(&via_service).await.unwrap();
    // De-duplicated: the second send makes no request.
    let keyed = message().with_dedup_key("booking-42/confirmation");
    let first = sender.send(&keyed).await.unwrap();
    let again = sender.send(&keyed).await.unwrap();
    assert!(again.deduplicated && !first.deduplicated);
    assert_eq!(again.id, first.id);
    sender.check().await.unwrap();
    let api_key = Twilio::builder(ACCOUNT, TwilioCredentials::api_key(API_KEY, "key-secret"))
        .base_url(&url)
        .http(|h| h.observe(observer).retry(RetryPolicy::none()))
        .build()
        .unwrap();
    api_key.send(&message()).await.unwrap();

    let seen = seen.lock().unwrap();
    let messages = format!("POST /2010-04-01/Accounts/{ACCOUNT}/Messages.json");
    assert_eq!(
        seen.iter().filter(|(r, _)| *r == messages).count(),
        4,
        "{seen:?}"
    );
    assert_eq!(seen.len(), 5, "{seen:?}");
    let bad: Vec<_> = seen.iter().filter(|(_, v)| v.is_some()).collect();
    assert!(bad.is_empty(), "Prism reported violations: {bad:?}");
}

#[tokio::test]
async fn a_message_is_form_encoded_with_basic_auth_and_the_account_in_the_path() {
    let (peer, base) = scripted::start(vec![created("SM1"), created("SM2")], None).await;
    let sender = twilio(&base);
    let receipt = sender
        .send(&message().with_status_callback("https://hooks.example.com/s?b=1"))
        .await
        .unwrap();
    assert_eq!(receipt.id, "SM1");
    let api_key = Twilio::builder(ACCOUNT, TwilioCredentials::api_key(API_KEY, "key-secret"))
        .base_url(&base)
        .build()
        .unwrap();
    api_key
        .send(&SmsMessage::via_service("+14155552671", SERVICE, "Hi"))
        .await
        .unwrap();
    let seen = peer.seen();
    assert_eq!(
        seen[0].path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen[0].header("authorization").unwrap(),
        basic(ACCOUNT, TOKEN)
    );
    assert_eq!(
        seen[0].form(),
        vec![
            ("To".to_owned(), "+14155552671".to_owned()),
            ("From".to_owned(), "+14155550000".to_owned()),
            ("Body".to_owned(), "Your booking is confirmed".to_owned()),
            (
                "StatusCallback".to_owned(),
                "https://hooks.example.com/s?b=1".to_owned()
            ),
        ]
    );
    assert_eq!(
        String::from_utf8_lossy(&seen[0].body),
        "To=%2B14155552671&From=%2B14155550000&Body=Your+booking+is+confirmed\
         &StatusCallback=https%3A%2F%2Fhooks.example.com%2Fs%3Fb%3D1"
    );
    assert_eq!(
        seen[1].path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    assert_eq!(
        seen[1].header("authorization").unwrap(),
        basic(API_KEY, "key-secret")
    );
    assert_eq!(
        seen[1].field("MessagingServiceSid").as_deref(),
        Some(SERVICE)
    );
    assert_eq!(seen[1].field("From"), None);
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let (peer, base) = scripted::start(vec![], Some(created("SM1"))).await;
    let sender = twilio(&base);
    for bad in [
        SmsMessage::new("4155552671", "+14155550000", "hi"),
        SmsMessage::new("+14155552671", "+14155550000", ""),
        SmsMessage::via_service("+14155552671", "MG1", "hi"),
        message().with_status_callback("not a url"),
    ] {
        let err = sender.send(&bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert!(peer.seen().is_empty());
    for (sid, creds) in [
        ("AC123", TwilioCredentials::auth_token(TOKEN)),
        (ACCOUNT, TwilioCredentials::api_key("SK1", "s")),
        (ACCOUNT, TwilioCredentials::auth_token("")),
    ] {
        let err = Twilio::builder(sid, creds)
            .base_url(&base)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(!err.to_string().contains(TOKEN));
    }
}

#[tokio::test]
async fn a_refused_credential_is_unauthorized() {
    let (peer, base) = scripted::start(
        vec![Answer::json(
            401,
            json!({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}),
        )],
        None,
    )
    .await;
    let err = twilio(&base).send(&message()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(
        err.to_string().contains("Authenticate (code 20003)"),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert_eq!(peer.seen().len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_to_success() {
    let (peer, base) = scripted::start(
        vec![
            Answer::json(
                429,
                json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
            )
            .header("retry-after", "0"),
            created("SM9"),
        ],
        None,
    )
    .await;
    let receipt = twilio(&base).send(&message()).await.unwrap();
    assert_eq!(receipt.id, "SM9");
    assert_eq!(peer.seen().len(), 2);
}

#[tokio::test]
async fn a_500_is_not_retried_because_twilio_takes_no_idempotency_key() {
    let (peer, base) = scripted::start(
        vec![
            Answer::json(
                500,
                json!({"code": 20500, "message": "Internal Server Error", "status": 500}),
            ),
            created("SM1"),
        ],
        None,
    )
    .await;
    let err = twilio(&base).send(&message()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(peer.seen().len(), 1, "a second POST could text twice");
}

#[tokio::test]
async fn a_malformed_body_is_a_typed_error() {
    let (_peer, base) = scripted::start(
        vec![Answer::raw(201, "application/json", "{\"sid\": ")],
        None,
    )
    .await;
    let err = twilio(&base).send(&message()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("malformed response body"), "{err}");
}

#[tokio::test]
async fn twilios_error_object_is_surfaced() {
    let (_peer, base) = scripted::start(
        vec![Answer::json(
            400,
            json!({"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}),
        )],
        None,
    )
    .await;
    let err = twilio(&base).send(&message()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(text.contains("is not a valid phone number"), "{text}");
    assert!(text.contains("code 21211"), "{text}");
}

#[tokio::test]
async fn a_failed_keyed_send_can_be_retried_and_a_sent_one_is_not_repeated() {
    let (peer, base) = scripted::start(
        vec![
            Answer::json(
                429,
                json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
            )
            .header("retry-after", "0"),
            Answer::json(
                429,
                json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
            )
            .header("retry-after", "0"),
            Answer::json(
                429,
                json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
            )
            .header("retry-after", "0"),
            created("SM7"),
        ],
        None,
    )
    .await;
    let sender = twilio(&base);
    let keyed = message().with_dedup_key("booking-7/reminder");
    let err = sender.send(&keyed).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    let sent = sender.send(&keyed).await.unwrap();
    let again = sender.send(&keyed).await.unwrap();
    assert_eq!((sent.id.as_str(), again.id.as_str()), ("SM7", "SM7"));
    assert!(again.deduplicated);
    assert_eq!(peer.seen().len(), 4);
}

#[cfg(feature = "webhooks")]
mod callbacks {
    use flextime_connectors::sms::SmsStatus;
    use flextime_connectors::sms::twilio::StatusCallback;
    use flextime_core::{ErrorKind, Secret};
    use flextime_webhooks::verify::{Twilio as TwilioVerifier, WebhookRequest};
    use http::{HeaderMap, HeaderValue, Method, Uri};

    const PUBLIC_URL: &str = "https://hooks.example.com/twilio/status";

    fn params() -> Vec<(String, String)> {
        [
            ("MessageSid", "SM1"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
            ("To", "+14155552671"),
            ("From", "+14155550000"),
            ("AccountSid", super::ACCOUNT),
            ("ApiVersion", "2010-04-01"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn body(params: &[(String, String)]) -> Vec<u8> {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            s.append_pair(k, v);
        }
        s.finish().into_bytes()
    }

    #[test]
    fn a_signed_status_callback_is_verified_and_parsed() {
        let verifier = TwilioVerifier::new([Secret::new(super::TOKEN)], PUBLIC_URL).unwrap();
        let params = params();
        let signature = verifier.sign(PUBLIC_URL, &params);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-twilio-signature",
            HeaderValue::from_str(&signature).unwrap(),
        );
        let body = body(&params);
        let uri: Uri = "/twilio/status".parse().unwrap();
        let request = WebhookRequest {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            body: &body,
        };
        let cb = StatusCallback::verify(&verifier, &request).unwrap();
        assert_eq!(cb.message_sid, "SM1");
        assert_eq!(cb.status, SmsStatus::Undelivered);
        assert_eq!(cb.error_code, Some(30003));

        let mut tampered = body.clone();
        tampered.extend_from_slice(b"&Extra=1");
        let forged = WebhookRequest {
            body: &tampered,
            ..request
        };
        let err = StatusCallback::verify(&verifier, &forged).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(err.to_string().contains("signature_mismatch"), "{err}");

        let unsigned = WebhookRequest {
            headers: &HeaderMap::new(),
            ..request
        };
        let err = StatusCallback::verify(&verifier, &unsigned).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
    }
}
