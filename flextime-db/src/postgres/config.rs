//! Typed configuration of the PostgreSQL backend.

use std::fmt;
use std::str::FromStr;

use flextime_core::{Error, Result};
use sqlx::postgres::PgConnectOptions;

use crate::PoolOptions;

/// Where the PostgreSQL database is and how sessions are set up.
#[derive(Clone)]
pub struct PostgresConfig {
    pub(crate) connect: PgConnectOptions,
    pub(crate) schema: Option<String>,
    pub(crate) url: String,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &crate::redact_url(&self.url))
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a plain lower-case SQL identifier.
pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

impl PostgresConfig {
    /// Parse a `postgres://` URL and apply the pool's statement timeout and
    /// the schema.
    pub fn from_url(url: &str, pool: &PoolOptions, schema: Option<&str>) -> Result<Self> {
        let mut connect = PgConnectOptions::from_str(url).map_err(|_| {
            Error::invalid_input(format!("invalid postgres URL {}", crate::redact_url(url)))
        })?;
        let mut settings: Vec<(&str, String)> = Vec::new();
        if let Some(timeout) = pool.statement_timeout {
            settings.push(("statement_timeout", timeout.as_millis().to_string()));
        }
        if let Some(schema) = schema {
            if !valid_identifier(schema) {
                return Err(Error::invalid_input(format!(
                    "schema name {schema:?} must match [a-z_][a-z0-9_]* (at most 63 bytes)"
                )));
            }
            settings.push(("search_path", schema.to_owned()));
        }
        connect = connect.options(settings);
        Ok(Self {
            connect,
            schema: schema.map(str::to_owned),
            url: url.to_owned(),
        })
    }
}
