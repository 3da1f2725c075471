//! SMTP through lettre: a pooled async transport over plain TCP (for local
//! servers), STARTTLS (required, never opportunistic) or implicit TLS, with
//! optional authentication.
//!
//! | URL | security | default port |
//! |---|---|---|
//! | `smtp://host:port` | none (local relays and test servers only) | 25 |
//! | `smtp+starttls://host:port` | STARTTLS, required | 587 |
//! | `smtps://host:port` | implicit TLS | 465 |
//!
//! Credentials go in the URL (`smtps://user:pass@host`, percent-encoded) or
//! through [`SmtpBuilder::credentials`]; the password is a
//! [`Secret`] and never appears in Debug output, logs or errors. TLS
//! certificates are checked against the Mozilla roots (webpki-roots) and
//! any root added with [`SmtpBuilder::add_root_certificate_pem`] (a private
//! CA or a self-signed server); host names are always checked.
//!
//! # The MIME layout
//!
//! A message with only a text or only an HTML body is a single part; with
//! both, `multipart/alternative`. An invitation is written the way Google
//! Calendar and Outlook write theirs, which is what both recognise:
//!
//! ```text
//! multipart/mixed
//!   multipart/alternative
//!     text/plain
//!     text/html                                   (when given)
//!     text/calendar; charset=UTF-8; method=REQUEST
//!   application/ics; name="invite.ics"            (attachment)
//!   ...other attachments
//! ```
//!
//! Nothing is retried here: SMTP has no idempotency key, and a connection
//! dropped after the data was sent may or may not have delivered it. A 4xx
//! reply or a refused connection is `Unavailable`, a timeout `Timeout`,
//! 530/534/535/538 `Unauthorized`, 501/552/553/555 `InvalidInput`, other
//! 5xx `Permanent`.

use std::fmt;
use std::time::Duration;

use flextime_core::{Error, Result, Secret};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as MimeAttachment, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{EmailMessage, EmailReceipt, EmailSender, Mailbox};
use crate::{Capability, Connector};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS at all (`smtp://`): for a relay on the same host or a test server.
    Plain,
    /// STARTTLS, required (`smtp+starttls://`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    ImplicitTls,
}

/// Builds an [`Smtp`] sender.
#[must_use]
pub struct SmtpBuilder {
    security: SmtpSecurity,
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<Secret>,
    pool_max: u32,
    timeout: Duration,
    roots: Vec<Vec<u8>>,
}

impl fmt::Debug for SmtpBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpBuilder")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

impl SmtpBuilder {
    /// Authenticates with this user name and password (overrides any in the URL).
    pub fn credentials(mut self, username: impl Into<String>, password: Secret) -> Self {
        self.username = Some(username.into());
        self.password = Some(password);
        self
    }

    /// The most connections the pool keeps open (default 4).
    pub fn pool_max_size(mut self, max: u32) -> Self {
        self.pool_max = max.max(1);
        self
    }

    /// Also trusts this root certificate (PEM) for TLS, besides the Mozilla
    /// roots: a private CA, or a self-signed server certificate.
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.roots.push(pem.to_vec());
        self
    }

    /// The timeout of each SMTP command, connecting included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the sender; no connection is made until the first send. It
    /// must be called inside a Tokio runtime (the pool runs a task there);
    /// outside one it is an `Internal` error.
    pub fn build(self) -> Result<Smtp> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::internal(
                "smtp: the sender must be built inside a Tokio runtime (its pool runs a task)",
            ));
        }
        let tls = |host: &str| -> Result<TlsParameters> {
            let mut params = TlsParameters::builder(host.to_owned());
            for pem in &self.roots {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    Error::invalid_input(format!("smtp: a root certificate is not PEM: {e}"))
                })?;
                params = params.add_root_certificate(cert);
            }
            params
                .build()
                .map_err(|e| Error::invalid_input(format!("smtp: TLS settings: {e}")))
        };
        let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone());
        let builder = match self.security {
            SmtpSecurity::Plain => plain.tls(Tls::None),
            SmtpSecurity::StartTls => plain.tls(Tls::Required(tls(&self.host)?)),
            SmtpSecurity::ImplicitTls => plain.tls(Tls::Wrapper(tls(&self.host)?)),
        };
        let mut builder = builder
            .port(self.port)
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new().max_size(self.pool_max));
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            }
            (Some(_), None) => {
                return Err(Error::invalid_input(
                    "smtp: a user name was given without a password",
                ));
            }
            _ => {}
        }
        let scheme = match self.security {
            SmtpSecurity::Plain => "smtp",
            SmtpSecurity::StartTls => "smtp+starttls",
            SmtpSecurity::ImplicitTls => "smtps",
        };
        Ok(Smtp {
            transport: builder.build(),
            shown: format!("{scheme}://{}:{}", self.host, self.port),
            username: self.username,
        })
    }
}

