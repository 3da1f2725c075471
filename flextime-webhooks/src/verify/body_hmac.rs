//! The shape GitHub, Shopify and Notion share: an HMAC-SHA256 of the raw
//! body, keyed by a text secret, in one header (hex or base64, with an
//! optional prefix). Each provider's type adds where its id and event type
//! come from.

use flextime_core::{Error, Secret};

use super::{
    Rejection, WebhookRequest, ct_eq, decode_base64, decode_hex, encode_base64, header,
    hmac_sha256, text_secrets,
};

/// How the signature is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Form {
    /// `prefix` + lowercase hex.
    Hex(&'static str),
    /// Standard base64.
    Base64,
}

#[derive(Debug, Clone)]
pub(crate) struct BodyHmac {
    header: &'static str,
    form: Form,
    secrets: Vec<Secret>,
}

impl BodyHmac {
    pub(crate) fn new(
        scheme: &str,
        header: &'static str,
        form: Form,
        secrets: Vec<Secret>,
    ) -> Result<Self, Error> {
        Ok(Self {
            header,
            form,
            secrets: text_secrets(scheme, secrets)?,
        })
    }

    /// The header value for `body` with the first secret.
    pub(crate) fn sign(&self, body: &[u8]) -> String {
        let key = self.secrets.first().map_or("", |s| s.expose());
        let mac = hmac_sha256(key.as_bytes(), &[body]);
        match self.form {
            Form::Hex(prefix) => format!("{prefix}{}", hex::encode(mac)),
            Form::Base64 => encode_base64(&mac),
        }
    }

    /// Check the signature against every active secret.
    pub(crate) fn check(&self, request: &WebhookRequest<'_>) -> Result<(), Rejection> {
        let value = header(request.headers, self.header)?;
        let sig = match self.form {
            Form::Hex(prefix) => value.strip_prefix(prefix).and_then(decode_hex),
            Form::Base64 => decode_base64(value),
        }
        .ok_or(Rejection::MalformedHeader {
            header: self.header.into(),
            reason: match self.form {
                Form::Hex(_) => "expected the prefix and lowercase hex",
                Form::Base64 => "not base64",
            },
        })?;
        let mut matched = false;
        for s in &self.secrets {
            matched |= ct_eq(&hmac_sha256(s.expose().as_bytes(), &[request.body]), &sig);
        }
        if matched {
            Ok(())
        } else {
            Err(Rejection::SignatureMismatch)
        }
    }
}

/// A header's value as an owned string, if present and ASCII.
pub(crate) fn header_text(request: &WebhookRequest<'_>, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
