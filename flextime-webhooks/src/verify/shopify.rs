//! Shopify webhook signatures.

use flextime_core::{Error, Secret};

use super::{
    Rejection, Verified, Verifier, WebhookRequest, ct_eq, decode_base64, encode_base64, header,
    hmac_sha256, text_secrets,
};

const SIGNATURE: &str = "x-shopify-hmac-sha256";

/// Shopify: `X-Shopify-Hmac-Sha256`, the base64 of the HMAC-SHA256 of the raw
/// body keyed by the app's client secret. `X-Shopify-Webhook-Id` (else
/// `X-Shopify-Event-Id`) is the idempotency key and `X-Shopify-Topic` the
/// event type. Shopify signs no timestamp.
#[derive(Debug, Clone)]
pub struct Shopify {
    secrets: Vec<Secret>,
}

impl Shopify {
    /// A verifier for one or more client secrets.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        Ok(Self {
            secrets: text_secrets("shopify", secrets.into_iter().collect())?,
        })
    }

    /// The `X-Shopify-Hmac-Sha256` value for `body` with the first secret.
    pub fn sign(&self, body: &[u8]) -> String {
        let key = self.secrets.first().map_or("", |s| s.expose());
        encode_base64(&hmac_sha256(key.as_bytes(), &[body]))
    }
}

impl Verifier for Shopify {
    fn scheme(&self) -> &'static str {
        "shopify"
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: i64) -> Result<Verified, Rejection> {
        let sig = decode_base64(header(request.headers, SIGNATURE)?).ok_or(
            Rejection::MalformedHeader {
                header: SIGNATURE.into(),
                reason: "not base64",
            },
        )?;
        let mut matched = false;
        for s in &self.secrets {
            matched |= ct_eq(&hmac_sha256(s.expose().as_bytes(), &[request.body]), &sig);
        }
        if !matched {
            return Err(Rejection::SignatureMismatch);
        }
        let text = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Verified {
            idempotency_key: text("x-shopify-webhook-id").or_else(|| text("x-shopify-event-id")),
            event_type: text("x-shopify-topic"),
            timestamp: None,
        })
    }
}
