//! An in-process Notion peer (API 2025-09-03) built from Notion's documented
//! behaviour (developers.notion.com: "Query a data source", "Create a page",
//! "Update page properties", "Retrieve a page", "Request limits", "Status
//! codes"): `last_edited_time` rounded to the minute; `has_more` /
//! `next_cursor` pagination with `page_size` up to 100; the `Notion-Version`
//! header required; errors as `{"object": "error", "status", "code",
//! "message"}`; 429 `rate_limited` with `Retry-After`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

pub const TOKEN: &str = "ntn_test_secret";

pub struct Workspace {
    pub pages: BTreeMap<String, Value>,
    /// The peer's clock; edits take its minute.
    pub now: DateTime<Utc>,
    pub queries: Vec<Value>,
    /// Answers to give before the real one (status, Retry-After, raw body).
    pub inject: VecDeque<(u16, Option<&'static str>, &'static str)>,
    pub requests: usize,
    next_id: u64,
}

impl Default for Workspace {
    fn default() -> Self {
        Self {
            pages: BTreeMap::new(),
            now: DateTime::parse_from_rfc3339("2024-03-01T10:00:20Z")
                .unwrap()
                .with_timezone(&Utc),
            queries: Vec::new(),
            inject: VecDeque::new(),
            requests: 0,
            next_id: 0,
        }
    }
}

pub type Shared = Arc<Mutex<Workspace>>;

fn error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"object": "error", "status": status, "code": code, "message": message})),
    )
        .into_response()
}

impl Workspace {
    fn stamp(&self) -> String {
        let minute = self.now.timestamp() - self.now.timestamp().rem_euclid(60);
        DateTime::from_timestamp(minute, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Moves the clock.
    pub fn advance(&mut self, seconds: i64) {
        self.now += TimeDelta::seconds(seconds);
    }

    /// Creates a page as a Notion user would.
    pub fn add(&mut self, title: &str, start: &str) -> String {
        self.next_id += 1;
        let id = format!("00000000-0000-4000-8000-{:012}", self.next_id);
        let stamp = self.stamp();
        let page = json!({
            "object": "page", "id": id, "created_time": stamp, "last_edited_time": stamp,
            "in_trash": false, "archived": false,
            "parent": {"type": "data_source_id", "data_source_id": "ds-1"},
            "properties": {
                "Name": {"id": "title", "type": "title", "title": [{"type": "text", "text": {"content": title}, "plain_text": title}]},
                "When": {"id": "d", "type": "date", "date": {"start": start, "end": null, "time_zone": null}},
            }
        });
        self.pages.insert(id.clone(), page);
        id
    }

    /// Renames a page as a Notion user would.
    pub fn rename(&mut self, id: &str, title: &str) {
        let stamp = self.stamp();
        let page = self.pages.get_mut(id).unwrap();
        page["properties"]["Name"]["title"] =
            json!([{"type": "text", "text": {"content": title}, "plain_text": title}]);
        page["last_edited_time"] = json!(stamp);
    }
}

/// Checks auth and version, and plays injected answers; `None` to go on.
fn gate(ws: &mut Workspace, headers: &HeaderMap) -> Option<Response> {
    ws.requests += 1;
    if let Some((status, retry_after, body)) = ws.inject.pop_front() {
        let mut resp = (StatusCode::from_u16(status).unwrap(), body.to_owned()).into_response();
        resp.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        if let Some(after) = retry_after {
            resp.headers_mut()
                .insert("retry-after", after.parse().unwrap());
        }
        return Some(resp);
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return Some(error(401, "unauthorized", "API token is invalid."));
    }
    if headers.get("notion-version").and_then(|v| v.to_str().ok()) != Some("2025-09-03") {
        return Some(error(
            400,
            "missing_version",
            "Notion-Version header failed validation.",
        ));
    }
    None
}

async fn query(
    State(ws): State<Shared>,
    Path(_ds): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut ws = ws.lock().unwrap();
    if let Some(resp) = gate(&mut ws, &headers) {
        return resp;
    }
    ws.queries.push(body.clone());
    let since = body["filter"]["last_edited_time"]["on_or_after"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    let size = body["page_size"].as_u64().unwrap_or(100).min(100) as usize;
    let mut matching: Vec<&Value> = ws
        .pages
        .values()
        .filter(|p| {
            since.is_none_or(|s| {
                DateTime::parse_from_rfc3339(p["last_edited_time"].as_str().unwrap()).unwrap() >= s
            })
        })
        .collect();
    matching.sort_by_key(|p| p["id"].as_str().unwrap().to_owned());
    let start = body["start_cursor"]
        .as_str()
        .and_then(|c| matching.iter().position(|p| p["id"] == json!(c)))
        .unwrap_or(0);
    let results: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(size)
        .map(|p| (*p).clone())
        .collect();
    let next = matching.get(start + size).map(|p| p["id"].clone());
    Json(json!({"object": "list", "results": results, "next_cursor": next, "has_more": next.is_some(), "type": "page_or_data_source", "page_or_data_source": {}}))
        .into_response()
}

async fn create(State(ws): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut ws = ws.lock().unwrap();
    if let Some(resp) = gate(&mut ws, &headers) {
        return resp;
    }
    if body["parent"]["data_source_id"].is_null() && body["parent"]["database_id"].is_null() {
        return error(400, "validation_error", "body.parent should be defined");
    }
    ws.next_id += 1;
    let id = format!("00000000-0000-4000-8000-{:012}", ws.next_id);
    let stamp = ws.stamp();
    let page = json!({"object": "page", "id": id, "created_time": stamp, "last_edited_time": stamp,
        "in_trash": false, "archived": false, "parent": body["parent"], "properties": body["properties"]});
    ws.pages.insert(id, page.clone());
    Json(page).into_response()
}

async fn get_page(
    State(ws): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut ws = ws.lock().unwrap();
    if let Some(resp) = gate(&mut ws, &headers) {
        return resp;
    }
    match ws.pages.get(&id) {
        Some(p) => Json(p.clone()).into_response(),
        None => error(404, "object_not_found", "Could not find page."),
    }
}

async fn update(
    State(ws): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut ws = ws.lock().unwrap();
    if let Some(resp) = gate(&mut ws, &headers) {
        return resp;
    }
    let stamp = ws.stamp();
    let Some(page) = ws.pages.get_mut(&id) else {
        return error(404, "object_not_found", "Could not find page.");
    };
    for (k, v) in body["properties"].as_object().cloned().unwrap_or_default() {
        page["properties"][k] = v;
    }
    if let Some(trash) = body["in_trash"].as_bool() {
        page["in_trash"] = json!(trash);
    }
    page["last_edited_time"] = json!(stamp);
    Json(page.clone()).into_response()
}

/// Starts the peer; returns its state and base URL.
pub async fn start() -> (Shared, String) {
    let state: Shared = Arc::default();
    let router = Router::new()
        .route("/v1/data_sources/{ds}/query", post(query))
        .route("/v1/pages", post(create))
        .route("/v1/pages/{id}", get(get_page).patch(update))
        .with_state(state.clone());
    (state, super::serve(router).await)
}
