//! A stateful in-process Google Calendar v3 peer for the paths Prism cannot
//! play (its answers are static examples): sync tokens, pages, 410 Gone,
//! etags and If-Match, duplicate ids, instances of recurring events.
//!
//! Built from Google's documented behaviour
//! (developers.google.com/calendar/api/guides/sync, .../v3/reference/events):
//! `nextSyncToken` only on the last page; an expired token is `410 Gone`;
//! deleted events come back with `status: "cancelled"` under `showDeleted`
//! or a sync token; a client-chosen id that exists is `409`; a stale
//! `If-Match` is `412`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The bearer token the peer accepts.
pub const TOKEN: &str = "ya29.test-token";

#[derive(Default)]
pub struct Calendar {
    /// id -> (event, sequence number of its last change)
    pub events: BTreeMap<String, (Value, u64)>,
    pub seq: u64,
    /// Sync tokens below this are expired.
    pub min_token: u64,
    /// The query of every events.list request.
    pub list_queries: Vec<HashMap<String, String>>,
    /// Whether each list response carried nextSyncToken / nextPageToken.
    pub list_answers: Vec<(bool, bool)>,
}

pub type Shared = Arc<Mutex<Calendar>>;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"code": status.as_u16(), "message": message, "errors": [{"reason": message}]}}))).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

impl Calendar {
    fn bump(&mut self, id: &str, mut event: Value) -> Value {
        self.seq += 1;
        event["etag"] = json!(format!("\"{}\"", self.seq));
        event["updated"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        self.events.insert(id.to_owned(), (event.clone(), self.seq));
        event
    }

    /// Changes an event as another client would.
    pub fn edit(&mut self, id: &str, f: impl FnOnce(&mut Value)) {
        let mut event = self.events[id].0.clone();
        f(&mut event);
        self.bump(id, event);
    }

    /// Deletes an event as another client would.
    pub fn remove(&mut self, id: &str) {
        self.edit(id, |e| e["status"] = json!("cancelled"));
    }

    /// Adds an event as another client would.
    pub fn add(&mut self, id: &str, summary: &str) {
        let event = json!({
            "kind": "calendar#event", "id": id, "status": "confirmed", "summary": summary,
            "iCalUID": format!("{id}@google.com"),
            "start": {"dateTime": "2024-03-01T10:00:00+01:00", "timeZone": "Europe/Paris"},
            "end": {"dateTime": "2024-03-01T11:00:00+01:00", "timeZone": "Europe/Paris"},
        });
        self.bump(id, event);
    }
}

async fn list(
    State(cal): State<Shared>,
    Path(_calendar): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid Credentials");
    }
    let mut cal = cal.lock().unwrap();
    cal.list_queries.push(q.clone());
    let show_deleted = q.get("showDeleted").map(String::as_str) == Some("true");
    let mut items: Vec<(Value, u64)> = if let Some(token) = q.get("syncToken") {
        let Some(n) = token
            .strip_prefix("sync-")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return error(StatusCode::BAD_REQUEST, "Invalid sync token value.");
        };
        if n < cal.min_token {
            return error(
                StatusCode::GONE,
                "Sync token is no longer valid, a full sync is required.",
            );
        }
        cal.events
            .values()
            .filter(|(_, s)| *s > n)
            .cloned()
            .collect()
    } else {
        cal.events
            .values()
            .filter(|(e, _)| show_deleted || e["status"] != "cancelled")
            .filter(|(e, _)| {
                q.get("iCalUID")
                    .is_none_or(|uid| e["iCalUID"] == json!(uid))
            })
            .cloned()
            .collect()
    };
    items.sort_by_key(|(_, s)| *s);
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(250);
    let offset: usize = q
        .get("pageToken")
        .and_then(|p| p.strip_prefix("p-"))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = items
        .iter()
        .skip(offset)
        .take(max)
        .map(|(e, _)| e.clone())
        .collect();
    let mut body = json!({"kind": "calendar#events", "items": page});
    let more = offset + max < items.len();
    if more {
        body["nextPageToken"] = json!(format!("p-{}", offset + max));
    } else {
        body["nextSyncToken"] = json!(format!("sync-{}", cal.seq));
    }
    cal.list_answers.push((!more, more));
    Json(body).into_response()
}

async fn insert(
    State(cal): State<Shared>,
    Path(_calendar): Path<String>,
    headers: HeaderMap,
    Json(mut body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid Credentials");
    }
    let mut cal = cal.lock().unwrap();
    let id = body["id"]
        .as_str()
        .map_or_else(|| format!("gen{}", cal.seq + 1), str::to_owned);
    if cal.events.contains_key(&id) {
        return error(
            StatusCode::CONFLICT,
            "The requested identifier already exists.",
        );
    }
    body["id"] = json!(id);
    body["iCalUID"] = json!(format!("{id}@google.com"));
    if body.get("status").is_none() {
        body["status"] = json!("confirmed");
    }
    Json(cal.bump(&id, body)).into_response()
}

fn precondition(headers: &HeaderMap, current: &Value) -> bool {
    match headers.get("if-match").and_then(|v| v.to_str().ok()) {
        Some(want) => current["etag"] == json!(want),
        None => true,
    }
}

async fn get_one(
    State(cal): State<Shared>,
    Path((_c, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid Credentials");
    }
    let cal = cal.lock().unwrap();
    match cal.events.get(&id) {
        Some((e, _)) => Json(e.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn patch(
    State(cal): State<Shared>,
    Path((_c, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid Credentials");
    }
    let mut cal = cal.lock().unwrap();
    let current = if let Some((e, _)) = cal.events.get(&id) {
        e.clone()
    } else {
        {
            // An instance of a recurring event: `<master>_<original start>`.
            let Some((master_id, original)) = id.rsplit_once('_') else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some((master, _)) = cal.events.get(master_id).cloned() else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Ok(at) = chrono::NaiveDateTime::parse_from_str(original, "%Y%m%dT%H%M%SZ") else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let at = at
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            json!({
                "id": id, "status": "confirmed", "summary": master["summary"],
                "recurringEventId": master_id, "iCalUID": master["iCalUID"],
                "originalStartTime": {"dateTime": at, "timeZone": master["start"]["timeZone"]},
                "start": master["start"], "end": master["end"],
            })
        }
    };
    if !precondition(&headers, &current) {
        return error(StatusCode::PRECONDITION_FAILED, "Precondition Failed");
    }
    let mut merged = current;
    for (k, v) in body.as_object().cloned().unwrap_or_default() {
        merged[k] = v;
    }
    Json(cal.bump(&id, merged)).into_response()
}

async fn delete(
    State(cal): State<Shared>,
    Path((_c, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid Credentials");
    }
    let mut cal = cal.lock().unwrap();
    let Some((current, _)) = cal.events.get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if current["status"] == "cancelled" {
        return error(StatusCode::GONE, "Resource has been deleted");
    }
    if !precondition(&headers, &current) {
        return error(StatusCode::PRECONDITION_FAILED, "Precondition Failed");
    }
    cal.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

/// Starts the peer; returns its state and base URL.
pub async fn start() -> (Shared, String) {
    let state: Shared = Arc::default();
    let router = Router::new()
        .route("/calendars/{calendar}/events", get(list).post(insert))
        .route(
            "/calendars/{calendar}/events/{id}",
            get(get_one).patch(patch).delete(delete),
        )
        .with_state(state.clone());
    (state, super::serve(router).await)
}
