//! A configurable HMAC scheme for providers without a dedicated verifier.

use flextime_core::{Error, Secret};
use serde::Deserialize;

use super::{
    Rejection, Tolerance, Verified, Verifier, WebhookRequest, ct_eq, decode_base64,
    decode_hex_any_case, encode_base64, header_dyn, hmac_sha256, hmac_sha512, json_string_member,
    parse_timestamp, text_secrets,
};

/// The hash under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How the signature is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Hexadecimal (either case).
    #[default]
    Hex,
    /// Standard base64 (padding optional).
    Base64,
}

/// A generic HMAC verifier.
///
/// The signed content is `template` with `{body}`, `{timestamp}` and `{id}`
/// replaced by the raw body, the timestamp header's value and the id
/// header's value (the default template is `{body}`). The signature header
/// may carry a `prefix` (`sha256=`) and may hold several comma- or
/// space-separated signatures.
///
/// ```
/// use flextime_webhooks::verify::{GenericHmac, HmacAlgorithm, Encoding, Tolerance};
///
/// let v = GenericHmac::new("x-signature", vec!["s3cret".into()])
///     .unwrap()
///     .with_algorithm(HmacAlgorithm::Sha512)
///     .with_encoding(Encoding::Base64)
///     .with_prefix("sha512=")
///     .with_timestamp("x-timestamp", "{timestamp}.{body}", Tolerance::DEFAULT)
///     .unwrap();
/// assert!(v.sign(1700000000, "", b"{}").starts_with("sha512="));
/// ```
#[derive(Debug, Clone)]
pub struct GenericHmac {
    header: String,
    secrets: Vec<Secret>,
    algorithm: HmacAlgorithm,
    encoding: Encoding,
    prefix: String,
    timestamp_header: Option<String>,
    id_header: Option<String>,
    type_header: Option<String>,
    template: String,
    tolerance: Tolerance,
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl GenericHmac {
    /// A verifier reading the signature from `header`, over the raw body,
    /// HMAC-SHA256, hex, no prefix, no timestamp.
    pub fn new(header: &str, secrets: Vec<Secret>) -> Result<Self, Error> {
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(Error::invalid_input(format!(
                "hmac: {header:?} is not a header name"
            )));
        }
        Ok(Self {
            header: lower(header),
            secrets: text_secrets("hmac", secrets)?,
            algorithm: HmacAlgorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: String::new(),
            timestamp_header: None,
            id_header: None,
            type_header: None,
            template: "{body}".into(),
            tolerance: Tolerance::DISABLED,
        })
    }

    /// Choose the hash.
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: HmacAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Choose the encoding.
    #[must_use]
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// A prefix before each signature (`sha256=`).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sign a timestamp: read it from `header`, build the signed content from
    /// `template`, and check it against `tolerance`.
    pub fn with_timestamp(
        mut self,
        header: &str,
        template: &str,
        tolerance: Tolerance,
    ) -> Result<Self, Error> {
        if !template.contains("{body}") {
            return Err(Error::invalid_input(
                "hmac: the template must contain {body}",
            ));
        }
        self.timestamp_header = Some(lower(header));
        template.clone_into(&mut self.template);
        self.tolerance = tolerance;
        Ok(self)
    }

    /// Set the signed-content template without a timestamp (`{id}.{body}`).
    pub fn with_template(mut self, template: &str) -> Result<Self, Error> {
        if !template.contains("{body}") {
            return Err(Error::invalid_input(
                "hmac: the template must contain {body}",
            ));
        }
        if template.contains("{timestamp}") && self.timestamp_header.is_none() {
            return Err(Error::invalid_input(
                "hmac: {timestamp} in the template needs a timestamp header",
            ));
        }
        template.clone_into(&mut self.template);
        Ok(self)
    }

    /// The header holding the delivery id (idempotency key; `{id}` in the template).
    #[must_use]
    pub fn with_id_header(mut self, header: &str) -> Self {
        self.id_header = Some(lower(header));
        self
    }

