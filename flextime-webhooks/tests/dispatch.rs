//! The dispatcher against real local HTTP receivers, with in-memory state.

#[path = "support/http_receiver.rs"]
mod http_receiver;

use std::sync::Arc;
use std::time::Duration;

use flextime_core::resilience::{BreakerConfig, CircuitState};
use flextime_core::{Envelope, ErrorKind, ManualClock, SharedClock};
use flextime_webhooks::dispatch::{
    BodyMode, DeliveryQuery, DeliveryStatus, DisableReason, Dispatcher, DispatcherConfig,
    DispatcherEvent, Endpoint, EventFilter, Outcome, RetrySchedule, SsrfGuard,
};
use http_receiver::{Reply, TestReceiver};
use serde_json::json;
use tokio::sync::broadcast;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn config(schedule_ms: &[u64]) -> DispatcherConfig {
    DispatcherConfig {
        schedule: RetrySchedule::from_millis(schedule_ms).with_jitter(0.0),
        ssrf: SsrfGuard::default().allow("127.0.0.0/8".parse().unwrap()),
        timeout: Duration::from_secs(10),
        ..DispatcherConfig::default()
    }
}

async fn start(config: DispatcherConfig, clock: Option<SharedClock>) -> Dispatcher {
    let mut b = Dispatcher::builder().config(config);
    if let Some(c) = clock {
        b = b.clock(c);
    }
    b.start().await.unwrap()
}

fn event(ty: &str, n: u64) -> Envelope {
    Envelope::new("/tests", ty)
        .with_id(format!("evt-{n}"))
        .with_data_json(json!({"n": n, "room": "A-1"}))
}

async fn next_event(rx: &mut broadcast::Receiver<DispatcherEvent>) -> DispatcherEvent {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an event within 20 s")
        .unwrap()
}

async fn finished(rx: &mut broadcast::Receiver<DispatcherEvent>) -> Outcome {
    loop {
        if let DispatcherEvent::Finished(o) = next_event(rx).await {
            return o;
        }
    }
}

async fn failed_attempt(
    rx: &mut broadcast::Receiver<DispatcherEvent>,
) -> (
    Outcome,
    flextime_webhooks::dispatch::Attempt,
    chrono::DateTime<chrono::Utc>,
) {
    loop {
        match next_event(rx).await {
            DispatcherEvent::AttemptFailed {
                outcome,
                attempt,
                next_attempt_at,
            } => return (outcome, attempt, next_attempt_at),
            DispatcherEvent::Finished(o) => panic!("finished early: {o:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn fails_k_times_then_succeeds_with_the_same_webhook_id() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.plan([
        Reply::status(500),
        Reply::status(500),
        Reply::With(503, vec![], "busy".into()),
    ]);
    let d = start(config(&[0, 1, 1, 1, 1]), None).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let receipt = d.send(&event("booking.created", 1)).await.unwrap();
    let outcome = finished(&mut events).await;
    assert_eq!(outcome.status, DeliveryStatus::Delivered);
    assert_eq!(outcome.attempts, 4);
    assert_eq!(outcome.message_id, receipt.message_id);
    assert!(
        d.endpoint("ep").unwrap().failing_since.is_none(),
        "the success cleared the failure history"
    );

    let seen: Vec<_> = rx_http.drain();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.webhook_id(), receipt.message_id);
        assert!(s.verifies_with(SECRET), "signature must verify");
        assert_eq!(s.header("content-type"), "application/cloudevents+json");
        let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(body["id"], "evt-1");
        assert_eq!(body["data"]["n"], 1);
    }
    let attempts = d.attempts_of_message(&receipt.message_id).await.unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a.attempt.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(503), Some(200)]);
    assert_eq!(attempts[2].attempt.response_body, "busy");
    assert_eq!(attempts[0].attempt.error_kind, Some(ErrorKind::Unavailable));
    assert_eq!(attempts[3].attempt.error_kind, None);
    let by_endpoint = d.attempts_of_endpoint("ep", None).await.unwrap();
    assert_eq!(by_endpoint.len(), 4);
}

