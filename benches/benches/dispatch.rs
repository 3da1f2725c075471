//! Outbound webhook throughput: the flextime `Dispatcher` (signing, attempt
//! log, state in memory or in PostgreSQL) next to a plain reqwest loop with
//! the same concurrency posting the same 1 KiB bodies to the same local axum
//! receiver, alternating rounds in one process. Prints deliveries/s of each
//! and the ratio flextime / plain (targets: memory at least 0.8; PostgreSQL
//! state at least 5,000 deliveries/s). Each round also runs the same loop
//! over hyper's pooled client, the client the dispatcher is built on, and
//! prints Flextime's ratio to it: what Flextime itself costs.
//!
//! PostgreSQL runs when `FLEXTIME_TEST_POSTGRES_URL` is set (a fresh schema
//! per run). `FLEXTIME_BENCH_DISPATCH_N` overrides the deliveries per round
//! (default 20,000); `FLEXTIME_BENCH_DISPATCH_CONCURRENCY` the requests in
//! flight (default 32); `FLEXTIME_BENCH_ROUNDS` the rounds per side (default
//! 3). The rounds run in pairs, plain then Flextime, then Flextime then
//! plain, and so on (so neither side always runs on what the other left
//! behind); besides the ratio of the medians the median of the pairs'
//! ratios is printed (it cancels a machine whose speed drifts between
//! rounds).
//!
//! `FLEXTIME_BENCH_DISPATCH_ONLY=plain` (or `flextime`) runs one side of
//! the in-memory comparison once and nothing else: for counting instructions
//! per delivery under `valgrind --tool=callgrind`, which is repeatable
//! whatever else the machine is doing (run it at two values of
//! `FLEXTIME_BENCH_DISPATCH_N` and divide the difference).
#![allow(clippy::cast_precision_loss, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flextime_benches::median;
use flextime_core::Envelope;
use flextime_db::{DbOptions, PoolOptions};
use flextime_webhooks::dispatch::{
    DbDeliveryStore, DeliveryStore, Dispatcher, DispatcherConfig, DispatcherEvent, Endpoint,
    MemoryStore, RetrySchedule, SsrfGuard,
};
use tokio::sync::Notify;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SEND_CHUNK: usize = 500;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn events(n: usize) -> Vec<Envelope> {
    let filler = "x".repeat(800);
    (0..n)
        .map(|i| {
            Envelope::new("/bench", "booking.created")
                .with_id(format!("evt-{i:08}"))
                .with_data_json(serde_json::json!({
                    "id": format!("booking-{i}"),
                    "room": "A-1",
                    "notes": filler,
                }))
        })
        .collect()
}

async fn receiver() -> String {
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        std::hint::black_box(body.len());
        http::StatusCode::OK
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hooks")
}

