//! Send analytics events to Mixpanel (`/track` or `/import`) or PostHog.
//!
//! ```text
//! cargo run -p flextime-examples --bin track_event -- --base-url https://api.mixpanel.com \
//!     --token PROJECT_TOKEN --event booking_confirmed --distinct-id user-1 --property amount=2500
//! track_event --base-url URL --import --project-id 123 --secret SECRET --event NAME --distinct-id ID
//! track_event --base-url https://us.i.posthog.com --posthog-key phc_... --event NAME --distinct-id ID
//! ```
//!
//! `--count N` sends N events (message ids `<insert-id>-<n>`), batched. Prints
//! one JSON line per queued event and a summary line with what the vendor
//! accepted. Pointed at Prism (`--base-url http://127.0.0.1:4015`) it runs with
//! no account. Errors go to stderr with status 1.

use std::process::ExitCode;

use clap::Parser;
use flextime_connectors::analytics::mixpanel::{Mixpanel, MixpanelMode};
use flextime_connectors::analytics::posthog::PostHog;
use flextime_connectors::analytics::{AnalyticsEvent, AnalyticsSink, BatchConfig, Batcher};
use flextime_connectors::http::Auth;
use serde_json::{Value, json};

/// Send analytics events.
#[derive(Debug, Parser)]
#[command(name = "track_event")]
struct Args {
    /// The ingestion base URL (the vendor's, a proxy's, or Prism's).
    #[arg(long)]
    base_url: String,
    /// Mixpanel project token (for /track).
    #[arg(long, env = "MIXPANEL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Use Mixpanel /import (needs --project-id and --secret).
    #[arg(long)]
    import: bool,
    /// Mixpanel project id (for /import).
    #[arg(long)]
    project_id: Option<String>,
    /// Mixpanel project secret (for /import).
    #[arg(long, env = "MIXPANEL_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// PostHog project API key (sends to PostHog instead of Mixpanel).
    #[arg(long, env = "POSTHOG_KEY", hide_env_values = true)]
    posthog_key: Option<String>,
    /// Event name.
    #[arg(long)]
    event: String,
    /// Who did it.
    #[arg(long)]
    distinct_id: String,
    /// A property, `key=value` (a value that parses as JSON is sent as JSON).
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, Value)>,
    /// The message id used for de-duplication (default: random).
    #[arg(long)]
    insert_id: Option<String>,
    /// How many events to send.
    #[arg(long, default_value_t = 1)]
    count: u32,
}

fn parse_property(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not key=value"))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
    Ok((k.to_owned(), value))
}

fn sink(args: &Args) -> Result<Box<dyn AnalyticsSink>, String> {
    let config = BatchConfig::default();
    if let Some(key) = &args.posthog_key {
        let backend =
            PostHog::new(&args.base_url, key.clone(), |h| h).map_err(|e| e.to_string())?;
        return Ok(Box::new(Batcher::new(backend, config)));
    }
    let mode = if args.import {
        let project_id = args
            .project_id
            .clone()
            .ok_or("--import needs --project-id")?;
        let secret = args.secret.clone().ok_or("--import needs --secret")?;
        MixpanelMode::Import {
            project_id,
            auth: Auth::basic(secret, ""),
        }
    } else {
        let token = args
            .token
            .clone()
            .ok_or("give --token (Mixpanel /track), --import or --posthog-key")?;
        MixpanelMode::Track { token }
    };
    let backend = Mixpanel::new(&args.base_url, mode, |h| h).map_err(|e| e.to_string())?;
    Ok(Box::new(Batcher::new(backend, config)))
}

async fn run(args: Args) -> Result<(), String> {
    let sink = sink(&args)?;
    for n in 0..args.count {
        let mut event = AnalyticsEvent::new(args.event.clone(), args.distinct_id.clone());
        if let Some(id) = &args.insert_id {
            event = event.with_insert_id(if args.count == 1 {
                id.clone()
            } else {
                format!("{id}-{n}")
            });
        }
        for (k, v) in &args.properties {
            event = event.with_property(k.clone(), v.clone());
        }
        println!(
            "{}",
            json!({"queued": {"event": event.name, "distinct_id": event.distinct_id, "insert_id": event.insert_id}})
        );
        sink.track(event).map_err(|e| e.to_string())?;
    }
    let flushed = sink.shutdown().await;
    let stats = sink.stats();
    println!("{}", json!({"summary": stats}));
    flushed.map_err(|e| e.to_string())?;
    if stats.failed > 0 || stats.queued > 0 {
        return Err(format!(
            "{} events refused, {} not sent",
            stats.failed, stats.queued
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("track_event: {e}");
            ExitCode::FAILURE
        }
    }
}
