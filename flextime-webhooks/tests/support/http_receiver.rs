//! A real local HTTP receiver for dispatcher tests: answers from a plan
//! (status, headers, body, or never), then with a default; reports every
//! request on a channel.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use flextime_webhooks::verify::{StandardWebhooks, Tolerance, Verifier, WebhookRequest};
use http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::mpsc;

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, these headers, this body.
    With(u16, Vec<(&'static str, String)>, String),
    /// Never answer.
    Hang,
}

impl Reply {
    pub fn status(code: u16) -> Self {
        Self::With(code, Vec::new(), format!("answer {code}"))
    }
}

/// One request seen.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub answered: Option<u16>,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn webhook_id(&self) -> String {
        self.header("webhook-id").to_owned()
    }

    /// Whether flextime's own Standard Webhooks verifier accepts it with `secret` alone.
    pub fn verifies_with(&self, secret: &str) -> bool {
        self.verifies_with_at(secret, chrono::Utc::now().timestamp())
    }

    /// Whether the signature verifies with `secret` for a receiver whose
    /// clock reads `now` (unix seconds).
    pub fn verifies_with_at(&self, secret: &str, now: i64) -> bool {
        let v = StandardWebhooks::new([secret.into()], Tolerance::DEFAULT).unwrap();
        let uri = Uri::from_static("/hooks");
        v.verify(
            &WebhookRequest {
                method: &Method::POST,
                uri: &uri,
                headers: &self.headers,
                body: &self.body,
            },
            now,
        )
        .is_ok()
    }
}

#[derive(Clone)]
struct Shared {
    plan: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
    seen: mpsc::UnboundedSender<Seen>,
}

pub struct TestReceiver {
    pub url: String,
    pub base: String,
    plan: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
}

impl TestReceiver {
    /// Start on 127.0.0.1 with a port of its own; the endpoint URL is `<base>/hooks`.
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            plan: Arc::default(),
            default: Arc::new(Mutex::new(Reply::status(200))),
            seen: tx,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/hooks"),
            base: format!("http://{addr}"),
            plan: shared.plan,
            default: shared.default,
            seen: rx,
        }
    }

    /// Answer the next requests with these, in order.
    pub fn plan(&self, replies: impl IntoIterator<Item = Reply>) {
        self.plan.lock().unwrap().extend(replies);
    }

    /// Answer with this once the plan is used up.
    pub fn set_default(&self, reply: Reply) {
        *self.default.lock().unwrap() = reply;
    }

    /// The next request (within 20 s).
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(20), self.seen.recv())
            .await
            .expect("a request within 20 s")
            .expect("receiver running")
    }

    /// Requests already seen, without waiting.
    pub fn drain(&mut self) -> Vec<Seen> {
        let mut v = Vec::new();
        while let Ok(s) = self.seen.try_recv() {
            v.push(s);
        }
        v
    }
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let next = shared.plan.lock().unwrap().pop_front();
        next.unwrap_or_else(|| shared.default.lock().unwrap().clone())
    };
    let mut seen = Seen {
        path: uri.path().to_owned(),
        headers,
        body,
        answered: None,
    };
    match reply {
        Reply::Hang => {
            let _ = shared.seen.send(seen);
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::With(code, extra, text) => {
            seen.answered = Some(code);
            let _ = shared.seen.send(seen);
            let mut response = (StatusCode::from_u16(code).unwrap(), text).into_response();
            for (k, v) in extra {
                response.headers_mut().insert(k, v.parse().unwrap());
            }
            response
        }
    }
}