#[tokio::test]
async fn exhausted_deliveries_can_be_resent_and_recovered() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.set_default(Reply::status(500));
    let mut cfg = config(&[0, 1, 1]);
    // Six failures in a row would open the breaker; keep it out of this test.
    cfg.breaker.consecutive_failures = 100;
    let d = start(cfg, None).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let first = d.send(&event("a.b", 1)).await.unwrap();
    let o = finished(&mut events).await;
    assert_eq!((o.status, o.attempts), (DeliveryStatus::Exhausted, 3));
    let second = d.send(&event("a.b", 2)).await.unwrap();
    let o = finished(&mut events).await;
    assert_eq!(o.status, DeliveryStatus::Exhausted);
    assert_eq!(rx_http.drain().len(), 6);

    rx_http.set_default(Reply::status(204));
    d.resend(&first.deliveries[0]).await.unwrap();
    let o = finished(&mut events).await;
    assert_eq!((o.status, o.attempts), (DeliveryStatus::Delivered, 4));
    let s = rx_http.next().await;
    assert_eq!(s.webhook_id(), first.message_id);
    let again = d.resend(&first.deliveries[0]).await;
    assert!(again.is_ok(), "a delivered one may be resent on purpose");
    let o = finished(&mut events).await;
    assert_eq!((o.status, o.attempts), (DeliveryStatus::Delivered, 5));

    let n = d.recover("ep", since).await.unwrap();
    assert_eq!(n, 1, "only the exhausted delivery is recovered");
    let o = finished(&mut events).await;
    assert_eq!(o.message_id, second.message_id);
    assert_eq!(o.status, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn gone_disables_the_endpoint_until_enabled() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.plan([Reply::status(410)]);
    let d = start(config(&[0, 1, 1]), None).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    d.send(&event("a.b", 1)).await.unwrap();
    let mut saw_disabled = false;
    let mut outcome = None;
    while outcome.is_none() || !saw_disabled {
        match next_event(&mut events).await {
            DispatcherEvent::EndpointDisabled {
                endpoint_id,
                reason,
            } => {
                assert_eq!(endpoint_id, "ep");
                assert_eq!(reason, DisableReason::Gone);
                saw_disabled = true;
            }
            DispatcherEvent::Finished(o) => outcome = Some(o),
            _ => {}
        }
    }
    let o = outcome.unwrap();
    assert_eq!(
        (o.status, o.attempts),
        (DeliveryStatus::EndpointDisabled, 1)
    );
    assert!(!d.endpoint("ep").unwrap().enabled);
    let r = d.send(&event("a.b", 2)).await.unwrap();
    assert!(r.deliveries.is_empty(), "a disabled endpoint gets nothing");

    d.enable_endpoint("ep").await.unwrap();
    let r = d.send(&event("a.b", 3)).await.unwrap();
    assert_eq!(r.deliveries.len(), 1);
    let o = finished(&mut events).await;
    assert_eq!(o.status, DeliveryStatus::Delivered);
    assert_eq!(rx_http.drain().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_within_the_clamp() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut rx_http = TestReceiver::start().await;
    rx_http.plan([
        Reply::With(503, vec![("retry-after", "1".into())], String::new()),
        Reply::With(429, vec![("retry-after", "100".into())], String::new()),
        Reply::With(502, vec![("retry-after", "0".into())], String::new()),
        Reply::With(500, vec![("retry-after", "100".into())], String::new()),
    ]);
    let d = start(
        config(&[0, 800, 800, 800, 800, 800]),
        Some(Arc::new(clock.clone())),
    )
    .await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let receipt = d.send(&event("a.b", 1)).await.unwrap();
    // Expected delays: 1 s honoured (within 0.8-1.6 s), 100 s clamped to
    // 1.6 s, 0 s raised to 0.8 s, and a 500's Retry-After ignored (0.8 s).
    for expected_ms in [1000, 1600, 800, 800] {
        let (_, attempt, next) = failed_attempt(&mut events).await;
        assert_eq!((next - attempt.at).num_milliseconds(), expected_ms);
        let stored = d.delivery(&receipt.deliveries[0]).await.unwrap().unwrap();
        assert_eq!(stored.next_attempt_at, Some(next));
        clock.advance(Duration::from_millis(u64::try_from(expected_ms).unwrap()));
        d.wake();
    }
    let o = finished(&mut events).await;
    assert_eq!((o.status, o.attempts), (DeliveryStatus::Delivered, 5));
    let seen = rx_http.drain();
    assert_eq!(seen.len(), 5);
}

#[tokio::test]
async fn a_silent_endpoint_times_out() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.set_default(Reply::Hang);
    let mut cfg = config(&[0]);
    cfg.timeout = Duration::from_millis(200);
    let d = start(cfg, None).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let r = d.send(&event("a.b", 1)).await.unwrap();
    let o = finished(&mut events).await;
    assert_eq!((o.status, o.attempts), (DeliveryStatus::Exhausted, 1));
    let stored = d.delivery(&r.deliveries[0]).await.unwrap().unwrap();
    assert_eq!(stored.attempts[0].error_kind, Some(ErrorKind::Timeout));
    assert_eq!(stored.attempts[0].status, None);
    assert_eq!(rx_http.next().await.webhook_id(), r.message_id);
}

