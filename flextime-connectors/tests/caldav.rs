//! The CalDAV connector against a real Radicale server (`scripts/services`
//! starts it; `FLEXTIME_TEST_CALDAV_URL`). Each test works in a calendar
//! collection of its own, made with MKCALENDAR and removed afterwards.
#![cfg(feature = "caldav")]

mod support;

use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use flextime_connectors::caldav::CalDavConnector;
use flextime_connectors::calendar::{
    BusyPeriod, CalendarProvider, CalendarSink, CalendarSource, ETAG_METADATA, EventChange,
    EventSync, FULL_RESYNC_METADATA, RemoteEvent,
};
use flextime_connectors::http::{Auth, HttpClient, default_retry_policy};
use flextime_connectors::ics;
use flextime_connectors::{Capability, Connector};
use flextime_core::resilience::RetryPolicy;
use flextime_core::{
    ApplyOutcome, Change, ChangeKey, Checkpoint, ErrorKind, ItemKind, ItemTime, Override,
    ScheduleItem, Sink, Source, Status, Version,
};
use futures::{FutureExt, StreamExt};

const USER: &str = "flextime-tests";

fn berlin(day: u32, hour: u32, minute: u32) -> ItemTime {
    let local = NaiveDate::from_ymd_opt(2030, 3, day)
        .unwrap()
        .and_hms_opt(hour, minute, 0)
        .unwrap();
    ItemTime::zoned(local, chrono_tz::Europe::Berlin)
}

fn utc(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, day, hour, minute, 0).unwrap()
}

/// A one-hour event on 2030-03-`day` at `hour`:00 Berlin time (UTC+1).
fn event(uid: &str, title: &str, day: u32, hour: u32) -> ScheduleItem {
    ScheduleItem::new(
        uid,
        ItemKind::Event,
        title,
        berlin(day, hour, 0),
        berlin(day, hour + 1, 0),
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap(),
    )
}

fn connector(url: &str) -> Arc<CalDavConnector> {
    Arc::new(CalDavConnector::new(url, Auth::basic(USER, "secret")).unwrap())
}

/// Runs `body` with a fresh calendar, then deletes the calendar even when
/// `body` panicked.
async fn with_calendar<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<CalDavConnector>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = flextime_testkit::require(flextime_testkit::Peer::Caldav, test) else {
        return;
    };
    let caldav = connector(&url);
    let name = flextime_testkit::unique_name(test).replace('_', "-");
    let calendar = caldav
        .make_calendar(&name, &format!("Test {test}"))
        .await
        .unwrap();
    let outcome = AssertUnwindSafe(body(caldav.clone(), calendar.clone()))
        .catch_unwind()
        .await;
    caldav.delete_calendar(&calendar).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The item as written, for comparison with one read back: the read one
/// carries the server's reference.
fn without_ref(mut item: ScheduleItem) -> ScheduleItem {
    item.external_refs.remove("caldav");
    item
}

fn upserts(sync: &EventSync) -> Vec<&RemoteEvent> {
    sync.changes
        .iter()
        .filter_map(|c| match c {
            EventChange::Upsert(e) => Some(&**e),
            EventChange::Delete { .. } => None,
        })
        .collect()
}

fn uids(sync: &EventSync) -> Vec<String> {
    let mut uids: Vec<String> = upserts(sync).iter().map(|e| e.item.id.clone()).collect();
    uids.sort();
    uids
}

#[tokio::test]
async fn discovery_and_listing() {
    with_calendar("caldav_discovery", |caldav, calendar| async move {
        assert_eq!(caldav.name(), "caldav");
        assert!(caldav.capabilities().contains(&Capability::CalendarRead));
        assert!(caldav.capabilities().contains(&Capability::FreeBusy));
        caldav.check().await.unwrap();
        assert_eq!(caldav.principal().await.unwrap(), format!("/{USER}/"));
        assert_eq!(caldav.calendar_home().await.unwrap(), format!("/{USER}/"));
        let calendars = caldav.list_calendars().await.unwrap();
        let ours = calendars
            .iter()
            .find(|c| c.id == calendar)
            .unwrap_or_else(|| panic!("{calendar} not in {calendars:?}"));
        assert_eq!(ours.name, "Test caldav_discovery");
        assert!(!ours.read_only);
        let tag = ours.change_tag.clone().expect("a change tag");
        // the change tag moves when an event is added
        caldav
            .create_event(&calendar, &event("disc-1", "One", 1, 9))
            .await
            .unwrap();
        let again = caldav.list_calendars().await.unwrap();
        let ours = again.iter().find(|c| c.id == calendar).unwrap();
        assert_ne!(ours.change_tag.as_deref(), Some(tag.as_str()));
    })
    .await;
}

