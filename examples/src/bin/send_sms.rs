//! Send an SMS through Twilio Messages.
//!
//! ```sh
//! send_sms --base-url http://127.0.0.1:4011 --account-sid AC... --auth-token T \
//!     --from +14155550000 --to +14155552671 --body "Your booking is confirmed" \
//!     [--dedup-key booking-42/confirmation] [--repeat 2] \
//!     [--messaging-service-sid MG...] [--status-callback https://...]
//! ```
//!
//! Numbers are checked (E.164) before anything is sent. Prints one JSON line
//! per send: `{"event":"sent","sid":...,"status":...,"to":...,"deduplicated":false}`.
//! With `--dedup-key` and `--repeat 2`, the second line comes from the local
//! de-duplication store (`"deduplicated":true`) and Twilio is called once.
//! Exits 2 on invalid input, 1 on any other failure (the error on stderr as
//! a JSON line). `--base-url` defaults to Twilio's API; point it at Prism to
//! run with no account.

use clap::Parser;
use flextime_connectors::sms::twilio::{DEFAULT_BASE_URL, Twilio, TwilioCredentials};
use flextime_connectors::sms::{SmsFrom, SmsMessage, SmsSender};
use flextime_core::ErrorKind;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Send an SMS with Twilio")]
struct Args {
    /// Twilio's API base URL (a proxy, or Prism).
    #[arg(long, default_value = DEFAULT_BASE_URL)]
    base_url: String,
    /// The account SID (AC + 32 hex digits).
    #[arg(long)]
    account_sid: String,
    /// The account's auth token.
    #[arg(long)]
    auth_token: String,
    /// The sender: an E.164 number or an alphanumeric sender ID.
    #[arg(long, required_unless_present = "messaging_service_sid")]
    from: Option<String>,
    /// Send through a messaging service (MG...) instead of --from.
    #[arg(long, conflicts_with = "from")]
    messaging_service_sid: Option<String>,
    /// The recipient (E.164).
    #[arg(long)]
    to: String,
    /// The text.
    #[arg(long)]
    body: String,
    /// Where Twilio posts status updates.
    #[arg(long)]
    status_callback: Option<String>,
    /// Send at most once per key.
    #[arg(long)]
    dedup_key: Option<String>,
    /// Send this many times (with --dedup-key, only the first reaches Twilio).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "{}",
                json!({"event": "error", "kind": err.kind().as_str(), "message": err.to_string()})
            );
            if err.kind() == ErrorKind::InvalidInput {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(args: &Args) -> flextime_core::Result<()> {
    let sender = Twilio::builder(
        &args.account_sid,
        TwilioCredentials::auth_token(&args.auth_token),
    )
    .base_url(&args.base_url)
    .build()?;
    let from = match (&args.messaging_service_sid, &args.from) {
        (Some(sid), _) => SmsFrom::MessagingService(sid.clone()),
        (None, Some(from)) => SmsFrom::Number(from.clone()),
        (None, None) => {
            return Err(flextime_core::Error::invalid_input(
                "--from or --messaging-service-sid is required",
            ));
        }
    };
    let message = SmsMessage {
        to: args.to.clone(),
        body: args.body.clone(),
        from,
        status_callback: args.status_callback.clone(),
        dedup_key: args.dedup_key.clone(),
    };
    for _ in 0..args.repeat.max(1) {
        let receipt = sender.send(&message).await?;
        println!(
            "{}",
            json!({
                "event": "sent",
                "sid": receipt.id,
                "status": receipt.status.as_str(),
                "to": receipt.to,
                "deduplicated": receipt.deduplicated,
                "dedup_key": args.dedup_key,
            })
        );
    }
    Ok(())
}
