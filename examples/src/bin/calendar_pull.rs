//! Pull events from a CalDAV server incrementally and print them as JSON
//! lines.
//!
//! ```text
//! cargo run -p flextime-examples --bin calendar_pull -- \
//!     --caldav http://127.0.0.1:5232/ --user ann --password secret --state pull.json
//! ```
//!
//! The first run prints every event of every VEVENT calendar of the user
//! (or only of `--calendar ID`, an id as listed: the collection's path) and,
//! with `--state FILE`, saves each calendar's sync token and the UID of each
//! event href there; the next run prints only what changed since. One line
//! per change:
//!
//! ```text
//! {"op":"upsert","uid":"standup-1","calendar":"/ann/work/","href":"/ann/work/standup-1.ics","item":{...ScheduleItem, with recurrence and overrides...}}
//! {"op":"delete","uid":"lunch-7","calendar":"/ann/work/","href":"/ann/work/lunch-7.ics"}
//! ```
//!
//! A delete names the UID the state file remembers for the href (`null`
//! when unknown). When the server rejects a saved token, the calendar is
//! listed again in full and every event the state knew but the listing
//! lacks is printed as a delete. The state is written (atomically) only
//! after every line was printed. Errors go to stderr with status 1; the
//! password is never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use flextime_connectors::caldav::CalDavConnector;
use flextime_connectors::calendar::{CalendarProvider, EventChange};
use flextime_connectors::http::Auth;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Pull CalDAV events incrementally as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "calendar_pull")]
struct Args {
    /// The CalDAV server URL (its root, a principal or a calendar home).
    #[arg(long)]
    caldav: String,
    /// The user name.
    #[arg(long)]
    user: String,
    /// The password.
    #[arg(long)]
    password: String,
    /// Where to keep sync tokens between runs (JSON); without it every run
    /// prints everything.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Only this calendar (its id, the collection path, as listed).
    #[arg(long)]
    calendar: Option<String>,
}

/// What a run leaves for the next one.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Per calendar id.
    calendars: BTreeMap<String, CalendarState>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CalendarState {
    /// The sync token to resume from.
    token: String,
    /// href -> UID of every event seen.
    uids: BTreeMap<String, String>,
}

fn load_state(path: &Path) -> Result<State, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("state file {} is not valid: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("cannot read state file {}: {e}", path.display())),
    }
}

fn save_state(path: &Path, state: &State) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write state file {}: {e}", path.display()))
}

async fn run(args: &Args) -> Result<(), String> {
    let caldav = CalDavConnector::new(&args.caldav, Auth::basic(&args.user, &args.password))
        .map_err(|e| e.to_string())?;
    let mut state = match &args.state {
        Some(path) => load_state(path)?,
        None => State::default(),
    };
    let calendars = match &args.calendar {
        Some(id) => vec![id.clone()],
        None => caldav
            .list_calendars()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|c| c.id)
            .collect(),
    };
    for calendar in calendars {
        let known = state.calendars.remove(&calendar).unwrap_or_default();
        let token = (!known.token.is_empty()).then_some(known.token.as_str());
        let sync = caldav
            .sync_events(&calendar, token)
            .await
            .map_err(|e| e.to_string())?;
        let mut uids = if sync.full_resync {
            BTreeMap::new()
        } else {
            known.uids.clone()
        };
        for change in &sync.changes {
            match change {
                EventChange::Upsert(event) => {
                    uids.insert(event.id.clone(), event.item.id.clone());
                    println!(
                        "{}",
                        json!({
                            "op": "upsert",
                            "uid": event.item.id,
                            "calendar": calendar,
                            "href": event.id,
                            "item": event.item,
                        })
                    );
                }
                EventChange::Delete { id } => {
                    let uid = uids.remove(id).or_else(|| known.uids.get(id).cloned());
                    println!(
                        "{}",
                        json!({"op": "delete", "uid": uid, "calendar": calendar, "href": id})
                    );
                }
            }
        }
        if sync.full_resync {
            // Known before, absent from the full listing: deleted meanwhile.
            for (href, uid) in &known.uids {
                if !uids.contains_key(href) {
                    println!(
                        "{}",
                        json!({"op": "delete", "uid": uid, "calendar": calendar, "href": href})
                    );
                }
            }
        }
        state.calendars.insert(
            calendar,
            CalendarState {
                token: sync.next_token,
                uids,
            },
        );
    }
    if let Some(path) = &args.state {
        save_state(path, &state)?;
    }
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
            eprintln!("calendar_pull: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calendar_pull: {e}");
            ExitCode::FAILURE
        }
    }
}