#[tokio::test]
async fn check_fails_on_an_unreachable_server() {
    let http = HttpClient::builder("caldav")
        .base_url("http://127.0.0.1:9/")
        .unwrap()
        .retry(RetryPolicy {
            max_attempts: 1,
            ..default_retry_policy()
        })
        .build()
        .unwrap();
    let caldav = CalDavConnector::with_client(http);
    let err = caldav.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn first_sync_lists_everything_then_only_changes() {
    with_calendar("caldav_sync", |caldav, calendar| async move {
        for (uid, day) in [("s-1", 1), ("s-2", 2), ("s-3", 3)] {
            caldav
                .create_event(&calendar, &event(uid, uid, day, 9))
                .await
                .unwrap();
        }
        let first = caldav.sync_events(&calendar, None).await.unwrap();
        assert!(first.full_resync);
        assert!(!first.next_token.is_empty());
        assert_eq!(uids(&first), ["s-1", "s-2", "s-3"]);
        for e in upserts(&first) {
            assert!(e.id.starts_with(&calendar), "{}", e.id);
            assert!(e.etag.is_some());
            assert_eq!(e.item.external_refs["caldav"].id, e.id);
            assert_eq!(e.item.external_refs["caldav"].etag, e.etag);
        }
        let by_uid = |uid: &str| {
            upserts(&first)
                .into_iter()
                .find(|e| e.item.id == uid)
                .unwrap()
                .clone()
        };
        // one updated, one deleted, one added
        let s1 = by_uid("s-1");
        let mut changed = s1.item.clone();
        changed.title = "s-1 moved".into();
        changed.start = berlin(1, 14, 0);
        changed.end = berlin(1, 15, 0);
        caldav
            .update_event(&calendar, &s1.id, &changed, s1.etag.as_deref())
            .await
            .unwrap();
        let s2 = by_uid("s-2");
        caldav
            .delete_event(&calendar, &s2.id, s2.etag.as_deref())
            .await
            .unwrap();
        caldav
            .create_event(&calendar, &event("s-4", "s-4", 4, 9))
            .await
            .unwrap();

        let second = caldav
            .sync_events(&calendar, Some(&first.next_token))
            .await
            .unwrap();
        assert!(!second.full_resync);
        assert_ne!(second.next_token, first.next_token);
        assert_eq!(uids(&second), ["s-1", "s-4"]);
        let moved = upserts(&second)
            .into_iter()
            .find(|e| e.item.id == "s-1")
            .unwrap();
        assert_eq!(moved.item.title, "s-1 moved");
        assert_eq!(moved.item.start, berlin(1, 14, 0));
        assert_ne!(moved.etag, s1.etag);
        let deletes: Vec<&str> = second
            .changes
            .iter()
            .filter(|c| matches!(c, EventChange::Delete { .. }))
            .map(EventChange::id)
            .collect();
        assert_eq!(deletes, [s2.id.as_str()]);

        // nothing changed since: nothing listed
        let third = caldav
            .sync_events(&calendar, Some(&second.next_token))
            .await
            .unwrap();
        assert!(third.changes.is_empty(), "{:?}", third.changes);
        assert!(!third.full_resync);
    })
    .await;
}

#[tokio::test]
async fn invalid_token_runs_a_full_resync() {
    with_calendar("caldav_bad_token", |caldav, calendar| async move {
        for uid in ["t-1", "t-2"] {
            caldav
                .create_event(&calendar, &event(uid, uid, 5, 10))
                .await
                .unwrap();
        }
        // removed before the listing: Radicale still reports it (404) in a
        // listing from no token; a full listing holds no deletes
        let gone = caldav
            .create_event(&calendar, &event("t-gone", "gone", 5, 12))
            .await
            .unwrap();
        caldav
            .delete_event(&calendar, &gone.id, None)
            .await
            .unwrap();
        for token in [
            "http://radicale.org/ns/sync/0000000000000000",
            "not-a-token",
        ] {
            let sync = caldav.sync_events(&calendar, Some(token)).await.unwrap();
            assert!(sync.full_resync, "{token}");
            assert_eq!(uids(&sync), ["t-1", "t-2"]);
            assert_eq!(sync.changes.len(), 2, "{:?}", sync.changes);
            assert!(!sync.next_token.is_empty());
            // and the token it returns works
            let next = caldav
                .sync_events(&calendar, Some(&sync.next_token))
                .await
                .unwrap();
            assert!(!next.full_resync);
            assert!(next.changes.is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn creating_the_same_uid_twice_is_a_conflict() {
    with_calendar("caldav_create_twice", |caldav, calendar| async move {
        let item = event("dup-1@example.com", "First", 6, 9);
        let created = caldav.create_event(&calendar, &item).await.unwrap();
        assert_eq!(created.id, format!("{calendar}dup-1@example.com.ics"));
        assert!(created.etag.is_some());
        let mut again = item.clone();
        again.title = "Second".into();
        let err = caldav.create_event(&calendar, &again).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        // the first one is untouched
        let stored = caldav
            .get_event(&calendar, &created.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.item.title, "First");
        assert_eq!(stored.etag, created.etag);
        // a UID that is not a safe file name gets a hashed object name
        let odd = event("odd uid/with ü", "Odd", 6, 11);
        let created = caldav.create_event(&calendar, &odd).await.unwrap();
        assert!(
            std::path::Path::new(&created.id)
                .extension()
                .is_some_and(|e| e == "ics")
                && !created.id.contains(' ')
        );
        let stored = caldav
            .get_event(&calendar, &created.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.item.id, "odd uid/with ü");
        // and an event with no id is refused before anything is sent
        let err = caldav
            .create_event(&calendar, &event("", "No id", 6, 12))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    })
    .await;
}

#[tokio::test]
async fn updating_with_a_stale_etag_is_a_conflict() {
    with_calendar("caldav_stale_update", |caldav, calendar| async move {
        let mut item = event("upd-1", "v1", 7, 9);
        let v1 = caldav.create_event(&calendar, &item).await.unwrap();
        item.title = "v2".into();
        let v2 = caldav
            .update_event(&calendar, &v1.id, &item, v1.etag.as_deref())
            .await
            .unwrap();
        assert_eq!(v2.id, v1.id);
        assert_ne!(v2.etag, v1.etag);
        item.title = "v3 from a stale copy".into();
        let err = caldav
            .update_event(&calendar, &v1.id, &item, v1.etag.as_deref())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        let stored = caldav.get_event(&calendar, &v1.id).await.unwrap().unwrap();
        assert_eq!(stored.item.title, "v2");
        // a bare object name addresses the same event
        let name = v1.id.rsplit('/').next().unwrap();
        item.title = "v3".into();
        caldav
            .update_event(&calendar, name, &item, v2.etag.as_deref())
            .await
            .unwrap();
        let stored = caldav.get_event(&calendar, name).await.unwrap().unwrap();
        assert_eq!(stored.item.title, "v3");
    })
    .await;
}

#[tokio::test]
async fn deleting_with_a_stale_etag_is_a_conflict() {
    with_calendar("caldav_stale_delete", |caldav, calendar| async move {
        let mut item = event("del-1", "v1", 8, 9);
        let v1 = caldav.create_event(&calendar, &item).await.unwrap();
        item.title = "v2".into();
        let v2 = caldav
            .update_event(&calendar, &v1.id, &item, v1.etag.as_deref())
            .await
            .unwrap();
        let err = caldav
            .delete_event(&calendar, &v1.id, v1.etag.as_deref())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(caldav.get_event(&calendar, &v1.id).await.unwrap().is_some());
        caldav
            .delete_event(&calendar, &v1.id, v2.etag.as_deref())
            .await
            .unwrap();
        assert!(caldav.get_event(&calendar, &v1.id).await.unwrap().is_none());
        // gone already: fine, with or without an etag
        caldav
            .delete_event(&calendar, &v1.id, v2.etag.as_deref())
            .await
            .unwrap();
        caldav.delete_event(&calendar, &v1.id, None).await.unwrap();
    })
    .await;
}

/// A daily stand-up, five times, with the third moved and retitled and the
/// fourth cancelled.
fn recurring() -> ScheduleItem {
    let mut item = event("standup-1", "Stand-up", 11, 9);
    item.description = Some("Daily; with a comma, and a \\ backslash".into());
    item.location = Some("Room 1".into());
    item.recurrence.rrule.push("FREQ=DAILY;COUNT=5".into());
    let mut moved = Override::new(berlin(13, 9, 0));
    moved.start = Some(berlin(13, 11, 0));
    moved.end = Some(berlin(13, 12, 30));
    moved.title = Some("Stand-up (late)".into());
    item.recurrence.overrides.push(moved);
    item.recurrence
        .overrides
        .push(Override::cancel(berlin(14, 9, 0)));
    item
}

#[tokio::test]
async fn recurring_event_with_two_overrides_round_trips() {
    with_calendar("caldav_recurring", |caldav, calendar| async move {
        let item = recurring();
        let created = caldav.create_event(&calendar, &item).await.unwrap();
        // stored as one object holding three VEVENTs with the same UID
        let raw = caldav
            .fetch_objects(&calendar, &[created.id.as_str()])
            .await
            .unwrap()
            .0;
        assert_eq!(raw.len(), 1);
        assert_eq!(
            raw[0].data.matches("BEGIN:VEVENT").count(),
            3,
            "{}",
            raw[0].data
        );
        assert_eq!(raw[0].data.matches("UID:standup-1").count(), 3);
        assert_eq!(raw[0].data.matches("RECURRENCE-ID").count(), 2);

        // An item built in code comes back from the ICS mapping exactly, and
        // from the server too.
        let local = ics::item_from_ics(&ics::item_to_ics(&item)).unwrap();
        assert_eq!(local, item);
        let fetched = caldav
            .get_event(&calendar, &created.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(without_ref(fetched.item.clone()), local);
        assert_eq!(fetched.item.recurrence, item.recurrence);
        let synced = caldav.sync_events(&calendar, None).await.unwrap();
        let upserts = upserts(&synced);
        assert_eq!(upserts.len(), 1);
        assert_eq!(without_ref(upserts[0].item.clone()), local);
        assert_eq!(upserts[0].item.recurrence.overrides.len(), 2);

        // written back unchanged (through the etag) and read again: the same
        let again = caldav
            .update_event(
                &calendar,
                &created.id,
                &upserts[0].item,
                upserts[0].etag.as_deref(),
            )
            .await
            .unwrap();
        let reread = caldav
            .get_event(&calendar, &again.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(without_ref(reread.item), local);
    })
    .await;
}

#[tokio::test]
async fn calendar_query_by_time_range() {
    with_calendar("caldav_query", |caldav, calendar| async move {
        caldav
            .create_event(&calendar, &event("q-early", "Early", 1, 9))
            .await
            .unwrap();
        caldav
            .create_event(&calendar, &event("q-mid", "Mid", 12, 9))
            .await
            .unwrap();
        caldav
            .create_event(&calendar, &event("q-late", "Late", 25, 9))
            .await
            .unwrap();
        caldav.create_event(&calendar, &recurring()).await.unwrap();
        // 12 March: q-mid and the stand-up's second instance
        let found = caldav
            .query_events(&calendar, utc(12, 0, 0), utc(13, 0, 0))
            .await
            .unwrap();
        let mut ids: Vec<&str> = found.iter().map(|e| e.item.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["q-mid", "standup-1"]);
        let standup = found.iter().find(|e| e.item.id == "standup-1").unwrap();
        assert_eq!(standup.item.recurrence.overrides.len(), 2);
        // a window that only the moved instance (11:00-12:30 Berlin on the
        // 13th) reaches
        let found = caldav
            .query_events(&calendar, utc(13, 10, 0), utc(13, 11, 0))
            .await
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|e| e.item.id.as_str()).collect();
        assert_eq!(ids, ["standup-1"]);
        // nothing in April
        let found = caldav
            .query_events(
                &calendar,
                utc(31, 0, 0),
                utc(31, 0, 0) + chrono::Duration::days(20),
            )
            .await
            .unwrap();
        assert!(found.is_empty(), "{found:?}");
        let err = caldav
            .query_events(&calendar, utc(13, 0, 0), utc(12, 0, 0))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    })
    .await;
}

#[tokio::test]
async fn free_busy_expands_and_skips_free_and_cancelled() {
    with_calendar("caldav_free_busy", |caldav, calendar| async move {
        caldav.create_event(&calendar, &recurring()).await.unwrap();
        // overlaps the stand-up of the 12th: merged
        let mut overlap = event("fb-overlap", "Overlap", 12, 9);
        overlap.start = berlin(12, 9, 30);
        overlap.end = berlin(12, 10, 30);
        caldav.create_event(&calendar, &overlap).await.unwrap();
        // transparent and cancelled events are free time
        let mut free = event("fb-free", "Free", 11, 15);
        free.extensions.insert(
            "ics".into(),
            serde_json::json!({"properties": ["TRANSP:TRANSPARENT"]}),
        );
        caldav.create_event(&calendar, &free).await.unwrap();
        let mut cancelled = event("fb-cancelled", "Cancelled", 11, 17);
        cancelled.status = Status::Cancelled;
        caldav.create_event(&calendar, &cancelled).await.unwrap();

        let busy = caldav
            .free_busy(&calendar, utc(11, 0, 0), utc(15, 8, 30))
            .await
            .unwrap();
        let p = |s: DateTime<Utc>, e: DateTime<Utc>| BusyPeriod { start: s, end: e };
        assert_eq!(
            busy,
            [
                p(utc(11, 8, 0), utc(11, 9, 0)),
                p(utc(12, 8, 0), utc(12, 9, 30)),
                p(utc(13, 10, 0), utc(13, 11, 30)),
                // the 14th is cancelled; the 15th is clipped to the window
                p(utc(15, 8, 0), utc(15, 8, 30)),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn calendar_source_resumes_from_its_checkpoint() {
    with_calendar("caldav_source", |caldav, calendar| async move {
        caldav
            .create_event(&calendar, &event("src-1", "One", 20, 9))
            .await
            .unwrap();
        let source = CalendarSource::new(caldav.clone(), calendar.clone());
        assert_eq!(source.name(), format!("caldav:{calendar}"));
        let mut stream = source.changes(None).await.unwrap();
        let batch = stream.next().await.unwrap().unwrap();
        assert!(stream.next().await.is_none());
        assert_eq!(batch.changes.len(), 1);
        let change = &batch.changes[0];
        assert!(change.is_upsert());
        assert_eq!(
            change.key,
            ChangeKey::new("caldav", calendar.clone(), format!("{calendar}src-1.ics"))
        );
        assert!(matches!(change.version, Some(Version::Etag(_))));
        assert_eq!(
            change
                .metadata
                .get(FULL_RESYNC_METADATA)
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(change.data_as::<ScheduleItem>().unwrap().title, "One");
        let checkpoint: Checkpoint = batch.checkpoint.clone();
        drop(stream);

        // a new source (a restarted host) resumes from the saved checkpoint
        caldav
            .create_event(&calendar, &event("src-2", "Two", 21, 9))
            .await
            .unwrap();
        let source = CalendarSource::new(caldav.clone(), calendar.clone());
        let mut stream = source.changes(Some(checkpoint)).await.unwrap();
        let batch = stream.next().await.unwrap().unwrap();
        assert_eq!(batch.changes.len(), 1);
        assert_eq!(batch.changes[0].key.id, format!("{calendar}src-2.ics"));
        assert!(!batch.changes[0].metadata.contains_key(FULL_RESYNC_METADATA));
    })
    .await;
}

#[tokio::test]
async fn calendar_sink_creates_updates_and_deletes() {
    with_calendar("caldav_sink", |caldav, calendar| async move {
        let sink = CalendarSink::new(caldav.clone(), calendar.clone());
        let item = event("sink-1", "Created by the sink", 22, 9);
        let key = ChangeKey::new("flextime", "events", "sink-1");
        let results = sink
            .apply(&[Change::upsert(
                key.clone(),
                serde_json::to_value(&item).unwrap(),
            )])
            .await
            .unwrap();
        let ApplyOutcome::Applied {
            version: Some(Version::Etag(etag)),
        } = &results[0].outcome
        else {
            panic!("{:?}", results[0].outcome);
        };
        let etag = etag.clone();

        // the item as read back carries its caldav reference: an update
        let sync = caldav.sync_events(&calendar, None).await.unwrap();
        let mut read = upserts(&sync)[0].item.clone();
        assert_eq!(
            read.external_refs["caldav"].etag.as_deref(),
            Some(etag.as_str())
        );
        read.title = "Updated by the sink".into();
        let results = sink
            .apply(&[Change::upsert(
                key.clone(),
                serde_json::to_value(&read).unwrap(),
            )])
            .await
            .unwrap();
        assert!(
            matches!(results[0].outcome, ApplyOutcome::Applied { .. }),
            "{:?}",
            results[0].outcome
        );
        let id = read.external_refs["caldav"].id.clone();
        let stored = caldav.get_event(&calendar, &id).await.unwrap().unwrap();
        assert_eq!(stored.item.title, "Updated by the sink");

        // the same stale copy again: a conflict outcome, not an error
        read.title = "Stale".into();
        let results = sink
            .apply(&[Change::upsert(key, serde_json::to_value(&read).unwrap())])
            .await
            .unwrap();
        assert!(
            matches!(results[0].outcome, ApplyOutcome::Conflict { .. }),
            "{:?}",
            results[0].outcome
        );
        let stored = caldav.get_event(&calendar, &id).await.unwrap().unwrap();
        assert_eq!(stored.item.title, "Updated by the sink");

        // a delete addressed by href, with the etag it must match
        let delete = |etag: &str| {
            Change::delete(ChangeKey::new("caldav", calendar.clone(), id.clone()))
                .with_metadata(ETAG_METADATA, etag)
        };
        let results = sink.apply(&[delete(&etag)]).await.unwrap();
        assert!(
            matches!(results[0].outcome, ApplyOutcome::Conflict { .. }),
            "{:?}",
            results[0].outcome
        );
        let results = sink
            .apply(&[delete(stored.etag.as_deref().unwrap())])
            .await
            .unwrap();
        assert!(
            matches!(results[0].outcome, ApplyOutcome::Applied { .. }),
            "{:?}",
            results[0].outcome
        );
        assert!(caldav.get_event(&calendar, &id).await.unwrap().is_none());
    })
    .await;
}

// ---------------------------------------------------------------------------
// Protocol paths Radicale never takes, against an in-process peer: a
// truncated sync-collection (507 on the request-URI) continued with the new
// token, a 409 valid-sync-token rejection, multiget in chunks, and a
// malformed multistatus.

const OBJECT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:XUIDX\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300301T090000Z\r\nDTEND:20300301T100000Z\r\nSUMMARY:XUIDX\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

fn multistatus(inner: &str) -> axum::response::Response {
    (
        StatusCode::MULTI_STATUS,
        [("content-type", "application/xml; charset=utf-8")],
        format!(r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">{inner}</d:multistatus>"#),
    )
        .into_response()
}

fn member(href: &str) -> String {
    format!(
        r#"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>"{href}"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#
    )
}

async fn fake_peer(body: Bytes) -> axum::response::Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    if body.contains("sync-collection") {
        if body.contains("<D:sync-token>stale</D:sync-token>") {
            return (
                StatusCode::CONFLICT,
                r#"<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>"#,
            )
                .into_response();
        }
        if body.contains("<D:sync-token>garbled</D:sync-token>") {
            return (StatusCode::BAD_REQUEST, "bad token").into_response();
        }
        if body.contains("<D:sync-token>forbidden</D:sync-token>") {
            return (
                StatusCode::FORBIDDEN,
                r#"<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:need-privileges/></D:error>"#,
            )
                .into_response();
        }
        if body.contains("<D:sync-token>broken</D:sync-token>") {
            return multistatus("<d:response><d:status>HTTP/1.1 200 OK</d:status>");
        }
        if body.contains("<D:sync-token>t1</D:sync-token>") {
            return multistatus(&format!(
                "<d:sync-token>t2</d:sync-token>{}{}{}<d:response><d:href>/cal/c.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>",
                member("/cal/b.ics"),
                member("/cal/bad.ics"),
                member("http://peer.invalid/cal/a.ics"),
            ));
        }
        // an empty token: part of the listing, then 507 on the request-URI
        return multistatus(&format!(
            "<d:sync-token>t1</d:sync-token>{}{}<d:response><d:href>/cal/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>",
            member("/cal/a.ics"),
            member("/cal/c.ics"),
        ));
    }
    if body.contains("calendar-multiget") {
        // one response per href asked, one per request (the chunk)
        let hrefs: Vec<&str> = body
            .split("<D:href>")
            .skip(1)
            .filter_map(|s| s.split("</D:href>").next())
            .collect();
        assert_eq!(hrefs.len(), 1, "{hrefs:?}");
        let mut inner = String::new();
        for href in hrefs {
            let uid = href.trim_start_matches("/cal/").trim_end_matches(".ics");
            let _ = write!(
                inner,
                r#"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>"{href}"</d:getetag><cal:calendar-data>{}</cal:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#,
                if uid == "bad" {
                    // an object the ICS mapping refuses: skipped, not fatal
                    OBJECT.replace("DTSTART:20300301T090000Z", "DTSTART:not-a-date")
                } else {
                    OBJECT.replace("XUIDX", uid)
                }
            );
        }
        return multistatus(&inner);
    }
    StatusCode::NOT_IMPLEMENTED.into_response()
}

#[tokio::test]
async fn truncated_sync_continues_and_rejected_tokens_resync() {
    let url = support::serve(Router::new().fallback(any(fake_peer))).await;
    let caldav = CalDavConnector::new(&url, Auth::None)
        .unwrap()
        .with_multiget_chunk(1);
    let sync = caldav.sync_events("/cal/", None).await.unwrap();
    assert_eq!(sync.next_token, "t2");
    assert!(sync.full_resync);
    // a.ics listed twice (first round, then as a URL): one upsert; c.ics
    // listed then removed: a delete; bad.ics unreadable: left out
    let ids: Vec<(&str, bool)> = sync
        .changes
        .iter()
        .map(|c| (c.id(), matches!(c, EventChange::Upsert(_))))
        .collect();
    assert_eq!(
        ids,
        [
            ("/cal/a.ics", true),
            ("/cal/c.ics", false),
            ("/cal/b.ics", true)
        ]
    );
    assert_eq!(uids(&sync), ["a", "b"]);
    // ... but reported, so the caller can alert on it
    let skipped: Vec<&str> = sync.skipped.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(skipped, ["/cal/bad.ics"]);
    assert!(!sync.skipped[0].reason.is_empty());

    let sync = caldav.sync_events("/cal/", Some("stale")).await.unwrap();
    assert!(sync.full_resync);
    assert_eq!(sync.next_token, "t2");

    // a 400 on a token is a rejected token too
    let sync = caldav.sync_events("/cal/", Some("garbled")).await.unwrap();
    assert!(sync.full_resync);
    assert_eq!(sync.changes.len(), 3);

    // a 403 without the valid-sync-token precondition is an error, not a resync
    let err = caldav
        .sync_events("/cal/", Some("forbidden"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");

    let err = caldav
        .sync_events("/cal/", Some("broken"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("malformed"), "{err}");
}

/// RFC 6764: a server whose root does not answer PROPFIND but whose
/// `/.well-known/caldav` redirects to the DAV root.
async fn well_known_peer(uri: axum::http::Uri) -> axum::response::Response {
    match uri.path() {
        "/.well-known/caldav" => {
            (StatusCode::MOVED_PERMANENTLY, [("location", "/dav/")], "").into_response()
        }
        "/dav/" => multistatus(
            r"<d:response><d:href>/dav/</d:href><d:propstat><d:prop><d:current-user-principal><d:href>/dav/principals/ann/</d:href></d:current-user-principal></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
        ),
        "/dav/principals/ann/" => multistatus(
            r"<d:response><d:href>/dav/principals/ann/</d:href><d:propstat><d:prop><cal:calendar-home-set><d:href>http://elsewhere.invalid/dav/calendars/ann/</d:href></cal:calendar-home-set></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
        ),
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[tokio::test]
async fn discovery_follows_the_well_known_redirect() {
    let url = support::serve(Router::new().fallback(any(well_known_peer))).await;
    let caldav = CalDavConnector::new(&url, Auth::None).unwrap();
    caldav.check().await.unwrap();
    assert_eq!(caldav.principal().await.unwrap(), "/dav/principals/ann/");
    assert_eq!(caldav.calendar_home().await.unwrap(), "/dav/calendars/ann/");
}
