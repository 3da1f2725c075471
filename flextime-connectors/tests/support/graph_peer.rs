//! An in-process Microsoft Graph calendar peer built from Microsoft's
//! documented request and response shapes (learn.microsoft.com, "event:
//! delta", "Get incremental changes to events in a calendar view", "Create
//! event", "Update event"): `@odata.nextLink` pages then an
//! `@odata.deltaLink`; deleted items as `{"id", "@removed": {"reason":
//! "deleted"}}`; an expired delta token is `410 Gone` with `SyncStateNotFound`;
//! `Prefer: odata.maxpagesize` sets the page size; a repeated `transactionId`
//! does not create a second event; `If-Match` on `@odata.etag` gives 412.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{Value, json};

pub const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJub25jZSI6";

#[derive(Default)]
pub struct Mailbox {
    /// id -> (event, change sequence, deleted)
    pub events: BTreeMap<String, (Value, u64, bool)>,
    pub seq: u64,
    pub min_token: u64,
    pub prefer_headers: Vec<String>,
    pub delta_requests: usize,
    pub base: String,
}

pub type Shared = Arc<Mutex<Mailbox>>;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

impl Mailbox {
    fn bump(&mut self, id: &str, mut event: Value, deleted: bool) -> Value {
        self.seq += 1;
        event["@odata.etag"] = json!(format!("W/\"etag{}\"", self.seq));
        event["changeKey"] = json!(format!("etag{}", self.seq));
        event["lastModifiedDateTime"] = json!("2024-05-01T12:00:00Z");
        self.events
            .insert(id.to_owned(), (event.clone(), self.seq, deleted));
        event
    }

    /// Adds an event as Outlook would.
    pub fn add(&mut self, id: &str, subject: &str, show_as: &str) {
        let event = json!({
            "id": id, "subject": subject, "isAllDay": false, "isCancelled": false, "showAs": show_as,
            "type": "singleInstance",
            "start": {"dateTime": "2024-05-06T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2024-05-06T10:00:00.0000000", "timeZone": "UTC"},
        });
        self.bump(id, event, false);
    }

    /// Changes an event as another client would.
    pub fn edit(&mut self, id: &str, f: impl FnOnce(&mut Value)) {
        let mut event = self.events[id].0.clone();
        f(&mut event);
        self.bump(id, event, false);
    }

    /// Deletes an event as another client would.
    pub fn remove(&mut self, id: &str) {
        let event = self.events[id].0.clone();
        self.bump(id, event, true);
    }
}

fn page_size(headers: &HeaderMap) -> usize {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|p| {
            p.split(',')
                .find_map(|part| part.trim().strip_prefix("odata.maxpagesize="))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
}

async fn delta(
    State(mb): State<Shared>,
    Path(cal): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
    }
    let mut mb = mb.lock().unwrap();
    mb.delta_requests += 1;
    if let Some(p) = headers.get("prefer").and_then(|v| v.to_str().ok()) {
        mb.prefer_headers.push(p.to_owned());
    }
    // $skiptoken = "<since>-<offset>"; $deltatoken = "<since>".
    let (since, offset) = if let Some(skip) = q.get("$skiptoken") {
        let Some((s, o)) = skip.split_once('-') else {
            return error(StatusCode::BAD_REQUEST, "BadRequest", "bad skip token");
        };
        (
            s.parse::<u64>().unwrap_or(0),
            o.parse::<usize>().unwrap_or(0),
        )
    } else if let Some(token) = q.get("$deltatoken") {
        let since = token.parse::<u64>().unwrap_or(0);
        if since < mb.min_token {
            return error(
                StatusCode::GONE,
                "SyncStateNotFound",
                "The sync state generation is not found.",
            );
        }
        (since, 0)
    } else {
        if !q.contains_key("startDateTime") || !q.contains_key("endDateTime") {
            return error(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidParameter",
                "startDateTime and endDateTime are required",
            );
        }
        (0, 0)
    };
    let mut changed: Vec<(Value, u64, bool)> = mb
        .events
        .values()
        .filter(|(_, s, deleted)| *s > since && !(since == 0 && *deleted))
        .cloned()
        .collect();
    changed.sort_by_key(|(_, s, _)| *s);
    let size = page_size(&headers);
    let value: Vec<Value> = changed
        .iter()
        .skip(offset)
        .take(size)
        .map(|(e, _, deleted)| {
            if *deleted {
                json!({"@odata.type": "#microsoft.graph.event", "id": e["id"], "@removed": {"reason": "deleted"}})
            } else {
                e.clone()
            }
        })
        .collect();
    let link = format!("{}/me/calendars/{cal}/calendarView/delta", mb.base);
    let mut body = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)", "value": value});
    if offset + size < changed.len() {
        body["@odata.nextLink"] = json!(format!("{link}?$skiptoken={since}-{}", offset + size));
    } else {
        body["@odata.deltaLink"] = json!(format!("{link}?$deltatoken={}", mb.seq));
    }
    Json(body).into_response()
}

