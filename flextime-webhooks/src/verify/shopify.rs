//! Shopify webhook signatures.

use flextime_core::{Error, Secret};

use super::body_hmac::{BodyHmac, Form, header_text};
use super::{Rejection, Verified, Verifier, WebhookRequest};

/// Shopify: `X-Shopify-Hmac-Sha256`, the base64 of the HMAC-SHA256 of the raw
/// body keyed by the app's client secret. `X-Shopify-Webhook-Id` (else
/// `X-Shopify-Event-Id`) is the idempotency key and `X-Shopify-Topic` the
/// event type. Shopify signs no timestamp.
#[derive(Debug, Clone)]
pub struct Shopify(BodyHmac);

impl Shopify {
    /// A verifier for one or more client secrets.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        BodyHmac::new(
            "shopify",
            "x-shopify-hmac-sha256",
            Form::Base64,
            secrets.into_iter().collect(),
        )
        .map(Self)
    }

    /// The `X-Shopify-Hmac-Sha256` value for `body` with the first secret.
    pub fn sign(&self, body: &[u8]) -> String {
        self.0.sign(body)
    }
}

impl Verifier for Shopify {
    fn scheme(&self) -> &'static str {
        "shopify"
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: i64) -> Result<Verified, Rejection> {
        self.0.check(request)?;
        Ok(Verified {
            idempotency_key: header_text(request, "x-shopify-webhook-id")
                .or_else(|| header_text(request, "x-shopify-event-id")),
            event_type: header_text(request, "x-shopify-topic"),
            timestamp: None,
        })
    }
}
