//! The HTTP client stack against in-process peers that answer the way real
//! APIs do: 5xx then success, 429 with Retry-After, rate-limit headers,
//! malformed bodies, Link pagination, and an OAuth2 token endpoint.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use flextime_connectors::http::oauth2::pkce_challenge;
use flextime_connectors::http::{
    Auth, AuthEvent, HttpClient, OAuth2Config, OAuth2Session, Page, TokenSet, collect_all,
    next_link, paginate,
};
use flextime_core::resilience::RetryPolicy;
use flextime_core::{Clock, ErrorKind, ManualClock, Secret};
use serde_json::{Value, json};

async fn client_for(router: Router) -> HttpClient {
    let base = support::serve(router).await;
    HttpClient::builder("test")
        .base_url(&base)
        .unwrap()
        .retry(support::fast_retries(4))
        .build()
        .unwrap()
}

/// A peer that fails `failures` times with `status` (and `headers`), then
/// answers 200 `{"ok":true}`; it counts requests.
fn flaky(
    failures: usize,
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
) -> (Router, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let handler = move || {
        let counter = counter.clone();
        let headers = headers.clone();
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < failures {
                let mut resp =
                    (status, Json(json!({"error": {"message": "try later"}}))).into_response();
                for (k, v) in headers {
                    resp.headers_mut().insert(k, v.parse().unwrap());
                }
                resp
            } else {
                Json(json!({"ok": true})).into_response()
            }
        }
    };
    (
        Router::new().route("/x", get(handler.clone()).post(handler)),
        hits,
    )
}

use axum::Json;

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let (router, hits) = flaky(2, StatusCode::SERVICE_UNAVAILABLE, vec![]);
    let client = client_for(router).await;
    let body: Value = client.get("/x").send_json().await.unwrap();
    assert_eq!(body, json!({"ok": true}));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_stop_after_the_policy_attempts_with_the_peer_message() {
    let (router, hits) = flaky(100, StatusCode::BAD_GATEWAY, vec![]);
    let client = client_for(router).await;
    let err = client.get("/x").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("try later"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_post_is_not_retried_after_a_server_error_unless_idempotent() {
    let (router, hits) = flaky(1, StatusCode::INTERNAL_SERVER_ERROR, vec![]);
    let client = client_for(router).await;
    let err = client.post("/x").json(&json!({})).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (router, hits) = flaky(1, StatusCode::INTERNAL_SERVER_ERROR, vec![]);
    let client = client_for(router).await;
    client
        .post("/x")
        .header("Idempotency-Key", "booking-1-create")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_is_retried_after_429_since_it_was_not_processed() {
    let (router, hits) = flaky(1, StatusCode::TOO_MANY_REQUESTS, vec![("retry-after", "0")]);
    let client = client_for(router).await;
    client.post("/x").json(&json!({})).send().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_too_long_wait_is_a_typed_error() {
    let (router, hits) = flaky(1, StatusCode::TOO_MANY_REQUESTS, vec![("retry-after", "1")]);
    let client = client_for(router).await;
    client.get("/x").send().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // The policy honours at most 2 s; the peer asks for an hour: the caller
    // gets the wait instead of a blocked task.
    let (router, hits) = flaky(
        1,
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "3600")],
    );
    let client = client_for(router).await;
    let err = client.get("/x").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_exhausted_rate_limit_window_pauses_the_client_and_the_strictest_wins() {
    let router = Router::new()
        .route(
            "/ok",
            get(|| async {
                (
                    [("x-ratelimit-remaining", "5"), ("x-ratelimit-reset", "30")],
                    "fine",
                )
            }),
        )
        .route(
            "/last",
            get(|| async {
                (
                    [
                        ("x-ratelimit-remaining", "0"),
                        ("x-ratelimit-reset", "1"),
                        ("ratelimit-remaining", "0"),
                        ("ratelimit-reset", "90"),
                    ],
                    "fine",
                )
            }),
        );
    let base = support::serve(router).await;
    let client = HttpClient::builder("test")
        .base_url(&base)
        .unwrap()
        .retry(RetryPolicy {
            max_retry_after: Duration::from_secs(600),
            ..support::fast_retries(4)
        })
        .build()
        .unwrap();
    client.get("/ok").send().await.unwrap();
    assert_eq!(
        client.pause_remaining(),
        None,
        "a window with requests left must not pause"
    );
    client.get("/last").send().await.unwrap();
    let pause = client.pause_remaining().expect("the client must pause");
    assert!(
        pause > Duration::from_secs(60),
        "the 90 s reset must win over 1 s: {pause:?}"
    );
}

#[tokio::test]
async fn statuses_map_to_typed_errors() {
    let router = Router::new().route(
        "/s/{code}",
        get(
            |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                (
                    StatusCode::from_u16(code).unwrap(),
                    Json(json!({"message": format!("status {code}")})),
                )
            },
        ),
    );
    let client = client_for(router).await;
    for (code, kind) in [
        (400, ErrorKind::InvalidInput),
        (401, ErrorKind::Unauthorized),
        (403, ErrorKind::Forbidden),
        (404, ErrorKind::NotFound),
        (409, ErrorKind::Conflict),
        (412, ErrorKind::Conflict),
        (422, ErrorKind::InvalidInput),
        (410, ErrorKind::Permanent),
    ] {
        let err = client.get(&format!("/s/{code}")).send().await.unwrap_err();
        assert_eq!(err.kind(), kind, "status {code}: {err}");
        assert!(err.to_string().contains(&format!("status {code}")), "{err}");
    }
    let gone = client
        .get("/s/410")
        .allow_status(StatusCode::GONE)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::GONE);
}

#[allow(clippy::items_after_statements)]
#[tokio::test]
async fn a_malformed_body_is_a_typed_error_that_says_where() {
    let router = Router::new()
        .route(
            "/bad",
            get(|| async { ([("content-type", "application/json")], "{\"items\": [1, 2,") }),
        )
        .route(
            "/wrong",
            get(|| async { Json(json!({"items": "not a list"})) }),
        );
    let client = client_for(router).await;
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Items {
        items: Vec<u32>,
    }
    let err = client.get("/bad").send_json::<Items>().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("malformed response body"), "{err}");
    let err = client.get("/wrong").send_json::<Items>().await.unwrap_err();
    assert!(err.to_string().contains("malformed response body"), "{err}");
}

