//! Postmark `POST /email` and `POST /email/batch` (`X-Postmark-Server-Token`).
//!
//! Field names are Postmark's: `From`, `To`, `Cc`, `Bcc` (comma-separated
//! `"Name" <address>` lists), `ReplyTo`, `Subject`, `TextBody`, `HtmlBody`,
//! `Headers` (`[{Name, Value}]`), `Attachments` (`[{Name, Content,
//! ContentType, ContentID}]`, base64), `Metadata`, `MessageStream`. An
//! invitation is an attachment `invite.ics` (or `cancel.ics`) of type
//! `text/calendar; charset=UTF-8; method=...`.
//!
//! A batch goes out in requests of at most 500 messages; the answer is an
//! array with one entry per message: `ErrorCode` 0 is a receipt, any other
//! code that message's error (10 `Unauthorized`; 100 `Unavailable`; 405,
//! 401, 412, 413 `Forbidden`; 406 (inactive recipient) `Permanent`; 300,
//! 400, 402, 403, 409, 410, 411 and the 6xx codes `InvalidInput`). An
//! answer that is not such an array, or lacks an entry, gives those
//! messages a `Permanent` error saying the outcome is unknown.
//!
//! Postmark takes no idempotency key: a 5xx or a timeout is returned, not
//! retried; a 429 is retried after its `Retry-After`.

use base64::Engine as _;
use flextime_core::{Error, Result, Secret};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    EmailMessage, EmailReceipt, EmailSender, Mailbox, check_batch, concerns_whole_batch,
    copy_error, not_attempted,
};
use crate::http::{Auth, HttpClient, HttpClientBuilder};
use crate::{Capability, Connector};

/// Postmark's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.postmarkapp.com";

/// The most messages of one `/email/batch` request.
pub const MAX_BATCH_REQUEST: usize = 500;

/// The most recipients (to + cc + bcc) of one message.
pub const MAX_RECIPIENTS: usize = 50;

/// The largest message Postmark takes, attachments included (10 MB).
pub const MAX_SIZE: usize = 10 * 1024 * 1024;

/// The Postmark sender.
#[derive(Debug, Clone)]
pub struct Postmark {
    http: HttpClient,
    stream: String,
}

/// One entry of Postmark's answer.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(rename = "ErrorCode", default)]
    error_code: i64,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "MessageID", default)]
    message_id: Option<String>,
    #[serde(rename = "SubmittedAt", default)]
    submitted_at: Option<String>,
}

impl Postmark {
    /// A sender with server token `token` at `base_url`, sending to the
    /// `outbound` message stream; `configure` adjusts the HTTP client.
    pub fn new(
        base_url: &str,
        token: &Secret,
        configure: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder,
    ) -> Result<Self> {
        if token.is_empty() {
            return Err(Error::invalid_input("postmark: the server token is empty"));
        }
        let auth = Auth::ApiKeyHeader {
            header: http::HeaderName::from_static("x-postmark-server-token"),
            key: token.clone(),
        };
        let builder = HttpClient::builder("postmark")
            .auth(auth)
            .default_header("Accept", "application/json")?;
        let http = configure(builder).base_url(base_url)?.build()?;
        Ok(Self {
            http,
            stream: "outbound".into(),
        })
    }