#[tokio::test]
async fn redirects_are_failures_and_are_not_followed() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.plan([Reply::With(
        302,
        vec![("location", format!("{}/elsewhere", rx_http.base))],
        String::new(),
    )]);
    let d = start(config(&[0]), None).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let r = d.send(&event("a.b", 1)).await.unwrap();
    let o = finished(&mut events).await;
    assert_eq!(o.status, DeliveryStatus::Exhausted);
    let stored = d.delivery(&r.deliveries[0]).await.unwrap().unwrap();
    assert_eq!(stored.attempts[0].status, Some(302));
    assert_eq!(stored.attempts[0].error_kind, Some(ErrorKind::Permanent));
    let seen = rx_http.drain();
    assert_eq!(seen.len(), 1, "the redirect was not followed");
    assert_eq!(seen[0].path, "/hooks");
}

#[tokio::test]
async fn rotation_signs_with_the_old_and_the_new_secret() {
    let mut rx_http = TestReceiver::start().await;
    let d = start(config(&[0]), None).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let new = d.rotate_secret("ep", None).await.unwrap();
    assert_ne!(new.expose(), SECRET);
    let mut events = d.subscribe();
    d.send(&event("a.b", 1)).await.unwrap();
    assert_eq!(
        finished(&mut events).await.status,
        DeliveryStatus::Delivered
    );
    let s = rx_http.next().await;
    let sig = s.header("webhook-signature");
    assert_eq!(sig.split(' ').filter(|e| e.starts_with("v1,")).count(), 2);
    assert!(s.verifies_with(SECRET), "the old secret still verifies");
    assert!(s.verifies_with(new.expose()), "the new secret verifies");
    assert!(!s.verifies_with("whsec_c29tZSBvdGhlciBzZWNyZXQgb2YgMjQgYnl0ZXM="));
    let ep = d.endpoint("ep").unwrap();
    assert!(ep.secrets[1].expires_at.is_some(), "the old one expires");
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut rx_http = TestReceiver::start().await;
    rx_http.set_default(Reply::status(500));
    let mut cfg = config(&[0, 1000, 1000, 1000]);
    cfg.disable_after = Duration::from_secs(10);
    let d = start(cfg, Some(Arc::new(clock.clone()))).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    d.send(&event("a.b", 1)).await.unwrap();
    failed_attempt(&mut events).await;
    assert!(d.endpoint("ep").unwrap().failing_since.is_some());
    clock.advance(Duration::from_secs(11));
    d.wake();
    let mut disabled = None;
    let mut outcome = None;
    while disabled.is_none() || outcome.is_none() {
        match next_event(&mut events).await {
            DispatcherEvent::EndpointDisabled { reason, .. } => disabled = Some(reason),
            DispatcherEvent::Finished(o) => outcome = Some(o),
            e => panic!("unexpected {e:?}"),
        }
    }
    assert!(matches!(disabled, Some(DisableReason::Failing { .. })));
    assert_eq!(outcome.unwrap().status, DeliveryStatus::EndpointDisabled);
    assert_eq!(rx_http.drain().len(), 2);
    // Manual enable clears the failure history.
    d.enable_endpoint("ep").await.unwrap();
    let ep = d.endpoint("ep").unwrap();
    assert!(ep.enabled && ep.failing_since.is_none());
}

