//! Analytics backends: Mixpanel's requests validated by Prism against
//! Mixpanel's ingestion document, its error paths and PostHog's batch API
//! against in-process peers built from the vendors' documentation.
#![cfg(all(feature = "mixpanel", feature = "posthog"))]

mod support;

use support::scripted::{self, Answer};

fn text(status: u16, body: &str) -> Answer {
    Answer::raw(status, "text/plain", body)
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use flextime_connectors::analytics::mixpanel::{Mixpanel, MixpanelMode};
use flextime_connectors::analytics::posthog::PostHog;
use flextime_connectors::analytics::{
    AnalyticsBackend, AnalyticsEvent, AnalyticsSink, BatchConfig, Batcher,
};
use flextime_connectors::http::Auth;
use flextime_core::ErrorKind;
use flextime_core::resilience::RetryPolicy;
use flextime_testkit::{Peer, Vendor};
use serde_json::{Value, json};

fn events(n: usize) -> Vec<AnalyticsEvent> {
    (0..n)
        .map(|i| {
            AnalyticsEvent::new("booking_confirmed", format!("user-{i}"))
                .with_insert_id(format!("booking-{i}:confirmed"))
                .with_property("amount", 2500)
        })
        .collect()
}

#[tokio::test]
async fn mixpanel_track_and_import_pass_prism_validation() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Mixpanel), "mixpanel_prism")
    else {
        return;
    };
    let (observer, seen) = support::prism_recorder();
    let track = Mixpanel::new(
        &url,
        MixpanelMode::Track {
            token: "proj-token".into(),
        },
        |h| h.observe(observer.clone()),
    )
    .unwrap();
    let sink = Batcher::new(
        track,
        BatchConfig {
            max_batch: 50,
            ..BatchConfig::default()
        },
    );
    for e in events(120) {
        sink.track(e).unwrap();
    }
    sink.shutdown().await.unwrap();
    assert_eq!(sink.stats().sent, 120);
    let import = Mixpanel::new(
        &url,
        MixpanelMode::Import {
            project_id: "123456".into(),
            auth: Auth::basic("svc.flextime", "svc-secret"),
        },
        |h| h.observe(observer),
    )
    .unwrap();
    let result = import.send(&events(3)).await.unwrap();
    assert!(result.rejected.is_empty());
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        4,
        "three /track batches of at most 50 and one /import: {seen:?}"
    );
    let bad: Vec<_> = seen.iter().filter(|(_, v)| v.is_some()).collect();
    assert!(bad.is_empty(), "Prism reported violations: {bad:?}");
}

/// Mixpanel's documented answers: `/import?strict=1` returns 400 with
/// `failed_records` for the bad events and imports the rest; 401 for bad
/// credentials; 429 when over the limit.
#[derive(Default)]
struct MixpanelPeer {
    bodies: Vec<Value>,
    answers: Vec<(u16, Value)>,
}

async fn import(
    State(s): State<Arc<Mutex<MixpanelPeer>>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = s.lock().unwrap();
    assert_eq!(q.get("strict").map(String::as_str), Some("1"));
    assert!(headers.get("authorization").is_some());
    s.bodies.push(body.clone());
    if !s.answers.is_empty() {
        let (status, answer) = s.answers.remove(0);
        let mut resp = (StatusCode::from_u16(status).unwrap(), Json(answer)).into_response();
        if status == 429 {
            resp.headers_mut()
                .insert("retry-after", "1".parse().unwrap());
        }
        return resp;
    }
    let n = body.as_array().map_or(0, Vec::len);
    Json(json!({"code": 200, "num_records_imported": n, "status": "OK"})).into_response()
}

