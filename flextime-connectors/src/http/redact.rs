//! Redaction of credentials from what is logged.

use http::header::HeaderMap;
use url::Url;

const REDACTED: &str = "[REDACTED]";

/// Decides which header values and query parameters are never logged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    headers: Vec<String>,
    params: Vec<String>,
}

const SENSITIVE_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "signature",
    "password",
    "auth",
    "cookie",
    "session",
    "sig",
    "code",
    "credential",
];

fn sensitive_name(name: &str, extra: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    extra.iter().any(|e| e == &lower) || SENSITIVE_WORDS.iter().any(|w| lower.contains(w))
}

impl Redactor {
    pub(crate) fn add_header(&mut self, name: &str) {
        self.headers.push(name.to_ascii_lowercase());
    }

    pub(crate) fn add_query_param(&mut self, name: &str) {
        self.params.push(name.to_ascii_lowercase());
    }

    /// The URL with user info and sensitive query values replaced.
    pub(crate) fn url(&self, url: &Url) -> String {
        let mut shown = url.clone();
        if !shown.username().is_empty() || shown.password().is_some() {
            let _ = shown.set_username(REDACTED);
            let _ = shown.set_password(None);
        }
        if shown.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if sensitive_name(&k, &self.params) {
                        REDACTED.to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        shown.to_string()
    }

    /// The headers as (name, value) pairs with sensitive values replaced.
    pub(crate) fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                let value = if v.is_sensitive() || sensitive_name(k.as_str(), &self.headers) {
                    REDACTED.to_owned()
                } else {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                };
                (k.as_str().to_owned(), value)
            })
            .collect()
    }
}

/// At most `max` characters of `s`, on a character boundary, with `...` when cut.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let trimmed = s.trim();
    match trimmed.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_secrets_and_user_info_are_replaced() {
        let r = Redactor::default();
        let url = Url::parse("https://user:pw@api.example.com/v1/x?key=abc&page=2&access_token=t")
            .unwrap();
        let shown = r.url(&url);
        assert!(
            !shown.contains("abc") && !shown.contains("pw") && !shown.contains("=t"),
            "{shown}"
        );
        assert!(shown.contains("page=2"), "{shown}");
    }

    #[test]
    fn sensitive_headers_are_replaced() {
        let mut r = Redactor::default();
        r.add_header("x-custom");
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer s3cr3t".parse().unwrap());
        h.insert("x-api-key", "k3y".parse().unwrap());
        h.insert("x-custom", "c".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        let shown = format!("{:?}", r.headers(&h));
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("k3y") && !shown.contains("\"c\""),
            "{shown}"
        );
        assert!(shown.contains("application/json"));
    }

    #[test]
    fn excerpt_cuts_on_char_boundaries() {
        assert_eq!(excerpt("ééééé", 3), "ééé...");
        assert_eq!(excerpt(" short ", 10), "short");
    }
}
