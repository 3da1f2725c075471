//! The receiver's metrics, read back from a debugging recorder installed as
//! the global recorder (this test binary holds only this test).

use std::sync::Arc;

use axum::body::Body;
use flextime_core::health::{HealthRegistry, HealthStatus};
use flextime_core::telemetry as metric;
use flextime_testkit::metrics::recorded;
use flextime_webhooks::receiver::{ChannelHandOff, HandOffHealth, Receiver, SourceConfig};
use flextime_webhooks::verify::{StandardWebhooks, Tolerance};
use http::Request;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceExt;

#[tokio::test]
async fn received_rejected_duplicates_handoff_and_in_flight() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();

    let sw = StandardWebhooks::new(
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
        Tolerance::DISABLED,
    )
    .unwrap();
    let (handoff, _rx) = ChannelHandOff::new(8);
    let health = HealthRegistry::new(std::time::Duration::from_secs(1))
        .with(HandOffHealth::new("webhook-handoff", handoff.clone()));
    let app = Receiver::builder(handoff)
        .source(SourceConfig::new("m", "/m", Arc::new(sw.clone())))
        .build()
        .unwrap()
        .router();
    let req = |id: &str, sig: String| {
        Request::post("/m")
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", "1")
            .header("webhook-signature", sig)
            .body(Body::from("{}"))
            .unwrap()
    };
    for r in [
        req("a", sw.sign("a", 1, b"{}")),
        req("a", sw.sign("a", 1, b"{}")),
        req("b", "v1,AAAA".into()),
    ] {
        app.clone().oneshot(r).await.unwrap();
    }
    assert_eq!(health.run().await.status, HealthStatus::Healthy);

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, label: Option<(&str, &str)>| {
        let labels: Vec<(&str, &str)> = label.into_iter().collect();
        recorded(&snapshot, name, &labels)
            .unwrap_or_else(|| panic!("{name} {label:?} not recorded"))
    };
    assert_eq!(
        find(metric::WEBHOOKS_RECEIVED, Some(("source", "m"))),
        &DebugValue::Counter(3)
    );
    assert_eq!(
        find(metric::WEBHOOKS_DUPLICATES, None),
        &DebugValue::Counter(1)
    );
    assert_eq!(
        find(
            metric::WEBHOOKS_REJECTED,
            Some(("reason", "signature_mismatch"))
        ),
        &DebugValue::Counter(1)
    );
    match find(metric::WEBHOOKS_HANDOFF_SECONDS, None) {
        DebugValue::Histogram(samples) => assert_eq!(samples.len(), 1),
        other => panic!("{other:?}"),
    }
    match find(metric::WEBHOOKS_IN_FLIGHT, None) {
        DebugValue::Gauge(g) => assert!(g.into_inner().abs() < f64::EPSILON),
        other => panic!("{other:?}"),
    }
}