#[tokio::test]
async fn the_breaker_opens_and_a_probe_closes_it() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut rx_http = TestReceiver::start().await;
    rx_http.plan([Reply::status(500), Reply::status(500)]);
    let mut cfg = config(&[0, 3_600_000]);
    cfg.breaker = BreakerConfig {
        consecutive_failures: 2,
        open_for: Duration::from_secs(60),
        ..BreakerConfig::default()
    };
    let d = start(cfg, Some(Arc::new(clock.clone()))).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    d.send(&event("a.b", 1)).await.unwrap();
    failed_attempt(&mut events).await;
    assert_eq!(d.circuit_state("ep"), Some(CircuitState::Closed));
    d.send(&event("a.b", 2)).await.unwrap();
    failed_attempt(&mut events).await;
    assert!(matches!(
        d.circuit_state("ep"),
        Some(CircuitState::Open { .. })
    ));
    let third = d.send(&event("a.b", 3)).await.unwrap();
    clock.advance(Duration::from_secs(61));
    d.wake();
    let o = finished(&mut events).await;
    assert_eq!(o.message_id, third.message_id);
    assert_eq!(o.status, DeliveryStatus::Delivered);
    assert_eq!(d.circuit_state("ep"), Some(CircuitState::Closed));
    assert_eq!(
        rx_http.drain().len(),
        3,
        "no attempt while the breaker was open"
    );
}

#[tokio::test]
async fn filters_headers_and_body_modes() {
    let mut raw = TestReceiver::start().await;
    let mut structured = TestReceiver::start().await;
    let d = start(config(&[0]), None).await;
    d.add_endpoint(
        Endpoint::new("raw", &raw.url)
            .with_secret(SECRET)
            .with_filter(EventFilter::new(["booking.*"]))
            .with_body(BodyMode::Raw)
            .with_header("x-tenant", "acme"),
    )
    .await
    .unwrap();
    d.add_endpoint(
        Endpoint::new("structured", &structured.url)
            .with_secret(SECRET)
            .with_filter(EventFilter::new(["invoice.paid"])),
    )
    .await
    .unwrap();
    let mut events = d.subscribe();
    let r1 = d.send(&event("booking.created", 1)).await.unwrap();
    let r2 = d.send(&event("invoice.paid", 2)).await.unwrap();
    let r3 = d.send(&event("invoice.voided", 3)).await.unwrap();
    assert_eq!(r1.deliveries.len(), 1);
    assert_eq!(r2.deliveries.len(), 1);
    assert!(r3.deliveries.is_empty());
    finished(&mut events).await;
    finished(&mut events).await;
    let s = raw.next().await;
    assert_eq!(s.header("x-tenant"), "acme");
    assert_eq!(s.header("content-type"), "application/json");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&s.body).unwrap(),
        json!({"n": 1, "room": "A-1"})
    );
    assert!(s.verifies_with(SECRET));
    let s = structured.next().await;
    assert_eq!(s.header("content-type"), "application/cloudevents+json");
    let e = Envelope::from_json_slice(&s.body).unwrap();
    assert_eq!(e.event_type(), "invoice.paid");
    assert_eq!(s.webhook_id(), r2.message_id);
    assert!(raw.drain().is_empty() && structured.drain().is_empty());
}