async fn view(State(mb): State<Shared>, Path(_cal): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
    }
    let mb = mb.lock().unwrap();
    let value: Vec<Value> = mb
        .events
        .values()
        .filter(|(_, _, d)| !d)
        .map(|(e, _, _)| e.clone())
        .collect();
    Json(json!({"value": value})).into_response()
}

async fn calendars(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
    }
    Json(json!({"value": [
        {"id": "AAMkCal1", "name": "Calendar", "hexColor": "#ff8c00", "canEdit": true, "changeKey": "ck1"},
        {"id": "AAMkCal2", "name": "Holidays", "hexColor": "", "canEdit": false, "changeKey": "ck2"}
    ]}))
    .into_response()
}

async fn create(
    State(mb): State<Shared>,
    Path(_cal): Path<String>,
    headers: HeaderMap,
    Json(mut body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
    }
    let mut mb = mb.lock().unwrap();
    if let Some(tx) = body["transactionId"].as_str() {
        if let Some((existing, _, _)) = mb
            .events
            .values()
            .find(|(e, _, d)| !d && e["transactionId"] == json!(tx))
        {
            return (StatusCode::CREATED, Json(existing.clone())).into_response();
        }
    }
    let id = format!("AAMkEv{}", mb.seq + 1);
    body["id"] = json!(id);
    body["isCancelled"] = json!(false);
    body["type"] = json!("singleInstance");
    let created = mb.bump(&id, body, false);
    (StatusCode::CREATED, Json(created)).into_response()
}

fn stale(headers: &HeaderMap, current: &Value) -> bool {
    headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|want| current["@odata.etag"] != json!(want))
}

async fn update(
    State(mb): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
    }
    let mut mb = mb.lock().unwrap();
    let Some((current, _, false)) = mb.events.get(&id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    if stale(&headers, &current) {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        );
    }
    let mut merged = current;
    for (k, v) in body.as_object().cloned().unwrap_or_default() {
        merged[k] = v;
    }
    Json(mb.bump(&id, merged, false)).into_response()
}

async fn remove(State(mb): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
    }
    let mut mb = mb.lock().unwrap();
    let Some((current, _, false)) = mb.events.get(&id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    if stale(&headers, &current) {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "ErrorIrresolvableConflict",
            "change key mismatch",
        );
    }
    mb.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

/// Starts the peer; returns its state and base URL.
pub async fn start() -> (Shared, String) {
    let state: Shared = Arc::default();
    let router = Router::new()
        .route("/me/calendars", get(calendars))
        .route("/me/calendars/{cal}/calendarView/delta", get(delta))
        .route("/me/calendars/{cal}/calendarView", get(view))
        .route("/me/calendars/{cal}/events", axum::routing::post(create))
        .route("/me/events/{id}", patch(update).delete(remove))
        .with_state(state.clone());
    let base = super::serve(router).await;
    state.lock().unwrap().base.clone_from(&base);
    (state, base)
}
