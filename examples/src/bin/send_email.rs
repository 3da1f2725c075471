//! Send one email over SMTP, SendGrid or Postmark, optionally carrying a
//! calendar invitation (or cancellation) built from a ScheduleItem.
//!
//! ```text
//! send_email --smtp smtp://127.0.0.1:2525 --from desk@example.com --to ana@example.com \
//!     --subject "Your booking" --text "See you Monday."
//! send_email --sendgrid-base-url https://api.sendgrid.com --sendgrid-key SG.... ...
//! send_email --postmark-base-url https://api.postmarkapp.com --postmark-token TOKEN ...
//! send_email ... --invite-json booking.json            # METHOD:REQUEST invitation
//! send_email ... --invite-json booking.json --cancel   # METHOD:CANCEL
//! ```
//!
//! `--to` may be repeated (one message to all). The invitation's organizer is
//! `--from`; an item without attendees gets the `--to` addresses as
//! attendees. SMTP URLs: `smtp://` (plain), `smtp+starttls://`, `smtps://`,
//! with `user:password@` when the server needs it. Keys can come from
//! `SENDGRID_API_KEY` / `POSTMARK_SERVER_TOKEN`.
//!
//! Prints JSON lines: `{"invitation": {...}}` when there is one, then
//! `{"sent": {receipt}}`. Pointed at Prism (`--sendgrid-base-url
//! http://127.0.0.1:4012`, `--postmark-base-url http://127.0.0.1:4016`) it
//! runs with no account. Errors go to stderr, as `{"error": {"kind",
//! "message"}}` on stdout too, with status 1.

use std::process::ExitCode;

use clap::{ArgGroup, Parser};
use flextime_connectors::email::postmark::Postmark;
use flextime_connectors::email::sendgrid::SendGrid;
use flextime_connectors::email::smtp::Smtp;
use flextime_connectors::email::{EmailMessage, EmailSender, Invitation, Mailbox};
use flextime_core::schedule::{Attendee, Organizer};
use flextime_core::{Error, ScheduleItem, Secret};
use serde_json::json;

/// Send an email.
#[derive(Debug, Parser)]
#[command(name = "send_email")]
#[command(group(ArgGroup::new("transport").required(true).args(["smtp", "sendgrid_base_url", "postmark_base_url"])))]
struct Args {
    /// SMTP server URL (`smtp://host:port`, `smtp+starttls://...`, `smtps://...`).
    #[arg(long)]
    smtp: Option<String>,
    /// SendGrid API base URL (SendGrid's, a proxy's or Prism's).
    #[arg(long, requires = "sendgrid_key")]
    sendgrid_base_url: Option<String>,
    /// SendGrid API key.
    #[arg(long, env = "SENDGRID_API_KEY", hide_env_values = true)]
    sendgrid_key: Option<String>,
    /// Postmark API base URL (Postmark's, a proxy's or Prism's).
    #[arg(long, requires = "postmark_token")]
    postmark_base_url: Option<String>,
    /// Postmark server token.
    #[arg(long, env = "POSTMARK_SERVER_TOKEN", hide_env_values = true)]
    postmark_token: Option<String>,
    /// The sender (`desk@example.com` or `Desk <desk@example.com>`).
    #[arg(long)]
    from: String,
    /// A recipient (repeat for more).
    #[arg(long, required = true)]
    to: Vec<String>,
    /// The subject.
    #[arg(long)]
    subject: String,
    /// The plain-text body.
    #[arg(long)]
    text: String,
    /// An HTML body.
    #[arg(long)]
    html: Option<String>,
    /// A file holding a ScheduleItem as JSON: adds a calendar invitation.
    #[arg(long)]
    invite_json: Option<std::path::PathBuf>,
    /// With --invite-json: send a cancellation instead of an invitation.
    #[arg(long, requires = "invite_json")]
    cancel: bool,
}

fn sender(args: &Args) -> Result<Box<dyn EmailSender>, Error> {
    if let Some(url) = &args.smtp {
        return Ok(Box::new(Smtp::from_url(url)?));
    }
    if let (Some(base), Some(key)) = (&args.sendgrid_base_url, &args.sendgrid_key) {
        return Ok(Box::new(SendGrid::new(
            base,
            &Secret::new(key.clone()),
            |h| h,
        )?));
    }
    if let (Some(base), Some(token)) = (&args.postmark_base_url, &args.postmark_token) {
        return Ok(Box::new(Postmark::new(
            base,
            &Secret::new(token.clone()),
            |h| h,
        )?));
    }
    Err(Error::invalid_input(
        "give --smtp, --sendgrid-base-url with --sendgrid-key, or --postmark-base-url with --postmark-token",
    ))
}

fn invitation(args: &Args, path: &std::path::Path) -> Result<Invitation, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::invalid_input(format!("cannot read {}: {e}", path.display())).with_source(e)
    })?;
    let mut item = ScheduleItem::parse_json(&bytes).map_err(|violations| {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        Error::invalid_input(format!(
            "{} is not a ScheduleItem: {}",
            path.display(),
            list.join("; ")
        ))
    })?;
    let from = Mailbox::from(args.from.as_str());
    let organizer = Organizer {
        email: from.email,
        name: from.name,
    };
    if item.attendees.is_empty() {
        item.attendees = args
            .to
            .iter()
            .map(|t| {
                let m = Mailbox::from(t.as_str());
                let mut a = Attendee::new(m.email);
                a.name = m.name;
                a
            })
            .collect();
    }
    if args.cancel {
        item.organizer.get_or_insert(organizer);
        Invitation::cancel(&item)
    } else {
        Invitation::request(&item, &organizer)
    }
}

async fn run(args: &Args) -> Result<(), Error> {
    let mut message =
        EmailMessage::new(args.from.as_str(), args.subject.clone()).text(args.text.clone());
    for to in &args.to {
        message = message.to(to.as_str());
    }
    if let Some(html) = &args.html {
        message = message.html(html.clone());
    }
    if let Some(path) = &args.invite_json {
        let invite = invitation(args, path)?;
        println!(
            "{}",
            json!({"invitation": {"method": invite.method(), "uid": invite.uid(), "sequence": invite.sequence()}})
        );
        message = message.invitation(invite);
    }
    message.validate()?;
    let sender = sender(args)?;
    let receipt = sender.send(&message).await?;
    println!("{}", json!({ "sent": receipt }));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!(
                "{}",
                json!({"error": {"kind": e.kind().as_str(), "message": e.to_string()}})
            );
            eprintln!("send_email: {e}");
            ExitCode::FAILURE
        }
    }
}
