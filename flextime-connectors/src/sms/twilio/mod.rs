//! Twilio Messages as an [`SmsSender`].
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
//!   `To`, `From` or `MessagingServiceSid`, `Body` and `StatusCallback`, with
//!   HTTP Basic auth: the account SID and auth token, or an API key SID and
//!   secret ([`TwilioCredentials`]); the account SID is always in the path.
//! - Twilio takes no idempotency key, so a send is never retried after the
//!   request may have reached Twilio (a 5xx or a timeout is an error; a 429
//!   or a refused connection is retried). A [`SmsMessage::dedup_key`] makes a
//!   send happen at most once per key through a [`DedupStore`] (in memory by
//!   default, 24 hours).
//! - Twilio's error body (`{"code": 21211, "message": ..., "status": 400}`)
//!   is quoted in the typed error: `... returned 400 Bad Request: The 'To'
//!   number is not a valid phone number. (code 21211)`.
//! - Status callbacks: [`StatusCallback`] parses the form Twilio posts to the
//!   `StatusCallback` URL; with the `webhooks` feature,
//!   `StatusCallback::verify` checks `X-Twilio-Signature` first.
//!
//! The base URL defaults to `https://api.twilio.com`; point it at a proxy or a
//! test peer with [`TwilioBuilder::base_url`].

mod callback;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use flextime_core::{Error, Result};
use serde::Deserialize;

pub use callback::StatusCallback;

use super::{DedupStore, MemoryDedupStore, SmsFrom, SmsMessage, SmsReceipt, SmsSender, SmsStatus};
use crate::http::{Auth, HttpClient, HttpClientBuilder};
use crate::{Capability, Connector};

/// The connector's name.
pub const NAME: &str = "twilio";
/// Twilio's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// How long a de-duplication key is remembered by default.
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(24 * 3600);

/// How requests authenticate. Debug output never shows a secret.
#[derive(Clone)]
pub enum TwilioCredentials {
    /// The account's auth token (Basic `AccountSid:AuthToken`).
    AuthToken(String),
    /// An API key (Basic `SK...:secret`), Twilio's recommendation for
    /// production.
    ApiKey {
        /// The key's SID (`SK` and 32 hex digits).
        sid: String,
        /// The key's secret.
        secret: String,
    },
}

impl fmt::Debug for TwilioCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthToken(_) => f.write_str("AuthToken([REDACTED])"),
            Self::ApiKey { sid, .. } => write!(f, "ApiKey({sid}:[REDACTED])"),
        }
    }
}

impl TwilioCredentials {
    /// The account's auth token.
    pub fn auth_token(token: impl Into<String>) -> Self {
        Self::AuthToken(token.into())
    }

    /// An API key SID and secret.
    pub fn api_key(sid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::ApiKey {
            sid: sid.into(),
            secret: secret.into(),
        }
    }
}

/// Builds a [`Twilio`] sender.
#[must_use]
pub struct TwilioBuilder {
    account_sid: String,
    credentials: TwilioCredentials,
    base_url: String,
    http: HttpClientBuilder,
    dedup: Arc<dyn DedupStore>,
    dedup_ttl: Duration,
}

impl TwilioBuilder {
    /// Overrides the API base URL (tests, proxies, Prism).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Where de-duplication keys are remembered (default: a
    /// [`MemoryDedupStore`] of this sender only).
    pub fn dedup_store(mut self, store: Arc<dyn DedupStore>) -> Self {
        self.dedup = store;
        self
    }

