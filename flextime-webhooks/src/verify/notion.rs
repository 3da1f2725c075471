//! Notion webhook signatures.

use flextime_core::{Error, Secret};

use super::{
    Rejection, Verified, Verifier, WebhookRequest, ct_eq, decode_hex, header, hmac_sha256,
    json_string_member, text_secrets,
};

const SIGNATURE: &str = "x-notion-signature";

/// Notion: `X-Notion-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body
/// keyed by the subscription's `verification_token`. The event's `id` is the
/// idempotency key and its `type` (`page.content_updated` ...) the event type.
///
/// Notion's one-time verification request (a body holding only
/// `verification_token`, sent before the token is known) carries no
/// signature; it is refused here and should be read from your logs or a
/// separate unsigned route.
#[derive(Debug, Clone)]
pub struct Notion {
    tokens: Vec<Secret>,
}

impl Notion {
    /// A verifier for one or more verification tokens.
    pub fn new(tokens: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        Ok(Self {
            tokens: text_secrets("notion", tokens.into_iter().collect())?,
        })
    }

    /// The `X-Notion-Signature` value for `body` with the first token.
    pub fn sign(&self, body: &[u8]) -> String {
        let key = self.tokens.first().map_or("", |s| s.expose());
        format!(
            "sha256={}",
            hex::encode(hmac_sha256(key.as_bytes(), &[body]))
        )
    }
}

impl Verifier for Notion {
    fn scheme(&self) -> &'static str {
        "notion"
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: i64) -> Result<Verified, Rejection> {
        let value = header(request.headers, SIGNATURE)?;
        let sig = value.strip_prefix("sha256=").and_then(decode_hex).ok_or(
            Rejection::MalformedHeader {
                header: SIGNATURE.into(),
                reason: "expected sha256=<hex>",
            },
        )?;
        let mut matched = false;
        for t in &self.tokens {
            matched |= ct_eq(&hmac_sha256(t.expose().as_bytes(), &[request.body]), &sig);
        }
        if !matched {
            return Err(Rejection::SignatureMismatch);
        }
        Ok(Verified {
            idempotency_key: json_string_member(request.body, "id"),
            event_type: json_string_member(request.body, "type"),
            timestamp: None,
        })
    }
}
