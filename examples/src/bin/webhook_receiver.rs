//! Receive webhooks from any provider and print them.
//!
//! ```text
//! cargo run -p flextime-examples --bin webhook_receiver -- --config receiver.toml
//! ```
//!
//! `receiver.toml`:
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! [[source]]
//! name = "stripe"
//! path = "/hooks/stripe"
//! scheme = "stripe"    # standard-webhooks | stripe | github | slack | twilio | shopify | notion | hmac
//! secrets = ["whsec_..."]
//! tolerance_secs = 300 # 0 turns the timestamp check off
//! # public_url = "https://example.com/hooks/twilio"   (twilio; no query string)
//! ```
//!
//! Every accepted event is printed on stdout as one JSON line (CloudEvents
//! structured mode: `source` is the source's name, `type` the provider's
//! event type where it has one). Every refusal is one JSON line on stderr.
//! A duplicate delivery prints nothing new. The first stderr line says where
//! it listens (`{"listening": "127.0.0.1:8080"}`), which matters with port 0.
//! Environment variables override the file (`FLEXTIME_LISTEN=...`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use flextime_core::config::ConfigLoader;
use flextime_webhooks::config::ReceiverConfig;
use flextime_webhooks::receiver::{ChannelHandOff, Receiver};

#[derive(Debug, Parser)]
#[command(about = "Receive, verify and print webhooks")]
struct Args {
    /// The TOML configuration file.
    #[arg(long)]
    config: std::path::PathBuf,
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{}", serde_json::json!({"error": message}));
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config: ReceiverConfig = match ConfigLoader::new().file(&args.config).load() {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let sources = match config.sources() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let (handoff, mut events) = ChannelHandOff::new(1024);
    let mut builder = Receiver::builder(handoff).on_refusal(|refused| {
        if let Ok(line) = serde_json::to_string(refused) {
            eprintln!("{line}");
        }
    });
    for source in sources {
        builder = builder.source(source);
    }
    let receiver = match builder.build() {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", config.listen)),
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| config.listen.clone(), |a| a.to_string());
    eprintln!("{}", serde_json::json!({"listening": addr}));

    // The printer owns the events: the hand-off completes once an event is
    // in this channel, and it is printed in order.
    let printer = tokio::spawn(async move {
        let stdout = std::io::stdout();
        while let Some(event) = events.recv().await {
            match event.envelope.to_json_bytes() {
                Ok(mut line) => {
                    line.push(b'\n');
                    let mut out = stdout.lock();
                    let _ = out.write_all(&line);
                    let _ = out.flush();
                }
                Err(e) => eprintln!("{}", serde_json::json!({"error": e.to_string()})),
            }
        }
    });
    let app = receiver
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    drop(printer);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server error: {e}")),
    }
}
