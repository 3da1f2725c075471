//! Email: one [`EmailSender`] trait over SMTP (feature `smtp`, through
//! lettre), SendGrid v3 (feature `sendgrid`) and Postmark (feature
//! `postmark`), with booking invitations as iTIP calendar parts.
//!
//! - [`EmailMessage`]: from, to / cc / bcc, reply-to, subject, text and/or
//!   HTML body, extra headers, attachments, metadata and an optional
//!   [`Invitation`]. Every sender calls [`EmailMessage::validate`] first, so
//!   a bad address or header is a typed `InvalidInput` error and no request
//!   is made.
//! - [`Invitation::request`] / [`Invitation::cancel`] turn a
//!   [`ScheduleItem`](flextime_core::ScheduleItem) into a
//!   `text/calendar; method=REQUEST` (or `CANCEL`) part (needs the `ics`
//!   feature, which the three sender features enable).
//! - [`EmailSender::send_batch`] returns one result per message, in order.
//!
//! # Retries
//!
//! Neither SendGrid nor Postmark takes an idempotency key, and SMTP has none
//! either, so a send that may have reached the peer is **never retried
//! automatically**: after a 5xx, a timeout or a dropped connection the error
//! is returned (retryable by kind) and the caller decides, typically through
//! an outbox that de-duplicates. Only what certainly was not processed is
//! retried by the HTTP senders: a 429 (honouring `Retry-After`) and a refused
//! connection. See `docs.md` in this folder.
//!
//! ```
//! use flextime_connectors::email::{EmailMessage, Mailbox};
//!
//! let msg = EmailMessage::new("Flextime <bookings@example.com>", "Your booking")
//!     .to("ana@example.com")
//!     .cc(Mailbox::named("Bo", "bo@example.com"))
//!     .text("See you on Monday.");
//! assert!(msg.validate().is_ok());
//!
//! let bad = EmailMessage::new("bookings@example.com", "Hi").to("not an address").text("x");
//! let err = bad.validate().unwrap_err();
//! assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
//! assert!(err.to_string().contains("to[0]"));
//! ```

#[cfg(feature = "postmark")]
pub mod postmark;
#[cfg(feature = "sendgrid")]
pub mod sendgrid;
#[cfg(feature = "smtp")]
pub mod smtp;

use std::collections::BTreeMap;
use std::fmt;

use flextime_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// The largest message accepted: bodies, attachments and invitation
/// together, before any transfer encoding (25 MiB).
pub const MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

/// The most messages one [`EmailSender::send_batch`] call takes.
pub const MAX_BATCH: usize = 10_000;

/// Header names a message may not set itself (the sender writes them).
pub const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "sender",
    "return-path",
];

/// An address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mailbox {
    /// The address (`ana@example.com`).
    pub email: String,
    /// The display name (`Ana Lima`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Mailbox {
    /// An address without a name.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: None,
        }
    }

    /// An address with a display name.
    pub fn named(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: Some(name.into()),
        }
    }

    /// Parses `ana@example.com` or `Ana Lima <ana@example.com>` and checks
    /// it; a bad one is an `InvalidInput` error.
    pub fn parse(s: &str) -> Result<Self> {
        let m = Self::from(s);
        m.check("address")?;
        Ok(m)
    }

    /// Checks the address (RFC 5322 addr-spec) and the name (no line
    /// breaks or control characters); `field` names it in the error.
    pub fn check(&self, field: &str) -> Result<()> {
        if !email_address::EmailAddress::is_valid(&self.email)
            || self.email.contains(['<', '>', ' '])
        {
            return Err(Error::invalid_input(format!(
                "{field}: {:?} is not an email address",
                self.email
            )));
        }
        if self.name.as_deref().is_some_and(has_control) {
            return Err(Error::invalid_input(format!(
                "{field}: the display name contains control characters"
            )));
        }
        Ok(())
    }
}

impl From<&str> for Mailbox {
    /// Splits `Name <address>`; nothing is checked until
    /// [`check`](Mailbox::check) or [`EmailMessage::validate`].
    fn from(s: &str) -> Self {
        let s = s.trim();
        if let (Some(open), true) = (s.rfind('<'), s.ends_with('>')) {
            let name = s[..open].trim().trim_matches('"').trim();
            return Self {
                email: s[open + 1..s.len() - 1].trim().to_owned(),
                name: (!name.is_empty()).then(|| name.to_owned()),
            };
        }
        Self::new(s)
    }
}

