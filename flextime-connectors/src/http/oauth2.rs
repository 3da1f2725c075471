//! OAuth2 (RFC 6749) for connectors: the authorization-code flow with PKCE
//! (RFC 7636), token exchange, and an [`OAuth2Session`] that refreshes the
//! access token before it expires, once for all concurrent callers.
//!
//! The token endpoint is called through an [`HttpClient`], so token requests
//! get the same retries, tracing and redaction as every other request; the
//! two grant requests are small enough that this is simpler than adapting a
//! general OAuth2 crate's own HTTP layer to the client stack.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use flextime_core::clock::{SharedClock, system_clock};
use flextime_core::{Error, Result, Secret};
use http::StatusCode;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, broadcast};
use url::Url;

use super::client::HttpClient;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body (Google, Microsoft).
    #[default]
    RequestBody,
    /// HTTP Basic with the client id and secret (RFC 6749 section 2.3.1).
    BasicHeader,
}

/// An OAuth2 client registration.
#[derive(Clone)]
pub struct OAuth2Config {
    /// The client id.
    pub client_id: String,
    /// The client secret (absent for public clients, which rely on PKCE).
    pub client_secret: Option<Secret>,
    /// The authorization endpoint.
    pub authorize_url: Url,
    /// The token endpoint.
    pub token_url: Url,
    /// The redirect URI registered for this client.
    pub redirect_uri: Option<String>,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuthMethod,
}

impl fmt::Debug for OAuth2Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Config")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Where to send the user, and what to keep until they come back.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The URL to redirect the user's browser to.
    pub url: Url,
    /// The `state` value to compare with the one the redirect brings back.
    pub state: String,
    /// The PKCE verifier to pass to [`OAuth2Config::exchange_code`].
    pub pkce_verifier: Secret,
}

/// The tokens a grant produced.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when the server issued one.
    pub refresh_token: Option<Secret>,
    /// When the access token expires, when the server said.
    pub expires_at: Option<DateTime<Utc>>,
    /// The scopes granted, when the server said.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// What happened to a session's grant; see [`OAuth2Session::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEvent {
    /// The access token was refreshed.
    Refreshed {
        /// The new expiry, if known.
        expires_at: Option<DateTime<Utc>>,
    },
    /// The refresh token was refused (`invalid_grant`): the user must
    /// authorize again.
    GrantRevoked {
        /// The server's error code and description.
        reason: String,
    },
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_token(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    b64url(&bytes)
}

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

