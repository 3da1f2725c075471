//! Stripe: every request shape against Prism serving Stripe's own OpenAPI
//! document (slimmed for Prism), the negative paths (401, 429 + Retry-After,
//! 5xx then success with the same Idempotency-Key, a malformed body,
//! Stripe's error object) against a peer that answers as Stripe documents,
//! and webhook events parsed from Stripe's own fixture objects.
#![cfg(feature = "stripe")]

mod support;

use std::collections::BTreeMap;

use flextime_connectors::Connector;
use flextime_connectors::payments::stripe::{API_VERSION, EventObject, Stripe, StripeEvent};
use flextime_connectors::payments::{
    CancelPayment, CancellationReason, CaptureMethod, CapturePayment, ConfirmPayment,
    DepositCheckout, Money, NewCustomer, NewPaymentIntent, NewRefund, Operation, PaymentGateway,
    PaymentIntentStatus, RefundReason, idempotency_key,
};
use flextime_core::ErrorKind;
use flextime_core::resilience::RetryPolicy;
use flextime_testkit::prism_form;
use flextime_testkit::{Peer, Vendor};
use serde_json::{Value, json};
use support::scripted::{self, Answer};

const KEY: &str = "sk_test_s3cret";
const SLIM: &str = "prism/stripe-spec3.2023-09-12.prism-slim.json";
const FIXTURES: &str = "stripe-fixtures3.2023-09-12.json";

fn stripe(base: &str) -> Stripe {
    Stripe::builder(KEY)
        .base_url(base)
        .http(|h| h.retry(support::fast_retries(3)))
        .build()
        .unwrap()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, "eur").unwrap()
}

fn deposit(booking: &str) -> DepositCheckout {
    DepositCheckout::new(
        booking,
        eur(2500),
        "https://flextime.example/bookings/b-1/paid?session={CHECKOUT_SESSION_ID}",
        "https://flextime.example/bookings/b-1",
    )
}

fn intent_json(id: &str, status: &str) -> Value {
    json!({"id": id, "object": "payment_intent", "amount": 2500, "currency": "eur",
           "status": status, "client_secret": format!("{id}_secret_x"), "customer": null,
           "latest_charge": null, "metadata": {"booking_id": "b-1"}})
}

/// The vendor documents, or `None` (with a SKIPPED line) when they are not
/// beside the workspace; CI (FLEXTIME_REQUIRE_SERVICES=1) fails instead.
fn document(relative: &str) -> Option<Value> {
    match prism_form::load_document(relative) {
        Ok(doc) => Some(doc),
        Err(e) => {
            let required = std::env::var(flextime_testkit::REQUIRE_SERVICES_VAR)
                .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
            assert!(!required, "vendor document missing: {e}");
            eprintln!("SKIPPED: vendor document missing: {e}");
            None
        }
    }
}

