//! Google Calendar: the sync-token, paging, 410 and etag paths against a
//! stateful in-process peer, and every request shape against Prism serving
//! Google's own OpenAPI document.
#![cfg(feature = "google-calendar")]

mod support;

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use flextime_connectors::calendar::{CalendarProvider, CalendarSink, CalendarSource, EventChange};
use flextime_connectors::google_calendar::GoogleCalendar;
use flextime_connectors::http::Auth;
use flextime_core::resilience::RetryPolicy;
use flextime_core::schedule::{Attendee, ItemKind, ItemTime, Override, ScheduleItem};
use flextime_core::{Change, ChangeKey, ErrorKind, Sink, Source};
use flextime_testkit::{Peer, Vendor};
use futures::StreamExt;
use serde_json::json;
use support::google_peer;

fn connector(base: &str) -> GoogleCalendar {
    GoogleCalendar::builder(Auth::bearer(google_peer::TOKEN))
        .base_url(base)
        .origin("flextime-test")
        .page_size(3)
        .http(|h| h.retry(RetryPolicy::none()))
        .build()
        .unwrap()
}

fn at(h: u32) -> ItemTime {
    ItemTime::zoned(
        NaiveDate::from_ymd_opt(2024, 5, 6)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap(),
        Paris,
    )
}

fn item(id: &str) -> ScheduleItem {
    let mut item = ScheduleItem::new(
        id,
        ItemKind::Booking,
        format!("Booking {id}"),
        at(9),
        at(10),
        Utc::now(),
    );
    item.location = Some("Room 1".into());
    item.attendees.push(Attendee::new("guest@example.com"));
    item
}

fn upserts(changes: &[EventChange]) -> Vec<String> {
    let mut titles: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            EventChange::Upsert(e) => Some(e.item.title.clone()),
            EventChange::Delete { .. } => None,
        })
        .collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn a_full_sync_pages_through_and_takes_the_token_from_the_last_page() {
    let (peer, base) = google_peer::start().await;
    for i in 0..7 {
        peer.lock()
            .unwrap()
            .add(&format!("ev{i}"), &format!("Event {i}"));
    }
    peer.lock().unwrap().add("gone", "Deleted before we looked");
    peer.lock().unwrap().remove("gone");
    let google = connector(&base);
    let sync = google.sync_events("primary", None).await.unwrap();
    assert_eq!(
        upserts(&sync.changes),
        (0..7).map(|i| format!("Event {i}")).collect::<Vec<_>>()
    );
    assert!(sync.full_resync);
    assert_eq!(
        sync.next_token,
        format!("sync-{}", peer.lock().unwrap().seq)
    );
    let state = peer.lock().unwrap();
    assert_eq!(state.list_queries.len(), 3, "8 events at 3 per page");
    assert_eq!(
        state.list_answers,
        vec![(false, true), (false, true), (true, false)]
    );
    assert!(
        state
            .list_queries
            .iter()
            .all(|q| q["showDeleted"] == "true" && q["maxResults"] == "3")
    );
    assert_eq!(state.list_queries[1]["pageToken"], "p-3");
}

#[tokio::test]
async fn an_incremental_sync_returns_only_what_changed_including_deletions() {
    let (peer, base) = google_peer::start().await;
    for i in 0..4 {
        peer.lock()
            .unwrap()
            .add(&format!("ev{i}"), &format!("Event {i}"));
    }
    let google = connector(&base);
    let first = google.sync_events("primary", None).await.unwrap();
    {
        let mut p = peer.lock().unwrap();
        p.edit("ev1", |e| e["summary"] = json!("Event 1 renamed"));
        p.remove("ev2");
        p.add("ev9", "Event 9");
    }
    let next = google
        .sync_events("primary", Some(&first.next_token))
        .await
        .unwrap();
    assert!(!next.full_resync);
    assert_eq!(upserts(&next.changes), vec!["Event 1 renamed", "Event 9"]);
    let deleted: Vec<&str> = next
        .changes
        .iter()
        .filter_map(|c| match c {
            EventChange::Delete { id } => Some(id.as_str()),
            EventChange::Upsert(_) => None,
        })
        .collect();
    assert_eq!(deleted, vec!["ev2"]);
    assert_eq!(
        peer.lock().unwrap().list_queries.last().unwrap()["syncToken"],
        first.next_token
    );
    let quiet = google
        .sync_events("primary", Some(&next.next_token))
        .await
        .unwrap();
    assert!(quiet.changes.is_empty());
}

