//! SendGrid v3 `POST /v3/mail/send` (Bearer API key).
//!
//! One message is one request with one personalization (to / cc / bcc and
//! the message's metadata as `custom_args`); `content` lists `text/plain`
//! before `text/html`, as SendGrid requires; attachments are base64. An
//! invitation is an attachment of type `text/calendar; method=...` named
//! `invite.ics` (or `cancel.ics`), with `disposition: inline` and a
//! `content_id`, so that clients show it as the calendar part of the
//! message. Success is `202 Accepted`, with the id in `X-Message-Id`.
//!
//! SendGrid takes no idempotency key: a 5xx or a timeout is returned, not
//! retried (the message may have been queued); a 429 is retried after its
//! `Retry-After`. Errors quote SendGrid's `errors[0].message`.

use std::collections::BTreeMap;

use base64::Engine as _;
use flextime_core::{Error, Result, Secret};
use serde_json::{Map, Value, json};

use super::{EmailMessage, EmailReceipt, EmailSender, Mailbox};
use crate::http::{Auth, HttpClient, HttpClientBuilder};
use crate::{Capability, Connector};

/// SendGrid's global API host (`https://api.eu.sendgrid.com` for EU subusers).
pub const DEFAULT_BASE_URL: &str = "https://api.sendgrid.com";

/// The most recipients (to + cc + bcc) of one personalization.
pub const MAX_RECIPIENTS: usize = 1000;

/// The SendGrid sender.
#[derive(Debug, Clone)]
pub struct SendGrid {
    http: HttpClient,
}

impl SendGrid {
    /// A sender with API key `key` at `base_url`; `configure` adjusts the
    /// HTTP client (retry policy, observers, timeouts).
    pub fn new(
        base_url: &str,
        key: &Secret,
        configure: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder,
    ) -> Result<Self> {
        if key.is_empty() {
            return Err(Error::invalid_input("sendgrid: the API key is empty"));
        }
        let builder = HttpClient::builder("sendgrid").auth(Auth::Bearer(key.clone()));
        let http = configure(builder).base_url(base_url)?.build()?;
        Ok(Self { http })
    }

    /// The request body for `message` (after validation).
    pub fn body(message: &EmailMessage) -> Result<Value> {
        message.validate()?;
        let count = message.recipients().count();
        if count > MAX_RECIPIENTS {
            return Err(Error::invalid_input(format!(
                "sendgrid: {count} recipients, at most {MAX_RECIPIENTS}"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for m in message.recipients() {
            if !seen.insert(m.email.to_ascii_lowercase()) {
                return Err(Error::invalid_input(format!(
                    "sendgrid: {} appears more than once among to, cc and bcc",
                    m.email
                )));
            }
        }
        let mut personalization = Map::new();
        for (key, list) in [
            ("to", &message.to),
            ("cc", &message.cc),
            ("bcc", &message.bcc),
        ] {
            if !list.is_empty() {
                personalization.insert(key.into(), list.iter().map(address).collect());
            }
        }
        if !message.metadata.is_empty() {
            personalization.insert("custom_args".into(), json!(message.metadata));
        }
        let mut content = Vec::new();
        if let Some(text) = message.text.as_ref().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text/plain", "value": text}));
        }
        if let Some(html) = message.html.as_ref().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text/html", "value": html}));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut attachments = Vec::new();
        if let Some(inv) = &message.invitation {
            attachments.push(json!({
                "content": b64.encode(inv.ics()),
                "type": format!("text/calendar; method={}", inv.method().as_str()),
                "filename": inv.filename(),
                "disposition": "inline",
                "content_id": format!("{}-{}", inv.method().as_str().to_ascii_lowercase(), inv.uid()),
            }));
        }
        for a in &message.attachments {
            let mut att = json!({
                "content": b64.encode(&a.content),
                "type": a.content_type,
                "filename": a.filename,
                "disposition": "attachment",
            });
            if let Some(cid) = &a.content_id {
                att["disposition"] = json!("inline");
                att["content_id"] = json!(cid);
            }
            attachments.push(att);
        }
        let mut body = json!({
            "personalizations": [personalization],
            "from": address(&message.from),
            "subject": message.subject,
            "content": content,
        });
        if let Some(r) = &message.reply_to {
            body["reply_to"] = address(r);
        }
        if !attachments.is_empty() {
            body["attachments"] = Value::Array(attachments);
        }
        if !message.headers.is_empty() {
            let headers: BTreeMap<&str, &str> = message
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            body["headers"] = json!(headers);
        }
        Ok(body)
    }
}

fn address(m: &Mailbox) -> Value {
    match &m.name {
        Some(name) => json!({"email": m.email, "name": name}),
        None => json!({"email": m.email}),
    }
}

#[async_trait::async_trait]
impl EmailSender for SendGrid {
    fn provider(&self) -> &'static str {
        "sendgrid"
    }

    async fn send(&self, message: &EmailMessage) -> Result<EmailReceipt> {
        let body = Self::body(message)?;
        // Not idempotent: the client retries only a 429 and a refused
        // connection, never a 5xx or a timeout.
        let resp = self
            .http
            .post("v3/mail/send")
            .idempotent(false)
            .json(&body)
            .send()
            .await?;
        Ok(EmailReceipt {
            provider: "sendgrid".into(),
            message_id: resp.header("x-message-id").map(str::to_owned),
            recipients: message.recipients().map(|m| m.email.clone()).collect(),
            detail: Some(format!("{}", resp.status())),
        })
    }
}

#[async_trait::async_trait]
impl Connector for SendGrid {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::Email]
    }

    /// `GET /v3/scopes`: the key's permissions (any key may read them).
    async fn check(&self) -> Result<()> {
        self.http.get("v3/scopes").send().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use flextime_core::ErrorKind;

    use super::*;

    #[test]
    fn limits_are_checked_before_any_request() {
        let mut m = EmailMessage::new("a@example.com", "s").text("t");
        for i in 0..=MAX_RECIPIENTS {
            m = m.bcc(format!("r{i}@example.com"));
        }
        let e = SendGrid::body(&m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("1001 recipients"), "{e}");
        let html_only = EmailMessage::new("a@example.com", "s")
            .to("b@example.com")
            .html("<p>x</p>");
        let body = SendGrid::body(&html_only).unwrap();
        assert_eq!(
            body["content"],
            json!([{"type": "text/html", "value": "<p>x</p>"}])
        );
        assert!(body.get("attachments").is_none());
        assert!(body["personalizations"][0].get("custom_args").is_none());
    }
}