impl OAuth2Config {
    /// A confidential client.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        authorize_url: &str,
        token_url: &str,
    ) -> Result<Self> {
        let parse = |what: &str, u: &str| {
            Url::parse(u).map_err(|e| Error::invalid_input(format!("oauth2 {what} URL {u:?}: {e}")))
        };
        Ok(Self {
            client_id: client_id.into(),
            client_secret,
            authorize_url: parse("authorize", authorize_url)?,
            token_url: parse("token", token_url)?,
            redirect_uri: None,
            scopes: Vec::new(),
            client_auth: ClientAuthMethod::default(),
        })
    }

    /// Sets the redirect URI.
    #[must_use]
    pub fn with_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Sets the scopes.
    #[must_use]
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how the client authenticates at the token endpoint.
    #[must_use]
    pub fn with_client_auth(mut self, method: ClientAuthMethod) -> Self {
        self.client_auth = method;
        self
    }

    /// The authorization URL with a fresh `state` and PKCE S256 challenge.
    pub fn authorization_request(&self) -> AuthorizationRequest {
        let state = random_token(16);
        let verifier = random_token(32);
        let mut url = self.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("state", &state)
                .append_pair("code_challenge", &pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(uri) = &self.redirect_uri {
                q.append_pair("redirect_uri", uri);
            }
            if !self.scopes.is_empty() {
                q.append_pair("scope", &self.scopes.join(" "));
            }
        }
        AuthorizationRequest {
            url,
            state,
            pkce_verifier: Secret::new(verifier),
        }
    }

    /// An HTTP client for the token endpoint's origin.
    pub fn token_client(&self) -> Result<HttpClient> {
        let origin = self.token_url.origin().ascii_serialization();
        HttpClient::builder("oauth2").base_url(&origin)?.build()
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(
        &self,
        http: &HttpClient,
        code: &str,
        pkce_verifier: Option<&Secret>,
    ) -> Result<TokenSet> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
        ];
        if let Some(uri) = &self.redirect_uri {
            form.push(("redirect_uri", uri.clone()));
        }
        if let Some(verifier) = pkce_verifier {
            form.push(("code_verifier", verifier.expose().to_owned()));
        }
        self.token_request(http, form, Utc::now()).await
    }

    async fn token_request(
        &self,
        http: &HttpClient,
        mut form: Vec<(&'static str, String)>,
        now: DateTime<Utc>,
    ) -> Result<TokenSet> {
        let mut req = http
            .post(self.token_url.as_str())
            .idempotent(true)
            .allow_status(StatusCode::BAD_REQUEST)
            .allow_status(StatusCode::UNAUTHORIZED);
        match (self.client_auth, &self.client_secret) {
            (ClientAuthMethod::BasicHeader, Some(secret)) => {
                let value = super::auth::basic_value(
                    &form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect::<String>(),
                    &form_urlencoded::byte_serialize(secret.expose().as_bytes())
                        .collect::<String>(),
                );
                req = req.header("authorization", &value);
            }
            (_, secret) => {
                form.push(("client_id", self.client_id.clone()));
                if let Some(secret) = secret {
                    form.push(("client_secret", secret.expose().to_owned()));
                }
            }
        }
        let resp = req.without_auth().form(&form).send().await?;
        if !resp.status().is_success() {
            let err: TokenError = resp.json()?;
            let reason = match err.error_description {
                Some(d) => format!("{}: {d}", err.error),
                None => err.error.clone(),
            };
            return Err(match err.error.as_str() {
                "invalid_grant" => {
                    Error::unauthorized(format!("oauth2 grant is invalid or revoked ({reason})"))
                }
                "invalid_client" | "unauthorized_client" => {
                    Error::unauthorized(format!("oauth2 client rejected ({reason})"))
                }
                _ => Error::invalid_input(format!("oauth2 token request rejected ({reason})")),
            });
        }
        let body: TokenResponse = resp.json()?;
        let expires_in = body.expires_in.as_ref().and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        Ok(TokenSet {
            access_token: Secret::new(body.access_token),
            refresh_token: body.refresh_token.map(Secret::new),
            expires_at: expires_in.map(|s| now + chrono::Duration::seconds(s)),
            scope: body.scope,
        })
    }
}

/// Called with the new tokens after every refresh, so a host can persist them.
pub type TokenListener = Box<dyn Fn(&TokenSet) + Send + Sync>;

/// A live grant: hands out an access token, refreshing it proactively (a
/// margin before expiry, 60 s by default) and single-flight (concurrent
/// callers wait for one refresh). A refused refresh token (`invalid_grant`)
/// is a typed `Unauthorized` error and an [`AuthEvent::GrantRevoked`]; the
/// session then fails fast until it is given new tokens.
pub struct OAuth2Session {
    config: OAuth2Config,
    http: HttpClient,
    tokens: Mutex<TokenSet>,
    clock: SharedClock,
    margin: Duration,
    events: broadcast::Sender<AuthEvent>,
    revoked: AtomicBool,
    listener: Option<TokenListener>,
}

