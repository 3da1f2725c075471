//! Twilio's message status callbacks.

use std::collections::BTreeMap;

use flextime_core::{Error, Result};

use crate::sms::SmsStatus;

/// The largest callback body parsed (Twilio's are well under 2 KiB).
const MAX_BODY: usize = 64 * 1024;

/// A status callback Twilio posts (form-encoded) to a message's
/// `StatusCallback` URL when its status changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// `MessageSid` (or the legacy `SmsSid`): the message, `SM...`/`MM...`.
    pub message_sid: String,
    /// `MessageStatus` (or the legacy `SmsStatus`).
    pub status: SmsStatus,
    /// `AccountSid`.
    pub account_sid: Option<String>,
    /// `MessagingServiceSid`, when sent through a messaging service.
    pub messaging_service_sid: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `ErrorCode`: Twilio's error code when the message failed or was
    /// undelivered (30003 unreachable, 30005 unknown destination ...).
    pub error_code: Option<u32>,
    /// `ErrorMessage`, when Twilio sends one.
    pub error_message: Option<String>,
    /// `RawDlrDoneDate`: the carrier's delivery receipt time (`YYMMDDhhmm`).
    pub raw_dlr_done_date: Option<String>,
    /// `ApiVersion`.
    pub api_version: Option<String>,
    /// Every other parameter, as sent.
    pub other: BTreeMap<String, String>,
}

impl StatusCallback {
    /// Parses a callback body (`application/x-www-form-urlencoded`). A body
    /// without a message SID or a status, or with a non-integer
    /// `ErrorCode`, is a typed `InvalidInput`.
    pub fn parse_form(body: &[u8]) -> Result<Self> {
        if body.len() > MAX_BODY {
            return Err(Error::invalid_input(format!(
                "twilio callback: body of {} bytes is larger than {MAX_BODY}",
                body.len()
            )));
        }
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            params
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
        let mut take = |name: &str| params.remove(name).filter(|v| !v.is_empty());
        let message_sid = take("MessageSid");
        let legacy_sid = take("SmsSid");
        let status = take("MessageStatus");
        let legacy_status = take("SmsStatus");
        let message_sid = message_sid
            .or(legacy_sid)
            .ok_or_else(|| Error::invalid_input("twilio callback: MessageSid is missing"))?;
        let status = status
            .or(legacy_status)
            .ok_or_else(|| Error::invalid_input("twilio callback: MessageStatus is missing"))?;
        let error_code = match take("ErrorCode") {
            None => None,
            Some(code) => Some(code.parse::<u32>().map_err(|_| {
                Error::invalid_input(format!(
                    "twilio callback: ErrorCode {code:?} is not an integer"
                ))
            })?),
        };
        Ok(Self {
            message_sid,
            status: SmsStatus::parse(&status),
            account_sid: take("AccountSid"),
            messaging_service_sid: take("MessagingServiceSid"),
            from: take("From"),
            to: take("To"),
            error_code,
            error_message: take("ErrorMessage"),
            raw_dlr_done_date: take("RawDlrDoneDate"),
            api_version: take("ApiVersion"),
            other: params,
        })
    }

    /// Verifies `X-Twilio-Signature` with flextime-webhooks' Twilio verifier
    /// (configured with the public URL Twilio calls and the auth token), then
    /// parses the body. A bad or missing signature is a typed `Unauthorized`
    /// error carrying the verifier's reason code.
    #[cfg(feature = "webhooks")]
    pub fn verify(
        verifier: &flextime_webhooks::verify::Twilio,
        request: &flextime_webhooks::verify::WebhookRequest<'_>,
    ) -> Result<Self> {
        use flextime_webhooks::verify::Verifier as _;
        verifier
            .verify(request, chrono::Utc::now().timestamp())
            .map_err(|rejection| {
                Error::unauthorized(format!(
                    "twilio callback: {} ({rejection})",
                    rejection.code()
                ))
            })?;
        Self::parse_form(request.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_callback_is_parsed() {
        let body = b"SmsSid=SM1&SmsStatus=delivered&MessageStatus=delivered&To=%2B14155552671\
&MessageSid=SM1&AccountSid=AC1&From=%2B14155550000&ApiVersion=2010-04-01\
&RawDlrDoneDate=2405061200&ChannelPrefix=sms";
        let cb = StatusCallback::parse_form(body).unwrap();
        assert_eq!(cb.message_sid, "SM1");
        assert_eq!(cb.status, SmsStatus::Delivered);
        assert_eq!(cb.to.as_deref(), Some("+14155552671"));
        assert_eq!(cb.from.as_deref(), Some("+14155550000"));
        assert_eq!(cb.raw_dlr_done_date.as_deref(), Some("2405061200"));
        assert_eq!(cb.error_code, None);
        assert_eq!(
            cb.other.get("ChannelPrefix").map(String::as_str),
            Some("sms")
        );
    }

    #[test]
    fn an_undelivered_callback_carries_the_error_code() {
        let cb = StatusCallback::parse_form(
            b"MessageSid=SM2&MessageStatus=undelivered&ErrorCode=30003&ErrorMessage=Unreachable",
        )
        .unwrap();
        assert_eq!(cb.status, SmsStatus::Undelivered);
        assert_eq!(cb.error_code, Some(30003));
        assert_eq!(cb.error_message.as_deref(), Some("Unreachable"));
    }

    #[test]
    fn legacy_names_are_accepted_and_bad_bodies_are_typed_errors() {
        let cb = StatusCallback::parse_form(b"SmsSid=SM3&SmsStatus=sent").unwrap();
        assert_eq!(
            (cb.message_sid.as_str(), cb.status),
            ("SM3", SmsStatus::Sent)
        );
        for (body, needle) in [
            (&b"MessageStatus=sent"[..], "MessageSid"),
            (b"MessageSid=SM1", "MessageStatus"),
            (
                b"MessageSid=SM1&MessageStatus=failed&ErrorCode=abc",
                "ErrorCode",
            ),
            (b"\xff\xfe", "MessageSid"),
        ] {
            let err = StatusCallback::parse_form(body).unwrap_err();
            assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(needle), "{err}");
        }
        let big = vec![b'a'; MAX_BODY + 1];
        assert!(StatusCallback::parse_form(&big).is_err());
    }
}