/// `concurrency` tasks posting `bodies` in turn with `post`, until every
/// body is sent; the time it took.
async fn post_all<F, Fut>(bodies: &Arc<Vec<Vec<u8>>>, concurrency: usize, post: F) -> Duration
where
    F: Fn(Vec<u8>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (post, next, bodies) = (post.clone(), Arc::clone(&next), Arc::clone(bodies));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    post(body.clone()).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

async fn plain(url: &str, bodies: &Arc<Vec<Vec<u8>>>, concurrency: usize) -> Duration {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let url: Arc<str> = Arc::from(url);
    post_all(bodies, concurrency, move |body| {
        let (client, url) = (client.clone(), Arc::clone(&url));
        async move {
            let r = client
                .post(&*url)
                .header("content-type", "application/cloudevents+json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    })
    .await
}

/// The same loop over hyper's pooled client, the client the dispatcher
/// itself is built on (reqwest wraps it too): Flextime's own cost per
/// delivery is its distance from this loop.
async fn hyper_loop(url: &str, bodies: &Arc<Vec<Vec<u8>>>, concurrency: usize) -> Duration {
    use http_body_util::{BodyExt, Full};
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let uri: http::Uri = url.parse().unwrap();
    post_all(bodies, concurrency, move |body| {
        let client = client.clone();
        let req = http::Request::post(uri.clone())
            .header("content-type", "application/cloudevents+json")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        async move {
            let r = tokio::time::timeout(Duration::from_secs(15), async {
                let r = client.request(req).await.unwrap();
                assert!(r.status().is_success());
                r.into_body().collect().await.unwrap()
            })
            .await
            .unwrap();
            std::hint::black_box(r);
        }
    })
    .await
}

async fn flextime(
    url: &str,
    store: Arc<dyn DeliveryStore>,
    events: &[Envelope],
    concurrency: usize,
) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    let (d2, n2, r2) = (Arc::clone(&done), Arc::clone(&notify), Arc::clone(&retried));
    let total = events.len();
    let dispatcher = Dispatcher::builder()
        .store(store)
        .config(DispatcherConfig {
            schedule: RetrySchedule::from_millis(&[0, 1000]),
            ssrf: SsrfGuard::default().allow("127.0.0.0/8".parse().unwrap()),
            max_in_flight: concurrency,
            max_in_flight_per_endpoint: concurrency,
            max_pending: events.len() + 1,
            ..DispatcherConfig::default()
        })
        .on_event(move |e| {
            if let DispatcherEvent::Finished(o) = e {
                assert_eq!(o.status.as_str(), "delivered");
                if o.attempts > 1 {
                    r2.fetch_add(1, Ordering::Relaxed);
                }
                // Wake the timing task once, at the end, as the plain
                // loop's harness does (it joins its tasks), not per delivery.
                if d2.fetch_add(1, Ordering::Relaxed) + 1 == total {
                    n2.notify_one();
                }
            }
        })
        .start()
        .await
        .unwrap();
    dispatcher
        .add_endpoint(Endpoint::new("bench", url).with_secret(SECRET))
        .await
        .unwrap();
    let start = Instant::now();
    for chunk in events.chunks(SEND_CHUNK) {
        dispatcher.send_batch(chunk).await.unwrap();
    }
    while done.load(Ordering::Relaxed) < events.len() {
        notify.notified().await;
    }
    let elapsed = start.elapsed();
    // Stopped and freed here, outside the clock but inside this side's CPU
    // count: dropped instead, its workers would wind down during the next
    // round, on the other side's time.
    dispatcher.shutdown().await;
    let retried = retried.load(Ordering::Relaxed);
    if retried > 0 {
        println!(
            "  ({retried} of {} deliveries needed a retry)",
            events.len()
        );
    }
    elapsed
}

/// CPU time this process has used so far (user + system), from
/// `/proc/self/stat` (clock ticks of 10 ms); zero where that file is missing.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn compare(
    name: &str,
    url: &str,
    n: usize,
    concurrency: usize,
    rounds: usize,
    mut store: impl AsyncFnMut() -> Arc<dyn DeliveryStore>,
) {
    let events = events(n);
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new(events.iter().map(|e| e.to_json_bytes().unwrap()).collect());
    let size = bodies[0].len();
    // Warm up both.
    let warm = Arc::new(bodies[..1000.min(n)].to_vec());
    plain(url, &warm, concurrency).await;
    hyper_loop(url, &warm, concurrency).await;
    flextime(url, store().await, &events[..1000.min(n)], concurrency).await;
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    let mut bare = Vec::new();
    let (mut ours_cpu, mut raw_cpu, mut bare_cpu) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        // The references go first in even rounds and last in odd ones, so
        // neither side always runs on what the other left behind.
        let references_first = round % 2 == 0;
        if references_first {
            let cpu = cpu_time();
            raw.push(per_sec(n, plain(url, &bodies, concurrency).await));
            raw_cpu += cpu_time().saturating_sub(cpu);
        }
        let store = store().await;
        let cpu = cpu_time();
        ours.push(per_sec(n, flextime(url, store, &events, concurrency).await));
        ours_cpu += cpu_time().saturating_sub(cpu);
        if !references_first {
            let cpu = cpu_time();
            raw.push(per_sec(n, plain(url, &bodies, concurrency).await));
            raw_cpu += cpu_time().saturating_sub(cpu);
        }
        let cpu = cpu_time();
        bare.push(per_sec(n, hyper_loop(url, &bodies, concurrency).await));
        bare_cpu += cpu_time().saturating_sub(cpu);
    }
    let paired: Vec<f64> = ours.iter().zip(&raw).map(|(o, r)| o / r).collect();
    let paired_bare: Vec<f64> = ours.iter().zip(&bare).map(|(o, b)| o / b).collect();
    let (o, r, b) = (median(ours), median(raw), median(bare));
    // CPU per delivery (sender, receiver and runtime together) tells work
    // done from time spent waiting.
    let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / (n * rounds) as f64;
    println!(
        "{name:<28} {n} deliveries of {size} B, {concurrency} in flight: flextime {o:>8.0}/s   plain reqwest {r:>8.0}/s   ratio (flextime/plain) {:.2}   CPU per delivery: flextime {:.0} us, plain {:.0} us",
        o / r,
        per(ours_cpu),
        per(raw_cpu)
    );
    println!(
        "{name:<28} paired rounds (flextime/plain): {}",
        flextime_benches::paired_ratios(&paired)
    );
    println!(
        "{name:<28} plain hyper loop {b:>8.0}/s   ratio (flextime/hyper) {:.2}   CPU per delivery {:.0} us   paired rounds: {}",
        o / b,
        per(bare_cpu),
        flextime_benches::paired_ratios(&paired_bare)
    );
}

fn main() {
    let n = env_usize("FLEXTIME_BENCH_DISPATCH_N", 20_000);
    let concurrency = env_usize("FLEXTIME_BENCH_DISPATCH_CONCURRENCY", 32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = receiver().await;
        if let Ok(side) = std::env::var("FLEXTIME_BENCH_DISPATCH_ONLY") {
            // Both sides pay for making the events and the plain bodies, so
            // the difference of two counts is the delivery work alone.
            let events = events(n);
            let bodies: Arc<Vec<Vec<u8>>> =
                Arc::new(events.iter().map(|e| e.to_json_bytes().unwrap()).collect());
            match side.as_str() {
                "plain" => {
                    plain(&url, &bodies, concurrency).await;
                }
                "hyper" => {
                    hyper_loop(&url, &bodies, concurrency).await;
                }
                "flextime" => {
                    flextime(&url, Arc::new(MemoryStore::default()), &events, concurrency).await;
                }
                other => {
                    panic!("FLEXTIME_BENCH_DISPATCH_ONLY={other}: say plain, hyper or flextime")
                }
            }
            println!("{side}: {n} deliveries");
            return;
        }
        let rounds = env_usize("FLEXTIME_BENCH_ROUNDS", 3).max(1);
        compare("memory state", &url, n, concurrency, rounds, async || {
            Arc::new(MemoryStore::default()) as Arc<dyn DeliveryStore>
        })
        .await;
        match std::env::var("FLEXTIME_TEST_POSTGRES_URL") {
            Ok(pg) if !pg.is_empty() => {
                let schema = format!("bench_dispatch_{}", std::process::id());
                let options = || DbOptions {
                    schema: Some(schema.clone()),
                    pool: PoolOptions {
                        max_connections: 8,
                        ..PoolOptions::default()
                    },
                    ..DbOptions::default()
                };
                let mut round = 0;
                compare(
                    "postgresql state",
                    &url,
                    n,
                    concurrency,
                    rounds,
                    async || {
                        round += 1;
                        let adapter = flextime_db::connect(&pg, options()).await.unwrap();
                        Arc::new(DbDeliveryStore::with_prefix(
                            adapter,
                            &format!("bench_{round}"),
                        )) as Arc<dyn DeliveryStore>
                    },
                )
                .await;
                let pool = sqlx::PgPool::connect(&pg).await.unwrap();
                let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                    .execute(&pool)
                    .await;
            }
            _ => println!("postgresql state: skipped (FLEXTIME_TEST_POSTGRES_URL is not set)"),
        }
    });
}
