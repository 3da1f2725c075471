//! GitHub webhook signatures.

use flextime_core::{Error, Secret};

use super::body_hmac::{BodyHmac, Form, header_text};
use super::{Rejection, Verified, Verifier, WebhookRequest};

/// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body keyed
/// by the webhook secret. `X-GitHub-Delivery` is the idempotency key and
/// `X-GitHub-Event` the event type. GitHub signs no timestamp.
#[derive(Debug, Clone)]
pub struct GitHub(BodyHmac);

impl GitHub {
    /// A verifier for one or more webhook secrets.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        BodyHmac::new(
            "github",
            "x-hub-signature-256",
            Form::Hex("sha256="),
            secrets.into_iter().collect(),
        )
        .map(Self)
    }

    /// The `X-Hub-Signature-256` value for `body` with the first secret.
    pub fn sign(&self, body: &[u8]) -> String {
        self.0.sign(body)
    }
}

impl Verifier for GitHub {
    fn scheme(&self) -> &'static str {
        "github"
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: i64) -> Result<Verified, Rejection> {
        self.0.check(request)?;
        Ok(Verified {
            idempotency_key: header_text(request, "x-github-delivery"),
            event_type: header_text(request, "x-github-event"),
            timestamp: None,
        })
    }
}
