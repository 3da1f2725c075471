//! Signature verification, one [`Verifier`] per provider scheme.
//!
//! Every verifier works on the raw body bytes exactly as received (never
//! re-serialised, never required to be UTF-8), compares signatures in
//! constant time, and accepts a signature made with any of its active
//! secrets, so secrets can be rotated without dropping deliveries.
//!
//! | scheme | type | signature header | signed content |
//! |---|---|---|---|
//! | Standard Webhooks v1 | [`StandardWebhooks`] | `webhook-signature` (or `svix-signature`) | `id.timestamp.body`, HMAC-SHA256, base64 |
//! | Stripe | [`Stripe`] | `Stripe-Signature: t=..,v1=..` | `t.body`, HMAC-SHA256, hex |
//! | GitHub | [`GitHub`] | `X-Hub-Signature-256: sha256=..` | body, HMAC-SHA256, hex |
//! | Slack | [`Slack`] | `X-Slack-Signature: v0=..` | `v0:timestamp:body`, HMAC-SHA256, hex |
//! | Twilio | [`Twilio`] | `X-Twilio-Signature` | URL + sorted form params, HMAC-SHA1, base64 |
//! | Shopify | [`Shopify`] | `X-Shopify-Hmac-Sha256` | body, HMAC-SHA256, base64 |
//! | Notion | [`Notion`] | `X-Notion-Signature: sha256=..` | body, HMAC-SHA256, hex |
//! | generic | [`GenericHmac`] | configurable | configurable template |
//!
//! A provider of your own is one `impl Verifier`.

mod body_hmac;
mod generic;
mod github;
mod notion;
mod shopify;
mod slack;
pub(crate) mod standard;
mod stripe;
mod twilio;

pub use generic::{Encoding, GenericHmac, HmacAlgorithm};
pub use github::GitHub;
pub use notion::Notion;
pub use shopify::Shopify;
pub use slack::Slack;
pub use standard::StandardWebhooks;
pub use stripe::Stripe;
pub use twilio::Twilio;

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use flextime_core::{Error, Secret};
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Uri};

/// What a verifier sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The request URI as received (path and query).
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The raw body.
    pub body: &'a [u8],
}

/// What a successful verification learned about the delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The provider's idempotency key for this delivery (webhook-id,
    /// X-GitHub-Delivery, the Stripe event id ...), used for replay protection.
    pub idempotency_key: Option<String>,
    /// The provider's event type, where it has one (`invoice.paid`, `push`).
    pub event_type: Option<String>,
    /// The signed timestamp (Unix seconds), where the scheme has one.
    pub timestamp: Option<i64>,
}

/// Why a request was refused. Each has a stable reason code and an HTTP status;
/// none reveals a secret or which secret was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// A required header is absent (400).
    MissingHeader(Cow<'static, str>),
    /// A header is present but cannot be parsed (400).
    MalformedHeader {
        /// The header.
        header: Cow<'static, str>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The body cannot be read the way the scheme needs (400).
    MalformedBody(&'static str),
    /// No signature matched any active secret (401).
    SignatureMismatch,
    /// The signed timestamp is older than the tolerance (401).
    TimestampTooOld,
    /// The signed timestamp is further in the future than the tolerance (401).
    TimestampTooNew,
}

impl Rejection {
    /// The stable machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature_header",
            Self::MalformedHeader { .. } => "malformed_signature_header",
            Self::MalformedBody(_) => "malformed_body",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TimestampTooNew => "timestamp_too_new",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::MissingHeader(_) | Self::MalformedHeader { .. } | Self::MalformedBody(_) => {
                http::StatusCode::BAD_REQUEST
            }
            Self::SignatureMismatch | Self::TimestampTooOld | Self::TimestampTooNew => {
                http::StatusCode::UNAUTHORIZED
            }
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader(h) => write!(f, "missing header {h}"),
            Self::MalformedHeader { header, reason } => {
                write!(f, "malformed header {header}: {reason}")
            }
            Self::MalformedBody(reason) => write!(f, "malformed body: {reason}"),
            Self::SignatureMismatch => f.write_str("no signature matches"),
            Self::TimestampTooOld => f.write_str("signed timestamp is too old"),
            Self::TimestampTooNew => f.write_str("signed timestamp is too far in the future"),
        }
    }
}

impl std::error::Error for Rejection {}

/// Checks that a request was signed by the provider.
pub trait Verifier: Send + Sync + fmt::Debug {
    /// The scheme's name (`standard-webhooks`, `stripe`, ...).
    fn scheme(&self) -> &'static str;

    /// Verify `request` at time `now` (Unix seconds).
    fn verify(&self, request: &WebhookRequest<'_>, now: i64) -> Result<Verified, Rejection>;
}

/// The timestamp window: how far a signed timestamp may be from now.
/// Zero turns the check off (for replaying recorded fixtures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance(pub Duration);

impl Tolerance {
    /// Five minutes, the window Stripe, Slack and Standard Webhooks document.
    pub const DEFAULT: Tolerance = Tolerance(Duration::from_secs(300));
    /// No timestamp check.
    pub const DISABLED: Tolerance = Tolerance(Duration::ZERO);

