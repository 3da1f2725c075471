//! Standard Webhooks v1 (symmetric): the scheme Svix and many others use.

use flextime_core::{Error, Secret};

use super::{
    Rejection, Tolerance, Verified, Verifier, WebhookRequest, ct_eq, decode_base64,
    decode_base64_lenient, header_any, hmac_sha256_key, hmac_sha256_with, json_string_member,
    parse_timestamp,
};

/// Header names, with the `svix-*` aliases.
const ID: [&str; 2] = ["webhook-id", "svix-id"];
const TIMESTAMP: [&str; 2] = ["webhook-timestamp", "svix-timestamp"];
const SIGNATURE: [&str; 2] = ["webhook-signature", "svix-signature"];

/// Standard Webhooks v1: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`
/// keyed by the base64 after `whsec_`; `webhook-signature` holds one or more
/// space-separated `v1,<base64>` entries. The `svix-*` header names are
/// accepted too. The idempotency key is `webhook-id`; the event type is the
/// body's `type` member when the body is a JSON object that has one.
///
/// ```
/// use flextime_webhooks::verify::{StandardWebhooks, Tolerance, Verifier, WebhookRequest};
/// use http::{HeaderMap, Method, Uri};
///
/// let v = StandardWebhooks::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()], Tolerance::DISABLED).unwrap();
/// let body = br#"{"test": 2432232314}"#;
/// let mut headers = HeaderMap::new();
/// headers.insert("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap());
/// headers.insert("webhook-timestamp", "1614265330".parse().unwrap());
/// headers.insert("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".parse().unwrap());
/// let req = WebhookRequest { method: &Method::POST, uri: &Uri::from_static("/hooks"), headers: &headers, body };
/// let verified = v.verify(&req, 1614265330).unwrap();
/// assert_eq!(verified.idempotency_key.as_deref(), Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
/// ```
#[derive(Debug, Clone)]
pub struct StandardWebhooks {
    keys: Vec<Key>,
    tolerance: Tolerance,
}

/// A secret as a keyed HMAC state (the key bytes are not kept apart).
#[derive(Clone)]
struct Key(super::HmacSha256);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl StandardWebhooks {
    /// A verifier for the given secrets (`whsec_` + base64, padding
    /// optional; a secret without the prefix is read as base64 too).
    pub fn new(
        secrets: impl IntoIterator<Item = Secret>,
        tolerance: Tolerance,
    ) -> Result<Self, Error> {
        let keys = secrets
            .into_iter()
            .map(|s| decode_secret(&s).map(|bytes| Key(hmac_sha256_key(&bytes))))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(Error::invalid_input(
                "standard-webhooks: at least one secret is required",
            ));
        }
        Ok(Self { keys, tolerance })
    }

    /// The `webhook-signature` value for a message: one `v1,<base64>` entry
    /// per secret, space separated.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        /// `v1,` and the base64 of a 32-byte MAC.
        const SIGNATURE_LEN: usize = 3 + 44;
        use base64::Engine as _;
        let mut ts = itoa::Buffer::new();
        let ts = ts.format(timestamp);
        // One `v1,` + 44 base64 characters per key, space separated: built in
        // one buffer of exactly that size (this runs once per outbound
        // attempt, and a full buffer becomes the header value without a
        // second allocation).
        let mut out = String::with_capacity(self.keys.len() * (SIGNATURE_LEN + 1) - 1);
        for k in &self.keys {
            if !out.is_empty() {
                out.push(' ');
            }
            let mac = hmac_sha256_with(&k.0, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            out.push_str("v1,");
            base64::engine::general_purpose::STANDARD.encode_string(mac, &mut out);
        }
        out
    }
}

/// Decode a Standard Webhooks secret into its key bytes.
pub(crate) fn decode_secret(secret: &Secret) -> Result<Vec<u8>, Error> {
    let text = secret.expose();
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    if b64.is_empty() {
        return Err(Error::invalid_input(
            "standard-webhooks: the secret is empty (expected whsec_ followed by base64)",
        ));
    }
    decode_base64_lenient(b64)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Error::invalid_input("standard-webhooks: the secret is not valid base64 after whsec_")
        })
}

impl Verifier for StandardWebhooks {
    fn scheme(&self) -> &'static str {
        "standard-webhooks"
    }

    fn verify(&self, request: &WebhookRequest<'_>, now: i64) -> Result<Verified, Rejection> {
        let (_, id) = header_any(request.headers, &ID)?;
        let (ts_name, ts) = header_any(request.headers, &TIMESTAMP)?;
        let (_, signatures) = header_any(request.headers, &SIGNATURE)?;
        if id.is_empty() {
            return Err(Rejection::MalformedHeader {
                header: ID[0].into(),
                reason: "empty message id",
            });
        }
        let timestamp = parse_timestamp(ts_name, ts)?;
        self.tolerance.check(timestamp, now)?;
        let ts_text = timestamp.to_string();
        let expected: Vec<[u8; 32]> = self
            .keys
            .iter()
            .map(|k| {
                hmac_sha256_with(
                    &k.0,
                    &[id.as_bytes(), b".", ts_text.as_bytes(), b".", request.body],
                )
            })
            .collect();
        let mut any_v1 = false;
        let mut matched = false;
        for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
            let Some((version, sig)) = entry.split_once(',') else {
                continue;
            };
            if version != "v1" {
                continue;
            }
            any_v1 = true;
            let Some(sig) = decode_base64(sig) else {
                continue;
            };
            // Check every key for every entry: no early exit reveals which matched.
            for e in &expected {
                matched |= ct_eq(e, &sig);
            }
        }
        if !any_v1 {
            return Err(Rejection::MalformedHeader {
                header: SIGNATURE[0].into(),
                reason: "no v1 signature",
            });
        }
        if !matched {
            return Err(Rejection::SignatureMismatch);
        }
        Ok(Verified {
            idempotency_key: Some(id.to_owned()),
            event_type: json_string_member(request.body, "type"),
            timestamp: Some(timestamp),
        })
    }
}

#[cfg(test)]
mod sign_tests {
    use super::*;

    #[test]
    fn the_signature_fills_its_buffer_exactly_for_any_number_of_secrets() {
        let secrets = [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ];
        for n in 1..=secrets.len() {
            let signer = StandardWebhooks::new(
                secrets[..n].iter().map(|s| Secret::from(*s)),
                Tolerance::DEFAULT,
            )
            .unwrap();
            let sig = signer.sign("msg_1", -1_700_000_000, b"{\"a\":1}");
            assert_eq!(sig.split(' ').count(), n);
            assert!(
                sig.split(' ')
                    .all(|s| s.starts_with("v1,") && s.len() == 47)
            );
            // A full buffer turns into a header value without a second
            // allocation; the old `keys * 48` capacity left one byte spare.
            assert_eq!(sig.capacity(), sig.len(), "{n} secrets");
        }
    }
}