#[tokio::test]
async fn a_peer_that_is_down_is_unavailable() {
    let port = flextime_testkit::server::free_port().unwrap();
    let client = HttpClient::builder("down")
        .base_url(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .retry(support::fast_retries(4))
        .build()
        .unwrap();
    let err = client.get("/x").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused() {
    let client = HttpClient::builder("t")
        .base_url("https://api.example.com/v1")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        client.url("items").unwrap().as_str(),
        "https://api.example.com/v1/items"
    );
    assert!(
        client
            .url("https://api.example.com/v1/items?page=2")
            .is_ok()
    );
    let err = client.url("https://evil.example.net/steal").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(HttpClient::builder("t").base_url("ftp://x").is_err());
}

#[tokio::test]
async fn link_header_pagination_streams_every_page() {
    let router = Router::new().route(
        "/items",
        get(
            |Query(q): Query<HashMap<String, String>>, headers: HeaderMap| async move {
                let host = headers.get("host").unwrap().to_str().unwrap().to_owned();
                let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let items: Vec<u32> = ((page - 1) * 2..page * 2).collect();
                let mut resp = Json(items).into_response();
                if page < 3 {
                    let link = format!("<http://{host}/items?page={}>; rel=\"next\"", page + 1);
                    resp.headers_mut().insert("link", link.parse().unwrap());
                }
                resp
            },
        ),
    );
    let client = client_for(router).await;
    let pages = paginate(Some("/items".to_owned()), |path: Option<String>| {
        let client = client.clone();
        async move {
            let resp = client.get(&path.unwrap_or_default()).send().await?;
            Ok(Page::new(
                resp.json::<Vec<u32>>()?,
                next_link(resp.headers()),
            ))
        }
    });
    let (items, _) = collect_all(pages).await.unwrap();
    assert_eq!(items, vec![0, 1, 2, 3, 4, 5]);
}

/// An OAuth2 authorization server and a resource server in one: it issues
/// numbered access tokens, remembers the PKCE challenge of each code, and
/// the resource accepts only the latest token.
#[derive(Default)]
struct AuthServer {
    token_calls: AtomicUsize,
    issued: AtomicUsize,
    revoked: std::sync::atomic::AtomicBool,
    challenges: Mutex<HashMap<String, String>>,
    forms: Mutex<Vec<HashMap<String, String>>>,
}

async fn token_endpoint(
    State(s): State<Arc<AuthServer>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.token_calls.fetch_add(1, Ordering::SeqCst);
    s.forms.lock().unwrap().push(form.clone());
    let grant = form.get("grant_type").map(String::as_str);
    match grant {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let challenge = s.challenges.lock().unwrap().get(&code).cloned();
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if challenge != Some(pkce_challenge(&verifier)) {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "PKCE verification failed"}))).into_response();
            }
        }
        Some("refresh_token") => {
            if s.revoked.load(Ordering::SeqCst)
                || form.get("refresh_token").map(String::as_str) != Some("refresh-1")
            {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}))).into_response();
            }
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
    }
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({"access_token": format!("access-{n}"), "token_type": "Bearer", "expires_in": 3600, "refresh_token": "refresh-1"})).into_response()
}

