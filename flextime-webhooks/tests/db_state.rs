//! The `db` feature: replay protection and the outbox hand-off in a real
//! database (SQLite always, PostgreSQL when its URL is set), across a
//! "restart" (a second receiver on the same database).
#![cfg(feature = "db")]

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use flextime_core::Result;
use flextime_db::stores::{OutboxEntry, OutboxPublisher, OutboxStore};
use flextime_db::{Adapter, DbOptions};
use flextime_webhooks::receiver::{
    DbIdempotencyStore, InboundEvent, OutboxHandOff, Receiver, SourceConfig,
};
use flextime_webhooks::verify::{StandardWebhooks, Tolerance};
use http::{Request, StatusCode};
use tower::ServiceExt;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Default)]
struct Collect(Mutex<Vec<InboundEvent>>);

#[async_trait::async_trait]
impl OutboxPublisher for Collect {
    async fn publish(&self, entry: &OutboxEntry) -> Result<()> {
        let event: InboundEvent = serde_json::from_value(entry.message.payload.clone())?;
        self.0.lock().unwrap().push(event);
        Ok(())
    }
}

fn app(adapter: &Arc<dyn Adapter>) -> axum::Router {
    let sw = StandardWebhooks::new([SECRET.into()], Tolerance::DISABLED).unwrap();
    Receiver::builder(OutboxHandOff::new(
        OutboxStore::new(Arc::clone(adapter)),
        "webhooks",
    ))
    .idempotency_store(Arc::new(DbIdempotencyStore::new(
        Arc::clone(adapter),
        Duration::from_secs(3600),
    )))
    .source(SourceConfig::new("billing", "/hooks", Arc::new(sw)))
    .build()
    .unwrap()
    .router()
}

fn post(id: &str, body: &str) -> Request<Body> {
    let sw = StandardWebhooks::new([SECRET.into()], Tolerance::DISABLED).unwrap();
    Request::post("/hooks")
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", "1700000000")
        .header(
            "webhook-signature",
            sw.sign(id, 1_700_000_000, body.as_bytes()),
        )
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn exercise(adapter: Arc<dyn Adapter>) {
    let first = app(&adapter);
    for id in ["msg_1", "msg_2"] {
        let r = first
            .clone()
            .oneshot(post(id, r#"{"type":"booking.created"}"#))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // "Restart": a new receiver on the same database still knows msg_1.
    drop(first);
    let second = app(&adapter);
    let r = second
        .clone()
        .oneshot(post("msg_1", r#"{"type":"booking.created"}"#))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("duplicate"));

    // The relay publishes each accepted event exactly once, in order.
    let outbox = OutboxStore::new(Arc::clone(&adapter));
    let collect = Collect::default();
    let report = outbox.relay_once(&collect, 100).await.unwrap();
    assert_eq!(report.published, 2);
    let again = outbox.relay_once(&collect, 100).await.unwrap();
    assert_eq!(again.published, 0);
    let events = collect.0.lock().unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.envelope.id().to_owned()).collect();
    assert_eq!(ids, ["msg_1", "msg_2"]);
    assert_eq!(events[0].envelope.event_type(), "booking.created");
    assert_eq!(
        events[0].raw_body.as_ref(),
        br#"{"type":"booking.created"}"#
    );
}

#[tokio::test]
async fn sqlite_outbox_and_replay_protection_survive_a_restart() {
    let dir = std::env::temp_dir().join(flextime_testkit::unique_name("webhooks_db"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("state.db").display());
    exercise(
        flextime_db::connect(&url, DbOptions::default())
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn postgres_outbox_and_replay_protection_survive_a_restart() {
    let url = flextime_testkit::require_peer!(Postgres);
    let options = DbOptions {
        schema: Some(flextime_testkit::unique_name("webhooks")),
        ..DbOptions::default()
    };
    exercise(flextime_db::connect(&url, options).await.unwrap()).await;
}