    /// Check `timestamp` (Unix seconds) against `now`.
    pub fn check(self, timestamp: i64, now: i64) -> Result<(), Rejection> {
        if self.0.is_zero() {
            return Ok(());
        }
        let window = i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX);
        if timestamp < now.saturating_sub(window) {
            Err(Rejection::TimestampTooOld)
        } else if timestamp > now.saturating_add(window) {
            Err(Rejection::TimestampTooNew)
        } else {
            Ok(())
        }
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The value of a header as text; absent is `MissingHeader`, non-ASCII is
/// `MalformedHeader`.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Rejection> {
    header_named(headers, name, || Cow::Borrowed(name))
}

/// [`header`] for a name chosen at run time.
pub(crate) fn header_dyn<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Rejection> {
    header_named(headers, name, || Cow::Owned(name.to_owned()))
}

fn header_named<'a>(
    headers: &'a HeaderMap,
    name: &str,
    label: impl Fn() -> Cow<'static, str>,
) -> Result<&'a str, Rejection> {
    let value = headers
        .get(name)
        .ok_or_else(|| Rejection::MissingHeader(label()))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| Rejection::MalformedHeader {
            header: label(),
            reason: "not visible ASCII",
        })
}

/// The first of several header names that is present.
pub(crate) fn header_any<'a>(
    headers: &'a HeaderMap,
    names: &[&'static str],
) -> Result<(&'static str, &'a str), Rejection> {
    for name in names {
        if headers.contains_key(*name) {
            return header(headers, name).map(|v| (*name, v));
        }
    }
    Err(Rejection::MissingHeader(Cow::Borrowed(names[0])))
}

/// Parse a Unix-seconds timestamp header.
pub(crate) fn parse_timestamp(
    header: impl Into<Cow<'static, str>>,
    value: &str,
) -> Result<i64, Rejection> {
    value
        .parse::<i64>()
        .map_err(|_| Rejection::MalformedHeader {
            header: header.into(),
            reason: "timestamp is not an integer number of seconds",
        })
}

pub(crate) type HmacSha256 = Hmac<sha2::Sha256>;

/// HMAC-SHA256 of the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A keyed HMAC-SHA256 state, made once per key: each message then starts
/// from a copy of it instead of hashing the padded key again (two SHA-256
/// blocks saved per message).
pub(crate) fn hmac_sha256_key(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac())
}

/// HMAC-SHA256 of the concatenation of `parts`, from a keyed state.
pub(crate) fn hmac_sha256_with(keyed: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA1 of the concatenation of `parts`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA512 of the concatenation of `parts`.
pub(crate) fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    // `Hmac::new_from_slice` only fails for fixed-key-size MACs, never for HMAC.
    unreachable!("HMAC accepts keys of every length")
}

/// Constant-time equality of two byte strings.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Decode lowercase hex, the form every provider sends; `None` when
/// malformed. Uppercase is refused so that a signature has exactly one
/// accepted spelling.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()
}

/// Decode hex in either case (for the generic scheme); `None` when malformed.
pub(crate) fn decode_hex_any_case(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// Decode a base64 signature strictly: padding optional, but no non-zero
/// trailing bits, so a signature has exactly one accepted spelling.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const STRICT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STRICT.decode(s).ok()
}

/// Decode base64 key material leniently (padding optional, trailing bits
/// ignored), as the providers' own libraries read secrets.
pub(crate) fn decode_base64_lenient(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s).ok()
}

/// Encode standard base64 with padding.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Secrets given as text, checked to be non-empty.
pub(crate) fn text_secrets(scheme: &str, secrets: Vec<Secret>) -> Result<Vec<Secret>, Error> {
    if secrets.is_empty() {
        return Err(Error::invalid_input(format!(
            "{scheme}: at least one secret is required"
        )));
    }
    if secrets.iter().any(Secret::is_empty) {
        return Err(Error::invalid_input(format!("{scheme}: a secret is empty")));
    }
    Ok(secrets)
}

/// A JSON body's top-level string member, if the body is a JSON object with one.
pub(crate) fn json_string_member(body: &[u8], member: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(member)?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_window_is_inclusive_and_directional() {
        let t = Tolerance::DEFAULT;
        let now = 1_700_000_000;
        assert_eq!(t.check(now - 301, now), Err(Rejection::TimestampTooOld));
        assert_eq!(t.check(now + 301, now), Err(Rejection::TimestampTooNew));
        assert!(t.check(now - 299, now).is_ok());
        assert!(t.check(now + 299, now).is_ok());
        assert!(t.check(now - 300, now).is_ok());
        assert!(Tolerance::DISABLED.check(0, now).is_ok());
        assert!(Tolerance::DEFAULT.check(i64::MIN, i64::MAX).is_err());
    }

    #[test]
    fn rejection_codes_and_statuses() {
        assert_eq!(
            Rejection::SignatureMismatch.status(),
            http::StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            Rejection::MissingHeader("x".into()).status(),
            http::StatusCode::BAD_REQUEST
        );
        assert_eq!(Rejection::TimestampTooOld.code(), "timestamp_too_old");
        assert_ne!(
            Rejection::TimestampTooOld.code(),
            Rejection::TimestampTooNew.code()
        );
    }

    #[test]
    fn lenient_base64() {
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YQ").unwrap(), b"a");
        assert!(decode_base64("Y!").is_none());
        // "YR" decodes to "a" only if trailing bits are ignored.
        assert!(decode_base64("YR").is_none());
        assert_eq!(decode_base64_lenient("YR").unwrap(), b"a");
        assert!(decode_hex("AB").is_none());
        assert_eq!(decode_hex_any_case("AB").unwrap(), [0xab]);
    }
}
