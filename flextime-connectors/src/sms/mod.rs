//! Sending SMS: the [`SmsSender`] capability.
//!
//! - [`SmsMessage`] is what to send: a recipient in E.164 form, a body, a
//!   sender (a number, an alphanumeric sender ID or a messaging service), an
//!   optional status callback URL and an optional de-duplication key.
//!   [`SmsMessage::validate`] checks all of it before any request is made,
//!   with a typed `InvalidInput` error naming the field.
//! - SMS providers take no idempotency key, so a retried send can text the
//!   recipient twice. A [`DedupStore`] remembers the receipt of each send
//!   made with a `dedup_key` for a while ([`MemoryDedupStore`] keeps them in
//!   memory with a TTL); a second send with the same key returns the first
//!   receipt without calling the provider.
//! - Backends: Twilio Messages (feature `twilio`, [`twilio`]).

mod dedup;
#[cfg(feature = "twilio")]
pub mod twilio;

use std::fmt;

use flextime_core::{Error, Result};
use serde::{Deserialize, Serialize};

pub use dedup::{Claim, DedupStore, MemoryDedupStore, send_once};

/// The longest body Twilio accepts (characters).
pub const MAX_BODY_CHARS: usize = 1600;

/// Who a message is sent from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsFrom {
    /// A phone number in E.164 form (`+14155552671`) or an alphanumeric
    /// sender ID (1 to 11 letters, digits and spaces, at least one letter).
    Number(String),
    /// A messaging service (`MG` and 32 hex digits) that picks the number.
    MessagingService(String),
}

/// One SMS to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    /// The recipient, in E.164 form.
    pub to: String,
    /// The text (1 to 1600 characters).
    pub body: String,
    /// The sender.
    pub from: SmsFrom,
    /// Where the provider posts delivery status updates (http or https).
    pub status_callback: Option<String>,
    /// A key naming this send: a second send with the same key (within the
    /// de-duplication store's TTL) returns the first receipt instead of
    /// sending again. Use something stable such as `booking-42/reminder-24h`.
    pub dedup_key: Option<String>,
}

impl SmsMessage {
    /// A message from a number or an alphanumeric sender ID.
    pub fn new(to: impl Into<String>, from: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            body: body.into(),
            from: SmsFrom::Number(from.into()),
            status_callback: None,
            dedup_key: None,
        }
    }

    /// A message sent through a messaging service (`MG...`).
    pub fn via_service(
        to: impl Into<String>,
        messaging_service_sid: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            from: SmsFrom::MessagingService(messaging_service_sid.into()),
            ..Self::new(to, String::new(), body)
        }
    }

    /// Sets the status callback URL.
    #[must_use]
    pub fn with_status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// Sets the de-duplication key.
    #[must_use]
    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        validate_e164("to", &self.to)?;
        match &self.from {
            SmsFrom::Number(from) => {
                if from.starts_with('+') {
                    validate_e164("from", from)?;
                } else if !is_alphanumeric_sender_id(from) {
                    return Err(Error::invalid_input(format!(
                        "sms: from {from:?} is neither an E.164 number nor an alphanumeric sender ID"
                    )));
                }
            }
            SmsFrom::MessagingService(sid) => {
                if !is_sid(sid, "MG") {
                    return Err(Error::invalid_input(format!(
                        "sms: messaging_service_sid {sid:?} is not MG followed by 32 hex digits"
                    )));
                }
            }
        }
        let chars = self.body.chars().count();
        if chars == 0 {
            return Err(Error::invalid_input("sms: body is empty"));
        }
        if chars > MAX_BODY_CHARS {
            return Err(Error::invalid_input(format!(
                "sms: body has {chars} characters, more than {MAX_BODY_CHARS}"
            )));
        }
        if let Some(url) = &self.status_callback {
            let parsed = url::Url::parse(url).map_err(|e| {
                Error::invalid_input(format!("sms: status_callback {url:?} is not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(Error::invalid_input(format!(
                    "sms: status_callback {url:?} must be an http(s) URL with a host"
                )));
            }
        }
        if let Some(key) = &self.dedup_key {
            if key.is_empty() || key.len() > 512 {
                return Err(Error::invalid_input(
                    "sms: dedup_key must be 1 to 512 bytes long",
                ));
            }
        }
        Ok(())
    }
}

/// The state of a message, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SmsStatus {
    /// Accepted by a messaging service, not yet queued.
    Accepted,
    /// Scheduled for later.
    Scheduled,
    /// Queued to be sent.
    Queued,
    /// Being sent.
    Sending,
    /// Handed to the carrier.
    Sent,
    /// The carrier confirmed delivery.
    Delivered,
    /// The carrier could not deliver it.
    Undelivered,
    /// It could not be sent.
    Failed,
    /// Canceled before it was sent.
    Canceled,
    /// Read by the recipient (channels that report it).
    Read,
    /// Some parts delivered.
    PartiallyDelivered,
    /// An inbound message being received.
    Receiving,
    /// An inbound message, received.
    Received,
    /// A status this library does not know, as the provider spelled it.
    Other(String),
}

