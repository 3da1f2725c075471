//! Twilio request signatures.

use flextime_core::{Error, Secret};
use sha2::Digest;

use super::{
    Rejection, Verified, Verifier, WebhookRequest, ct_eq, decode_base64, encode_base64, header,
    hmac_sha1, text_secrets,
};

const SIGNATURE: &str = "x-twilio-signature";

/// Twilio: `X-Twilio-Signature` is the base64 HMAC-SHA1, keyed by the auth
/// token, of the full URL Twilio requested followed by every POST form
/// parameter as `name` + `value`, sorted by name (and by value for repeated
/// names). For JSON bodies Twilio adds a `bodySHA256` query parameter: the
/// signature covers the URL alone and the body's SHA-256 must equal it.
///
/// Proxies and load balancers rewrite URLs, so the verifier is configured
/// with the public URL Twilio calls (scheme, host and path, no query); the
/// request's own query string is appended to it. As Twilio's own libraries
/// do, the URL is tried both with and without its port (`:443` / `:80`).
/// The idempotency key is the `I-Twilio-Idempotency-Token` header.
#[derive(Debug, Clone)]
pub struct Twilio {
    tokens: Vec<Secret>,
    public_url: url::Url,
}

impl Twilio {
    /// A verifier for one or more auth tokens and the public URL of the route.
    pub fn new(tokens: impl IntoIterator<Item = Secret>, public_url: &str) -> Result<Self, Error> {
        let public_url = url::Url::parse(public_url).map_err(|e| {
            Error::invalid_input(format!(
                "twilio: public_url {public_url:?} is not a URL: {e}"
            ))
        })?;
        if public_url.query().is_some() {
            return Err(Error::invalid_input(
                "twilio: public_url must not have a query string (the request's own is appended)",
            ));
        }
        if !matches!(public_url.scheme(), "http" | "https") {
            return Err(Error::invalid_input(
                "twilio: public_url must be http or https",
            ));
        }
        Ok(Self {
            tokens: text_secrets("twilio", tokens.into_iter().collect())?,
            public_url,
        })
    }

    /// The URL Twilio signed for a request whose URI is `uri`.
    fn full_url(&self, uri: &http::Uri) -> String {
        let mut url = self.public_url.as_str().to_owned();
        if let Some(q) = uri.query() {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// `X-Twilio-Signature` for a form POST to `url` with `params`, with the first token.
    pub fn sign(&self, url: &str, params: &[(String, String)]) -> String {
        let key = self.tokens.first().map_or("", |s| s.expose());
        encode_base64(&signature(key.as_bytes(), url, params))
    }
}

fn signature(key: &[u8], url: &str, params: &[(String, String)]) -> [u8; 20] {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut parts: Vec<&[u8]> = vec![url.as_bytes()];
    for (k, v) in sorted {
        parts.push(k.as_bytes());
        parts.push(v.as_bytes());
    }
    hmac_sha1(key, &parts)
}

/// The URL with its default port added (when it has none) and removed.
fn port_variants(url: &str) -> Vec<String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return vec![url.to_owned()];
    };
    let mut variants = vec![url.to_owned()];
    let default = match parsed.scheme() {
        "https" => 443,
        _ => 80,
    };
    // Url normalises away a default port, so build both forms by hand.
    let host = parsed.host_str().unwrap_or_default();
    let rest = &url[url.find(host).map_or(0, |i| i + host.len())..];
    let rest = rest
        .strip_prefix(':')
        .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
    let prefix = format!("{}://{}", parsed.scheme(), authority_prefix(&parsed));
    let without = format!("{prefix}{host}{rest}");
    let with = format!("{prefix}{host}:{}{rest}", parsed.port().unwrap_or(default));
    for v in [without, with] {
        if !variants.contains(&v) {
            variants.push(v);
        }
    }
    variants
}

fn authority_prefix(url: &url::Url) -> String {
    match (url.username(), url.password()) {
        ("", None) => String::new(),
        (user, None) => format!("{user}@"),
        (user, Some(pass)) => format!("{user}:{pass}@"),
    }
}

impl Verifier for Twilio {
    fn scheme(&self) -> &'static str {
        "twilio"
    }

    fn verify(&self, request: &WebhookRequest<'_>, _now: i64) -> Result<Verified, Rejection> {
        let sig = decode_base64(header(request.headers, SIGNATURE)?).ok_or(
            Rejection::MalformedHeader {
                header: SIGNATURE.into(),
                reason: "not base64",
            },
        )?;
        let url = self.full_url(request.uri);
        let body_sha = request.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "bodySHA256")
                .map(|(_, v)| v.into_owned())
        });
        let params: Vec<(String, String)> = if let Some(expected) = &body_sha {
            let actual = hex::encode(sha2::Sha256::digest(request.body));
            if !ct_eq(actual.as_bytes(), expected.to_ascii_lowercase().as_bytes()) {
                return Err(Rejection::SignatureMismatch);
            }
            Vec::new()
        } else {
            form_urlencoded::parse(request.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        let mut matched = false;
        for candidate in port_variants(&url) {
            for t in &self.tokens {
                matched |= ct_eq(&signature(t.expose().as_bytes(), &candidate, &params), &sig);
            }
        }
        if !matched {
            return Err(Rejection::SignatureMismatch);
        }
        Ok(Verified {
            idempotency_key: request
                .headers
                .get("i-twilio-idempotency-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            event_type: None,
            timestamp: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants_cover_with_and_without() {
        let v = port_variants("https://mycompany.com/myapp.php?foo=1&bar=2");
        assert!(v.contains(&"https://mycompany.com/myapp.php?foo=1&bar=2".to_owned()));
        assert!(v.contains(&"https://mycompany.com:443/myapp.php?foo=1&bar=2".to_owned()));
        let v = port_variants("http://example.com:8080/x");
        assert!(v.contains(&"http://example.com/x".to_owned()));
        assert!(v.contains(&"http://example.com:8080/x".to_owned()));
    }
}
