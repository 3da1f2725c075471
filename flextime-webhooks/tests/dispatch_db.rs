//! Durable dispatcher state (feature `db`): a dispatcher dropped mid-retry
//! and a new one started on the same database (SQLite file, PostgreSQL
//! schema) loses nothing and repeats nothing that succeeded.
#![cfg(feature = "db")]

#[path = "support/http_receiver.rs"]
mod http_receiver;

use std::sync::Arc;
use std::time::Duration;

use flextime_core::{Envelope, ManualClock};
use flextime_db::DbOptions;
use flextime_webhooks::dispatch::{
    DbDeliveryStore, DeliveryQuery, DeliveryStatus, DeliveryStore, Dispatcher, DispatcherConfig,
    DispatcherEvent, Endpoint, RetrySchedule, SsrfGuard,
};
use http_receiver::{Reply, TestReceiver};
use tokio::sync::broadcast;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn next_event(rx: &mut broadcast::Receiver<DispatcherEvent>) -> DispatcherEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .unwrap()
}

async fn dispatcher(url: &str, options: DbOptions, clock: &ManualClock) -> Dispatcher {
    let adapter = flextime_db::connect(url, options).await.unwrap();
    Dispatcher::builder()
        .store(Arc::new(DbDeliveryStore::new(adapter)))
        .clock(Arc::new(clock.clone()))
        .config(DispatcherConfig {
            schedule: RetrySchedule::from_millis(&[0, 60_000, 60_000]).with_jitter(0.0),
            ssrf: SsrfGuard::default().allow("127.0.0.0/8".parse().unwrap()),
            ..DispatcherConfig::default()
        })
        .start()
        .await
        .unwrap()
}

async fn restart_mid_retry(url: &str, options: impl Fn() -> DbOptions) {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut receiver = TestReceiver::start().await;
    receiver.plan([Reply::status(503)]);

    // First life: the first attempt fails, then the process "dies".
    let first = dispatcher(url, options(), &clock).await;
    assert_eq!(first.resumed(), 0);
    first
        .add_endpoint(Endpoint::new("ep", &receiver.url).with_secret(SECRET))
        .await
        .unwrap();
    let mut events = first.subscribe();
    let receipt = first
        .send(
            &Envelope::new("/tests", "booking.created").with_data_json(serde_json::json!({"n": 1})),
        )
        .await
        .unwrap();
    loop {
        if let DispatcherEvent::AttemptFailed { outcome, .. } = next_event(&mut events).await {
            assert_eq!(outcome.attempts, 1);
            break;
        }
    }
    drop(first);

    // What the store says between the two lives.
    let store = DbDeliveryStore::new(flextime_db::connect(url, options()).await.unwrap());
    let pending = store
        .scan(&DeliveryQuery {
            statuses: vec![DeliveryStatus::Pending],
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempt_count, 1);
    assert_eq!(pending[0].message_id, receipt.message_id);

    // Second life: the retry is due; the receiver now accepts.
    clock.advance(Duration::from_secs(61));
    let second = dispatcher(url, options(), &clock).await;
    assert_eq!(second.resumed(), 1);
    let mut events = second.subscribe();
    second.wake();
    let outcome = loop {
        if let DispatcherEvent::Finished(o) = next_event(&mut events).await {
            break o;
        }
    };
    assert_eq!(outcome.status, DeliveryStatus::Delivered);
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.message_id, receipt.message_id);
    let seen = receiver.drain();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.webhook_id() == receipt.message_id));
    assert!(seen.iter().all(|s| s.verifies_with(SECRET)));
    assert_eq!(seen.iter().filter(|s| s.answered == Some(200)).count(), 1);
    drop(second);

    // Third life: nothing to resume; the delivered message is not repeated.
    let third = dispatcher(url, options(), &clock).await;
    assert_eq!(third.resumed(), 0);
    let mut events = third.subscribe();
    let sentinel = third
        .send(&Envelope::new("/tests", "booking.created"))
        .await
        .unwrap();
    let o = loop {
        if let DispatcherEvent::Finished(o) = next_event(&mut events).await {
            break o;
        }
    };
    assert_eq!(o.message_id, sentinel.message_id);
    let seen = receiver.drain();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].webhook_id(), sentinel.message_id);
    let log = third
        .attempts_of_message(&receipt.message_id)
        .await
        .unwrap();
    let statuses: Vec<_> = log.iter().map(|a| a.attempt.status).collect();
    assert_eq!(statuses, [Some(503), Some(200)]);
}

#[tokio::test]
async fn sqlite_restart_mid_retry_loses_and_repeats_nothing() {
    let dir = std::env::temp_dir().join(flextime_testkit::unique_name("dispatch_db"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("state.db").display());
    restart_mid_retry(&url, DbOptions::default).await;
}

#[tokio::test]
async fn postgres_restart_mid_retry_loses_and_repeats_nothing() {
    let url = flextime_testkit::require_peer!(Postgres);
    let schema = flextime_testkit::unique_name("dispatch");
    restart_mid_retry(&url, || DbOptions {
        schema: Some(schema.clone()),
        ..DbOptions::default()
    })
    .await;
}

#[tokio::test]
async fn group_commit_writes_concurrent_batches() {
    let adapter = flextime_db::connect("sqlite::memory:", DbOptions::default())
        .await
        .unwrap();
    let store = Arc::new(DbDeliveryStore::new(adapter));
    let clock = ManualClock::new(chrono::Utc::now());
    let receiver = TestReceiver::start().await;
    let d = Dispatcher::builder()
        .store(Arc::clone(&store) as Arc<dyn DeliveryStore>)
        .clock(Arc::new(clock.clone()))
        .config(DispatcherConfig {
            schedule: RetrySchedule::from_millis(&[3_600_000]),
            ssrf: SsrfGuard::default().allow("127.0.0.0/8".parse().unwrap()),
            ..DispatcherConfig::default()
        })
        .start()
        .await
        .unwrap();
    let d = Arc::new(d);
    d.add_endpoint(Endpoint::new("a", &receiver.url).with_secret(SECRET))
        .await
        .unwrap();
    d.add_endpoint(Endpoint::new("b", &receiver.url).with_secret(SECRET))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let d = Arc::clone(&d);
            tokio::spawn(async move {
                d.send(&Envelope::new("/t", "x.y").with_id(format!("e{n}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for t in tasks {
        receipts.push(t.await.unwrap());
    }
    // Every send returned after its rows were committed.
    let all = store.scan(&DeliveryQuery::default()).await.unwrap();
    assert_eq!(all.len(), 100);
    let ids: Vec<String> = receipts
        .iter()
        .flat_map(|r| r.deliveries.iter().map(ToString::to_string))
        .collect();
    assert_eq!(store.get_deliveries(&ids).await.unwrap().len(), 100);
    let by_a = store
        .scan(&DeliveryQuery {
            endpoint_id: Some("a".into()),
            limit: 10,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_a.len(), 10);
    assert!(
        by_a.iter()
            .all(|r| r.endpoint_id == "a" && r.status == DeliveryStatus::Pending)
    );
}
