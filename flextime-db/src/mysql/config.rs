//! Typed configuration of the MySQL / MariaDB backend.

use std::fmt;
use std::str::FromStr;

use flextime_core::{Error, Result};
use sqlx::mysql::MySqlConnectOptions;

/// Where the MySQL / MariaDB database is.
#[derive(Clone)]
pub struct MysqlConfig {
    pub(crate) connect: MySqlConnectOptions,
    pub(crate) url: String,
}

impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("url", &crate::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl MysqlConfig {
    /// Parse a `mysql://` (or `mariadb://`) URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let normalized = url
            .strip_prefix("mariadb://")
            .map_or_else(|| url.to_owned(), |rest| format!("mysql://{rest}"));
        let connect = MySqlConnectOptions::from_str(&normalized)
            .map_err(|_| {
                Error::invalid_input(format!("invalid mysql URL {}", crate::redact_url(url)))
            })?
            .charset("utf8mb4");
        Ok(Self {
            connect,
            url: url.to_owned(),
        })
    }
}