    /// Sends through another message stream (`broadcast`, or one of yours).
    #[must_use]
    pub fn with_message_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = stream.into();
        self
    }

    /// The JSON object Postmark takes for `message` (after validation).
    pub fn body(&self, message: &EmailMessage) -> Result<Value> {
        message.validate()?;
        let count = message.recipients().count();
        if count > MAX_RECIPIENTS {
            return Err(Error::invalid_input(format!(
                "postmark: {count} recipients, at most {MAX_RECIPIENTS}"
            )));
        }
        if message.size() > MAX_SIZE {
            return Err(Error::invalid_input(format!(
                "postmark: {} bytes, at most {MAX_SIZE}",
                message.size()
            )));
        }
        let list = |l: &[Mailbox]| {
            l.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut body = json!({
            "From": message.from.to_string(),
            "Subject": message.subject,
            "MessageStream": self.stream,
        });
        for (key, l) in [
            ("To", &message.to),
            ("Cc", &message.cc),
            ("Bcc", &message.bcc),
        ] {
            if !l.is_empty() {
                body[key] = json!(list(l));
            }
        }
        if let Some(r) = &message.reply_to {
            body["ReplyTo"] = json!(r.to_string());
        }
        if let Some(text) = message.text.as_ref().filter(|t| !t.is_empty()) {
            body["TextBody"] = json!(text);
        }
        if let Some(html) = message.html.as_ref().filter(|t| !t.is_empty()) {
            body["HtmlBody"] = json!(html);
        }
        if !message.headers.is_empty() {
            body["Headers"] = message
                .headers
                .iter()
                .map(|(n, v)| json!({"Name": n, "Value": v}))
                .collect();
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut attachments = Vec::new();
        if let Some(inv) = &message.invitation {
            attachments.push(json!({
                "Name": inv.filename(),
                "Content": b64.encode(inv.ics()),
                "ContentType": inv.content_type(),
            }));
        }
        for a in &message.attachments {
            let mut att = json!({
                "Name": a.filename,
                "Content": b64.encode(&a.content),
                "ContentType": a.content_type,
            });
            if let Some(cid) = &a.content_id {
                att["ContentID"] = json!(format!("cid:{cid}"));
            }
            attachments.push(att);
        }
        if !attachments.is_empty() {
            body["Attachments"] = Value::Array(attachments);
        }
        if !message.metadata.is_empty() {
            body["Metadata"] = json!(message.metadata);
        }
        Ok(body)
    }

    fn receipt(message: &EmailMessage, answer: Answer) -> Result<EmailReceipt> {
        if answer.error_code != 0 {
            return Err(code_error(answer.error_code, &answer.message));
        }
        Ok(EmailReceipt {
            provider: "postmark".into(),
            message_id: answer.message_id,
            recipients: message.recipients().map(|m| m.email.clone()).collect(),
            detail: Some(match answer.submitted_at {
                Some(at) => format!("{} (submitted {at})", answer.message),
                None => answer.message,
            }),
        })
    }

    /// Sends one `/email/batch` request of valid messages; one result each.
    async fn send_chunk(
        &self,
        chunk: &[(&EmailMessage, Value)],
    ) -> Result<Vec<Result<EmailReceipt>>> {
        let bodies: Vec<&Value> = chunk.iter().map(|(_, b)| b).collect();
        let resp = self
            .http
            .post("email/batch")
            .idempotent(false)
            .allow_status(StatusCode::UNPROCESSABLE_ENTITY)
            .json(&bodies)
            .send()
            .await?;
        if resp.status() == StatusCode::UNPROCESSABLE_ENTITY {
            let answer: Answer = resp.json()?;
            return Err(code_error(answer.error_code, &answer.message));
        }
        let answers: Vec<Answer> = match resp.json() {
            Ok(a) => a,
            Err(e) => {
                // Accepted (2xx) but unreadable: whether each message went
                // out is unknown, and resending could duplicate it.
                return Ok(chunk
                    .iter()
                    .map(|_| Err(unknown_outcome(e.message())))
                    .collect());
            }
        };
        let mut answers = answers.into_iter();
        Ok(chunk
            .iter()
            .map(|(m, _)| match answers.next() {
                Some(a) => Self::receipt(m, a),
                None => Err(unknown_outcome(
                    "Postmark's answer has no entry for this message",
                )),
            })
            .collect())
    }
}

fn unknown_outcome(why: &str) -> Error {
    Error::permanent(format!(
        "postmark: {why}; the message may or may not have been sent, so it is not retried"
    ))
}

/// A Postmark `ErrorCode` as a typed error.
fn code_error(code: i64, message: &str) -> Error {
    let text = format!("postmark: error {code}: {message}");
    match code {
        10 => Error::unauthorized(text),
        100 => Error::unavailable(text),
        401 | 405 | 412 | 413 => Error::forbidden(text),
        300 | 400 | 402 | 403 | 409 | 410 | 411 | 600..=699 => Error::invalid_input(text),
        // 406 (inactive recipient) and anything unknown: final.
        _ => Error::permanent(text),
    }
}

#[async_trait::async_trait]
impl EmailSender for Postmark {
    fn provider(&self) -> &'static str {
        "postmark"
    }

    async fn send(&self, message: &EmailMessage) -> Result<EmailReceipt> {
        let body = self.body(message)?;
        let resp = self
            .http
            .post("email")
            .idempotent(false)
            .allow_status(StatusCode::UNPROCESSABLE_ENTITY)
            .json(&body)
            .send()
            .await?;
        let answer: Answer = resp.json().map_err(|e| {
            if resp.status().is_success() {
                unknown_outcome(e.message())
            } else {
                Error::invalid_input(format!("postmark: {}", e.message()))
            }
        })?;
        if resp.status() == StatusCode::UNPROCESSABLE_ENTITY && answer.error_code == 0 {
            return Err(Error::invalid_input(format!(
                "postmark: 422: {}",
                answer.message
            )));
        }
        Self::receipt(message, answer)
    }

    /// Valid messages go out in `/email/batch` requests of at most 500;
    /// invalid ones get their `InvalidInput` error without a request.
    async fn send_batch(&self, messages: &[EmailMessage]) -> Result<Vec<Result<EmailReceipt>>> {
        check_batch(messages)?;
        let mut out: Vec<Option<Result<EmailReceipt>>> = Vec::with_capacity(messages.len());
        let mut valid: Vec<(usize, &EmailMessage, Value)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            match self.body(m) {
                Ok(body) => {
                    out.push(None);
                    valid.push((i, m, body));
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let mut sent_any = false;
        let mut stopped: Option<Error> = None;
        for chunk in valid.chunks(MAX_BATCH_REQUEST) {
            if let Some(cause) = &stopped {
                for (i, _, _) in chunk {
                    out[*i] = Some(Err(not_attempted(cause)));
                }
                continue;
            }
            let pairs: Vec<(&EmailMessage, Value)> =
                chunk.iter().map(|(_, m, b)| (*m, b.clone())).collect();
            match self.send_chunk(&pairs).await {
                Ok(results) => {
                    sent_any = true;
                    for ((i, _, _), r) in chunk.iter().zip(results) {
                        out[*i] = Some(r);
                    }
                }
                Err(e) if !sent_any && concerns_whole_batch(&e) => return Err(e),
                Err(e) => {
                    if concerns_whole_batch(&e) {
                        stopped = Some(copy_error(&e));
                    }
                    for (i, _, _) in chunk {
                        out[*i] = Some(Err(copy_error(&e)));
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("postmark: a message got no result"))))
            .collect())
    }
}

#[async_trait::async_trait]
impl Connector for Postmark {
    fn name(&self) -> &'static str {
        "postmark"
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::Email]
    }

    /// `GET /server`: the server the token belongs to.
    async fn check(&self) -> Result<()> {
        self.http.get("server").send().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use flextime_core::ErrorKind;

    use super::*;

    #[test]
    fn error_codes_are_typed() {
        assert_eq!(code_error(10, "x").kind(), ErrorKind::Unauthorized);
        assert_eq!(code_error(300, "x").kind(), ErrorKind::InvalidInput);
        assert_eq!(code_error(406, "x").kind(), ErrorKind::Permanent);
        assert_eq!(code_error(100, "x").kind(), ErrorKind::Unavailable);
        assert_eq!(code_error(405, "x").kind(), ErrorKind::Forbidden);
        assert_eq!(code_error(9999, "x").kind(), ErrorKind::Permanent);
    }
}