    /// How long a de-duplication key is remembered (default 24 hours).
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.dedup_ttl = ttl;
        self
    }

    /// Changes the underlying HTTP client (retries, timeouts, observers ...).
    pub fn http(mut self, f: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder) -> Self {
        self.http = f(self.http);
        self
    }

    /// Checks the SIDs and builds the sender.
    pub fn build(self) -> Result<Twilio> {
        if !super::is_sid(&self.account_sid, "AC") {
            return Err(Error::invalid_input(format!(
                "twilio: account SID {:?} is not AC followed by 32 hex digits",
                self.account_sid
            )));
        }
        let auth = match self.credentials {
            TwilioCredentials::AuthToken(token) => {
                if token.is_empty() {
                    return Err(Error::invalid_input("twilio: the auth token is empty"));
                }
                Auth::basic(self.account_sid.clone(), token)
            }
            TwilioCredentials::ApiKey { sid, secret } => {
                if !super::is_sid(&sid, "SK") {
                    return Err(Error::invalid_input(format!(
                        "twilio: API key SID {sid:?} is not SK followed by 32 hex digits"
                    )));
                }
                if secret.is_empty() {
                    return Err(Error::invalid_input("twilio: the API key secret is empty"));
                }
                Auth::basic(sid, secret)
            }
        };
        let http = self.http.base_url(&self.base_url)?.auth(auth).build()?;
        Ok(Twilio {
            http,
            account_sid: self.account_sid,
            dedup: self.dedup,
            dedup_ttl: self.dedup_ttl,
        })
    }
}

/// The Twilio SMS connector.
#[derive(Clone)]
pub struct Twilio {
    http: HttpClient,
    account_sid: String,
    dedup: Arc<dyn DedupStore>,
    dedup_ttl: Duration,
}

impl fmt::Debug for Twilio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twilio")
            .field("account_sid", &self.account_sid)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// The part of Twilio's Message resource we read.
#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

impl Twilio {
    /// A builder for account `account_sid` (`AC...`).
    pub fn builder(
        account_sid: impl Into<String>,
        credentials: TwilioCredentials,
    ) -> TwilioBuilder {
        TwilioBuilder {
            account_sid: account_sid.into(),
            credentials,
            base_url: DEFAULT_BASE_URL.to_owned(),
            http: HttpClient::builder(NAME),
            dedup: Arc::new(MemoryDedupStore::new()),
            dedup_ttl: DEFAULT_DEDUP_TTL,
        }
    }

    /// The account SID.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// The form fields of `message`, in the order they are sent.
    pub fn form(message: &SmsMessage) -> Vec<(&'static str, &str)> {
        let mut form = vec![("To", message.to.as_str())];
        match &message.from {
            SmsFrom::Number(from) => form.push(("From", from)),
            SmsFrom::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        form.push(("Body", message.body.as_str()));
        if let Some(url) = &message.status_callback {
            form.push(("StatusCallback", url));
        }
        form
    }

    async fn create_message(&self, message: &SmsMessage) -> Result<SmsReceipt> {
        let path = format!("2010-04-01/Accounts/{}/Messages.json", self.account_sid);
        let created: MessageResource = self
            .http
            .post(&path)
            .form(&Self::form(message))
            .send_json()
            .await?;
        if created.sid.is_empty() {
            return Err(Error::permanent(
                "twilio: the created message has an empty sid",
            ));
        }
        Ok(SmsReceipt {
            id: created.sid,
            status: created
                .status
                .as_deref()
                .map_or(SmsStatus::Queued, SmsStatus::parse),
            to: created.to.unwrap_or_else(|| message.to.clone()),
            deduplicated: false,
        })
    }
}

#[async_trait::async_trait]
impl SmsSender for Twilio {
    async fn send(&self, message: &SmsMessage) -> Result<SmsReceipt> {
        message.validate()?;
        super::send_once(self.dedup.as_ref(), self.dedup_ttl, message, || {
            self.create_message(message)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Connector for Twilio {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::Sms]
    }

    /// Fetches the account (`GET /2010-04-01/Accounts/{Sid}.json`).
    async fn check(&self) -> Result<()> {
        let path = format!("2010-04-01/Accounts/{}.json", self.account_sid);
        self.http.get(&path).send().await.map(|_| ())
    }
}
