//! Deliver events as signed webhooks (Standard Webhooks) and print each
//! delivery's final outcome.
//!
//! ```text
//! cargo run -p flextime-examples --bin webhook_sender -- --config sender.toml [--count N]
//! ```
//!
//! `sender.toml`:
//!
//! ```toml
//! store = "memory://"               # or a flextime-db URL: sqlite://state.db, postgres://...
//! retry_schedule_ms = [0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000]
//! jitter = 0.2                      # +-20 % on each delay
//! timeout_ms = 15000
//! allow_subnets = ["127.0.0.0/8"]   # SSRF guard allow-list (private ranges are refused otherwise)
//! https_only = false
//! max_in_flight = 64
//!
//! [[endpoint]]
//! id = "crm"                        # default: endpoint-1, endpoint-2, ...
//! url = "http://127.0.0.1:8080/hooks"
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"   # default: a fresh random one (printed on stderr)
//! events = ["booking.*", "invoice.paid"]              # default: every event
//! body = "structured"               # or "raw" (the event's data alone)
//! headers = { "x-tenant" = "acme" }
//! ordered = false
//! rate_limit_per_sec = 100
//! ```
//!
//! Events come as JSON lines on stdin (`{"type": "booking.created", "data":
//! {...}}`, optionally `id`, `source`, `subject`), or `--count N` generates N
//! test events of type `flextime.test`. Each delivery that reaches a final
//! status prints one JSON line on stdout: `{"message_id", "endpoint",
//! "event_id", "attempts", "status"}` with status `delivered`, `exhausted` or
//! `endpoint_disabled`; the program exits when every delivery (including
//! pending ones resumed from a durable store) has one. Bad input lines and
//! errors are JSON lines on stderr.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use flextime_core::Envelope;
use flextime_core::config::ConfigLoader;
use flextime_webhooks::dispatch::{
    BodyMode, DbDeliveryStore, DeliveryStore, Dispatcher, DispatcherConfig, DispatcherEvent,
    Endpoint, EventFilter, MemoryStore, Outcome, RetrySchedule, SsrfGuard,
};
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
#[command(about = "Deliver events as signed webhooks and print the outcomes")]
struct Args {
    /// The TOML configuration file.
    #[arg(long)]
    config: std::path::PathBuf,
    /// Generate this many test events instead of reading stdin.
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderConfig {
    #[serde(default = "memory")]
    store: String,
    #[serde(default)]
    retry_schedule_ms: Option<Vec<u64>>,
    #[serde(default)]
    jitter: Option<f64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    allow_subnets: Vec<ipnet::IpNet>,
    #[serde(default)]
    https_only: bool,
    #[serde(default)]
    max_in_flight: Option<usize>,
    #[serde(default)]
    endpoint: Vec<EndpointConfig>,
}

fn memory() -> String {
    "memory://".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointConfig {
    #[serde(default)]
    id: Option<String>,
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    body: BodyMode,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    ordered: bool,
    #[serde(default)]
    rate_limit_per_sec: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct InputEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    subject: Option<String>,
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{}", serde_json::json!({"error": message}));
    ExitCode::from(2)
}

fn print_outcome(o: &Outcome) {
    println!(
        "{}",
        serde_json::json!({
            "message_id": o.message_id,
            "endpoint": o.endpoint_id,
            "event_id": o.event_id,
            "attempts": o.attempts,
            "status": o.status.as_str(),
        })
    );
}

async fn store(url: &str) -> Result<Arc<dyn DeliveryStore>, String> {
    if url == "memory://" || url == "memory" {
        return Ok(Arc::new(MemoryStore::default()));
    }
    let adapter = flextime_db::connect(url, flextime_db::DbOptions::default())
        .await
        .map_err(|e| format!("store: {e}"))?;
    Ok(Arc::new(DbDeliveryStore::new(adapter)))
}

fn endpoint(n: usize, c: EndpointConfig) -> Endpoint {
    let id = c.id.unwrap_or_else(|| format!("endpoint-{n}"));
    let mut ep = Endpoint::new(id, c.url)
        .with_filter(EventFilter::new(c.events))
        .with_body(c.body)
        .ordered(c.ordered);
    match c.secret {
        Some(s) => ep = ep.with_secret(s),
        None => eprintln!(
            "{}",
            serde_json::json!({"endpoint": ep.id, "generated_secret": ep.secrets[0].secret.expose()})
        ),
    }
    ep.headers = c.headers;
    ep.rate_limit_per_sec = c.rate_limit_per_sec;
    ep
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config: SenderConfig = match ConfigLoader::new()
        .env_prefix("FLEXTIME_SENDER_")
        .file(&args.config)
        .load()
    {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if config.endpoint.is_empty() {
        return fail("the configuration lists no [[endpoint]]");
    }
    let store = match store(&config.store).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut dc = DispatcherConfig {
        ssrf: SsrfGuard::default()
            .allow_all(config.allow_subnets.iter().copied())
            .https_only(config.https_only),
        ..DispatcherConfig::default()
    };
    if let Some(ms) = &config.retry_schedule_ms {
        if ms.is_empty() {
            return fail("retry_schedule_ms must list at least one delay");
        }
        dc.schedule = RetrySchedule::from_millis(ms);
    }
    if let Some(j) = config.jitter {
        dc.schedule = dc.schedule.with_jitter(j);
    }
    if let Some(ms) = config.timeout_ms {
        dc.timeout = Duration::from_millis(ms.max(1));
    }
    if let Some(n) = config.max_in_flight {
        dc.max_in_flight = n.max(1);
    }
    let (tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let dispatcher = match Dispatcher::builder()
        .store(store)
        .config(dc)
        .on_event(move |e| match e {
            DispatcherEvent::Finished(o) => {
                let _ = tx.send(o.clone());
            }
            DispatcherEvent::EndpointDisabled {
                endpoint_id,
                reason,
            } => eprintln!(
                "{}",
                serde_json::json!({"endpoint_disabled": endpoint_id, "reason": reason.to_string()})
            ),
            _ => {}
        })
        .start()
        .await
    {
        Ok(d) => d,
        Err(e) => return fail(&e.to_string()),
    };
    for (n, c) in config.endpoint.into_iter().enumerate() {
        if let Err(e) = dispatcher.add_endpoint(endpoint(n + 1, c)).await {
            return fail(&e.to_string());
        }
    }
    let mut expected = dispatcher.resumed();
    let mut done = 0usize;
    let send = async |envelope: Envelope, expected: &mut usize| {
        loop {
            match dispatcher.send(&envelope).await {
                Ok(r) => {
                    *expected += r.deliveries.len();
                    return;
                }
                Err(e) if e.kind() == flextime_core::ErrorKind::RateLimited => {
                    tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(50))).await;
                }
                Err(e) => {
                    eprintln!(
                        "{}",
                        serde_json::json!({"error": e.to_string(), "event_id": envelope.id()})
                    );
                    return;
                }
            }
        }
    };
    if let Some(count) = args.count {
        for n in 0..count {
            let e = Envelope::new("/flextime/webhook_sender", "flextime.test")
                .with_data_json(serde_json::json!({"n": n}));
            send(e, &mut expected).await;
        }
    } else {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut line_no = 0u64;
        loop {
            let line = match lines.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => return fail(&format!("stdin: {e}")),
            };
            line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            let input: InputEvent = match serde_json::from_str(&line) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!(
                        "{}",
                        serde_json::json!({"line": line_no, "error": e.to_string()})
                    );
                    continue;
                }
            };
            let mut e = Envelope::new(
                input
                    .source
                    .unwrap_or_else(|| "/flextime/webhook_sender".into()),
                input.event_type,
            );
            if let Some(id) = input.id {
                e = e.with_id(id);
            }
            if let Some(s) = input.subject {
                e = e.with_subject(s);
            }
            if let Some(d) = input.data {
                e = e.with_data_json(d);
            }
            send(e, &mut expected).await;
            while let Ok(o) = outcomes.try_recv() {
                print_outcome(&o);
                done += 1;
            }
        }
    }
    while done < expected {
        match outcomes.recv().await {
            Some(o) => {
                print_outcome(&o);
                done += 1;
            }
            None => return fail("the dispatcher stopped"),
        }
    }
    // Every outcome is final and committed; stop the workers before exiting.
    dispatcher.shutdown().await;
    ExitCode::SUCCESS
}
