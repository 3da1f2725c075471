//! The dispatcher's delivery metrics, read back from a debugging recorder
//! installed as the global recorder before the dispatcher starts (this test
//! binary holds only this test).

#[path = "support/http_receiver.rs"]
mod http_receiver;

use std::time::Duration;

use flextime_core::Envelope;
use flextime_core::telemetry as metric;
use flextime_testkit::metrics::recorded;
use flextime_webhooks::dispatch::{
    Dispatcher, DispatcherConfig, DispatcherEvent, Endpoint, RetrySchedule, SsrfGuard,
};
use http_receiver::{Reply, TestReceiver};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn deliveries_are_counted_per_endpoint_and_outcome_with_their_latency() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();

    let good = TestReceiver::start().await;
    let bad = TestReceiver::start().await;
    bad.set_default(Reply::status(500));
    let dispatcher = Dispatcher::builder()
        .config(DispatcherConfig {
            // One attempt each: a failure is final at once.
            schedule: RetrySchedule::from_millis(&[0]).with_jitter(0.0),
            ssrf: SsrfGuard::default().allow("127.0.0.0/8".parse().unwrap()),
            timeout: Duration::from_secs(10),
            ..DispatcherConfig::default()
        })
        .start()
        .await
        .unwrap();
    let mut events = dispatcher.subscribe();
    for (id, url) in [("good", &good.url), ("bad", &bad.url)] {
        dispatcher
            .add_endpoint(Endpoint::new(id, url).with_secret(SECRET))
            .await
            .unwrap();
    }
    let batch: Vec<Envelope> = (0..3)
        .map(|n| Envelope::new("/tests", "booking.created").with_id(format!("evt-{n}")))
        .collect();
    dispatcher.send_batch(&batch).await.unwrap();
    let mut finished = 0;
    while finished < 6 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an event within 20 s")
            .unwrap();
        if matches!(event, DispatcherEvent::Finished(_)) {
            finished += 1;
        }
    }

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| recorded(&snapshot, name, labels);
    assert_eq!(
        find(
            metric::DELIVERIES,
            &[("endpoint", "good"), ("outcome", "delivered")]
        ),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(
        find(
            metric::DELIVERIES,
            &[("endpoint", "bad"), ("outcome", "failed")]
        ),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(
        find(
            metric::DELIVERIES,
            &[("endpoint", "good"), ("outcome", "failed")]
        ),
        Some(&DebugValue::Counter(0)),
        "registered, never incremented"
    );
    for endpoint in ["good", "bad"] {
        match find(metric::DELIVERY_SECONDS, &[("endpoint", endpoint)]) {
            Some(DebugValue::Histogram(values)) => {
                assert_eq!(values.len(), 3, "{endpoint}: one latency per attempt");
                assert!(values.iter().all(|v| v.into_inner() >= 0.0));
            }
            other => panic!("{endpoint}: no latency histogram: {other:?}"),
        }
    }
}
