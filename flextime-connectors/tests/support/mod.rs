//! Helpers shared by the connector tests.
#![allow(dead_code)]

pub mod google_peer;
pub mod graph_peer;
pub mod notion_peer;
pub mod scripted;

use std::time::Duration;

use axum::Router;
use flextime_core::resilience::{Jitter, RetryPolicy};

/// Serves `router` on a free loopback port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// What Prism found wrong with a request: its `sl-violations` header, or the
/// `validation` list of the 422 problem document it answers with when the
/// vendor document has no error example of its own.
pub fn prism_violations(resp: &flextime_connectors::http::Response) -> Option<String> {
    if let Some(header) = resp.header("sl-violations") {
        return Some(header.to_owned());
    }
    let problem = resp
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/problem+json"));
    if problem {
        return Some(String::from_utf8_lossy(resp.bytes()).into_owned());
    }
    None
}

/// Requests seen (`METHOD /path`) with Prism's violations, if any.
pub type Recorded = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// An observer that records every request with Prism's violations, if any.
pub fn prism_recorder() -> (flextime_connectors::http::Observer, Recorded) {
    let seen: Recorded = std::sync::Arc::default();
    let log = seen.clone();
    let observer: flextime_connectors::http::Observer =
        std::sync::Arc::new(move |method, url, resp| {
            log.lock()
                .expect("recorder lock")
                .push((format!("{method} {}", url.path()), prism_violations(resp)));
        });
    (observer, seen)
}

/// A retry policy for tests: `attempts` in all, millisecond backoff, and
/// `Retry-After` honoured up to 2 s.
pub fn fast_retries(attempts: usize) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        factor: 2.0,
        jitter: Jitter::Full,
        max_retry_after: Duration::from_secs(2),
    }
}