/// An SMTP [`EmailSender`] with a connection pool. Cheap to share (wrap it
/// in an `Arc`); reuse one for many messages so connections are reused.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    shown: String,
    username: Option<String>,
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp")
            .field("server", &self.shown)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// A builder from a URL (`smtp://`, `smtp+starttls://`, `smtps://`; see
    /// the [module](self) docs). A bad URL is an `InvalidInput` error that
    /// never quotes the password.
    pub fn builder(url: &str) -> Result<SmtpBuilder> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::invalid_input(format!("smtp: the URL is not valid: {e}")))?;
        let (security, default_port) = match parsed.scheme() {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::ImplicitTls, 465),
            other => {
                return Err(Error::invalid_input(format!(
                    "smtp: the URL scheme must be smtp, smtp+starttls or smtps, not {other}"
                )));
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::invalid_input("smtp: the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or_else(|| Error::invalid_input("smtp: the URL's credentials are not UTF-8"))
        };
        let username = match parsed.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = parsed.password().map(decode).transpose()?.map(Secret::new);
        Ok(SmtpBuilder {
            security,
            host,
            port: parsed.port().unwrap_or(default_port),
            username,
            password,
            pool_max: 4,
            timeout: Duration::from_secs(30),
            roots: Vec::new(),
        })
    }

    /// A sender for `url` with the defaults.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::builder(url)?.build()
    }

    /// The server as `scheme://host:port` (never with credentials).
    pub fn server(&self) -> &str {
        &self.shown
    }

    fn error(&self, e: &lettre::transport::smtp::Error) -> Error {
        let what = format!("smtp {}: {e}", self.shown);
        if e.is_timeout() {
            return Error::timeout(what);
        }
        if let Some(code) = e.status() {
            let code = code.to_string();
            return match code.as_str() {
                "530" | "534" | "535" | "538" => Error::unauthorized(what),
                "501" | "552" | "553" | "555" => Error::invalid_input(what),
                c if c.starts_with('4') => Error::unavailable(what),
                _ => Error::permanent(what),
            };
        }
        if e.is_client() {
            return Error::permanent(what);
        }
        // Connection, network, TLS, unreadable replies: the server is not
        // usable right now.
        Error::unavailable(what)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn mailbox(m: &Mailbox, field: &str) -> Result<lettre::message::Mailbox> {
    let address = m.email.parse().map_err(|e| {
        Error::invalid_input(format!(
            "email: {field}: {:?} is not an address SMTP accepts: {e}",
            m.email
        ))
    })?;
    Ok(lettre::message::Mailbox::new(m.name.clone(), address))
}

fn content_type(value: &str) -> Result<ContentType> {
    ContentType::parse(value)
        .map_err(|e| Error::invalid_input(format!("email: {value:?} is not a MIME type: {e}")))
}

/// The message as lettre builds it (headers, MIME tree, `Message-ID`), and
/// that id. The message must be valid.
fn build(m: &EmailMessage) -> Result<(lettre::Message, String)> {
    let domain = m.from.email.rsplit('@').next().unwrap_or("localhost");
    let id = format!("{}@{domain}", uuid::Uuid::new_v4().simple());
    let mut b = lettre::Message::builder()
        .from(mailbox(&m.from, "from")?)
        .subject(m.subject.clone())
        .message_id(Some(format!("<{id}>")))
        .date_now();
    for (i, to) in m.to.iter().enumerate() {
        b = b.to(mailbox(to, &format!("to[{i}]"))?);
    }
    for (i, cc) in m.cc.iter().enumerate() {
        b = b.cc(mailbox(cc, &format!("cc[{i}]"))?);
    }
    for (i, bcc) in m.bcc.iter().enumerate() {
        b = b.bcc(mailbox(bcc, &format!("bcc[{i}]"))?);
    }
    if let Some(r) = &m.reply_to {
        b = b.reply_to(mailbox(r, "reply_to")?);
    }
    for (name, value) in &m.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| Error::invalid_input(format!("email: {name:?} is not a header name")))?;
        b = b.raw_header(HeaderValue::new(name, value.clone()));
    }

    let mut alternatives = Vec::new();
    if let Some(text) = m.text.as_ref().filter(|t| !t.is_empty()) {
        alternatives.push(SinglePart::plain(text.clone()));
    }
    if let Some(html) = m.html.as_ref().filter(|t| !t.is_empty()) {
        alternatives.push(SinglePart::html(html.clone()));
    }
    if let Some(inv) = &m.invitation {
        alternatives.push(
            SinglePart::builder()
                .header(content_type(&inv.content_type())?)
                .body(inv.ics().to_owned()),
        );
    }
    let mut files = Vec::new();
    if let Some(inv) = &m.invitation {
        files.push(MimeAttachment::new(inv.filename().to_owned()).body(
            inv.ics().as_bytes().to_vec(),
            content_type(&format!("application/ics; name=\"{}\"", inv.filename()))?,
        ));
    }
    for a in &m.attachments {
        let attachment = match &a.content_id {
            Some(cid) => MimeAttachment::new_inline_with_name(cid.clone(), a.filename.clone()),
            None => MimeAttachment::new(a.filename.clone()),
        };
        files.push(attachment.body(a.content.clone(), content_type(&a.content_type)?));
    }

    let message = if files.is_empty() && alternatives.len() == 1 {
        b.singlepart(alternatives.remove(0))
    } else {
        let mut mixed = MultiPart::mixed().build();
        if alternatives.len() == 1 {
            mixed = mixed.singlepart(alternatives.remove(0));
        } else {
            let mut alt = MultiPart::alternative().build();
            for part in alternatives {
                alt = alt.singlepart(part);
            }
            if files.is_empty() {
                return b
                    .multipart(alt)
                    .map(|msg| (msg, id))
                    .map_err(|e| Error::invalid_input(format!("email: {e}")));
            }
            mixed = mixed.multipart(alt);
        }
        for f in files {
            mixed = mixed.singlepart(f);
        }
        b.multipart(mixed)
    };
    message
        .map(|msg| (msg, id))
        .map_err(|e| Error::invalid_input(format!("email: {e}")))
}

