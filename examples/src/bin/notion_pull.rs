//! Pull schedule items from a Notion data source (API 2025-09-03).
//!
//! ```text
//! cargo run -p flextime-examples --bin notion_pull -- \
//!     --base-url https://api.notion.com --token ntn_... --data-source DS_ID \
//!     [--title-property Name] [--date-property Date] [--status-property Status] [--state FILE]
//! ```
//!
//! Prints one JSON line per change (`{"op": "upsert", "page_id", "item"}` or
//! `{"op": "delete", "page_id"}`), then a summary line. With `--state FILE`
//! the checkpoint is kept there and the next run prints only what changed.
//! Pointed at Prism (`--base-url http://127.0.0.1:4014`) it runs with no
//! Notion account. Errors go to stderr with status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use flextime_connectors::notion::{Notion, NotionMapping, StatusKind};
use flextime_core::{Checkpoint, Operation, Source};
use futures::StreamExt;
use serde_json::json;

/// Pull schedule items from a Notion data source.
#[derive(Debug, Parser)]
#[command(name = "notion_pull")]
struct Args {
    /// The API base URL (Notion's, a proxy's, or Prism's).
    #[arg(long)]
    base_url: String,
    /// An integration token.
    #[arg(long, env = "NOTION_TOKEN", hide_env_values = true)]
    token: String,
    /// The data source id.
    #[arg(long)]
    data_source: String,
    /// The title property.
    #[arg(long, default_value = "Name")]
    title_property: String,
    /// The date property.
    #[arg(long, default_value = "Date")]
    date_property: String,
    /// A status property (type `status`).
    #[arg(long)]
    status_property: Option<String>,
    /// Where to keep the checkpoint between runs.
    #[arg(long)]
    state: Option<PathBuf>,
}

async fn run(args: Args) -> Result<(), String> {
    let mut mapping = NotionMapping::new(args.title_property, args.date_property);
    mapping.status = args.status_property.map(|p| (p, StatusKind::Status));
    let notion = Notion::builder(args.token, args.data_source, mapping)
        .base_url(args.base_url)
        .build()
        .map_err(|e| e.to_string())?;
    let since = match &args.state {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Some(Checkpoint::new(text.trim()))
        }
        _ => None,
    };
    let mut stream = notion.changes(since).await.map_err(|e| e.to_string())?;
    let mut count = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        for change in &batch.changes {
            count += 1;
            let line = match change.op {
                Operation::Upsert => {
                    json!({"op": "upsert", "page_id": change.key.id, "item": change.data})
                }
                Operation::Delete => json!({"op": "delete", "page_id": change.key.id}),
            };
            println!("{line}");
        }
        if let Some(path) = &args.state {
            std::fs::write(path, batch.checkpoint.as_str())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    println!(
        "{}",
        json!({"summary": {"changes": count, "skipped": notion.skipped()}})
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notion_pull: {e}");
            ExitCode::FAILURE
        }
    }
}
