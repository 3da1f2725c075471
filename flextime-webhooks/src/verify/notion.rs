//! Notion webhook signatures.

use flextime_core::{Error, Secret};

use super::body_hmac::{BodyHmac, Form};
use super::{Rejection, Verified, Verifier, WebhookRequest, json_string_member};

/// Notion: `X-Notion-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body
/// keyed by the subscription's `verification_token`. The event's `id` is the
/// idempotency key and its `type` (`page.content_updated` ...) the event type.
///
/// Notion's one-time verification request (a body holding only
/// `verification_token`, sent before the token is known) carries no
/// signature; it is refused here and should be read from your logs or a
/// separate unsigned route.
#[derive(Debug, Clone)]
pub struct Notion(BodyHmac);

impl Notion {
    /// A verifier for one or more verification tokens.
    pub fn new(tokens: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        BodyHmac::new(
            "notion",
            "x-notion-signature",
            Form::Hex("sha256="),
            tokens.into_iter().collect(),
        )
        .map(Self)
    }

    /// The `X-Notion-Signature` value for `body` with the first token.
    pub fn sign(&self, body: &[u8]) -> String {
        self.0.sign(body)
    }
}

impl Verifier for Notion {
    fn scheme(&self) -> &'static str {
        "notion"
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: i64) -> Result<Verified, Rejection> {
        self.0.check(request)?;
        Ok(Verified {
            idempotency_key: json_string_member(request.body, "id"),
            event_type: json_string_member(request.body, "type"),
            timestamp: None,
        })
    }
}
