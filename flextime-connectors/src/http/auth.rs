//! How a request authenticates: [`Auth`].

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use flextime_core::{Error, Result, Secret};
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::oauth2::OAuth2Session;

/// The credentials a client sends. Debug output never shows a secret.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user name (or account SID, API key id ...).
        username: String,
        /// The password (or auth token, API secret ...).
        password: Secret,
    },
    /// An API key in a header (`X-Api-Key: KEY`, `X-Postmark-Server-Token: KEY`).
    ApiKeyHeader {
        /// The header name.
        header: HeaderName,
        /// The key.
        key: Secret,
    },
    /// An API key as a query parameter (`?key=KEY`); the parameter is
    /// redacted from logs.
    ApiKeyQuery {
        /// The parameter name.
        param: String,
        /// The key.
        key: Secret,
    },
    /// An OAuth2 access token, refreshed before it expires.
    OAuth2(Arc<OAuth2Session>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(_) => f.write_str("Bearer([REDACTED])"),
            Self::Basic { username, .. } => write!(f, "Basic({username}:[REDACTED])"),
            Self::ApiKeyHeader { header, .. } => write!(f, "ApiKeyHeader({header}: [REDACTED])"),
            Self::ApiKeyQuery { param, .. } => write!(f, "ApiKeyQuery({param}=[REDACTED])"),
            Self::OAuth2(_) => f.write_str("OAuth2([REDACTED])"),
        }
    }
}

impl Auth {
    /// Bearer auth.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::Bearer(Secret::new(token))
    }

    /// Basic auth.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// An API key in `header`.
    pub fn api_key_header(header: &str, key: impl Into<String>) -> Result<Self> {
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| Error::invalid_input(format!("{header:?} is not a header name")))?;
        Ok(Self::ApiKeyHeader {
            header,
            key: Secret::new(key),
        })
    }

    /// An API key in query parameter `param`.
    pub fn api_key_query(param: impl Into<String>, key: impl Into<String>) -> Self {
        Self::ApiKeyQuery {
            param: param.into(),
            key: Secret::new(key),
        }
    }

    /// Whether a 401 may be cured by refreshing (OAuth2 with a refresh token).
    pub fn can_refresh(&self) -> bool {
        matches!(self, Self::OAuth2(session) if session.can_refresh())
    }

    /// Drops a cached token that the peer refused, refreshing it now.
    pub async fn invalidate(&self) -> Result<()> {
        if let Self::OAuth2(session) = self {
            Box::pin(session.refresh_now()).await?;
        }
        Ok(())
    }

    /// Adds the credentials to a request.
    pub async fn apply(
        &self,
        headers: &mut HeaderMap,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder> {
        match self {
            Self::None => {}
            Self::Bearer(token) => {
                headers.insert(
                    AUTHORIZATION,
                    sensitive(&format!("Bearer {}", token.expose()))?,
                );
            }
            Self::Basic { username, password } => {
                headers.insert(
                    AUTHORIZATION,
                    sensitive(&basic_value(username, password.expose()))?,
                );
            }
            Self::ApiKeyHeader { header, key } => {
                headers.insert(header.clone(), sensitive(key.expose())?);
            }
            Self::ApiKeyQuery { param, key } => {
                return Ok(req.query(&[(param.as_str(), key.expose())]));
            }
            Self::OAuth2(session) => {
                let token = Box::pin(session.access_token()).await?;
                headers.insert(
                    AUTHORIZATION,
                    sensitive(&format!("Bearer {}", token.expose()))?,
                );
            }
        }
        Ok(req)
    }
}

fn sensitive(value: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Error::invalid_input("a credential contains characters not allowed in a header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The `Authorization` value of HTTP Basic auth.
pub(crate) fn basic_value(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}
