//! Typed configuration of the MongoDB backend.

use std::fmt;

use flextime_core::{Error, Result};

/// Where MongoDB is and which database to use.
#[derive(Clone)]
pub struct MongoConfig {
    pub(crate) url: String,
    pub(crate) database: String,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &crate::redact_url(&self.url))
            .field("database", &self.database)
            .finish()
    }
}

impl MongoConfig {
    /// A `mongodb://` URL; the database is its path (default `flextime`).
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|_| {
            Error::invalid_input(format!("invalid mongodb URL {}", crate::redact_url(url)))
        })?;
        if parsed.scheme() != "mongodb" {
            return Err(Error::invalid_input(format!(
                "not a mongodb:// URL: {}",
                crate::redact_url(url)
            )));
        }
        let database = parsed.path().trim_start_matches('/');
        let database = if database.is_empty() {
            "flextime".to_owned()
        } else {
            database.to_owned()
        };
        Ok(Self {
            url: url.to_owned(),
            database,
        })
    }
}