    /// The header holding the event type (else the body's `type` member).
    #[must_use]
    pub fn with_type_header(mut self, header: &str) -> Self {
        self.type_header = Some(lower(header));
        self
    }

    fn content<'a>(&self, timestamp: &'a str, id: &'a str, body: &'a [u8]) -> Vec<Vec<u8>> {
        // Split the template around {body} so the body is never copied.
        let mut parts = Vec::new();
        let mut rest = self.template.as_str();
        while let Some(pos) = rest.find('{') {
            parts.push(rest.as_bytes()[..pos].to_vec());
            let tail = &rest[pos..];
            if let Some(t) = tail.strip_prefix("{body}") {
                parts.push(body.to_vec());
                rest = t;
            } else if let Some(t) = tail.strip_prefix("{timestamp}") {
                parts.push(timestamp.as_bytes().to_vec());
                rest = t;
            } else if let Some(t) = tail.strip_prefix("{id}") {
                parts.push(id.as_bytes().to_vec());
                rest = t;
            } else {
                parts.push(b"{".to_vec());
                rest = &tail[1..];
            }
        }
        parts.push(rest.as_bytes().to_vec());
        parts
    }

    fn mac(&self, key: &[u8], parts: &[Vec<u8>]) -> Vec<u8> {
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        match self.algorithm {
            HmacAlgorithm::Sha256 => hmac_sha256(key, &parts).to_vec(),
            HmacAlgorithm::Sha512 => hmac_sha512(key, &parts).to_vec(),
        }
    }

    /// The header value for `body` (with `timestamp` and `id` when the
    /// template uses them), with the first secret.
    pub fn sign(&self, timestamp: i64, id: &str, body: &[u8]) -> String {
        let key = self.secrets.first().map_or("", |s| s.expose());
        let mac = self.mac(
            key.as_bytes(),
            &self.content(&timestamp.to_string(), id, body),
        );
        let sig = match self.encoding {
            Encoding::Hex => hex::encode(mac),
            Encoding::Base64 => encode_base64(&mac),
        };
        format!("{}{sig}", self.prefix)
    }
}

impl Verifier for GenericHmac {
    fn scheme(&self) -> &'static str {
        "hmac"
    }

    fn verify(&self, request: &WebhookRequest<'_>, now: i64) -> Result<Verified, Rejection> {
        let value = header_dyn(request.headers, &self.header)?;
        let (ts_text, timestamp) = match &self.timestamp_header {
            Some(name) => {
                let text = header_dyn(request.headers, name)?;
                let ts = parse_timestamp(name.clone(), text)?;
                self.tolerance.check(ts, now)?;
                (text, Some(ts))
            }
            None => ("", None),
        };
        let id = match &self.id_header {
            Some(name) => Some(header_dyn(request.headers, name)?),
            None => None,
        };
        let content = self.content(ts_text, id.unwrap_or(""), request.body);
        let expected: Vec<Vec<u8>> = self
            .secrets
            .iter()
            .map(|s| self.mac(s.expose().as_bytes(), &content))
            .collect();
        let mut any = false;
        let mut matched = false;
        for entry in value.split([',', ' ']).filter(|e| !e.is_empty()) {
            let Some(sig) = entry.strip_prefix(self.prefix.as_str()) else {
                continue;
            };
            let decoded = match self.encoding {
                Encoding::Hex => decode_hex_any_case(sig),
                Encoding::Base64 => decode_base64(sig),
            };
            let Some(decoded) = decoded else { continue };
            any = true;
            for e in &expected {
                matched |= ct_eq(e, &decoded);
            }
        }
        if !any {
            return Err(Rejection::MalformedHeader {
                header: self.header.clone().into(),
                reason: "no signature in the expected encoding and prefix",
            });
        }
        if !matched {
            return Err(Rejection::SignatureMismatch);
        }
        let type_from_header = self.type_header.as_deref().and_then(|h| {
            request
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        Ok(Verified {
            idempotency_key: id.map(str::to_owned),
            event_type: type_from_header.or_else(|| json_string_member(request.body, "type")),
            timestamp,
        })
    }
}
