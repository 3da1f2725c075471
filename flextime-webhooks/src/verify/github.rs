//! GitHub webhook signatures.

use flextime_core::{Error, Secret};

use super::{
    Rejection, Verified, Verifier, WebhookRequest, ct_eq, decode_hex, header, hmac_sha256,
    text_secrets,
};

const SIGNATURE: &str = "x-hub-signature-256";

/// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body keyed
/// by the webhook secret. `X-GitHub-Delivery` is the idempotency key and
/// `X-GitHub-Event` the event type. GitHub signs no timestamp.
#[derive(Debug, Clone)]
pub struct GitHub {
    secrets: Vec<Secret>,
}

impl GitHub {
    /// A verifier for one or more webhook secrets.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        Ok(Self {
            secrets: text_secrets("github", secrets.into_iter().collect())?,
        })
    }

    /// The `X-Hub-Signature-256` value for `body` with the first secret.
    pub fn sign(&self, body: &[u8]) -> String {
        let key = self.secrets.first().map_or("", |s| s.expose());
        format!(
            "sha256={}",
            hex::encode(hmac_sha256(key.as_bytes(), &[body]))
        )
    }
}

impl Verifier for GitHub {
    fn scheme(&self) -> &'static str {
        "github"
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
            idempotency_key: text("x-github-delivery"),
            event_type: text("x-github-event"),
            timestamp: None,
        })
    }
}