#[tokio::test]
async fn url_credentials_go_as_basic_auth_and_the_user_agent_is_sent() {
    let mut rx = TestReceiver::start().await;
    let d = start(
        DispatcherConfig {
            user_agent: "acme-scheduler/2.1".into(),
            ..config(&[0])
        },
        None,
    )
    .await;
    // user "ops@acme", password "p:ss w" (percent-encoded in the URL).
    let url = rx
        .url
        .replacen("http://", "http://ops%40acme:p%3Ass%20w@", 1)
        + "#ignored";
    d.add_endpoint(Endpoint::new("auth", url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    d.send(&event("a.b", 1)).await.unwrap();
    assert_eq!(
        finished(&mut events).await.status,
        DeliveryStatus::Delivered
    );
    let s = rx.next().await;
    // base64("ops@acme:p:ss w")
    assert_eq!(s.header("authorization"), "Basic b3BzQGFjbWU6cDpzcyB3");
    assert_eq!(s.header("user-agent"), "acme-scheduler/2.1");
    assert!(s.verifies_with(SECRET));
}

#[tokio::test]
async fn an_https_endpoint_is_spoken_to_over_tls() {
    use tokio::io::AsyncReadExt;
    // A server that reads what the client sends first and hangs up: over
    // https that must be a TLS handshake record (content type 22), not a
    // clear-text request.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 3];
        socket.read_exact(&mut head).await.unwrap();
        head
    });
    let d = start(config(&[0]), None).await;
    d.add_endpoint(
        Endpoint::new("tls", format!("https://127.0.0.1:{port}/hooks")).with_secret(SECRET),
    )
    .await
    .unwrap();
    let mut events = d.subscribe();
    let r = d.send(&event("a.b", 1)).await.unwrap();
    let head = first_bytes.await.unwrap();
    assert_eq!(head[0], 22, "a TLS handshake record, not {head:?}");
    assert_eq!(head[1], 3, "TLS major version 3");
    assert_eq!(
        finished(&mut events).await.status,
        DeliveryStatus::Exhausted
    );
    let stored = d.delivery(&r.deliveries[0]).await.unwrap().unwrap();
    let attempt = &stored.attempts[0];
    assert_eq!(attempt.error_kind, Some(ErrorKind::Unavailable));
    assert_eq!(attempt.status, None);
    let error = attempt.error.as_deref().unwrap();
    assert!(error.contains("could not connect"), "{error}");
}