#[tokio::test]
async fn an_expired_token_410_drops_it_and_runs_a_full_sync() {
    let (peer, base) = google_peer::start().await;
    peer.lock().unwrap().add("a", "A");
    let google = connector(&base);
    let first = google.sync_events("primary", None).await.unwrap();
    {
        let mut p = peer.lock().unwrap();
        p.add("b", "B");
        p.min_token = p.seq + 1;
    }
    let again = google
        .sync_events("primary", Some(&first.next_token))
        .await
        .unwrap();
    assert!(again.full_resync);
    assert_eq!(upserts(&again.changes), vec!["A", "B"]);
    let queries = &peer.lock().unwrap().list_queries;
    assert!(
        !queries[queries.len() - 1].contains_key("syncToken"),
        "the full sync must drop the token"
    );
}

#[tokio::test]
async fn writes_use_etags_and_a_second_insert_of_one_item_is_a_conflict() {
    let (peer, base) = google_peer::start().await;
    let google = connector(&base);
    let created = google.create_event("primary", &item("bk-1")).await.unwrap();
    let dup = google
        .create_event("primary", &item("bk-1"))
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict);

    let mut changed = item("bk-1");
    changed.title = "Moved".into();
    let updated = google
        .update_event("primary", &created.id, &changed, created.etag.as_deref())
        .await
        .unwrap();
    assert_ne!(updated.etag, created.etag);
    let stale = google
        .update_event("primary", &created.id, &changed, created.etag.as_deref())
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let stale = google
        .delete_event("primary", &created.id, created.etag.as_deref())
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    google
        .delete_event("primary", &created.id, updated.etag.as_deref())
        .await
        .unwrap();
    google
        .delete_event("primary", &created.id, None)
        .await
        .unwrap();
    google
        .delete_event("primary", "never-existed", None)
        .await
        .unwrap();
    assert_eq!(
        peer.lock().unwrap().events[&created.id].0["status"],
        "cancelled"
    );
}

#[tokio::test]
async fn own_writes_carry_the_origin_marker_and_read_back_losslessly() {
    let (_peer, base) = google_peer::start().await;
    let google = Arc::new(connector(&base));
    let sent = item("bk-2");
    google.create_event("primary", &sent).await.unwrap();
    let source = CalendarSource::new(google.clone(), "primary");
    let batch = source
        .changes(None)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.changes.len(), 1);
    let change = &batch.changes[0];
    assert_eq!(change.origin.as_deref(), Some("flextime-test"));
    let back: ScheduleItem = change.data_as().unwrap();
    assert_eq!(back.id, "bk-2");
    assert_eq!(back.kind, ItemKind::Booking);
    assert_eq!((back.start, back.end), (sent.start, sent.end));
    assert_eq!(back.attendees, sent.attendees);
    assert_eq!(back.location, sent.location);
    // Resuming from the checkpoint yields nothing new.
    let next = source
        .changes(Some(batch.checkpoint))
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(next.changes.is_empty());
}

#[tokio::test]
async fn a_changed_instance_alone_brings_back_the_whole_recurring_item() {
    let (peer, base) = google_peer::start().await;
    let google = connector(&base);
    let mut weekly = item("series-1");
    weekly.recurrence.rrule.push("FREQ=WEEKLY;COUNT=5".into());
    let mut moved = Override::new(at(9).shifted_days(7));
    moved.title = Some("Moved once".into());
    weekly.recurrence.overrides.push(moved);
    weekly
        .recurrence
        .overrides
        .push(Override::cancel(at(9).shifted_days(14)));
    let created = google.create_event("primary", &weekly).await.unwrap();
    let first = google.sync_events("primary", None).await.unwrap();
    assert_eq!(
        first.changes.len(),
        1,
        "master and instance fold into one item"
    );
    let EventChange::Upsert(event) = &first.changes[0] else {
        panic!("expected an upsert")
    };
    assert_eq!(
        event.item.recurrence.overrides.len(),
        1,
        "{:?}",
        event.item.recurrence
    );
    assert_eq!(
        event.item.recurrence.exdate.len(),
        1,
        "the cancellation is an EXDATE"
    );

    // Another client edits only the instance.
    let instance_id = format!("{}_20240513T070000Z", created.id);
    peer.lock()
        .unwrap()
        .edit(&instance_id, |e| e["summary"] = json!("Moved twice"));
    let next = google
        .sync_events("primary", Some(&first.next_token))
        .await
        .unwrap();
    assert_eq!(next.changes.len(), 1);
    let EventChange::Upsert(event) = &next.changes[0] else {
        panic!("expected an upsert")
    };
    assert_eq!(event.id, created.id);
    assert_eq!(event.item.recurrence.rrule, vec!["FREQ=WEEKLY;COUNT=5"]);
    assert_eq!(
        event.item.recurrence.overrides[0].title.as_deref(),
        Some("Moved twice")
    );
}

