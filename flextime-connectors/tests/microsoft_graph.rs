//! Microsoft Graph calendars against an in-process peer built from
//! Microsoft's documented shapes (there is no Graph document in
//! ../shared/vendor-specs for Prism).
#![cfg(feature = "microsoft-graph")]

mod support;

use chrono::{NaiveDate, TimeZone, Utc};
use flextime_connectors::calendar::{CalendarProvider, EventChange};
use flextime_connectors::http::Auth;
use flextime_connectors::microsoft_graph::MicrosoftGraph;
use flextime_core::ErrorKind;
use flextime_core::resilience::RetryPolicy;
use flextime_core::schedule::{ItemKind, ItemTime, ScheduleItem};
use serde_json::json;
use support::graph_peer;

fn connector(base: &str) -> MicrosoftGraph {
    MicrosoftGraph::builder(Auth::bearer(graph_peer::TOKEN))
        .base_url(base)
        .page_size(2)
        .timezone("Europe/Paris")
        .http(|h| h.retry(RetryPolicy::none()))
        .build()
        .unwrap()
}

fn titles(changes: &[EventChange]) -> Vec<String> {
    let mut t: Vec<String> = changes
        .iter()
        .map(|c| match c {
            EventChange::Upsert(e) => e.item.title.clone(),
            EventChange::Delete { id } => format!("deleted {id}"),
        })
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn delta_follows_next_links_to_the_delta_link_then_reads_only_changes() {
    let (peer, base) = graph_peer::start().await;
    for i in 0..5 {
        peer.lock()
            .unwrap()
            .add(&format!("ev{i}"), &format!("Event {i}"), "busy");
    }
    let graph = connector(&base);
    let first = graph.sync_events("AAMkCal1", None).await.unwrap();
    assert!(first.full_resync);
    assert_eq!(
        titles(&first.changes),
        (0..5).map(|i| format!("Event {i}")).collect::<Vec<_>>()
    );
    assert!(
        first.next_token.contains("$deltatoken="),
        "{}",
        first.next_token
    );
    {
        let p = peer.lock().unwrap();
        assert_eq!(p.delta_requests, 3, "5 events at 2 per page");
        assert!(
            p.prefer_headers
                .iter()
                .all(|h| h.contains("outlook.timezone=\"Europe/Paris\"")
                    && h.contains("odata.maxpagesize=2")),
            "{:?}",
            p.prefer_headers
        );
    }
    {
        let mut p = peer.lock().unwrap();
        p.edit("ev1", |e| e["subject"] = json!("Event 1 moved"));
        p.remove("ev3");
    }
    let next = graph
        .sync_events("AAMkCal1", Some(&first.next_token))
        .await
        .unwrap();
    assert!(!next.full_resync);
    assert_eq!(titles(&next.changes), vec!["Event 1 moved", "deleted ev3"]);
    let quiet = graph
        .sync_events("AAMkCal1", Some(&next.next_token))
        .await
        .unwrap();
    assert!(quiet.changes.is_empty());
}

#[tokio::test]
async fn an_expired_delta_token_syncs_the_window_again() {
    let (peer, base) = graph_peer::start().await;
    peer.lock().unwrap().add("a", "A", "busy");
    let graph = connector(&base);
    let first = graph.sync_events("AAMkCal1", None).await.unwrap();
    {
        let mut p = peer.lock().unwrap();
        p.add("b", "B", "busy");
        p.min_token = p.seq + 1;
    }
    let again = graph
        .sync_events("AAMkCal1", Some(&first.next_token))
        .await
        .unwrap();
    assert!(again.full_resync);
    assert_eq!(titles(&again.changes), vec!["A", "B"]);
}

#[tokio::test]
async fn writes_are_deduplicated_by_transaction_id_and_guarded_by_etags() {
    let (peer, base) = graph_peer::start().await;
    let graph = connector(&base);
    let day = NaiveDate::from_ymd_opt(2024, 5, 6).unwrap();
    let item = ScheduleItem::new(
        "bk-7",
        ItemKind::Booking,
        "Consultation",
        ItemTime::zoned(day.and_hms_opt(9, 0, 0).unwrap(), chrono_tz::Europe::Paris),
        ItemTime::zoned(day.and_hms_opt(10, 0, 0).unwrap(), chrono_tz::Europe::Paris),
        Utc::now(),
    );
    let created = graph.create_event("AAMkCal1", &item).await.unwrap();
    let again = graph.create_event("AAMkCal1", &item).await.unwrap();
    assert_eq!(
        created.id, again.id,
        "a retried create must not duplicate the event"
    );
    assert_eq!(peer.lock().unwrap().events.len(), 1);
    assert_eq!(
        peer.lock().unwrap().events[&created.id].0["start"],
        json!({"dateTime": "2024-05-06T09:00:00", "timeZone": "Europe/Paris"})
    );

    let mut moved = item.clone();
    moved.title = "Consultation (moved)".into();
    let updated = graph
        .update_event("AAMkCal1", &created.id, &moved, created.etag.as_deref())
        .await
        .unwrap();
    let stale = graph
        .update_event("AAMkCal1", &created.id, &moved, created.etag.as_deref())
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let stale = graph
        .delete_event("AAMkCal1", &created.id, created.etag.as_deref())
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    graph
        .delete_event("AAMkCal1", &created.id, updated.etag.as_deref())
        .await
        .unwrap();
    graph
        .delete_event("AAMkCal1", &created.id, None)
        .await
        .unwrap();
    let sync = graph.sync_events("AAMkCal1", None).await.unwrap();
    assert!(sync.changes.is_empty());
}

#[tokio::test]
async fn free_busy_skips_free_and_cancelled_events_and_calendars_list() {
    let (peer, base) = graph_peer::start().await;
    {
        let mut p = peer.lock().unwrap();
        p.add("busy", "Busy", "busy");
        p.add("free", "Free", "free");
        p.add("off", "Cancelled", "busy");
        p.edit("off", |e| e["isCancelled"] = json!(true));
    }
    let graph = connector(&base);
    let busy = graph
        .free_busy(
            "AAMkCal1",
            Utc.with_ymd_and_hms(2024, 5, 6, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 5, 7, 0, 0, 0).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(busy.len(), 1);
    assert_eq!(
        busy[0].start,
        Utc.with_ymd_and_hms(2024, 5, 6, 9, 0, 0).unwrap()
    );
    let calendars = graph.list_calendars().await.unwrap();
    assert_eq!(calendars.len(), 2);
    assert!(calendars[1].read_only);
    assert_eq!(calendars[0].color.as_deref(), Some("#ff8c00"));
}

#[tokio::test]
async fn a_bad_time_zone_is_refused_at_build_time_and_bad_credentials_are_typed() {
    let err = MicrosoftGraph::builder(Auth::None)
        .timezone("Mars/Olympus")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let (_peer, base) = graph_peer::start().await;
    let graph = MicrosoftGraph::builder(Auth::bearer("nope"))
        .base_url(&base)
        .build()
        .unwrap();
    assert_eq!(
        graph
            .sync_events("AAMkCal1", None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Unauthorized
    );
}