impl From<String> for Mailbox {
    fn from(s: String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<&String> for Mailbox {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl fmt::Display for Mailbox {
    /// `"Name" <address>` (the name quoted, `"` and `\` escaped), or the
    /// bare address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "\"{escaped}\" <{}>", self.email)
            }
            None => f.write_str(&self.email),
        }
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A file attached to a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name shown to the recipient.
    pub filename: String,
    /// The MIME type (`application/pdf`).
    pub content_type: String,
    /// The bytes.
    pub content: Vec<u8>,
    /// A Content-ID for an inline part referenced from the HTML as
    /// `cid:...`; `None` for a plain attachment.
    pub content_id: Option<String>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.content.len())
            .field("content_id", &self.content_id)
            .finish()
    }
}

impl Attachment {
    /// A plain attachment.
    pub fn new(
        filename: impl Into<String>,
        content_type: impl Into<String>,
        content: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            filename: filename.into(),
            content_type: content_type.into(),
            content: content.into(),
            content_id: None,
        }
    }

    /// Makes it an inline part with this Content-ID.
    #[must_use]
    pub fn inline(mut self, content_id: impl Into<String>) -> Self {
        self.content_id = Some(content_id.into());
        self
    }
}

/// The iTIP method of an [`Invitation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InvitationMethod {
    /// An invitation or an update of one.
    Request,
    /// A cancellation.
    Cancel,
}

impl InvitationMethod {
    /// `REQUEST` or `CANCEL`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "REQUEST",
            Self::Cancel => "CANCEL",
        }
    }
}

/// A calendar invitation carried by a message: an iTIP VCALENDAR sent as a
/// `text/calendar; method=...` part (and as an `invite.ics` attachment for
/// clients that only show attachments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    method: InvitationMethod,
    uid: String,
    sequence: u32,
    ics: String,
}

impl Invitation {
    /// An invitation (or update) for `item` from `organizer`: `METHOD:REQUEST`,
    /// `ORGANIZER`, every attendee with `RSVP=TRUE`, the item's `SEQUENCE`.
    /// The item must be valid and have attendees (`InvalidInput` otherwise).
    #[cfg(feature = "ics")]
    pub fn request(
        item: &flextime_core::ScheduleItem,
        organizer: &flextime_core::schedule::Organizer,
    ) -> Result<Self> {
        Ok(Self {
            method: InvitationMethod::Request,
            uid: item.id.clone(),
            sequence: item.sequence,
            ics: crate::ics::itip::request(item, organizer)?,
        })
    }

    /// A cancellation of `item` (the whole event): `METHOD:CANCEL`,
    /// `STATUS:CANCELLED`, `SEQUENCE` one above the item's. The item must
    /// be valid and have an organizer (`InvalidInput` otherwise).
    #[cfg(feature = "ics")]
    pub fn cancel(item: &flextime_core::ScheduleItem) -> Result<Self> {
        Ok(Self {
            method: InvitationMethod::Cancel,
            uid: item.id.clone(),
            sequence: item.sequence.saturating_add(1),
            ics: crate::ics::itip::cancel(item)?,
        })
    }

    /// An invitation from iCalendar text written elsewhere; it must hold a
    /// `METHOD` line matching `method`.
    pub fn from_ics(
        method: InvitationMethod,
        uid: impl Into<String>,
        sequence: u32,
        ics: impl Into<String>,
    ) -> Result<Self> {
        let ics = ics.into();
        let line = format!("\nMETHOD:{}\r", method.as_str());
        if !ics.contains(&line) {
            return Err(Error::invalid_input(format!(
                "invitation: the calendar has no METHOD:{} line",
                method.as_str()
            )));
        }
        Ok(Self {
            method,
            uid: uid.into(),
            sequence,
            ics,
        })
    }

    /// `REQUEST` or `CANCEL`.
    pub fn method(&self) -> InvitationMethod {
        self.method
    }

    /// The event's UID.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The `SEQUENCE` the calendar carries.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// The iCalendar text (CRLF lines).
    pub fn ics(&self) -> &str {
        &self.ics
    }

    /// `text/calendar; charset=UTF-8; method=REQUEST` (or `CANCEL`).
    pub fn content_type(&self) -> String {
        format!(
            "text/calendar; charset=UTF-8; method={}",
            self.method.as_str()
        )
    }

