//! The receiver as a router, driven in-process with `tower::ServiceExt::oneshot`:
//! every refusal path, replay protection, hand-off failure, typed handlers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use flextime_core::resilience::{RateLimit, RetryPolicy};
use flextime_core::{Error, ManualClock, Result};
use flextime_webhooks::receiver::{
    ChannelHandOff, HandOff, HandlerWorker, Handlers, InboundEvent, Receiver, SourceConfig,
};
use flextime_webhooks::verify::{GitHub, StandardWebhooks, Stripe, Tolerance};
use http::{Request, StatusCode};
use serde::Deserialize;
use tower::ServiceExt;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_700_000_000;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_unix_millis(NOW * 1000))
}

fn sw() -> StandardWebhooks {
    StandardWebhooks::new([SECRET.into()], Tolerance::DEFAULT).unwrap()
}

fn signed(id: &str, ts: i64, body: &str) -> Request<Body> {
    Request::post("/hooks/sw")
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sw().sign(id, ts, body.as_bytes()))
        .header("authorization", "Bearer should-not-be-kept")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn receiver_with(handoff: Arc<dyn HandOff>, source: SourceConfig) -> axum::Router {
    Receiver::builder_shared(handoff)
        .source(source)
        .clock(clock())
        .build()
        .unwrap()
        .router()
}

fn sw_source() -> SourceConfig {
    SourceConfig::new("billing", "/hooks/sw", Arc::new(sw()))
}

async fn body_json(response: axum::response::Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn call(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, body_json(response).await)
}

#[tokio::test]
async fn accepted_event_is_handed_off_with_its_envelope_and_raw_body() {
    let (handoff, mut rx) = ChannelHandOff::new(8);
    let app = receiver_with(Arc::new(handoff), sw_source());
    let body = r#"{"type":"invoice.paid","data":{"amount":100}}"#;
    let (status, _, json) = call(&app, signed("msg_1", NOW, body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "accepted");
    let event = rx.try_recv().expect("handed off before 200");
    assert_eq!(event.envelope.id(), "msg_1");
    assert_eq!(event.envelope.source(), "billing");
    assert_eq!(event.envelope.event_type(), "invoice.paid");
    assert_eq!(event.raw_body.as_ref(), body.as_bytes());
    assert_eq!(event.scheme, "standard-webhooks");
    assert_eq!(event.header("webhook-id"), Some("msg_1"));
    assert_eq!(
        event.header("authorization"),
        None,
        "credentials are not kept"
    );
    let data: serde_json::Value = event.envelope.data_as().unwrap();
    assert_eq!(data["data"]["amount"], 100);
}

#[tokio::test]
async fn duplicate_gets_200_and_no_second_hand_off() {
    let (handoff, mut rx) = ChannelHandOff::new(8);
    let app = receiver_with(Arc::new(handoff), sw_source());
    let body = r#"{"type":"a"}"#;
    assert_eq!(
        call(&app, signed("msg_dup", NOW, body)).await.0,
        StatusCode::OK
    );
    let (status, _, json) = call(&app, signed("msg_dup", NOW + 1, body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "duplicate");
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err(), "exactly one hand-off");
}

/// Fails the first `fail` hand-offs, then forwards to a channel.
#[derive(Debug)]
struct Flaky {
    fail: u32,
    calls: AtomicU32,
    inner: ChannelHandOff,
}

#[async_trait::async_trait]
impl HandOff for Flaky {
    async fn hand_off(&self, event: InboundEvent) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return Err(Error::unavailable("broker down"));
        }
        self.inner.hand_off(event).await
    }
}

