//! Notion: incremental pulls with the minute-rounded `last_edited_time`,
//! pagination, writes, error paths against a peer built from Notion's
//! documentation, and every request shape against Prism serving Notion's
//! OpenAPI document.
#![cfg(feature = "notion")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use flextime_connectors::notion::{Notion, NotionMapping, Parent};
use flextime_core::resilience::RetryPolicy;
use flextime_core::schedule::{ItemKind, ItemTime, ScheduleItem};
use flextime_core::{Change, ChangeKey, ErrorKind, Sink, Source};
use flextime_testkit::{Peer, Vendor};
use futures::StreamExt;
use support::notion_peer;

fn notion(base: &str) -> Notion {
    Notion::builder(
        notion_peer::TOKEN,
        "ds-1",
        NotionMapping::new("Name", "When"),
    )
    .base_url(base)
    .http(|h| {
        h.retry(support::fast_retries(3))
            .rate_limit(flextime_core::resilience::RateLimit::per_second(1000))
    })
    .build()
    .unwrap()
}

async fn pull(
    n: &Notion,
    since: Option<flextime_core::Checkpoint>,
) -> (Vec<String>, flextime_core::Checkpoint) {
    let batch = n
        .changes(since)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    let mut titles: Vec<String> = batch
        .changes
        .iter()
        .map(|c| match c.data_as::<ScheduleItem>() {
            Ok(item) => item.title,
            Err(_) => format!("deleted {}", c.key.id),
        })
        .collect();
    titles.sort();
    (titles, batch.checkpoint)
}