    /// The attachment's file name: `invite.ics`, or `cancel.ics`.
    pub fn filename(&self) -> &'static str {
        match self.method {
            InvitationMethod::Request => "invite.ics",
            InvitationMethod::Cancel => "cancel.ics",
        }
    }
}

/// One email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// The sender.
    pub from: Mailbox,
    /// Recipients.
    pub to: Vec<Mailbox>,
    /// Copy recipients.
    pub cc: Vec<Mailbox>,
    /// Blind copy recipients (never shown in the headers).
    pub bcc: Vec<Mailbox>,
    /// Where replies go.
    pub reply_to: Option<Mailbox>,
    /// The subject (any Unicode; encoded as each transport needs).
    pub subject: String,
    /// The plain-text body.
    pub text: Option<String>,
    /// The HTML body.
    pub html: Option<String>,
    /// Extra headers (`X-Entity-Ref-ID`, `List-Unsubscribe` ...), in order;
    /// the [`RESERVED_HEADERS`] are refused.
    pub headers: Vec<(String, String)>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// A calendar invitation.
    pub invitation: Option<Invitation>,
    /// Key/value pairs that travel with the message for tracking: SendGrid
    /// `custom_args`, Postmark `Metadata`; SMTP does not send them.
    pub metadata: BTreeMap<String, String>,
}

impl EmailMessage {
    /// A message from `from` with `subject` and nothing else yet.
    pub fn new(from: impl Into<Mailbox>, subject: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: None,
            subject: subject.into(),
            text: None,
            html: None,
            headers: Vec::new(),
            attachments: Vec::new(),
            invitation: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Adds a recipient.
    #[must_use]
    pub fn to(mut self, to: impl Into<Mailbox>) -> Self {
        self.to.push(to.into());
        self
    }

    /// Adds a copy recipient.
    #[must_use]
    pub fn cc(mut self, cc: impl Into<Mailbox>) -> Self {
        self.cc.push(cc.into());
        self
    }

    /// Adds a blind copy recipient.
    #[must_use]
    pub fn bcc(mut self, bcc: impl Into<Mailbox>) -> Self {
        self.bcc.push(bcc.into());
        self
    }

    /// Sets the reply-to address.
    #[must_use]
    pub fn reply_to(mut self, reply_to: impl Into<Mailbox>) -> Self {
        self.reply_to = Some(reply_to.into());
        self
    }

    /// Sets the plain-text body.
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Sets the HTML body.
    #[must_use]
    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds an attachment.
    #[must_use]
    pub fn attach(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Sets the calendar invitation.
    #[must_use]
    pub fn invitation(mut self, invitation: Invitation) -> Self {
        self.invitation = Some(invitation);
        self
    }

    /// Adds a metadata pair.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Every recipient: to, then cc, then bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &Mailbox> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }

    /// The size that counts against [`MAX_MESSAGE_BYTES`].
    pub fn size(&self) -> usize {
        self.text.as_ref().map_or(0, String::len)
            + self.html.as_ref().map_or(0, String::len)
            + self.invitation.as_ref().map_or(0, |i| i.ics.len())
            + self
                .attachments
                .iter()
                .map(|a| a.content.len())
                .sum::<usize>()
    }

    /// Checks everything a sender needs before making a request, and
    /// reports every problem at once in one `InvalidInput` error: the
    /// addresses, at least one recipient, a subject without line breaks, a
    /// text or HTML body, header names and values, attachments, the size.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut check = |field: String, m: &Mailbox| {
            if let Err(e) = m.check(&field) {
                problems.push(e.message().to_owned());
            }
        };
        check("from".into(), &self.from);
        for (list, name) in [(&self.to, "to"), (&self.cc, "cc"), (&self.bcc, "bcc")] {
            for (i, m) in list.iter().enumerate() {
                check(format!("{name}[{i}]"), m);
            }
        }
        if let Some(r) = &self.reply_to {
            check("reply_to".into(), r);
        }
        if self.recipients().next().is_none() {
            problems.push("to: at least one recipient (to, cc or bcc) is needed".into());
        }
        if self.subject.trim().is_empty() {
            problems.push("subject: must not be empty".into());
        } else if has_control(&self.subject) {
            problems.push("subject: must not contain line breaks or control characters".into());
        }
        if self.text.as_deref().is_none_or(str::is_empty)
            && self.html.as_deref().is_none_or(str::is_empty)
        {
            problems.push("body: a text or an HTML body is needed".into());
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
            if !valid_name {
                problems.push(format!("headers[{i}]: {name:?} is not a header name"));
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                problems.push(format!(
                    "headers[{i}]: {name} is set by the sender and cannot be given"
                ));
            }
            if has_control(value) {
                problems.push(format!(
                    "headers[{i}]: the value of {name} contains line breaks or control characters"
                ));
            }
        }
        for (i, a) in self.attachments.iter().enumerate() {
            if a.filename.trim().is_empty() || has_control(&a.filename) {
                problems.push(format!(
                    "attachments[{i}]: the file name must be non-empty, without control characters"
                ));
            }
            if !is_mime_type(&a.content_type) {
                problems.push(format!(
                    "attachments[{i}]: {:?} is not a MIME type",
                    a.content_type
                ));
            }
            if a.content_id
                .as_deref()
                .is_some_and(|c| c.is_empty() || has_control(c) || c.contains(['<', '>', ' ']))
            {
                problems.push(format!(
                    "attachments[{i}]: the content id must be non-empty, without spaces, angle brackets or control characters"
                ));
            }
        }
        for key in self.metadata.keys() {
            if key.is_empty() || has_control(key) {
                problems.push(format!("metadata: {key:?} is not a usable key"));
            }
        }
        let size = self.size();
        if size > MAX_MESSAGE_BYTES {
            problems.push(format!(
                "size: {size} bytes is over the limit of {MAX_MESSAGE_BYTES}"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "email: {}",
                problems.join("; ")
            )))
        }
    }
}