#[tokio::test]
async fn failed_hand_off_is_503_and_the_retry_goes_through() {
    let (inner, mut rx) = ChannelHandOff::new(8);
    let app = receiver_with(
        Arc::new(Flaky {
            fail: 1,
            calls: AtomicU32::new(0),
            inner,
        }),
        sw_source(),
    );
    let body = r#"{"type":"a"}"#;
    let (status, headers, json) = call(&app, signed("msg_retry", NOW, body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"], "handoff_failed");
    assert!(headers.contains_key("retry-after"));
    assert!(rx.try_recv().is_err());
    // The provider retries the same delivery: not a duplicate, handed off now.
    let (status, _, json) = call(&app, signed("msg_retry", NOW + 5, body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "accepted");
    assert_eq!(rx.try_recv().unwrap().envelope.id(), "msg_retry");
}

#[tokio::test(start_paused = true)]
async fn slow_hand_off_is_503_within_the_deadline() {
    let (handoff, _rx) = ChannelHandOff::new(1);
    let app = receiver_with(
        Arc::new(handoff),
        sw_source().handoff_timeout(Duration::from_millis(50)),
    );
    assert_eq!(call(&app, signed("m1", NOW, "{}")).await.0, StatusCode::OK);
    // Nobody drains the channel: the second hand-off waits, then times out.
    let (status, _, json) = call(&app, signed("m2", NOW, "{}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"], "handoff_failed");
}

#[tokio::test]
async fn refusals_have_their_status_and_reason() {
    let (handoff, mut rx) = ChannelHandOff::new(8);
    let app = receiver_with(Arc::new(handoff), sw_source().max_body(64));
    // 405 with Allow.
    let get = Request::get("/hooks/sw").body(Body::empty()).unwrap();
    let (status, headers, json) = call(&app, get).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    assert_eq!(headers["allow"], "POST");
    // 415.
    let mut r = signed("m", NOW, "{}");
    r.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    let (status, _, json) = call(&app, r).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    // 413 by Content-Length and by streaming without one.
    let big = "x".repeat(100);
    let (status, _, json) = call(&app, signed("m", NOW, &big)).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
    let chunks = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(
        big.clone(),
    ))]);
    let r = Request::post("/hooks/sw")
        .header("content-type", "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    assert_eq!(call(&app, r).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // 400: missing signature headers.
    let r = Request::post("/hooks/sw")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, json) = call(&app, r).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_signature_header"))
    );
    // 400: malformed timestamp.
    let mut r = signed("m", NOW, "{}");
    r.headers_mut()
        .insert("webhook-timestamp", "yesterday".parse().unwrap());
    let (status, _, json) = call(&app, r).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_signature_header"))
    );
    // 401: wrong signature, with nothing about the secret in the answer.
    let mut r = signed("m", NOW, "{}");
    r.headers_mut()
        .insert("webhook-id", "other".parse().unwrap());
    let (status, _, json) = call(&app, r).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("signature_mismatch"))
    );
    assert!(!json.to_string().contains("MfKQ9r8"));
    // 401: too old and too new, each with its own reason.
    let (status, _, json) = call(&app, signed("m", NOW - 301, "{}")).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("timestamp_too_old"))
    );
    let (_, _, json) = call(&app, signed("m", NOW + 301, "{}")).await;
    assert_eq!(json["error"], "timestamp_too_new");
    assert!(rx.try_recv().is_err(), "nothing refused was handed off");
    // Unknown path: 404 from the router.
    let r = Request::post("/nope").body(Body::empty()).unwrap();
    assert_eq!(
        app.clone().oneshot(r).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn rate_limit_and_allow_list() {
    let (handoff, _rx) = ChannelHandOff::new(64);
    let app = receiver_with(
        Arc::new(handoff),
        sw_source()
            .rate_limit(RateLimit::new(2, Duration::from_secs(3600)))
            .allow_networks(vec![
                "127.0.0.0/8".parse().unwrap(),
                "::1/128".parse().unwrap(),
            ]),
    );
    let from = |addr: &str, id: &str| {
        let mut r = signed(id, NOW, "{}");
        r.extensions_mut()
            .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
        r
    };
    let (status, _, json) = call(&app, from("10.1.2.3:5000", "a")).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_address"))
    );
    // No connection info at all: refused too.
    assert_eq!(
        call(&app, signed("b", NOW, "{}")).await.0,
        StatusCode::FORBIDDEN
    );
    // IPv4-mapped IPv6 loopback counts as 127.0.0.1.
    assert_eq!(
        call(&app, from("[::ffff:127.0.0.1]:5000", "c")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, from("127.0.0.1:5000", "d")).await.0,
        StatusCode::OK
    );
    let (status, headers, json) = call(&app, from("127.0.0.1:5000", "e")).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_arrives_times_out_with_408() {
    let (handoff, _rx) = ChannelHandOff::new(8);
    let app = receiver_with(
        Arc::new(handoff),
        sw_source().request_timeout(Duration::from_secs(2)),
    );
    let stalled = futures::stream::pending::<std::result::Result<bytes::Bytes, std::io::Error>>();
    let r = Request::post("/hooks/sw")
        .header("content-type", "application/json")
        .body(Body::from_stream(stalled))
        .unwrap();
    let (status, _, json) = call(&app, r).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::REQUEST_TIMEOUT, Some("request_timeout"))
    );
}

