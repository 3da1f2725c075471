//! Receiver configuration from TOML (or any serde format).
//!
//! ```
//! use flextime_webhooks::config::ReceiverConfig;
//!
//! let config: ReceiverConfig = toml::from_str(r#"
//!     listen = "127.0.0.1:8080"
//!
//!     [[source]]
//!     name = "stripe"
//!     path = "/hooks/stripe"
//!     scheme = "stripe"
//!     secrets = ["whsec_abc"]
//!     tolerance_secs = 300
//!
//!     [[source]]
//!     name = "twilio"
//!     path = "/hooks/twilio"
//!     scheme = "twilio"
//!     secrets = ["auth-token"]
//!     public_url = "https://example.com/hooks/twilio"
//! "#).unwrap();
//! let sources = config.sources().unwrap();
//! assert_eq!(sources.len(), 2);
//! assert_eq!(format!("{:?}", config).contains("whsec_abc"), false);
//! ```

use std::sync::Arc;
use std::time::Duration;

use flextime_core::resilience::RateLimit;
use flextime_core::{Error, Secret};
use ipnet::IpNet;
use serde::Deserialize;

use crate::receiver::SourceConfig;
use crate::verify::{
    Encoding, GenericHmac, GitHub, HmacAlgorithm, Notion, Shopify, Slack, StandardWebhooks, Stripe,
    Tolerance, Twilio, Verifier,
};

/// The verification scheme of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// [`StandardWebhooks`].
    StandardWebhooks,
    /// [`Stripe`].
    Stripe,
    /// [`GitHub`].
    Github,
    /// [`Slack`].
    Slack,
    /// [`Twilio`].
    Twilio,
    /// [`Shopify`].
    Shopify,
    /// [`Notion`].
    Notion,
    /// [`GenericHmac`].
    Hmac,
}

/// One `[[source]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The source's name (the CloudEvents `source` of its events).
    pub name: String,
    /// The route path.
    pub path: String,
    /// The verification scheme.
    pub scheme: Scheme,
    /// Active secrets (several during a rotation).
    pub secrets: Vec<Secret>,
    /// Timestamp window in seconds (0 turns the check off). Default 300.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    /// Twilio: the public URL Twilio calls (no query string).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest body in bytes (default 1 MiB).
    #[serde(default)]
    pub max_body: Option<usize>,
    /// Requests per second allowed for this source.
    #[serde(default)]
    pub rate_limit_per_sec: Option<u32>,
    /// Client networks allowed (CIDR); empty allows all.
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// Accepted content types (default JSON and form).
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    /// Generic HMAC: the signature header.
    #[serde(default)]
    pub header: Option<String>,
    /// Generic HMAC: `sha256` or `sha512`.
    #[serde(default)]
    pub algorithm: Option<HmacAlgorithm>,
    /// Generic HMAC: `hex` or `base64`.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// Generic HMAC: prefix before the signature (`sha256=`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Generic HMAC: the timestamp header.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Generic HMAC: the signed-content template (`{timestamp}.{body}`).
    #[serde(default)]
    pub template: Option<String>,
    /// Generic HMAC: the delivery-id header.
    #[serde(default)]
    pub id_header: Option<String>,
    /// Generic HMAC: the event-type header.
    #[serde(default)]
    pub type_header: Option<String>,
}

fn default_tolerance() -> u64 {
    300
}

/// The whole receiver configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// The address to listen on.
    pub listen: String,
    /// The sources.
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceSpec>,
}

impl SourceSpec {
    /// Build the verifier this spec describes.
    pub fn verifier(&self) -> Result<Arc<dyn Verifier>, Error> {
        let tolerance = Tolerance(Duration::from_secs(self.tolerance_secs));
        let secrets = self.secrets.clone();
        let at = |e: Error| e.context(format!("source {:?}", self.name));
        let v: Arc<dyn Verifier> = match self.scheme {
            Scheme::StandardWebhooks => {
                Arc::new(StandardWebhooks::new(secrets, tolerance).map_err(at)?)
            }
            Scheme::Stripe => Arc::new(Stripe::new(secrets, tolerance).map_err(at)?),
            Scheme::Github => Arc::new(GitHub::new(secrets).map_err(at)?),
            Scheme::Slack => Arc::new(Slack::new(secrets, tolerance).map_err(at)?),
            Scheme::Shopify => Arc::new(Shopify::new(secrets).map_err(at)?),
            Scheme::Notion => Arc::new(Notion::new(secrets).map_err(at)?),
            Scheme::Twilio => {
                let url = self
                    .public_url
                    .as_deref()
                    .ok_or_else(|| at(Error::invalid_input("scheme twilio needs public_url")))?;
                Arc::new(Twilio::new(secrets, url).map_err(at)?)
            }
            Scheme::Hmac => {
                let header = self
                    .header
                    .as_deref()
                    .ok_or_else(|| at(Error::invalid_input("scheme hmac needs header")))?;
                let mut v = GenericHmac::new(header, secrets).map_err(at)?;
                if let Some(a) = self.algorithm {
                    v = v.with_algorithm(a);
                }
                if let Some(e) = self.encoding {
                    v = v.with_encoding(e);
                }
                if let Some(p) = &self.prefix {
                    v = v.with_prefix(p.clone());
                }
                if let Some(h) = &self.id_header {
                    v = v.with_id_header(h);
                }
                if let Some(h) = &self.type_header {
                    v = v.with_type_header(h);
                }
                match (&self.timestamp_header, &self.template) {
                    (Some(h), template) => {
                        v = v
                            .with_timestamp(
                                h,
                                template.as_deref().unwrap_or("{timestamp}.{body}"),
                                tolerance,
                            )
                            .map_err(at)?;
                    }
                    (None, Some(t)) => v = v.with_template(t).map_err(at)?,
                    (None, None) => {}
                }
                Arc::new(v)
            }
        };
        Ok(v)
    }

    /// Build the [`SourceConfig`].
    pub fn source(&self) -> Result<SourceConfig, Error> {
        let mut s = SourceConfig::new(self.name.clone(), self.path.clone(), self.verifier()?);
        if let Some(max) = self.max_body {
            s = s.max_body(max);
        }
        if let Some(rps) = self.rate_limit_per_sec {
            s = s.rate_limit(RateLimit::per_second(rps));
        }
        if !self.allow.is_empty() {
            s = s.allow_networks(self.allow.clone());
        }
        if let Some(types) = &self.content_types {
            s = s.content_types(types.clone());
        }
        Ok(s)
    }
}

impl ReceiverConfig {
    /// Every source's [`SourceConfig`], or the first configuration error.
    pub fn sources(&self) -> Result<Vec<SourceConfig>, Error> {
        if self.sources.is_empty() {
            return Err(Error::invalid_input("no [[source]] configured"));
        }
        self.sources.iter().map(SourceSpec::source).collect()
    }
}