fn is_mime_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or("").trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(essence.split_once('/'), Some((a, b)) if token(a) && token(b)) && !has_control(s)
}

/// What a sender knows about one accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailReceipt {
    /// The sender that handed it over (`smtp`, `sendgrid`, `postmark`).
    pub provider: String,
    /// The provider's message id (SMTP: the `Message-ID` header written;
    /// SendGrid: `X-Message-Id`; Postmark: `MessageID`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The addresses it was accepted for.
    pub recipients: Vec<String>,
    /// The provider's own words (the SMTP reply, Postmark's `Message` and
    /// `SubmittedAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Sends email.
#[async_trait::async_trait]
pub trait EmailSender: Send + Sync {
    /// The provider's name (`smtp`, `sendgrid`, `postmark`).
    fn provider(&self) -> &str;

    /// Sends one message. A message that fails
    /// [`validate`](EmailMessage::validate) is an `InvalidInput` error and
    /// nothing is sent. A send that may have reached the peer is not
    /// retried (see the [module](self) docs).
    async fn send(&self, message: &EmailMessage) -> Result<EmailReceipt>;

    /// Sends several messages and returns one result per message, in
    /// order. `Err` only when the batch failed as a whole before any of its
    /// messages was sent (credentials refused, peer down, more than
    /// [`MAX_BATCH`] messages); after the first message was sent, a
    /// failure of that kind becomes the result of every message not yet
    /// sent.
    async fn send_batch(&self, messages: &[EmailMessage]) -> Result<Vec<Result<EmailReceipt>>> {
        check_batch(messages)?;
        let mut out = Vec::with_capacity(messages.len());
        let mut sent_any = false;
        let mut stopped: Option<Error> = None;
        for message in messages {
            if let Some(e) = &stopped {
                out.push(Err(not_attempted(e)));
                continue;
            }
            match self.send(message).await {
                Ok(receipt) => {
                    sent_any = true;
                    out.push(Ok(receipt));
                }
                Err(e) if concerns_whole_batch(&e) => {
                    if !sent_any {
                        return Err(e);
                    }
                    stopped = Some(copy_error(&e));
                    out.push(Err(e));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        Ok(out)
    }
}

/// Refuses a batch over [`MAX_BATCH`].
pub(crate) fn check_batch(messages: &[EmailMessage]) -> Result<()> {
    if messages.len() > MAX_BATCH {
        return Err(Error::invalid_input(format!(
            "email: a batch holds at most {MAX_BATCH} messages, not {}",
            messages.len()
        )));
    }
    Ok(())
}

/// Whether an error is about the connection or the account rather than one
/// message, so the rest of a batch would fail the same way.
pub(crate) fn concerns_whole_batch(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Unauthorized
            | ErrorKind::Forbidden
            | ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::RateLimited
    )
}

/// The same kind, message and retry-after (errors are not `Clone`).
pub(crate) fn copy_error(e: &Error) -> Error {
    Error::new(e.kind(), e.message()).with_retry_after(e.retry_after())
}

/// The result of a batch message not tried because of `cause`.
pub(crate) fn not_attempted(cause: &Error) -> Error {
    Error::new(
        cause.kind(),
        format!(
            "not sent: an earlier message of the batch failed: {}",
            cause.message()
        ),
    )
    .with_retry_after(cause.retry_after())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> EmailMessage {
        EmailMessage::new("Desk <desk@example.com>", "Hello")
            .to("ana@example.com")
            .text("hi")
    }

    #[test]
    fn mailbox_parsing_and_display() {
        let m = Mailbox::parse("\"Ana Lima\" <ana@example.com>").unwrap();
        assert_eq!(m, Mailbox::named("Ana Lima", "ana@example.com"));
        assert_eq!(m.to_string(), "\"Ana Lima\" <ana@example.com>");
        assert_eq!(Mailbox::parse("bo@example.com").unwrap().name, None);
        assert!(Mailbox::parse("bo").is_err());
        assert!(Mailbox::parse("Bo <bo@example.com").is_err());
        let quoted = Mailbox::named("A \"B\" \\ C", "a@example.com");
        assert_eq!(quoted.to_string(), "\"A \\\"B\\\" \\\\ C\" <a@example.com>");
    }

    #[test]
    fn validation_lists_every_problem() {
        assert!(ok().validate().is_ok());
        let mut bad = EmailMessage::new("nobody", "Line\r\nBcc: x@example.com")
            .to("ana@example.com")
            .cc("x")
            .header("Subject", "again")
            .header("X-Ok", "bad\nvalue")
            .header("Bad Name", "v")
            .attach(Attachment::new("", "not a type", b"x".to_vec()));
        bad.bcc.push(Mailbox::named("E\r\nvil", "e@example.com"));
        let err = bad.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        for needle in [
            "from:",
            "cc[0]",
            "bcc[0]",
            "subject:",
            "body:",
            "headers[0]",
            "headers[1]",
            "headers[2]",
            "attachments[0]: the file name",
            "attachments[0]: \"not a type\"",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        let nobody = EmailMessage::new("a@example.com", "s").text("t");
        assert!(
            nobody
                .validate()
                .unwrap_err()
                .to_string()
                .contains("recipient")
        );
    }

    #[test]
    fn size_is_bounded() {
        let big = ok().attach(Attachment::new(
            "big.bin",
            "application/octet-stream",
            vec![0u8; MAX_MESSAGE_BYTES + 1],
        ));
        assert!(big.validate().unwrap_err().to_string().contains("size"));
    }

    #[test]
    fn raw_invitations_need_their_method() {
        let ics = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n";
        let inv = Invitation::from_ics(InvitationMethod::Request, "u1", 0, ics).unwrap();
        assert_eq!(
            inv.content_type(),
            "text/calendar; charset=UTF-8; method=REQUEST"
        );
        assert!(Invitation::from_ics(InvitationMethod::Cancel, "u1", 0, ics).is_err());
    }

    struct Flaky(std::sync::Mutex<Vec<Result<EmailReceipt>>>);

    #[async_trait::async_trait]
    impl EmailSender for Flaky {
        fn provider(&self) -> &'static str {
            "flaky"
        }
        async fn send(&self, _: &EmailMessage) -> Result<EmailReceipt> {
            self.0.lock().unwrap().remove(0)
        }
    }

    fn receipt() -> EmailReceipt {
        EmailReceipt {
            provider: "flaky".into(),
            message_id: None,
            recipients: vec![],
            detail: None,
        }
    }

    #[tokio::test]
    async fn default_batch_stops_after_a_connection_failure() {
        let s = Flaky(std::sync::Mutex::new(vec![
            Ok(receipt()),
            Err(Error::invalid_input("bad one")),
            Err(Error::unavailable("down")),
        ]));
        let out = s.send_batch(&[ok(), ok(), ok(), ok()]).await.unwrap();
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(out[2].as_ref().unwrap_err().kind(), ErrorKind::Unavailable);
        let last = out[3].as_ref().unwrap_err();
        assert_eq!(last.kind(), ErrorKind::Unavailable);
        assert!(last.to_string().contains("not sent"));

        let down = Flaky(std::sync::Mutex::new(vec![Err(Error::unavailable("down"))]));
        let err = down.send_batch(&[ok(), ok()]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
