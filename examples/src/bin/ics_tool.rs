//! ICS (RFC 5545) <-> ScheduleItem JSON lines.
//!
//! ```text
//! cargo run -p flextime-examples --bin ics_tool -- import calendar.ics
//! cargo run -p flextime-examples --bin ics_tool -- import https://example.com/team.ics
//! cargo run -p flextime-examples --bin ics_tool -- export out.ics < items.jsonl
//! cargo run -p flextime-examples --bin ics_tool -- export < items.jsonl > out.ics
//! ```
//!
//! `import FILE_OR_URL` reads an iCalendar file (`-` for stdin) or fetches
//! an `http`, `https` or `webcal` URL and prints one ScheduleItem JSON per
//! line, one per UID, with overrides folded into the master's recurrence.
//! An event that does not map is reported on stderr and skipped.
//!
//! `export [FILE]` reads ScheduleItem JSON lines from stdin and writes one
//! VCALENDAR (with a VTIMEZONE per zone used) to FILE, or to stdout.
//!
//! Exit status: 0 when everything was read; 2 when the input (or one of its
//! events, or one JSON line) is invalid, with the line named on stderr; 1
//! for other failures (network, file system).

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flextime_connectors::ics::feed::IcsFeed;
use flextime_connectors::ics::{parse_calendar, write_calendar};
use flextime_core::{Error, ErrorKind, ScheduleItem};

/// Convert between iCalendar and ScheduleItem JSON lines.
#[derive(Debug, Parser)]
#[command(name = "ics_tool")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read an .ics file or URL; print one ScheduleItem JSON per line.
    Import {
        /// A file path, `-` for stdin, or an http(s):// or webcal:// URL.
        source: String,
    },
    /// Read ScheduleItem JSON lines from stdin; write iCalendar.
    Export {
        /// Where to write (stdout when absent).
        file: Option<std::path::PathBuf>,
    },
}

fn is_url(s: &str) -> bool {
    ["http://", "https://", "webcal://"]
        .iter()
        .any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::permanent(format!("{what}: {e}")).with_source(e)
}

/// Imports; returns the number of events that did not map.
async fn import(source: &str) -> flextime_core::Result<usize> {
    let (items, errors) = if is_url(source) {
        let fetched = IcsFeed::new(source)?.fetch().await?;
        (fetched.items, fetched.errors)
    } else {
        let mut text = String::new();
        if source == "-" {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| io_error("stdin", e))?;
        } else {
            text = std::fs::read_to_string(source).map_err(|e| io_error(source, e))?;
        }
        parse_calendar(&text)?.events_lossy()
    };
    let mut out = std::io::stdout().lock();
    for item in &items {
        writeln!(out, "{}", item.to_json()?).map_err(|e| io_error("stdout", e))?;
    }
    out.flush().map_err(|e| io_error("stdout", e))?;
    for e in &errors {
        eprintln!("ics_tool: skipped an event: {e}");
    }
    Ok(errors.len())
}

fn export(file: Option<&std::path::Path>) -> flextime_core::Result<()> {
    let mut items = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| io_error("stdin", e))?;
        if line.trim().is_empty() {
            continue;
        }
        let item: ScheduleItem = serde_json::from_str(&line).map_err(|e| {
            Error::invalid_input(format!("stdin line {}: not a ScheduleItem: {e}", n + 1))
        })?;
        items.push(item);
    }
    let ics = write_calendar(&items);
    match file {
        Some(path) => {
            std::fs::write(path, ics).map_err(|e| io_error(&path.display().to_string(), e))
        }
        None => std::io::stdout()
            .lock()
            .write_all(ics.as_bytes())
            .map_err(|e| io_error("stdout", e)),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        Command::Import { source } => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ics_tool: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            runtime.block_on(import(source)).map(|skipped| skipped == 0)
        }
        Command::Export { file } => export(file.as_deref()).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("ics_tool: {e}");
            if e.kind() == ErrorKind::InvalidInput {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