/// Every operation, validated by Prism against Stripe's document: the test
/// fails on any violation. Prism 5 cannot validate a form-encoded array of
/// objects (see `flextime_testkit::prism_form`), so requests go through a
/// pass-through that checks `line_items` against the same document itself
/// and forwards everything else to Prism unchanged.
#[tokio::test]
async fn every_operation_passes_prism_validation_of_the_stripe_document() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Stripe), "stripe_prism") else {
        return;
    };
    let Some(doc) = document(SLIM) else { return };
    let shim = prism_form::serve(&url, doc, &["line_items"]).await.unwrap();
    let (observer, seen) = support::prism_recorder();
    let stripe = Stripe::builder("sk_test_prism")
        .base_url(&shim.url)
        .http(|h| h.observe(observer).retry(RetryPolicy::none()))
        .build()
        .unwrap();

    let mut customer = NewCustomer {
        reference: "user-7".into(),
        email: Some("ada@example.com".into()),
        name: Some("Ada Lovelace".into()),
        phone: Some("+14155552671".into()),
        metadata: BTreeMap::new(),
    };
    customer.metadata.insert("plan".into(), "team".into());
    stripe.create_customer(&customer).await.unwrap();
    stripe
        .retrieve_customer("cus_Oaxlz8kB0PJWGa")
        .await
        .unwrap();

    let mut intent = NewPaymentIntent::new("b-1", eur(2500));
    intent.customer = Some("cus_Oaxlz8kB0PJWGa".into());
    intent.description = Some("Deposit for booking b-1".into());
    intent.capture_method = CaptureMethod::Manual;
    intent.payment_method_types = vec!["card".into()];
    intent.receipt_email = Some("ada@example.com".into());
    intent.metadata.insert("room".into(), "Salle 1".into());
    stripe.create_payment_intent(&intent).await.unwrap();
    let pi = "pi_1NnlpVGPxmnHQRkJNuz3w9tH";
    stripe
        .confirm_payment_intent(
            pi,
            &ConfirmPayment {
                booking_id: "b-1".into(),
                payment_method: Some("pm_card_visa".into()),
                return_url: Some("https://flextime.example/return".into()),
            },
        )
        .await
        .unwrap();
    stripe
        .capture_payment_intent(
            pi,
            &CapturePayment {
                booking_id: "b-1".into(),
                amount_to_capture: Some(2000),
            },
        )
        .await
        .unwrap();
    stripe
        .cancel_payment_intent(
            pi,
            &CancelPayment {
                booking_id: "b-1".into(),
                reason: Some(CancellationReason::RequestedByCustomer),
            },
        )
        .await
        .unwrap();

    let mut checkout = deposit("b-1");
    checkout.customer_email = Some("ada@example.com".into());
    checkout.payment_method_types = vec!["card".into()];
    checkout.capture_method = CaptureMethod::Manual;
    checkout.expires_at = Some(1_900_000_000);
    checkout.metadata.insert("room".into(), "Salle 1".into());
    stripe.create_deposit_checkout(&checkout).await.unwrap();
    let mut with_customer = deposit("b-2");
    with_customer.customer = Some("cus_Oaxlz8kB0PJWGa".into());
    stripe
        .create_deposit_checkout(&with_customer)
        .await
        .unwrap();

    stripe
        .refund(&NewRefund {
            booking_id: "b-1".into(),
            payment_intent: pi.into(),
            amount: Some(500),
            reason: Some(RefundReason::RequestedByCustomer),
            metadata: BTreeMap::new(),
        })
        .await
        .unwrap();
    stripe.check().await.unwrap();

    let seen = seen.lock().unwrap();
    let requests: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        requests,
        vec![
            "POST /v1/customers",
            "GET /v1/customers/cus_Oaxlz8kB0PJWGa",
            "POST /v1/payment_intents",
            "POST /v1/payment_intents/pi_1NnlpVGPxmnHQRkJNuz3w9tH/confirm",
            "POST /v1/payment_intents/pi_1NnlpVGPxmnHQRkJNuz3w9tH/capture",
            "POST /v1/payment_intents/pi_1NnlpVGPxmnHQRkJNuz3w9tH/cancel",
            "POST /v1/checkout/sessions",
            "POST /v1/checkout/sessions",
            "POST /v1/refunds",
            "GET /v1/balance",
        ]
    );
    let bad: Vec<_> = seen.iter().filter(|(_, v)| v.is_some()).collect();
    assert!(bad.is_empty(), "Prism reported violations: {bad:?}");
}