async fn resource(State(s): State<Arc<AuthServer>>, headers: HeaderMap) -> Response {
    let latest = format!("Bearer access-{}", s.issued.load(Ordering::SeqCst));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(latest.as_str()) {
        Json(json!({"me": "ok"})).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Invalid Credentials"}})),
        )
            .into_response()
    }
}

async fn auth_server() -> (Arc<AuthServer>, String) {
    let state = Arc::new(AuthServer::default());
    let router = Router::new()
        .route("/token", post(token_endpoint))
        .route("/me", get(resource))
        .with_state(state.clone());
    (state, support::serve(router).await)
}

fn config(base: &str) -> OAuth2Config {
    OAuth2Config::new(
        "client-1",
        Some(Secret::new("client-secret")),
        &format!("{base}/authorize"),
        &format!("{base}/token"),
    )
    .unwrap()
    .with_redirect_uri("http://localhost/callback")
}

fn tokens(access: &str, expires_in: chrono::Duration, now: chrono::DateTime<Utc>) -> TokenSet {
    TokenSet {
        access_token: Secret::new(access),
        refresh_token: Some(Secret::new("refresh-1")),
        expires_at: Some(now + expires_in),
        scope: None,
    }
}

fn api(base: &str, session: Arc<OAuth2Session>) -> HttpClient {
    HttpClient::builder("api")
        .base_url(base)
        .unwrap()
        .retry(support::fast_retries(4))
        .auth(Auth::OAuth2(session))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_authorization_code_exchange_uses_pkce() {
    let (server, base) = auth_server().await;
    let cfg = config(&base);
    let request = cfg.authorization_request();
    let q: HashMap<_, _> = request.url.query_pairs().into_owned().collect();
    server
        .challenges
        .lock()
        .unwrap()
        .insert("code-1".into(), q["code_challenge"].clone());
    let http = cfg.token_client().unwrap();
    let wrong = cfg
        .exchange_code(&http, "code-1", Some(&Secret::new("not-the-verifier")))
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Unauthorized);
    let set = cfg
        .exchange_code(&http, "code-1", Some(&request.pkce_verifier))
        .await
        .unwrap();
    assert_eq!(set.access_token.expose(), "access-1");
    assert_eq!(set.refresh_token.unwrap().expose(), "refresh-1");
    assert!(set.expires_at.unwrap() > Utc::now());
    let forms = server.forms.lock().unwrap();
    let last = forms.last().unwrap();
    assert_eq!(last["client_id"], "client-1");
    assert_eq!(last["redirect_uri"], "http://localhost/callback");
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_once_for_many_concurrent_requests() {
    let (server, base) = auth_server().await;
    server.issued.store(1, Ordering::SeqCst); // access-1 is current
    let clock = ManualClock::new(Utc::now());
    let session = Arc::new(
        OAuth2Session::new(
            config(&base),
            tokens("access-1", chrono::Duration::hours(1), clock.now()),
        )
        .unwrap()
        .with_clock(Arc::new(clock.clone())),
    );
    let mut events = session.subscribe();
    let client = api(&base, session.clone());
    client.get("/me").send().await.unwrap();
    assert_eq!(
        server.token_calls.load(Ordering::SeqCst),
        0,
        "a fresh token must not be refreshed"
    );

    // 59 min 30 s later the token is within the 60 s margin: 20 concurrent
    // requests share one refresh.
    clock.advance(Duration::from_secs(3570));
    let calls = (0..20).map(|_| {
        let client = client.clone();
        async move { client.get("/me").send().await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(server.token_calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        events.recv().await.unwrap(),
        AuthEvent::Refreshed { .. }
    ));
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_and_the_request_repeated() {
    let (server, base) = auth_server().await;
    server.issued.store(5, Ordering::SeqCst); // the server moved on to access-5
    let session = Arc::new(
        OAuth2Session::new(
            config(&base),
            tokens("access-1", chrono::Duration::hours(1), Utc::now()),
        )
        .unwrap(),
    );
    let client = api(&base, session);
    let body: Value = client.get("/me").send_json().await.unwrap();
    assert_eq!(body, json!({"me": "ok"}));
    assert_eq!(server.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_revoked_grant_is_a_typed_error_and_an_event_and_fails_fast_after() {
    let (server, base) = auth_server().await;
    server.revoked.store(true, Ordering::SeqCst);
    let session = Arc::new(
        OAuth2Session::new(
            config(&base),
            tokens("access-0", chrono::Duration::seconds(10), Utc::now()),
        )
        .unwrap(),
    );
    let mut events = session.subscribe();
    let client = api(&base, session.clone());
    let err = client.get("/me").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("revoked"), "{err}");
    match events.recv().await.unwrap() {
        AuthEvent::GrantRevoked { reason } => assert!(reason.contains("invalid_grant"), "{reason}"),
        other @ AuthEvent::Refreshed { .. } => panic!("unexpected event {other:?}"),
    }
    let err = client.get("/me").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(
        server.token_calls.load(Ordering::SeqCst),
        1,
        "a revoked grant must not be retried"
    );
}

/// A writer the tracing subscriber logs into, for inspecting what was logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn credentials_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let (router, _) = flaky(1, StatusCode::SERVICE_UNAVAILABLE, vec![]);
            let base = support::serve(router).await;
            for auth in [
                Auth::bearer("bearer-s3cret"),
                Auth::basic("user", "basic-s3cret"),
                Auth::api_key_header("X-Api-Key", "header-s3cret").unwrap(),
                Auth::api_key_query("key", "query-s3cret"),
            ] {
                let client = HttpClient::builder("redaction")
                    .base_url(&base)
                    .unwrap()
                    .retry(support::fast_retries(4))
                    .auth(auth.clone())
                    .build()
                    .unwrap();
                let _ = client.get("/x?access_token=url-s3cret&page=2").send().await;
                assert!(!format!("{auth:?} {client:?}").contains("s3cret"));
            }
        });
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("connector.request"),
        "the requests were not traced: {logs}"
    );
    assert!(logs.contains("[REDACTED]"), "{logs}");
    assert!(logs.contains("page=2"), "{logs}");
    assert!(!logs.contains("s3cret"), "a secret was logged:\n{logs}");
    assert!(
        !logs.contains("dXNlcjpiYXNpYy1zM2NyZXQ"),
        "the Basic credentials were logged:\n{logs}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_a_typed_error_not_an_allocation() {
    let router = Router::new()
        .route("/big", get(|| async { "x".repeat(64 * 1024) }))
        .route(
            "/stream",
            get(|| async {
                let chunks = futures::stream::iter(
                    (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024])),
                );
                axum::body::Body::from_stream(chunks)
            }),
        )
        .route("/small", get(|| async { "ok" }));
    let base = support::serve(router).await;
    let client = HttpClient::builder("limits")
        .base_url(&base)
        .unwrap()
        .max_response_bytes(16 * 1024)
        .retry(support::fast_retries(4))
        .build()
        .unwrap();
    for path in ["/big", "/stream"] {
        let err = client.get(path).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Permanent, "{path}");
        assert!(err.to_string().contains("larger than 16384 bytes"), "{err}");
    }
    assert_eq!(
        client.get("/small").send().await.unwrap().text().unwrap(),
        "ok"
    );
}
