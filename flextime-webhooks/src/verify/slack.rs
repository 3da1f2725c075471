//! Slack request signatures.

use flextime_core::{Error, Secret};

use super::{
    Rejection, Tolerance, Verified, Verifier, WebhookRequest, ct_eq, decode_hex, header,
    hmac_sha256, parse_timestamp, text_secrets,
};

const SIGNATURE: &str = "x-slack-signature";
const TIMESTAMP: &str = "x-slack-request-timestamp";

/// Slack: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 over
/// `v0:{X-Slack-Request-Timestamp}:{body}` keyed by the signing secret; 300 s
/// window. For Events API payloads the idempotency key is `event_id` and the
/// event type `event.type` (else the top-level `type`).
#[derive(Debug, Clone)]
pub struct Slack {
    secrets: Vec<Secret>,
    tolerance: Tolerance,
}

impl Slack {
    /// A verifier for one or more signing secrets.
    pub fn new(
        secrets: impl IntoIterator<Item = Secret>,
        tolerance: Tolerance,
    ) -> Result<Self, Error> {
        Ok(Self {
            secrets: text_secrets("slack", secrets.into_iter().collect())?,
            tolerance,
        })
    }

    /// The `X-Slack-Signature` value for `body` at `timestamp` with the first secret.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let key = self.secrets.first().map_or("", |s| s.expose());
        let ts = timestamp.to_string();
        format!(
            "v0={}",
            hex::encode(hmac_sha256(
                key.as_bytes(),
                &[b"v0:", ts.as_bytes(), b":", body]
            ))
        )
    }
}

impl Verifier for Slack {
    fn scheme(&self) -> &'static str {
        "slack"
    }

    fn verify(&self, request: &WebhookRequest<'_>, now: i64) -> Result<Verified, Rejection> {
        let ts_text = header(request.headers, TIMESTAMP)?;
        let value = header(request.headers, SIGNATURE)?;
        let ts = parse_timestamp(TIMESTAMP, ts_text)?;
        self.tolerance.check(ts, now)?;
        let sig =
            value
                .strip_prefix("v0=")
                .and_then(decode_hex)
                .ok_or(Rejection::MalformedHeader {
                    header: SIGNATURE.into(),
                    reason: "expected v0=<hex>",
                })?;
        let mut matched = false;
        for s in &self.secrets {
            let mac = hmac_sha256(
                s.expose().as_bytes(),
                &[b"v0:", ts_text.as_bytes(), b":", request.body],
            );
            matched |= ct_eq(&mac, &sig);
        }
        if !matched {
            return Err(Rejection::SignatureMismatch);
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(request.body).ok();
        let member = |path: &[&str]| {
            let mut v = json.as_ref()?;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_owned)
        };
        Ok(Verified {
            idempotency_key: member(&["event_id"]),
            event_type: member(&["event", "type"]).or_else(|| member(&["type"])),
            timestamp: Some(ts),
        })
    }
}