/// Why the pass-through exists: Prism itself answers any Checkout Session
/// with line items (as Stripe documents them) with its own 415, having
/// validated nothing. When Prism is fixed this test fails, and the
/// pass-through can go.
#[tokio::test]
async fn prism_alone_cannot_read_form_arrays_of_objects() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Stripe), "stripe_prism_415")
    else {
        return;
    };
    let (observer, seen) = support::prism_recorder();
    let stripe = Stripe::builder("sk_test_prism")
        .base_url(&url)
        .http(|h| h.observe(observer).retry(RetryPolicy::none()))
        .build()
        .unwrap();
    let err = stripe
        .create_deposit_checkout(&deposit("b-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    let seen = seen.lock().unwrap();
    let violations = seen[0].1.as_deref().unwrap_or_default();
    assert!(
        violations.contains("Cannot deserialize JSON object array in form data"),
        "{violations}"
    );
}

/// The pass-through reports a line item that breaks the document.
#[tokio::test]
async fn the_pass_through_reports_line_items_that_break_the_document() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Stripe), "stripe_prism_shim")
    else {
        return;
    };
    let Some(doc) = document(SLIM) else { return };
    let shim = prism_form::serve(&url, doc, &["line_items"]).await.unwrap();
    let body = "mode=payment&success_url=https%3A%2F%2Fx.test%2Fok\
                &line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=25.5\
                &line_items%5B0%5D%5Bprice_data%5D%5Bflavour%5D=x";
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/checkout/sessions", shim.url))
        .bearer_auth("sk_test_prism")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let violations = resp.headers()["sl-violations"].to_str().unwrap().to_owned();
    assert!(violations.contains("is not an integer"), "{violations}");
    assert!(
        violations.contains("not a declared property"),
        "{violations}"
    );
}

