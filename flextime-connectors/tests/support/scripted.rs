//! A peer that answers from a script and records every request, for the
//! negative paths of HTTP connectors (401, 429 + Retry-After, 5xx then
//! success, malformed bodies, vendor error objects).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    /// A JSON answer.
    #[allow(clippy::needless_pass_by_value)] // `json!(..)` at every call site
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    /// A raw answer with a content type.
    pub fn raw(status: u16, content_type: &str, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.into())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A request the peer received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The form body as pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The first value of a form field.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    fallback: Option<Answer>,
    seen: Vec<Seen>,
}

/// The peer's handle: what it saw.
#[derive(Clone, Default)]
pub struct Scripted(Arc<Mutex<Script>>);

impl Scripted {
    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }
}

/// Starts a peer that answers with `answers` in order, then `fallback` (or
/// 500 when there is none). Returns its handle and base URL.
pub async fn start(answers: Vec<Answer>, fallback: Option<Answer>) -> (Scripted, String) {
    let scripted = Scripted::default();
    {
        let mut s = scripted.0.lock().unwrap();
        s.answers = answers.into();
        s.fallback = fallback;
    }
    let router = axum::Router::new()
        .fallback(answer)
        .with_state(scripted.clone());
    let base = super::serve(router).await;
    (scripted, base)
}

async fn answer(
    State(scripted): State<Scripted>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut s = scripted.0.lock().unwrap();
        s.seen.push(Seen {
            method,
            path: uri.path().to_owned(),
            headers,
            body,
        });
        s.answers.pop_front().or_else(|| s.fallback.clone())
    };
    let Some(a) = next else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response();
    };
    let mut out = HeaderMap::new();
    for (k, v) in &a.headers {
        out.insert(*k, v.parse().unwrap());
    }
    (StatusCode::from_u16(a.status).unwrap(), out, a.body).into_response()
}