#[tokio::test]
async fn pulls_overlap_the_rounded_minute_and_deliver_each_edit_once() {
    let (peer, base) = notion_peer::start().await;
    {
        let mut p = peer.lock().unwrap();
        p.add("A", "2024-03-04");
        p.add("B", "2024-03-05T09:00:00.000+00:00");
    }
    let n = notion(&base);
    let (first, cp) = pull(&n, None).await;
    assert_eq!(first, vec!["A", "B"]);
    // Nothing changed: the overlapping read returns both pages again, and
    // both are recognised.
    let (quiet, cp) = pull(&n, Some(cp)).await;
    assert!(quiet.is_empty(), "{quiet:?}");
    // An edit within the same minute has the same last_edited_time: still delivered.
    let a = peer.lock().unwrap().pages.keys().next().unwrap().clone();
    peer.lock()
        .unwrap()
        .rename(&a, "A renamed in the same minute");
    let (same_minute, cp) = pull(&n, Some(cp)).await;
    assert_eq!(same_minute, vec!["A renamed in the same minute"]);
    {
        let mut p = peer.lock().unwrap();
        p.advance(300);
        p.add("C", "2024-03-06");
    }
    let (later, cp) = pull(&n, Some(cp)).await;
    assert_eq!(later, vec!["C"]);
    let filter = peer.lock().unwrap().queries.last().unwrap()["filter"].clone();
    assert_eq!(filter["timestamp"], "last_edited_time");
    // The newest edit before this pull was at 10:00: read from 09:59.
    assert_eq!(
        filter["last_edited_time"]["on_or_after"], "2024-03-01T09:59:00Z",
        "one minute of overlap"
    );
    let (none, _) = pull(&n, Some(cp)).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn queries_page_through_with_start_cursor_and_100_per_page() {
    let (peer, base) = notion_peer::start().await;
    for i in 0..230 {
        peer.lock().unwrap().add(&format!("P{i:03}"), "2024-03-04");
    }
    let n = notion(&base);
    let pages = n.query(None).await.unwrap();
    assert_eq!(pages.len(), 230);
    let queries = peer.lock().unwrap().queries.clone();
    assert_eq!(queries.len(), 3);
    assert!(queries.iter().all(|q| q["page_size"] == 100));
    assert!(queries[0].get("start_cursor").is_none());
    assert_eq!(queries[1]["start_cursor"], pages[100]["id"]);
}

#[tokio::test]
async fn the_sink_creates_updates_and_trashes_and_detects_edits_in_between() {
    let (peer, base) = notion_peer::start().await;
    let n = notion(&base);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let item = ScheduleItem::new(
        "ev-9",
        ItemKind::Event,
        "Offsite",
        ItemTime::zoned(day.and_hms_opt(9, 0, 0).unwrap(), chrono_tz::Europe::Paris),
        ItemTime::zoned(day.and_hms_opt(17, 0, 0).unwrap(), chrono_tz::Europe::Paris),
        Utc::now(),
    );
    let key = ChangeKey::new("flextime", "events", "ev-9");
    let out = n
        .apply(&[Change::upsert(
            key.clone(),
            serde_json::to_value(&item).unwrap(),
        )])
        .await
        .unwrap();
    assert!(out[0].outcome.is_settled(), "{out:?}");
    let (pulled, _) = pull(&n, None).await;
    assert_eq!(pulled, vec!["Offsite"]);
    let page = peer.lock().unwrap().pages.values().next().unwrap().clone();
    assert_eq!(
        page["properties"]["When"]["date"]["time_zone"],
        "Europe/Paris"
    );
    assert_eq!(
        page["properties"]["When"]["date"]["start"],
        "2024-03-04T09:00:00"
    );

    let batch = n
        .changes(None)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    let mut read: ScheduleItem = batch.changes[0].data_as().unwrap();
    read.title = "Offsite (moved)".into();
    // Someone edits the page after we read it, a minute later.
    peer.lock().unwrap().advance(60);
    peer.lock()
        .unwrap()
        .rename(page["id"].as_str().unwrap(), "Edited in Notion");
    let out = n
        .apply(&[Change::upsert(
            key.clone(),
            serde_json::to_value(&read).unwrap(),
        )])
        .await
        .unwrap();
    assert!(
        matches!(out[0].outcome, flextime_core::ApplyOutcome::Conflict { .. }),
        "{out:?}"
    );
    read.external_refs.get_mut("notion").unwrap().etag = None;
    let out = n
        .apply(&[Change::upsert(key, serde_json::to_value(&read).unwrap())])
        .await
        .unwrap();
    assert!(out[0].outcome.is_settled());
    let id = page["id"].as_str().unwrap().to_owned();
    n.apply(&[Change::delete(ChangeKey::new("notion", "ds-1", id.clone()))])
        .await
        .unwrap();
    assert_eq!(peer.lock().unwrap().pages[&id]["in_trash"], true);
    let (after, _) = pull(&n, None).await;
    assert_eq!(after, vec![format!("deleted {id}")]);
}

#[tokio::test]
async fn rate_limits_server_errors_bad_tokens_and_bad_bodies() {
    let (peer, base) = notion_peer::start().await;
    peer.lock().unwrap().add("A", "2024-03-04");
    let n = notion(&base);
    peer.lock().unwrap().inject.push_back((429, Some("1"), r#"{"object":"error","status":429,"code":"rate_limited","message":"You have been rate limited. Please try again in a few minutes."}"#));
    assert_eq!(n.query(None).await.unwrap().len(), 1);
    assert_eq!(peer.lock().unwrap().requests, 2);
    peer.lock().unwrap().inject.push_back((
        502,
        None,
        r#"{"object":"error","status":502,"code":"bad_gateway","message":"Bad gateway."}"#,
    ));
    assert_eq!(n.query(None).await.unwrap().len(), 1);
    peer.lock()
        .unwrap()
        .inject
        .push_back((200, None, r#"{"object":"list","results":[{"id": 5"#));
    let err = n.query(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("malformed response body"), "{err}");
    peer.lock().unwrap().inject.push_back((
        429,
        Some("3600"),
        r#"{"object":"error","status":429,"code":"rate_limited","message":"slow down"}"#,
    ));
    let err = n.query(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    let bad = Notion::builder("wrong", "ds-1", NotionMapping::new("Name", "When"))
        .base_url(&base)
        .build()
        .unwrap();
    let err = bad.query(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("API token is invalid"), "{err}");
    assert!(
        Notion::builder("t", " ", NotionMapping::new("Name", "When"))
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn every_request_passes_prism_validation_of_the_notion_document() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Notion), "notion_prism") else {
        return;
    };
    let (observer, seen) = support::prism_recorder();
    // Prism's copy of the document accepts a database parent but not the
    // data-source parent the real API takes (see ../shared/vendor-specs).
    let n = Arc::new(
        Notion::builder(
            "ntn_prism",
            "1f0e7f4b-8a4c-4c2b-9f57-2f6f0c8a9d11",
            NotionMapping::new("Name", "When"),
        )
        .base_url(&url)
        .parent(Parent::Database(
            "1f0e7f4b-8a4c-4c2b-9f57-2f6f0c8a9d11".into(),
        ))
        .http(|h| h.observe(observer).retry(RetryPolicy::none()))
        .build()
        .unwrap(),
    );
    n.query(None).await.unwrap();
    n.query(Some(Utc::now())).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let item = ScheduleItem::new(
        "ev-1",
        ItemKind::Event,
        "Prism",
        ItemTime::AllDay(day),
        ItemTime::AllDay(day.succ_opt().unwrap()),
        Utc::now(),
    );
    n.create_page(&item).await.unwrap();
    n.update_page("59833787-2cf9-4fdf-8782-e53db20768a5", &item, None)
        .await
        .unwrap();
    n.retrieve_page("59833787-2cf9-4fdf-8782-e53db20768a5")
        .await
        .unwrap();
    n.trash_page("59833787-2cf9-4fdf-8782-e53db20768a5", None)
        .await
        .unwrap();
    flextime_connectors::Connector::check(n.as_ref())
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 7, "{seen:?}");
    let bad: Vec<_> = seen.iter().filter(|(_, v)| v.is_some()).collect();
    assert!(bad.is_empty(), "Prism reported violations: {bad:?}");
}