#[tokio::test]
async fn posts_carry_bearer_auth_the_pinned_version_and_a_derived_idempotency_key() {
    let (peer, base) = scripted::start(
        vec![],
        Some(Answer::json(
            200,
            intent_json("pi_1", "requires_payment_method"),
        )),
    )
    .await;
    let intent = NewPaymentIntent::new("b-1", eur(2500));
    let first = stripe(&base).create_payment_intent(&intent).await.unwrap();
    assert_eq!(first.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!(first.booking_id(), Some("b-1"));
    // A new gateway (a restarted process) derives the same key.
    stripe(&base).create_payment_intent(&intent).await.unwrap();
    stripe(&base)
        .capture_payment_intent(
            "pi_1",
            &CapturePayment {
                booking_id: "b-1".into(),
                amount_to_capture: None,
            },
        )
        .await
        .unwrap();
    stripe(&base).retrieve_customer("cus_1").await.ok();
    let seen = peer.seen();
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer sk_test_s3cret")
    );
    assert_eq!(seen[0].header("stripe-version"), Some(API_VERSION));
    let key = idempotency_key("b-1", Operation::CreatePaymentIntent, "");
    assert_eq!(seen[0].header("idempotency-key"), Some(key.as_str()));
    assert_eq!(seen[1].header("idempotency-key"), Some(key.as_str()));
    assert_eq!(
        seen[2].header("idempotency-key"),
        Some(idempotency_key("b-1", Operation::CapturePaymentIntent, "pi_1").as_str())
    );
    assert_eq!(seen[2].path, "/v1/payment_intents/pi_1/capture");
    assert_eq!(
        String::from_utf8_lossy(&seen[0].body),
        "amount=2500&currency=eur&capture_method=automatic&metadata%5Bbooking_id%5D=b-1"
    );
    assert_eq!(seen[3].method, http::Method::GET);
    assert_eq!(seen[3].header("idempotency-key"), None);
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let (peer, base) = scripted::start(vec![], None).await;
    let stripe = stripe(&base);
    let mut bad_url = deposit("b-1");
    bad_url.cancel_url = "/relative".into();
    let err = stripe.create_deposit_checkout(&bad_url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = stripe
        .retrieve_customer("cus_1/../../v1/charges")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = stripe
        .cancel_payment_intent("pi_1", &CancelPayment::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("booking_id"), "{err}");
    assert!(Money::new(2500, "eu").is_err());
    assert!(peer.seen().is_empty());
}

#[tokio::test]
async fn a_refused_key_is_unauthorized() {
    let (_peer, base) = scripted::start(
        vec![Answer::json(
            401,
            json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****cret"}}),
        )],
        None,
    )
    .await;
    let err = stripe(&base).check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(
        err.to_string().contains("Invalid API Key provided"),
        "{err}"
    );
    assert!(!err.to_string().contains(KEY), "{err}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_to_success() {
    let (peer, base) = scripted::start(
        vec![
            Answer::json(
                429,
                json!({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}}),
            )
            .header("retry-after", "0"),
            Answer::json(200, intent_json("pi_2", "requires_payment_method")),
        ],
        None,
    )
    .await;
    let pi = stripe(&base)
        .create_payment_intent(&NewPaymentIntent::new("b-2", eur(900)))
        .await
        .unwrap();
    assert_eq!(pi.id, "pi_2");
    assert_eq!(peer.seen().len(), 2);
}

#[tokio::test]
async fn a_500_then_success_is_retried_with_the_same_idempotency_key() {
    let (peer, base) = scripted::start(
        vec![
            Answer::json(
                500,
                json!({"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}),
            ),
            Answer::json(
                200,
                json!({"id": "cs_1", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_1",
                       "status": "open", "payment_status": "unpaid", "client_reference_id": "b-3",
                       "amount_total": 2500, "currency": "eur", "metadata": {"booking_id": "b-3"}}),
            ),
        ],
        None,
    )
    .await;
    let session = stripe(&base)
        .create_deposit_checkout(&deposit("b-3"))
        .await
        .unwrap();
    assert_eq!(session.id, "cs_1");
    assert_eq!(session.booking_id(), Some("b-3"));
    let seen = peer.seen();
    assert_eq!(seen.len(), 2);
    let keys: Vec<_> = seen.iter().map(|s| s.header("idempotency-key")).collect();
    let expected = idempotency_key("b-3", Operation::CreateCheckoutSession, "");
    assert_eq!(keys, vec![Some(expected.as_str()), Some(expected.as_str())]);
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(
        seen[0]
            .field("line_items[0][price_data][unit_amount]")
            .as_deref(),
        Some("2500")
    );
}

#[tokio::test]
async fn a_malformed_body_is_a_typed_error() {
    let (_peer, base) = scripted::start(
        vec![Answer::raw(
            200,
            "application/json",
            "{\"id\": \"pi_1\", \"amount\": ",
        )],
        None,
    )
    .await;
    let err = stripe(&base)
        .create_payment_intent(&NewPaymentIntent::new("b-4", eur(100)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("malformed response body"), "{err}");
}

#[tokio::test]
async fn stripes_error_object_is_surfaced() {
    let (_peer, base) = scripted::start(
        vec![
            Answer::json(
                402,
                json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                                 "message": "Your card has insufficient funds.", "param": "payment_method",
                                 "doc_url": "https://stripe.com/docs/error-codes/card-declined"}}),
            ),
            Answer::json(
                400,
                json!({"error": {"type": "invalid_request_error", "code": "parameter_missing",
                                 "message": "Missing required param: currency.", "param": "currency"}}),
            ),
        ],
        None,
    )
    .await;
    let stripe = stripe(&base);
    let confirm = ConfirmPayment {
        booking_id: "b-5".into(),
        payment_method: Some("pm_card_chargeDeclinedInsufficientFunds".into()),
        return_url: None,
    };
    let err = stripe
        .confirm_payment_intent("pi_5", &confirm)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    let text = err.to_string();
    for needle in [
        "Your card has insufficient funds.",
        "type card_error",
        "code card_declined",
        "decline code insufficient_funds",
        "param payment_method",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let err = stripe
        .create_payment_intent(&NewPaymentIntent::new("b-5", eur(100)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("param currency"), "{err}");
}

/// Stripe's own fixture objects (`stripe-fixtures3.2023-09-12.json`),
/// wrapped in an Event of each type.
fn fixture_event(fixtures: &Value, resource: &str, event_type: &str) -> Vec<u8> {
    let mut object = fixtures["resources"][resource].clone();
    assert!(object.is_object(), "no fixture {resource}");
    object["metadata"] = json!({"booking_id": "b-9"});
    let mut event = fixtures["resources"]["event"].clone();
    event["type"] = json!(event_type);
    event["data"]["object"] = object;
    serde_json::to_vec(&event).unwrap()
}

#[test]
fn webhook_events_from_stripes_fixtures_are_typed() {
    let Some(fixtures) = document(FIXTURES) else {
        return;
    };
    let parse = |resource: &str, event_type: &str| {
        StripeEvent::from_json(&fixture_event(&fixtures, resource, event_type)).unwrap()
    };

    let succeeded = parse("payment_intent", "payment_intent.succeeded");
    assert_eq!(succeeded.id, "evt_1NnmXEGPxmnHQRkJO3bak93X");
    assert!(!succeeded.livemode);
    let EventObject::PaymentIntentSucceeded(pi) = &succeeded.object else {
        panic!("{succeeded:?}")
    };
    assert_eq!(pi.id, "pi_1NnlpVGPxmnHQRkJNuz3w9tH");
    assert_eq!((pi.amount, pi.currency.as_str()), (1099, "usd"));
    assert_eq!(succeeded.object.booking_id(), Some("b-9"));

    let failed = parse("payment_intent", "payment_intent.payment_failed");
    assert!(matches!(
        failed.object,
        EventObject::PaymentIntentPaymentFailed(_)
    ));
    assert_eq!(failed.object.event_type(), "payment_intent.payment_failed");

    let completed = parse("checkout.session", "checkout.session.completed");
    let EventObject::CheckoutSessionCompleted(cs) = &completed.object else {
        panic!("{completed:?}")
    };
    assert!(cs.id.starts_with("cs_"), "{cs:?}");
    assert_eq!(completed.object.booking_id(), Some("b-9"));
    let expired = parse("checkout.session", "checkout.session.expired");
    assert!(matches!(
        expired.object,
        EventObject::CheckoutSessionExpired(_)
    ));

    let refunded = parse("charge", "charge.refunded");
    let EventObject::ChargeRefunded(charge) = &refunded.object else {
        panic!("{refunded:?}")
    };
    assert!(charge.id.starts_with("ch_"), "{charge:?}");
    assert_eq!(charge.amount, 100);

    // The fixture event itself (plan.created) is kept whole.
    let raw = serde_json::to_vec(&fixtures["resources"]["event"]).unwrap();
    let unknown = StripeEvent::from_json(&raw).unwrap();
    let EventObject::Unknown { event_type, object } = &unknown.object else {
        panic!("{unknown:?}")
    };
    assert_eq!(event_type, "plan.created");
    assert_eq!(object["id"], "price_1NnlpZGPxmnHQRkJuWjM7eRV");
}

#[test]
fn malformed_events_are_typed_errors() {
    for (body, needle) in [
        (&b"not json"[..], "not an event"),
        (br#"{"id":"evt_1","type":"charge.refunded"}"#, "data"),
        (
            br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","amount":"x"}}}"#,
            "payment_intent.succeeded",
        ),
    ] {
        let err = StripeEvent::from_json(body).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[cfg(feature = "webhooks")]
#[test]
fn signed_events_are_verified_first() {
    use flextime_core::Secret;
    use flextime_webhooks::verify::{Stripe as StripeVerifier, Tolerance, WebhookRequest};
    use http::{HeaderMap, HeaderValue, Method, Uri};

    let Some(fixtures) = document(FIXTURES) else {
        return;
    };
    let body = fixture_event(&fixtures, "payment_intent", "payment_intent.succeeded");
    let verifier =
        StripeVerifier::new([Secret::new("whsec_test_secret")], Tolerance::DEFAULT).unwrap();
    let now = 1_700_000_000;
    let mut headers = HeaderMap::new();
    headers.insert(
        "stripe-signature",
        HeaderValue::from_str(&verifier.sign(now, &body)).unwrap(),
    );
    let uri: Uri = "/hooks/stripe".parse().unwrap();
    let request = WebhookRequest {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let event = StripeEvent::verify(&verifier, &request, now).unwrap();
    assert!(matches!(
        event.object,
        EventObject::PaymentIntentSucceeded(_)
    ));

    let err = StripeEvent::verify(&verifier, &request, now + 3600).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("timestamp_too_old"), "{err}");
    let mut forged = body.clone();
    forged.extend_from_slice(b" ");
    let err = StripeEvent::verify(
        &verifier,
        &WebhookRequest {
            body: &forged,
            ..request
        },
        now,
    )
    .unwrap_err();
    assert!(err.to_string().contains("signature_mismatch"), "{err}");
}