#[tokio::test]
async fn form_bodies_become_json_objects_and_github_headers_are_used() {
    let (handoff, mut rx) = ChannelHandOff::new(8);
    let gh = GitHub::new(["s".into()]).unwrap();
    let app = receiver_with(
        Arc::new(handoff),
        SourceConfig::new("gh", "/gh", Arc::new(gh.clone())),
    );
    let body = "payload=%7B%22a%22%3A1%7D&x=y";
    let r = Request::post("/gh")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-hub-signature-256", gh.sign(body.as_bytes()))
        .header("x-github-delivery", "d-1")
        .header("x-github-event", "push")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(call(&app, r).await.0, StatusCode::OK);
    let event = rx.try_recv().unwrap();
    assert_eq!(event.envelope.event_type(), "push");
    assert_eq!(event.envelope.id(), "d-1");
    let data: serde_json::Value = event.envelope.data_as().unwrap();
    assert_eq!(data, serde_json::json!({"payload": "{\"a\":1}", "x": "y"}));
}

#[test]
fn configuration_errors() {
    let (handoff, _rx) = ChannelHandOff::new(1);
    assert!(Receiver::builder(handoff.clone()).build().is_err());
    assert!(
        Receiver::builder(handoff.clone())
            .source(sw_source())
            .source(SourceConfig::new("billing", "/other", Arc::new(sw())))
            .build()
            .is_err()
    );
    assert!(
        Receiver::builder(handoff)
            .source(SourceConfig::new("x", "no-slash", Arc::new(sw())))
            .build()
            .is_err()
    );
}

#[derive(Debug, Deserialize)]
struct StripeEvent {
    id: String,
    data: StripeData,
}

#[derive(Debug, Deserialize)]
struct StripeData {
    object: Invoice,
}

#[derive(Debug, Deserialize)]
struct Invoice {
    amount_paid: i64,
}

#[tokio::test]
async fn typed_handlers_run_after_hand_off_and_failures_are_dead_lettered() {
    let stripe = Stripe::new(["whsec_stripe".into()], Tolerance::DEFAULT).unwrap();
    let (handoff, rx) = ChannelHandOff::new(8);
    let app = receiver_with(
        Arc::new(handoff),
        SourceConfig::new("stripe", "/stripe", Arc::new(stripe.clone())),
    );
    let (paid_tx, mut paid_rx) = tokio::sync::mpsc::unbounded_channel();
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let flaky = Arc::clone(&flaky_calls);
    let handlers = Handlers::new()
        .on("invoice.paid", move |e: StripeEvent, _raw| {
            let tx = paid_tx.clone();
            async move {
                tx.send((e.id, e.data.object.amount_paid)).unwrap();
                Ok(())
            }
        })
        .on("customer.updated", move |_e: serde_json::Value, _raw| {
            let n = flaky.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(Error::unavailable("crm down"))
                } else {
                    Ok(())
                }
            }
        })
        .fallback(|_raw| async { Err(Error::permanent("no handler for this type")) });
    let policy =
        RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(1));
    let (worker, mut dead) = HandlerWorker::new(handlers, policy, 8);
    let worker = tokio::spawn(worker.run(rx));
    let post = |body: &str| {
        Request::post("/stripe")
            .header("content-type", "application/json")
            .header("stripe-signature", stripe.sign(NOW, body.as_bytes()))
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let paid = r#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"amount_paid":2500}}}"#;
    let bad_shape =
        r#"{"id":"evt_2","type":"invoice.paid","data":{"object":{"amount_paid":"lots"}}}"#;
    let flaky_event = r#"{"id":"evt_3","type":"customer.updated","data":{}}"#;
    let unknown = r#"{"id":"evt_4","type":"charge.refunded","data":{}}"#;
    for body in [paid, bad_shape, flaky_event, unknown] {
        assert_eq!(call(&app, post(body)).await.0, StatusCode::OK);
    }
    drop(app); // closes the event channel once the router is gone
    assert_eq!(paid_rx.recv().await.unwrap(), ("evt_1".to_owned(), 2500));
    let mut dead_ids = Vec::new();
    for _ in 0..2 {
        let letter = tokio::time::timeout(Duration::from_secs(10), dead.recv())
            .await
            .unwrap()
            .unwrap();
        dead_ids.push(letter.event.envelope.id().to_owned());
    }
    dead_ids.sort();
    assert_eq!(dead_ids, ["evt_2", "evt_4"]);
    // The retryable failure was retried, not dead-lettered.
    worker.await.unwrap().unwrap();
    assert_eq!(flaky_calls.load(Ordering::SeqCst), 2);
    assert!(dead.try_recv().is_err());
}
