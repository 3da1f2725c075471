//! A tour of flextime-core on embedded defaults: parse a CloudEvent whose
//! data is a recurring booking, validate it, expand its occurrences in a
//! window, and print everything as JSON lines.
//!
//! ```text
//! cargo run -p flextime-examples --bin core_tour
//! cargo run -p flextime-examples --bin core_tour -- --event my-event.json --from 2026-12-01 --days 14
//! ```
//!
//! Output: one line for the envelope, one per occurrence, one summary line.
//! A malformed event or an invalid item prints its violations on stderr and
//! exits with status 2.

use std::process::ExitCode;

use chrono::{NaiveDate, TimeZone, Utc};
use clap::Parser;
use flextime_core::{Envelope, ScheduleItem};
use serde_json::json;

/// The built-in event: a weekly booking with an exception and a moved instance.
const SAMPLE_EVENT: &str = r#"{
  "specversion": "1.0",
  "id": "0192d1f0-8a4e-7c3b-9f61-2f0e5d1a7b9c",
  "source": "https://flextime.example/bookings",
  "type": "booking.confirmed",
  "subject": "booking/bk_123",
  "time": "2026-11-25T10:00:00Z",
  "datacontenttype": "application/json",
  "data": {
    "id": "bk_123",
    "kind": "booking",
    "title": "Physio follow-up",
    "location": "Room 2",
    "start": {"date_time": "2026-11-30T09:00:00", "tz": "Europe/Berlin"},
    "end": {"date_time": "2026-11-30T09:45:00", "tz": "Europe/Berlin"},
    "recurrence": {
      "rrule": ["FREQ=WEEKLY;BYDAY=MO,TH;COUNT=8"],
      "exdate": [{"date_time": "2026-12-03T09:00:00", "tz": "Europe/Berlin"}],
      "overrides": [{
        "recurrence_id": {"date_time": "2026-12-07T09:00:00", "tz": "Europe/Berlin"},
        "start": {"date_time": "2026-12-07T14:00:00", "tz": "Europe/Berlin"},
        "end": {"date_time": "2026-12-07T14:45:00", "tz": "Europe/Berlin"},
        "title": "Physio follow-up (afternoon)"
      }]
    },
    "attendees": [{"email": "patient@example.com", "name": "Pat", "participation_status": "accepted"}],
    "organizer": {"email": "clinic@example.com", "name": "Clinic"},
    "updated_at": "2026-11-25T09:59:00Z"
  }
}"#;

#[derive(Debug, Parser)]
#[command(about = "Parse a CloudEvent carrying a ScheduleItem and expand its occurrences")]
struct Args {
    /// A structured-mode CloudEvent (JSON) whose data is a ScheduleItem;
    /// the built-in sample when omitted.
    #[arg(long)]
    event: Option<std::path::PathBuf>,
    /// First day of the window (UTC), YYYY-MM-DD.
    #[arg(long, default_value = "2026-11-30")]
    from: NaiveDate,
    /// Length of the window in days.
    #[arg(long, default_value_t = 31)]
    days: u32,
    /// Most occurrences to print.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bytes = match &args.event {
        Some(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => SAMPLE_EVENT.as_bytes().to_vec(),
    };
    match run(&args, &bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args, bytes: &[u8]) -> Result<(), String> {
    let envelope = Envelope::from_json_slice(bytes).map_err(|e| e.to_string())?;
    let data = envelope
        .data_as::<serde_json::Value>()
        .map_err(|e| e.to_string())?;
    let item = ScheduleItem::from_json_value(data).map_err(|violations| {
        let lines: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
        format!(
            "the event's data is not a valid ScheduleItem:\n{}",
            lines.join("\n")
        )
    })?;
    println!(
        "{}",
        json!({
            "envelope": {
                "id": envelope.id(),
                "source": envelope.source(),
                "type": envelope.event_type(),
                "subject": envelope.subject(),
            },
            "item": {"id": item.id, "kind": item.kind, "title": item.title, "recurring": item.is_recurring()},
        })
    );
    let from = Utc.from_utc_datetime(&args.from.and_hms_opt(0, 0, 0).unwrap_or_default());
    let to = from + chrono::Duration::days(i64::from(args.days));
    let occurrences = item
        .occurrences(from, to, args.limit)
        .map_err(|e| e.to_string())?;
    for o in &occurrences {
        println!(
            "{}",
            json!({
                "occurrence": o.recurrence_id.to_string(),
                "start": o.start.to_string(),
                "end": o.end.to_string(),
                "start_utc": o.start_utc,
                "title": o.title,
                "overridden": o.overridden,
            })
        );
    }
    println!(
        "{}",
        json!({"summary": {"window_start": from, "window_end": to, "occurrences": occurrences.len()}})
    );
    Ok(())
}