impl fmt::Debug for OAuth2Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Session")
            .field("config", &self.config)
            .field("revoked", &self.revoked.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl OAuth2Session {
    /// A session over `tokens` (from [`OAuth2Config::exchange_code`] or storage).
    pub fn new(config: OAuth2Config, tokens: TokenSet) -> Result<Self> {
        let http = config.token_client()?;
        Ok(Self::with_http(config, tokens, http))
    }

    /// A session that calls the token endpoint through `http`.
    pub fn with_http(config: OAuth2Config, tokens: TokenSet, http: HttpClient) -> Self {
        let (events, _) = broadcast::channel(16);
        Self {
            config,
            http,
            tokens: Mutex::new(tokens),
            clock: system_clock(),
            margin: Duration::from_secs(60),
            events,
            revoked: AtomicBool::new(false),
            listener: None,
        }
    }

    /// Uses `clock` to decide when a token is about to expire.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Refreshes this long before expiry (default 60 s).
    #[must_use]
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Calls `listener` with the new tokens after each refresh.
    #[must_use]
    pub fn on_refresh(mut self, listener: impl Fn(&TokenSet) + Send + Sync + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Events about this grant (refreshes, revocation).
    pub fn subscribe(&self) -> broadcast::Receiver<AuthEvent> {
        self.events.subscribe()
    }

    /// Whether the session holds a refresh token and has not been revoked.
    pub fn can_refresh(&self) -> bool {
        !self.revoked.load(Ordering::SeqCst)
            && self
                .tokens
                .try_lock()
                .map_or(true, |t| t.refresh_token.is_some())
    }

    /// Replaces the tokens (after the user authorized again).
    pub async fn set_tokens(&self, tokens: TokenSet) {
        *self.tokens.lock().await = tokens;
        self.revoked.store(false, Ordering::SeqCst);
    }

    /// A valid access token, refreshed first if it expires within the margin.
    pub async fn access_token(&self) -> Result<Secret> {
        self.fail_if_revoked()?;
        let mut tokens = self.tokens.lock().await;
        let now = self.clock.now();
        let margin = chrono::Duration::from_std(self.margin).unwrap_or_default();
        let due = tokens.expires_at.is_some_and(|at| at - margin <= now);
        if due && tokens.refresh_token.is_some() {
            self.refresh_locked(&mut tokens).await?;
        }
        Ok(tokens.access_token.clone())
    }

    /// Refreshes now (after the peer refused the token).
    pub async fn refresh_now(&self) -> Result<()> {
        self.fail_if_revoked()?;
        let mut tokens = self.tokens.lock().await;
        self.refresh_locked(&mut tokens).await
    }

    fn fail_if_revoked(&self) -> Result<()> {
        if self.revoked.load(Ordering::SeqCst) {
            return Err(Error::unauthorized(
                "oauth2 grant was revoked; the user must authorize again",
            ));
        }
        Ok(())
    }

    async fn refresh_locked(&self, tokens: &mut TokenSet) -> Result<()> {
        self.fail_if_revoked()?;
        let Some(refresh) = tokens.refresh_token.clone() else {
            return Err(Error::unauthorized(
                "oauth2 access token expired and there is no refresh token",
            ));
        };
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose().to_owned()),
        ];
        if !self.config.scopes.is_empty() {
            form.push(("scope", self.config.scopes.join(" ")));
        }
        match self
            .config
            .token_request(&self.http, form, self.clock.now())
            .await
        {
            Ok(mut fresh) => {
                if fresh.refresh_token.is_none() {
                    fresh.refresh_token = Some(refresh);
                }
                let _ = self.events.send(AuthEvent::Refreshed {
                    expires_at: fresh.expires_at,
                });
                if let Some(listener) = &self.listener {
                    listener(&fresh);
                }
                tracing::debug!(expires_at = ?fresh.expires_at, "oauth2 token refreshed");
                *tokens = fresh;
                Ok(())
            }
            Err(e) if e.kind() == flextime_core::ErrorKind::Unauthorized => {
                self.revoked.store(true, Ordering::SeqCst);
                let _ = self.events.send(AuthEvent::GrantRevoked {
                    reason: e.message().to_owned(),
                });
                tracing::warn!(error = %e, "oauth2 grant revoked");
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn authorization_url_carries_state_challenge_and_scopes() {
        let cfg = OAuth2Config::new(
            "cid",
            None,
            "https://auth.example.com/authorize",
            "https://auth.example.com/token",
        )
        .unwrap()
        .with_redirect_uri("http://localhost/cb")
        .with_scopes(["a", "b"]);
        let req = cfg.authorization_request();
        let q: std::collections::HashMap<_, _> = req.url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["state"], req.state);
        assert_eq!(
            q["code_challenge"],
            pkce_challenge(req.pkce_verifier.expose())
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "a b");
        assert_eq!(q["redirect_uri"], "http://localhost/cb");
    }
}
