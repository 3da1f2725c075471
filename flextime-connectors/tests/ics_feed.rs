//! ICS feed import against an in-process server that honours
//! `If-None-Match` and `If-Modified-Since`.

mod ics_support;
mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flextime_connectors::ics::feed::{FeedState, FetchStatus, IcsFeed};
use flextime_core::ErrorKind;

#[derive(Default)]
struct Peer {
    body: String,
    etag: Option<String>,
    last_modified: Option<String>,
    /// (If-None-Match, If-Modified-Since) of each request.
    seen: Vec<(Option<String>, Option<String>)>,
}

type Shared = Arc<Mutex<Peer>>;

async fn feed(State(peer): State<Shared>, headers: HeaderMap) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut peer = peer.lock().unwrap();
    let inm = text(header::IF_NONE_MATCH);
    let ims = text(header::IF_MODIFIED_SINCE);
    peer.seen.push((inm.clone(), ims.clone()));
    let fresh = match (&peer.etag, &inm, &peer.last_modified, &ims) {
        (Some(etag), Some(inm), _, _) => etag == inm,
        (None, None, Some(lm), Some(ims)) => lm == ims,
        _ => false,
    };
    if fresh {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        "text/calendar; charset=utf-8".parse().unwrap(),
    );
    if let Some(etag) = &peer.etag {
        headers.insert(header::ETAG, etag.parse().unwrap());
    }
    if let Some(lm) = &peer.last_modified {
        headers.insert(header::LAST_MODIFIED, lm.parse().unwrap());
    }
    (StatusCode::OK, headers, peer.body.clone()).into_response()
}

async fn start(peer: Peer) -> (Shared, String) {
    let shared = Arc::new(Mutex::new(peer));
    let router = Router::new()
        .route("/calendars/team.ics", get(feed))
        .with_state(shared.clone());
    let base = support::serve(router).await;
    (shared, format!("{base}/calendars/team.ics"))
}

#[tokio::test]
async fn etag_304_returns_the_cached_events() {
    let body = ics_support::fixture("google_export.ics");
    let (peer, url) = start(Peer {
        body: body.clone(),
        etag: Some("\"v1\"".into()),
        ..Peer::default()
    })
    .await;
    let mut feed = IcsFeed::new(&url).unwrap();

    let first = feed.fetch().await.unwrap();
    assert_eq!(first.status, FetchStatus::Fetched);
    assert_eq!(first.items.len(), 3);
    assert!(first.errors.is_empty());
    assert_eq!(feed.state().unwrap().etag.as_deref(), Some("\"v1\""));
    assert_eq!(feed.state().unwrap().name.as_deref(), Some("Team Berlin"));

    let second = feed.fetch().await.unwrap();
    assert_eq!(second.status, FetchStatus::NotModified);
    assert_eq!(second.items, first.items);
    {
        let peer = peer.lock().unwrap();
        assert_eq!(peer.seen.len(), 2);
        assert_eq!(peer.seen[0], (None, None), "first request is unconditional");
        assert_eq!(peer.seen[1].0.as_deref(), Some("\"v1\""));
    }

    // The feed changes: a new ETag, a 200 with the new events.
    {
        let mut peer = peer.lock().unwrap();
        peer.body = ics_support::fixture("apple_export.ics");
        peer.etag = Some("\"v2\"".into());
    }
    let third = feed.fetch().await.unwrap();
    assert_eq!(third.status, FetchStatus::Fetched);
    assert_eq!(third.items.len(), 3);
    assert!(third.items.iter().any(|i| i.title == "Tax day"));
    assert_eq!(feed.state().unwrap().etag.as_deref(), Some("\"v2\""));

    // A body that is not iCalendar: a typed error, and the cache stays.
    peer.lock().unwrap().body = "<html>maintenance</html>".into();
    peer.lock().unwrap().etag = Some("\"v3\"".into());
    let err = feed.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("line 1"), "{err}");
    assert_eq!(feed.state().unwrap().etag.as_deref(), Some("\"v2\""));
}

#[tokio::test]
async fn last_modified_304_and_a_saved_state_resumes() {
    let lm = "Wed, 20 Mar 2024 10:15:00 GMT";
    let (peer, url) = start(Peer {
        body: ics_support::fixture("outlook_export.ics"),
        last_modified: Some(lm.into()),
        ..Peer::default()
    })
    .await;
    let mut feed = IcsFeed::new(&url).unwrap();
    let first = feed.fetch().await.unwrap();
    assert_eq!(first.status, FetchStatus::Fetched);
    assert_eq!(first.items.len(), 3);

    // The state survives JSON; a new feed object resumes from it.
    let saved = serde_json::to_string(feed.state().unwrap()).unwrap();
    let state: FeedState = serde_json::from_str(&saved).unwrap();
    let mut resumed = IcsFeed::new(&url).unwrap().with_state(state);
    let second = resumed.fetch().await.unwrap();
    assert_eq!(second.status, FetchStatus::NotModified);
    assert_eq!(second.items, first.items);
    assert_eq!(peer.lock().unwrap().seen[1], (None, Some(lm.to_owned())));
}

#[tokio::test]
async fn a_bad_event_is_skipped_and_reported() {
    let body = ics_support::fixture("rfc5545_3_6_1_vevent.ics")
        .replace("DTSTART:19970903T163000Z", "DTSTART:19970903T253000Z");
    let (_peer, url) = start(Peer {
        body,
        etag: Some("\"x\"".into()),
        ..Peer::default()
    })
    .await;
    let mut feed = IcsFeed::new(&url).unwrap();
    let got = feed.fetch().await.unwrap();
    assert_eq!(got.items.len(), 3);
    assert_eq!(got.errors.len(), 1);
    assert!(
        got.errors[0].message().contains("line 7"),
        "{}",
        got.errors[0]
    );
    let again = feed.fetch().await.unwrap();
    assert_eq!(again.status, FetchStatus::NotModified);
    assert_eq!(again.errors.len(), 1);
}
