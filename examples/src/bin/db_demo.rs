//! flextime-db end to end: connect to a database by URL, apply the
//! migrations, upsert a batch of ScheduleItems, update one with a version
//! precondition, delete one, read them back typed, and print this run's
//! change feed as JSON lines.
//!
//! ```text
//! cargo run -p flextime-examples --bin db_demo -- --url sqlite://demo.db
//! cargo run -p flextime-examples --bin db_demo -- --url postgres://user:pw@localhost/app
//! ```
//!
//! URLs: `sqlite://` (or `sqlite::memory:`), `postgres://`, `mysql://`,
//! `mongodb://`, `redis://`. Output: one line per change of this run
//! (`{"seq", "op", "id", "version", "updated_at", "title"}`), then one summary
//! line. Errors go to stderr (the URL's password redacted) with status 1.

use std::process::ExitCode;

use chrono::{Duration, NaiveDate, Utc};
use clap::Parser;
use flextime_core::{ItemKind, ItemTime, ScheduleItem};
use flextime_db::{AdapterExt, DbOptions, Expect, WriteOp, connect, redact_url};
use serde_json::json;

/// Upsert and read ScheduleItems through flextime-db and print the change feed.
#[derive(Debug, Parser)]
#[command(name = "db_demo")]
struct Args {
    /// Database URL: sqlite://, postgres://, mysql://, mongodb:// or redis://.
    #[arg(long)]
    url: String,
    /// The collection to write to.
    #[arg(long, default_value = "schedule_items")]
    collection: String,
    /// How many items to upsert (1 to 1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    count: u16,
}

fn item(n: u16) -> ScheduleItem {
    let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default()
        + Duration::days(i64::from(n % 28));
    let start = day.and_hms_opt(9, 0, 0).unwrap_or_default();
    ScheduleItem::new(
        format!("item-{n:04}"),
        ItemKind::Booking,
        format!("Booking {n}"),
        ItemTime::zoned(start, chrono_tz::Europe::Berlin),
        ItemTime::zoned(start + Duration::minutes(45), chrono_tz::Europe::Berlin),
        Utc::now(),
    )
}

async fn run(args: &Args) -> flextime_core::Result<()> {
    let db = connect(&args.url, DbOptions::default()).await?;
    let c = args.collection.as_str();

    let items: Vec<ScheduleItem> = (1..=args.count).map(item).collect();
    // One atomic batch, each item serialized straight to JSON text.
    let written = db
        .upsert_batch_as(c, items.iter().map(|i| (i.id.as_str(), i)))
        .await?;
    let first_seq = written.first().map_or(0, |w| w.seq);

    // Update the first item, but only if nobody changed it since.
    let mut changed = items[0].clone();
    changed.title = format!("{} (moved)", changed.title);
    changed.sequence += 1;
    let updated = db
        .upsert_as(
            c,
            &changed.id,
            &changed,
            Expect::Version(written[0].version),
        )
        .await?;
    // Cancel the last one: a tombstone the feed carries.
    if let Some(last) = items.last().filter(|_| items.len() > 1) {
        db.write(vec![WriteOp::delete(c, &last.id)]).await?;
    }

    // Read back, typed.
    let back: Option<ScheduleItem> = db.get_as(c, &changed.id).await?;
    if back.as_ref() != Some(&changed) {
        return Err(flextime_core::Error::internal(
            "read-back differs from what was written",
        ));
    }
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    let live = db
        .get_many(c, &ids)
        .await?
        .iter()
        .filter(|r| !r.is_deleted())
        .count();

    // This run's change feed, page by page.
    let mut cursor = first_seq.saturating_sub(1);
    let mut changes = 0;
    loop {
        let page = db.changes(c, cursor, 100).await?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        for r in &page {
            changes += 1;
            let title = r.data.as_ref().and_then(|d| d.get("title")).cloned();
            println!(
                "{}",
                json!({
                    "seq": r.seq,
                    "op": if r.is_deleted() { "delete" } else { "upsert" },
                    "id": r.id,
                    "version": r.version,
                    "updated_at": r.updated_at,
                    "title": title,
                })
            );
        }
    }
    println!(
        "{}",
        json!({"summary": {
            "backend": db.backend(),
            "collection": c,
            "upserted": written.len(),
            "updated_version": updated.version,
            "live": live,
            "changes": changes,
            "cursor": cursor,
        }})
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("db_demo: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("db_demo: {} ({e})", redact_url(&args.url));
            ExitCode::from(1)
        }
    }
}