/// The message as the bytes SMTP would send (RFC 5322, MIME), after
/// [`validate`](EmailMessage::validate). `Bcc` is not among the headers.
pub fn render(message: &EmailMessage) -> Result<Vec<u8>> {
    message.validate()?;
    Ok(build(message)?.0.formatted())
}

#[async_trait::async_trait]
impl EmailSender for Smtp {
    fn provider(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &EmailMessage) -> Result<EmailReceipt> {
        message.validate()?;
        let (mime, id) = build(message)?;
        let span = tracing::debug_span!("email.send", provider = "smtp", server = %self.shown);
        let _enter = span.enter();
        let response = self
            .transport
            .send(mime)
            .await
            .map_err(|e| self.error(&e))?;
        let reply: Vec<&str> = response.message().collect();
        tracing::debug!(code = %response.code(), "accepted");
        Ok(EmailReceipt {
            provider: "smtp".into(),
            message_id: Some(id),
            recipients: message.recipients().map(|m| m.email.clone()).collect(),
            detail: Some(format!("{} {}", response.code(), reply.join(" "))),
        })
    }
}

#[async_trait::async_trait]
impl Connector for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::Email]
    }

    /// Connects (with TLS and authentication as configured) and says NOOP.
    async fn check(&self) -> Result<()> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::unavailable(format!(
                "smtp {}: the server did not answer NOOP",
                self.shown
            ))),
            Err(e) => Err(self.error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use flextime_core::ErrorKind;

    use super::*;
    use crate::email::{Attachment, Invitation, InvitationMethod};

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        let e = Smtp::from_url("smtp://127.0.0.1:2525").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
    }

    #[tokio::test]
    async fn urls_choose_security_and_keep_passwords_out_of_debug() {
        let b = Smtp::builder("smtps://ana%40x:p%40ss@mail.example.com").unwrap();
        assert_eq!(b.security, SmtpSecurity::ImplicitTls);
        assert_eq!(b.port, 465);
        assert_eq!(b.username.as_deref(), Some("ana@x"));
        assert_eq!(b.password.as_ref().unwrap().expose(), "p@ss");
        assert!(!format!("{b:?}").contains("p@ss"));
        let s = b.build().unwrap();
        assert_eq!(s.server(), "smtps://mail.example.com:465");
        assert!(!format!("{s:?}").contains("p@ss"));
        let b = Smtp::builder("smtp+starttls://mail.example.com").unwrap();
        assert_eq!((b.security, b.port), (SmtpSecurity::StartTls, 587));
        let b = Smtp::builder("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((b.security, b.port), (SmtpSecurity::Plain, 2525));
        for bad in ["http://x", "smtp://", "not a url", "smtp://u:%ff@h"] {
            let e = Smtp::builder(bad).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
        }
        let e = Smtp::builder("smtp://u@h").unwrap().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn invitation_layout_is_mixed_over_alternative() {
        let ics = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n";
        let m = EmailMessage::new("desk@example.com", "Invite")
            .to("ana@example.com")
            .bcc("hidden@example.com")
            .text("plain")
            .html("<p>html</p>")
            .attach(Attachment::new("a.txt", "text/plain", b"file".to_vec()))
            .invitation(Invitation::from_ics(InvitationMethod::Request, "u", 0, ics).unwrap());
        let raw = String::from_utf8(render(&m).unwrap()).unwrap();
        let mixed = raw.find("multipart/mixed").unwrap();
        let alt = raw.find("multipart/alternative").unwrap();
        let plain = raw.find("text/plain").unwrap();
        let cal = raw.find("Content-Type: text/calendar").unwrap();
        assert!(
            raw[cal..]
                .lines()
                .next()
                .unwrap()
                .contains("method=REQUEST")
        );
        let file = raw.find("application/ics").unwrap();
        assert!(
            mixed < alt && alt < plain && plain < cal && cal < file,
            "{raw}"
        );
        assert!(!raw.contains("hidden@example.com"), "no Bcc header");
        assert!(raw.contains("filename=\"invite.ics\""));
    }
}