#[tokio::test]
async fn the_sink_creates_then_updates_through_the_external_reference() {
    let (peer, base) = google_peer::start().await;
    let google = Arc::new(connector(&base));
    let sink = CalendarSink::new(google.clone(), "primary");
    let key = ChangeKey::new("flextime", "bookings", "bk-3");
    let mut it = item("bk-3");
    let created = sink
        .apply(&[Change::upsert(
            key.clone(),
            serde_json::to_value(&it).unwrap(),
        )])
        .await
        .unwrap();
    assert!(created[0].outcome.is_settled(), "{created:?}");
    let sync = google.sync_events("primary", None).await.unwrap();
    let EventChange::Upsert(remote) = &sync.changes[0] else {
        panic!("expected an upsert")
    };
    it.external_refs = remote.item.external_refs.clone();
    it.title = "Renamed through the sink".into();
    let updated = sink
        .apply(&[Change::upsert(
            key.clone(),
            serde_json::to_value(&it).unwrap(),
        )])
        .await
        .unwrap();
    assert!(updated[0].outcome.is_settled(), "{updated:?}");
    // The same stale etag again is reported as a conflict, not an error.
    let stale = sink
        .apply(&[Change::upsert(key, serde_json::to_value(&it).unwrap())])
        .await
        .unwrap();
    assert!(
        matches!(
            stale[0].outcome,
            flextime_core::ApplyOutcome::Conflict { .. }
        ),
        "{stale:?}"
    );
    assert_eq!(
        peer.lock().unwrap().events[&remote.id].0["summary"],
        "Renamed through the sink"
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_typed_error() {
    let (_peer, base) = google_peer::start().await;
    let google = GoogleCalendar::builder(Auth::bearer("wrong"))
        .base_url(&base)
        .build()
        .unwrap();
    let err = google.sync_events("primary", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
}

/// Every request the connector makes, validated by Prism against Google's
/// OpenAPI document: the test fails on any `sl-violations` header.
#[tokio::test]
async fn every_request_passes_prism_validation_of_the_google_document() {
    let Some(url) =
        flextime_testkit::require(Peer::Prism(Vendor::GoogleCalendar), "google_calendar_prism")
    else {
        return;
    };
    let (observer, seen) = support::prism_recorder();
    let google = GoogleCalendar::builder(Auth::bearer("ya29.prism"))
        .base_url(&url)
        .http(|h| h.observe(observer).retry(RetryPolicy::none()))
        .build()
        .unwrap();
    // Prism's example answers always carry nextPageToken "string": each
    // listing stops on the repeated cursor after its second page request.
    let looping =
        |e: flextime_core::Error| assert!(e.to_string().contains("same page cursor"), "{e}");
    looping(google.list_calendars().await.unwrap_err());
    looping(google.sync_events("primary", None).await.unwrap_err());
    looping(
        google
            .sync_events("primary", Some("CPDAlvWDx70CEPDAlvWDx70CGAU="))
            .await
            .unwrap_err(),
    );
    let mut weekly = item("prism-1");
    weekly.recurrence.rrule.push("FREQ=WEEKLY;COUNT=3".into());
    let mut moved = Override::new(at(9).shifted_days(7));
    moved.title = Some("Moved".into());
    weekly.recurrence.overrides.push(moved);
    let created = google.create_event("primary", &weekly).await.unwrap();
    google
        .update_event("primary", &created.id, &weekly, Some("\"etag-1\""))
        .await
        .unwrap();
    google
        .delete_event("primary", &created.id, Some("\"etag-2\""))
        .await
        .unwrap();
    google
        .free_busy(
            "primary",
            Utc.with_ymd_and_hms(2024, 5, 6, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 5, 7, 0, 0, 0).unwrap(),
        )
        .await
        .unwrap();
    google.check_health().await;
    let seen = seen.lock().unwrap();
    let kinds: std::collections::BTreeSet<&str> = seen
        .iter()
        .map(|(r, _)| r.split(' ').next().unwrap())
        .collect();
    assert!(seen.len() >= 9, "{seen:?}");
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec!["DELETE", "GET", "PATCH", "POST"]
    );
    let bad: Vec<_> = seen.iter().filter(|(_, v)| v.is_some()).collect();
    assert!(bad.is_empty(), "Prism reported violations: {bad:?}");
}

trait Shift {
    fn shifted_days(self, days: i64) -> Self;
}

impl Shift for ItemTime {
    fn shifted_days(self, days: i64) -> Self {
        match self {
            ItemTime::Zoned { local, tz } => {
                ItemTime::zoned(local + chrono::Duration::days(days), tz)
            }
            ItemTime::AllDay(d) => ItemTime::AllDay(d + chrono::Duration::days(days)),
        }
    }
}

trait Health {
    async fn check_health(&self);
}

impl Health for GoogleCalendar {
    async fn check_health(&self) {
        use flextime_connectors::Connector;
        self.check().await.unwrap();
        assert_eq!(
            self.health().await.status,
            flextime_core::HealthStatus::Healthy
        );
    }
}