impl SmsStatus {
    /// Parses the provider's spelling (`queued`, `delivered` ...).
    pub fn parse(s: &str) -> Self {
        match s {
            "accepted" => Self::Accepted,
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "read" => Self::Read,
            "partially_delivered" => Self::PartiallyDelivered,
            "receiving" => Self::Receiving,
            "received" => Self::Received,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The provider's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Read => "read",
            Self::PartiallyDelivered => "partially_delivered",
            Self::Receiving => "receiving",
            Self::Received => "received",
            Self::Other(s) => s,
        }
    }

    /// Whether no further status change is expected.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Delivered
                | Self::Undelivered
                | Self::Failed
                | Self::Canceled
                | Self::Read
                | Self::Received
        )
    }
}

impl fmt::Display for SmsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SmsStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SmsStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// What the provider said about an accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsReceipt {
    /// The provider's id of the message (a Twilio `SM...` SID).
    pub id: String,
    /// Its status when the provider answered.
    pub status: SmsStatus,
    /// The recipient as the provider recorded it.
    pub to: String,
    /// True when this receipt was returned from the de-duplication store:
    /// the provider was not called again.
    #[serde(default, skip_serializing)]
    pub deduplicated: bool,
}

/// Sends SMS.
#[async_trait::async_trait]
pub trait SmsSender: Send + Sync {
    /// Validates `message` (a typed `InvalidInput` before any request) and
    /// sends it, or returns the receipt of an earlier send with the same
    /// `dedup_key`.
    async fn send(&self, message: &SmsMessage) -> Result<SmsReceipt>;
}

/// Checks that `number` is E.164: `+`, a non-zero digit, then 1 to 14 more
/// digits (15 at most in all). `field` names it in the error.
pub fn validate_e164(field: &str, number: &str) -> Result<()> {
    let ok = number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "sms: {field} {number:?} is not an E.164 number (+ and 2 to 15 digits, no leading 0)"
        )))
    }
}

/// 1 to 11 ASCII letters, digits and spaces with at least one letter, as
/// carriers accept for alphanumeric sender IDs.
fn is_alphanumeric_sender_id(s: &str) -> bool {
    (1..=11).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// `prefix` followed by 32 hex digits (a Twilio SID).
pub(crate) fn is_sid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_checked() {
        for good in ["+14155552671", "+447911123456", "+12", "+123456789012345"] {
            assert!(validate_e164("to", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "+",
            "+1",
            "14155552671",
            "+04155552671",
            "+1415555267a",
            "+1 415 555 2671",
            "+1234567890123456",
            "whatsapp:+14155552671",
        ] {
            let err = validate_e164("to", bad).unwrap_err();
            assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput, "{bad}");
            assert!(err.to_string().contains("E.164"), "{err}");
        }
    }

    #[test]
    fn messages_are_validated_field_by_field() {
        let ok = SmsMessage::new("+14155552671", "+14155550000", "hi");
        assert!(ok.validate().is_ok());
        assert!(
            SmsMessage::new("+14155552671", "Flextime", "hi")
                .validate()
                .is_ok()
        );
        let cases = [
            (SmsMessage::new("555", "+14155550000", "hi"), "to"),
            (SmsMessage::new("+14155552671", "+0", "hi"), "from"),
            (
                SmsMessage::new("+14155552671", "Too long sender", "hi"),
                "from",
            ),
            (SmsMessage::new("+14155552671", "12345", "hi"), "from"),
            (SmsMessage::new("+14155552671", "+14155550000", ""), "empty"),
            (
                SmsMessage::new("+14155552671", "+14155550000", "x".repeat(1601)),
                "1601",
            ),
            (
                SmsMessage::via_service("+14155552671", "MG123", "hi"),
                "messaging_service_sid",
            ),
            (
                ok.clone().with_status_callback("ftp://example.com/x"),
                "status_callback",
            ),
            (
                ok.clone().with_status_callback("not a url"),
                "status_callback",
            ),
            (ok.clone().with_dedup_key(""), "dedup_key"),
        ];
        for (message, needle) in cases {
            let err = message.validate().unwrap_err();
            assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
        let service =
            SmsMessage::via_service("+14155552671", "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hi");
        assert!(service.validate().is_ok());
    }

    #[test]
    fn statuses_round_trip_and_keep_unknown_spellings() {
        for s in ["queued", "delivered", "partially_delivered", "canceled"] {
            assert_eq!(SmsStatus::parse(s).as_str(), s);
        }
        assert_eq!(
            SmsStatus::parse("teleported"),
            SmsStatus::Other("teleported".into())
        );
        assert!(SmsStatus::Delivered.is_final());
        assert!(!SmsStatus::Queued.is_final());
        let json = serde_json::to_string(&SmsStatus::Undelivered).unwrap();
        assert_eq!(json, "\"undelivered\"");
    }
}
