//! Stripe webhook signatures.

use flextime_core::{Error, Secret};

use super::{
    Rejection, Tolerance, Verified, Verifier, WebhookRequest, ct_eq, decode_hex, header,
    hmac_sha256, json_string_member, text_secrets,
};

const SIGNATURE: &str = "stripe-signature";

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...][,v0=...]`, HMAC-SHA256
/// over `{t}.{body}` keyed by the endpoint secret used as raw text (the whole
/// `whsec_...` string). `v0` (test-mode legacy) entries are ignored. The
/// idempotency key is the event's `id` and the event type its `type`, both
/// read from the JSON body. Default tolerance 300 s, as Stripe's libraries.
#[derive(Debug, Clone)]
pub struct Stripe {
    secrets: Vec<Secret>,
    tolerance: Tolerance,
}

impl Stripe {
    /// A verifier for one or more endpoint secrets.
    pub fn new(
        secrets: impl IntoIterator<Item = Secret>,
        tolerance: Tolerance,
    ) -> Result<Self, Error> {
        Ok(Self {
            secrets: text_secrets("stripe", secrets.into_iter().collect())?,
            tolerance,
        })
    }

    /// The `Stripe-Signature` value Stripe would send for `body` at `timestamp`
    /// (one `v1` per secret).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let mut out = format!("t={ts}");
        for s in &self.secrets {
            let mac = hmac_sha256(s.expose().as_bytes(), &[ts.as_bytes(), b".", body]);
            out.push_str(",v1=");
            out.push_str(&hex::encode(mac));
        }
        out
    }
}

impl Verifier for Stripe {
    fn scheme(&self) -> &'static str {
        "stripe"
    }

    fn verify(&self, request: &WebhookRequest<'_>, now: i64) -> Result<Verified, Rejection> {
        let value = header(request.headers, SIGNATURE)?;
        let mut timestamp: Option<&str> = None;
        let mut signatures: Vec<&str> = Vec::new();
        for item in value.split(',') {
            let Some((k, v)) = item.trim().split_once('=') else {
                return Err(Rejection::MalformedHeader {
                    header: SIGNATURE.into(),
                    reason: "expected comma-separated key=value pairs",
                });
            };
            match k {
                "t" => timestamp = Some(v),
                "v1" => signatures.push(v),
                _ => {}
            }
        }
        let ts_text = timestamp.ok_or(Rejection::MalformedHeader {
            header: SIGNATURE.into(),
            reason: "no t= timestamp",
        })?;
        let ts: i64 = ts_text.parse().map_err(|_| Rejection::MalformedHeader {
            header: SIGNATURE.into(),
            reason: "t= is not an integer",
        })?;
        if signatures.is_empty() {
            return Err(Rejection::MalformedHeader {
                header: SIGNATURE.into(),
                reason: "no v1= signature",
            });
        }
        let expected: Vec<[u8; 32]> = self
            .secrets
            .iter()
            .map(|s| {
                hmac_sha256(
                    s.expose().as_bytes(),
                    &[ts_text.as_bytes(), b".", request.body],
                )
            })
            .collect();
        let mut matched = false;
        for sig in signatures.iter().filter_map(|s| decode_hex(s)) {
            for e in &expected {
                matched |= ct_eq(e, &sig);
            }
        }
        if !matched {
            return Err(Rejection::SignatureMismatch);
        }
        // Stripe checks the signature first, then the age.
        self.tolerance.check(ts, now)?;
        Ok(Verified {
            idempotency_key: json_string_member(request.body, "id"),
            event_type: json_string_member(request.body, "type"),
            timestamp: Some(ts),
        })
    }
}