#[tokio::test]
async fn an_ordered_endpoint_keeps_the_order_through_retries() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.plan([Reply::status(500), Reply::status(500)]);
    let d = start(config(&[0, 5, 5, 5]), None).await;
    d.add_endpoint(
        Endpoint::new("ep", &rx_http.url)
            .with_secret(SECRET)
            .ordered(true),
    )
    .await
    .unwrap();
    let mut events = d.subscribe();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(d.send(&event("a.b", n)).await.unwrap().message_id);
    }
    for _ in 0..5 {
        assert_eq!(
            finished(&mut events).await.status,
            DeliveryStatus::Delivered
        );
    }
    let seen: Vec<String> = rx_http
        .drain()
        .iter()
        .map(http_receiver::Seen::webhook_id)
        .collect();
    let mut expected = vec![ids[0].clone(), ids[0].clone()];
    expected.extend(ids.iter().cloned());
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn deliveries_are_accepted_by_flextimes_own_receiver() {
    use flextime_webhooks::receiver::{ChannelHandOff, Receiver, SourceConfig};
    use flextime_webhooks::verify::{StandardWebhooks, Tolerance};

    let (handoff, mut inbound) = ChannelHandOff::new(16);
    let verifier = StandardWebhooks::new([SECRET.into()], Tolerance::DEFAULT).unwrap();
    let app = Receiver::builder(handoff)
        .source(SourceConfig::new("crm", "/hooks/crm", Arc::new(verifier)))
        .build()
        .unwrap()
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let d = start(config(&[0, 1]), None).await;
    d.add_endpoint(Endpoint::new("crm", format!("http://{addr}/hooks/crm")).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let r = d.send(&event("booking.created", 7)).await.unwrap();
    assert_eq!(
        finished(&mut events).await.status,
        DeliveryStatus::Delivered
    );
    let got = tokio::time::timeout(Duration::from_secs(10), inbound.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.idempotency_key.as_deref(), Some(r.message_id.as_str()));
    let sent = Envelope::from_json_slice(&got.raw_body).unwrap();
    assert_eq!(sent.event_type(), "booking.created");
    assert_eq!(sent.id(), "evt-7");
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_unless_allow_listed() {
    let mut rx_http = TestReceiver::start().await;
    let d = start(
        DispatcherConfig {
            schedule: RetrySchedule::from_millis(&[0]),
            ..DispatcherConfig::default()
        },
        None,
    )
    .await;
    // An IP literal is refused when the endpoint is added.
    let err = d
        .add_endpoint(Endpoint::new("ip", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(
        err.to_string()
            .contains("destination address 127.0.0.1 is not allowed"),
        "{err}"
    );
    // A name is checked after resolution, at every attempt.
    let port = rx_http.url.rsplit(':').next().unwrap().to_owned();
    d.add_endpoint(Endpoint::new("name", format!("http://localhost:{port}")).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let r = d.send(&event("a.b", 1)).await.unwrap();
    assert_eq!(
        finished(&mut events).await.status,
        DeliveryStatus::Exhausted
    );
    let stored = d.delivery(&r.deliveries[0]).await.unwrap().unwrap();
    assert_eq!(stored.attempts[0].error_kind, Some(ErrorKind::Forbidden));
    assert!(
        stored.attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("is not allowed"),
        "{:?}",
        stored.attempts[0].error
    );
    assert!(rx_http.drain().is_empty(), "nothing reached the receiver");

    // https-only refuses http:// URLs.
    let strict = start(
        DispatcherConfig {
            ssrf: SsrfGuard::default()
                .allow("127.0.0.0/8".parse().unwrap())
                .https_only(true),
            ..DispatcherConfig::default()
        },
        None,
    )
    .await;
    let err = strict
        .add_endpoint(Endpoint::new("h", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let d = start(config(&[0]), None).await;
    for ep in [
        Endpoint::new("x", "ftp://example.com/"),
        Endpoint::new("x", "not a url"),
        Endpoint::new("", "https://example.com/"),
        Endpoint::new("x", "https://example.com/").with_secret("whsec_c2hvcnQ="),
        Endpoint::new("x", "https://example.com/").with_header("webhook-id", "forged"),
        Endpoint::new("x", "https://example.com/").with_header("bad header", "v"),
    ] {
        let err = d.add_endpoint(ep).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert_eq!(
        d.resend("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        d.enable_endpoint("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let bad = Envelope::new("", "");
    assert_eq!(
        d.send(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test]
async fn the_attempt_log_keeps_the_first_4_kib_of_the_body() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.plan([Reply::With(500, vec![], "e".repeat(10_000))]);
    let d = start(config(&[0, 1]), None).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let r = d.send(&event("a.b", 1)).await.unwrap();
    assert_eq!(
        finished(&mut events).await.status,
        DeliveryStatus::Delivered
    );
    let stored = d.delivery(&r.deliveries[0]).await.unwrap().unwrap();
    assert_eq!(stored.attempts[0].response_body.len(), 4096);
    assert_eq!(stored.attempts[1].response_body, "answer 200");
    assert_eq!(rx_http.drain().len(), 2);
}

/// A receiver that holds each request a moment and records the most it
/// ever held at once.
async fn counting_receiver() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (n2, m2) = (Arc::clone(&now), Arc::clone(&max));
    let app = axum::Router::new().fallback(move || {
        let (now, max) = (Arc::clone(&n2), Arc::clone(&m2));
        async move {
            let held = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(held, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks"), max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_limits_hold_per_endpoint_and_globally() {
    let (url_a, max_a) = counting_receiver().await;
    let (url_b, max_b) = counting_receiver().await;
    let mut cfg = config(&[0]);
    cfg.max_in_flight = 3;
    let d = start(cfg, None).await;
    d.add_endpoint(
        Endpoint::new("a", &url_a)
            .with_secret(SECRET)
            .with_max_in_flight(2),
    )
    .await
    .unwrap();
    d.add_endpoint(Endpoint::new("b", &url_b).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let batch: Vec<Envelope> = (0..12).map(|n| event("a.b", n)).collect();
    d.send_batch(&batch).await.unwrap();
    for _ in 0..24 {
        assert_eq!(
            finished(&mut events).await.status,
            DeliveryStatus::Delivered
        );
    }
    let (a, b) = (
        max_a.load(std::sync::atomic::Ordering::SeqCst),
        max_b.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert!(
        (1..=2).contains(&a),
        "endpoint a held {a} at once (limit 2)"
    );
    assert!(
        (1..=3).contains(&b),
        "endpoint b held {b} at once (global limit 3)"
    );
}

#[tokio::test]
async fn a_rate_limited_endpoint_delays_without_spending_attempts() {
    let mut rx_http = TestReceiver::start().await;
    let d = start(config(&[0]), None).await;
    d.add_endpoint(
        Endpoint::new("ep", &rx_http.url)
            .with_secret(SECRET)
            .with_rate_limit(20),
    )
    .await
    .unwrap();
    let mut events = d.subscribe();
    let batch: Vec<Envelope> = (0..30).map(|n| event("a.b", n)).collect();
    d.send_batch(&batch).await.unwrap();
    for _ in 0..30 {
        let o = finished(&mut events).await;
        // The schedule has one attempt: a limited delivery was not spent.
        assert_eq!((o.status, o.attempts), (DeliveryStatus::Delivered, 1));
    }
    assert_eq!(rx_http.drain().len(), 30);
}

/// The signer is cached per endpoint version: a rotation after deliveries
/// were signed must still add the new secret, and the old one must stop
/// signing when its grace period ends.
#[tokio::test]
async fn a_cached_signer_follows_rotation_and_the_end_of_the_grace_period() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut rx_http = TestReceiver::start().await;
    let d = start(config(&[0]), Some(Arc::new(clock.clone()))).await;
    d.add_endpoint(Endpoint::new("ep", &rx_http.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = d.subscribe();
    let count = |s: &str| s.split(' ').filter(|e| e.starts_with("v1,")).count();
    d.send(&event("a.b", 1)).await.unwrap();
    finished(&mut events).await;
    let before = rx_http.next().await;
    assert_eq!(count(before.header("webhook-signature")), 1);

    let new = d.rotate_secret("ep", None).await.unwrap();
    d.send(&event("a.b", 2)).await.unwrap();
    finished(&mut events).await;
    let during = rx_http.next().await;
    assert_eq!(count(during.header("webhook-signature")), 2);
    assert!(during.verifies_with(new.expose()));

    clock.advance(Duration::from_secs(25 * 3600));
    d.send(&event("a.b", 3)).await.unwrap();
    finished(&mut events).await;
    let after = rx_http.next().await;
    assert_eq!(
        count(after.header("webhook-signature")),
        1,
        "the old secret's grace ended"
    );
    // The receiver's clock is the dispatcher's, a day ahead of the real one.
    let at = flextime_core::Clock::now(&clock).timestamp();
    assert!(after.verifies_with_at(new.expose(), at));
    assert!(!after.verifies_with_at(SECRET, at));
}

/// Each delivery of a batch carries exactly its own event, in either body
/// mode, signed over those bytes (bodies of a batch share one scratch buffer).
#[tokio::test]
async fn every_delivery_of_a_batch_carries_its_own_body() {
    let mut structured = TestReceiver::start().await;
    let mut raw = TestReceiver::start().await;
    let d = start(config(&[0]), None).await;
    d.add_endpoint(Endpoint::new("structured", &structured.url).with_secret(SECRET))
        .await
        .unwrap();
    d.add_endpoint(
        Endpoint::new("raw", &raw.url)
            .with_secret(SECRET)
            .with_body(BodyMode::Raw),
    )
    .await
    .unwrap();
    let mut events = d.subscribe();
    // Bodies of different lengths, one with text JSON must escape.
    let batch: Vec<Envelope> = (0..7usize)
        .map(|n| {
            Envelope::new("/tests", "a.b")
                .with_id(format!("evt-{n}"))
                .with_data_json(json!({"n": n, "notes": "x\"\n".repeat(n * 40)}))
        })
        .collect();
    d.send_batch(&batch).await.unwrap();
    for _ in 0..14 {
        assert_eq!(
            finished(&mut events).await.status,
            DeliveryStatus::Delivered
        );
    }
    let mut seen_structured = structured.drain();
    let mut seen_raw = raw.drain();
    assert_eq!((seen_structured.len(), seen_raw.len()), (7, 7));
    for s in seen_structured.iter().chain(&seen_raw) {
        assert!(s.verifies_with(SECRET), "signature over the body sent");
    }
    let n_of = |v: &serde_json::Value| v["n"].as_u64().unwrap();
    seen_structured.sort_by_key(|s| {
        n_of(&serde_json::from_slice::<serde_json::Value>(&s.body).unwrap()["data"])
    });
    seen_raw.sort_by_key(|s| n_of(&serde_json::from_slice(&s.body).unwrap()));
    for (n, (s, r)) in seen_structured.iter().zip(&seen_raw).enumerate() {
        let sent = &batch[n];
        assert_eq!(s.body, sent.to_json_bytes().unwrap());
        let data: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        match sent.data() {
            Some(flextime_core::Data::Json(v)) => assert_eq!(&data, v),
            other => panic!("unexpected data {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_invalid_event_is_refused_whole_for_every_body_mode() {
    let mut rx_http = TestReceiver::start().await;
    for mode in [None, Some(BodyMode::Structured), Some(BodyMode::Raw)] {
        let d = start(config(&[0]), None).await;
        if let Some(mode) = mode {
            d.add_endpoint(
                Endpoint::new("ep", &rx_http.url)
                    .with_secret(SECRET)
                    .with_body(mode),
            )
            .await
            .unwrap();
        }
        // The second event has an empty type: the whole batch is refused.
        let batch = [event("a.b", 1), event("", 2)];
        let err = d.send_batch(&batch).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{mode:?}: {err}");
        assert!(err.to_string().contains("type"), "{mode:?}: {err}");
        assert_eq!(d.pending_count(), 0, "{mode:?}");
        assert!(
            d.deliveries(&DeliveryQuery::default())
                .await
                .unwrap()
                .is_empty(),
            "{mode:?}: nothing stored"
        );
    }
    assert!(rx_http.drain().is_empty(), "nothing was sent");
}

/// A dispatcher on `store` (retries at once, then after a second) with one
/// endpoint `ep` at `url`.
async fn one_endpoint_on(
    store: &Arc<flextime_webhooks::dispatch::MemoryStore>,
    url: &str,
) -> Dispatcher {
    let d = Dispatcher::builder()
        .config(config(&[0, 1000]))
        .store(store.clone())
        .start()
        .await
        .unwrap();
    d.add_endpoint(Endpoint::new("ep", url).with_secret(SECRET))
        .await
        .unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_stopped_with_the_delivery_in_flight_still_pending() {
    let mut rx_http = TestReceiver::start().await;
    rx_http.set_default(Reply::Hang);
    let store = Arc::new(flextime_webhooks::dispatch::MemoryStore::default());
    let d = one_endpoint_on(&store, &rx_http.url).await;
    let r = d.send(&event("a.b", 1)).await.unwrap();
    // The attempt is in flight: the receiver holds the request unanswered.
    assert_eq!(rx_http.next().await.webhook_id(), r.message_id);
    d.shutdown().await;
    // Every worker has ended and the dispatcher's state is freed: the test
    // holds the only reference to the store left.
    assert_eq!(Arc::strong_count(&store), 1);
    // The abandoned attempt left the delivery pending, and a dispatcher
    // started on the same store makes it again.
    rx_http.set_default(Reply::status(200));
    let (tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let again = Dispatcher::builder()
        .config(config(&[0, 1000]))
        .store(store)
        .on_event(move |e| {
            if let DispatcherEvent::Finished(o) = e {
                let _ = tx.send(o.clone());
            }
        })
        .start()
        .await
        .unwrap();
    assert_eq!(again.resumed(), 1);
    assert_eq!(rx_http.next().await.webhook_id(), r.message_id);
    let o = tokio::time::timeout(Duration::from_secs(20), outcomes.recv())
        .await
        .expect("an outcome within 20 s")
        .unwrap();
    assert_eq!(
        (o.status, o.delivery_id.as_str()),
        (DeliveryStatus::Delivered, r.deliveries[0].as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_within_lets_the_attempt_in_flight_finish_and_records_it() {
    // A receiver that answers 200 only once told to.
    let arrived = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (a, r) = (arrived.clone(), release.clone());
    let app = axum::Router::new().fallback(move || {
        let (a, r) = (a.clone(), r.clone());
        async move {
            a.notify_one();
            r.notified().await;
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let store = Arc::new(flextime_webhooks::dispatch::MemoryStore::default());
    let d = one_endpoint_on(&store, &url).await;
    let r = d.send(&event("a.b", 1)).await.unwrap();
    arrived.notified().await;
    // The stop begins (its first poll stops the workers from taking more)
    // before the receiver answers the attempt in flight.
    tokio::join!(d.shutdown_within(Duration::from_secs(30)), async {
        release.notify_one();
    });
    assert_eq!(Arc::strong_count(&store), 1, "the dispatcher is freed");
    let saved = flextime_webhooks::dispatch::DeliveryStore::get_deliveries(
        &*store,
        &[r.deliveries[0].to_string()],
    )
    .await
    .unwrap();
    assert_eq!(saved[0].status, DeliveryStatus::Delivered);
    assert_eq!(saved[0].attempts.len(), 1);
    assert_eq!(saved[0].attempts[0].status, Some(200));
}