#[tokio::test]
async fn mixpanel_import_reports_refused_events_and_retries_rate_limits() {
    let state = Arc::new(Mutex::new(MixpanelPeer::default()));
    let base = support::serve(
        Router::new()
            .route("/import", post(import))
            .with_state(state.clone()),
    )
    .await;
    let mp = Mixpanel::new(
        &base,
        MixpanelMode::Import {
            project_id: "1".into(),
            auth: Auth::basic("secret", ""),
        },
        |h| h.retry(support::fast_retries(3)),
    )
    .unwrap();
    state.lock().unwrap().answers.push((400, json!({
        "code": 400, "error": "some data points in the request failed validation",
        "failed_records": [{"index": 1, "$insert_id": "booking-1:confirmed", "field": "properties.time", "message": "'properties.time' is invalid: must be specified as seconds since epoch"}],
        "num_records_imported": 2, "status": "Bad Request"
    })));
    let result = mp.send(&events(3)).await.unwrap();
    assert_eq!(result.accepted, 2);
    assert_eq!(result.rejected.len(), 1);
    assert_eq!(result.rejected[0].0, "booking-1:confirmed");
    assert!(
        result.rejected[0].1.contains("properties.time"),
        "{:?}",
        result.rejected
    );

    state.lock().unwrap().answers.push((
        429,
        json!({"code": 429, "error": "too many requests", "status": "Too Many Requests"}),
    ));
    let result = mp.send(&events(2)).await.unwrap();
    assert_eq!(result.accepted, 2);
    let bodies = state.lock().unwrap().bodies.clone();
    assert_eq!(
        bodies[bodies.len() - 1],
        bodies[bodies.len() - 2],
        "the retry resends the same batch"
    );
    let first = &bodies[0][0]["properties"];
    assert_eq!(first["$insert_id"], "booking-0:confirmed");
    assert!(
        first["time"].as_i64().unwrap() > 1_600_000_000_000,
        "time in milliseconds"
    );
    assert!(
        first.get("token").is_none(),
        "/import takes no token in properties"
    );

    state.lock().unwrap().answers.push((
        401,
        json!({"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}),
    ));
    let err = mp.send(&events(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("Invalid credentials"), "{err}");
}

/// PostHog's documented `/batch/` endpoint: `{"api_key", "batch": [...]}`,
/// 200 `{"status": 1}`; 401 `invalid_api_key`; 400 `invalid_payload`.
async fn batch(State(s): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>) -> Response {
    if body["api_key"] != "phc_test" {
        return (StatusCode::UNAUTHORIZED, Json(json!({"type": "authentication_error", "code": "invalid_api_key", "detail": "Project API key invalid. You can find your project API key in PostHog project settings.", "attr": null}))).into_response();
    }
    let ok = body["batch"].as_array().is_some_and(|b| {
        b.iter().all(|e| {
            e["event"].is_string()
                && e["distinct_id"].is_string()
                && e["uuid"].is_string()
                && e["timestamp"].is_string()
        })
    });
    if !ok {
        return (StatusCode::BAD_REQUEST, Json(json!({"type": "validation_error", "code": "invalid_payload", "detail": "Malformed request data", "attr": null}))).into_response();
    }
    s.lock()
        .unwrap()
        .extend(body["batch"].as_array().unwrap().iter().cloned());
    Json(json!({"status": 1})).into_response()
}

#[tokio::test]
async fn posthog_batches_carry_uuids_and_flush_on_shutdown() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let base = support::serve(
        Router::new()
            .route("/batch/", post(batch))
            .with_state(received.clone()),
    )
    .await;
    let ph = PostHog::new(&base, "phc_test", |h| h.retry(support::fast_retries(3))).unwrap();
    let sink = Batcher::new(
        ph,
        BatchConfig {
            max_batch: 10,
            flush_interval: Duration::from_secs(3600),
            ..BatchConfig::default()
        },
    );
    let mut all = events(25);
    all.push(all[0].clone());
    for e in all {
        sink.track(e).unwrap();
    }
    sink.shutdown().await.unwrap();
    let got = received.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        25,
        "the repeat is de-duplicated, the rest flushed on shutdown"
    );
    assert_eq!(sink.stats().duplicates, 1);
    let uuids: std::collections::HashSet<&str> =
        got.iter().map(|e| e["uuid"].as_str().unwrap()).collect();
    assert_eq!(uuids.len(), 25);
    assert_eq!(got[0]["properties"]["amount"], 2500);
    assert_eq!(got[0]["properties"]["$lib"], "flextime-connectors");

    let wrong = PostHog::new(&base, "phc_wrong", |h| h.retry(support::fast_retries(3))).unwrap();
    let err = wrong.send(&events(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("Project API key invalid"), "{err}");
}

#[tokio::test]
async fn mixpanel_track_retries_5xx_and_429_and_types_bad_answers() {
    let (peer, base) = scripted::start(
        vec![
            text(503, "Service Unavailable"),
            text(429, "").header("retry-after", "1"),
        ],
        Some(text(200, "1")),
    )
    .await;
    let mp = Mixpanel::new(&base, MixpanelMode::Track { token: "t".into() }, |h| {
        h.retry(RetryPolicy {
            max_attempts: 4,
            ..support::fast_retries(3)
        })
    })
    .unwrap();
    assert_eq!(mp.send(&events(2)).await.unwrap().accepted, 2);
    let bodies: Vec<Vec<u8>> = peer.seen().iter().map(|r| r.body.to_vec()).collect();
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every retry resends the same events with the same $insert_id"
    );
    let (_, base) = scripted::start(
        vec![],
        Some(Answer::raw(200, "text/html", "<html>maintenance</html>")),
    )
    .await;
    let mp = Mixpanel::new(&base, MixpanelMode::Track { token: "t".into() }, |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    let err = mp.send(&events(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("malformed response body"), "{err}");
    let (_, base) = scripted::start(vec![], Some(text(200, "0"))).await;
    let mp = Mixpanel::new(&base, MixpanelMode::Track { token: "t".into() }, |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    assert_eq!(
        mp.send(&events(1)).await.unwrap_err().kind(),
        ErrorKind::Permanent
    );
}

#[tokio::test]
async fn posthog_retries_5xx_and_429_and_types_bad_answers() {
    let (peer, base) = scripted::start(
        vec![
            text(502, "Bad Gateway"),
            Answer::json(429, json!({"type": "rate_limited", "code": "rate_limited", "detail": "Rate limit exceeded"})).header("retry-after", "1"),
        ],
        Some(Answer::json(200, json!({"status": 1}))),
    )
    .await;
    let ph = PostHog::new(&base, "phc_test", |h| {
        h.retry(RetryPolicy {
            max_attempts: 4,
            ..support::fast_retries(3)
        })
    })
    .unwrap();
    assert_eq!(ph.send(&events(3)).await.unwrap().accepted, 3);
    assert_eq!(peer.seen().len(), 3);
    let (_, base) = scripted::start(
        vec![],
        Some(Answer::raw(200, "application/json", "{\"status\": ")),
    )
    .await;
    let ph = PostHog::new(&base, "phc_test", |h| h.retry(support::fast_retries(3))).unwrap();
    let err = ph.send(&events(1)).await.unwrap_err();
    assert!(err.to_string().contains("malformed response body"), "{err}");
    // A batch that keeps failing stays queued in the sink instead of being lost.
    let (_, base) = scripted::start(vec![], Some(text(503, ""))).await;
    let ph = PostHog::new(&base, "phc_test", |h| {
        h.retry(RetryPolicy {
            max_attempts: 2,
            ..support::fast_retries(3)
        })
    })
    .unwrap();
    let sink = Batcher::new(
        ph,
        BatchConfig {
            flush_interval: Duration::from_secs(3600),
            ..BatchConfig::default()
        },
    );
    for e in events(4) {
        sink.track(e).unwrap();
    }
    assert!(sink.flush().await.is_err());
    assert_eq!(sink.stats().queued, 4);
}
