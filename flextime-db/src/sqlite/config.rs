//! Typed configuration of the SQLite backend.

use std::fmt;
use std::str::FromStr;

use flextime_core::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use crate::PoolOptions;

/// Where the SQLite database lives and how the pool is set up.
#[derive(Clone)]
pub struct SqliteConfig {
    pub(crate) connect: SqliteConnectOptions,
    pub(crate) memory: bool,
    pub(crate) url: String,
}

impl fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("url", &crate::redact_url(&self.url))
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl SqliteConfig {
    /// Parse `sqlite://path`, `sqlite:path` or `sqlite::memory:`.
    pub fn from_url(url: &str, pool: &PoolOptions) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(Error::invalid_input(format!(
                "not a sqlite URL: {}",
                crate::redact_url(url)
            )));
        }
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(|_| {
                Error::invalid_input(format!("invalid sqlite URL {}", crate::redact_url(url)))
            })?
            .create_if_missing(true)
            .foreign_keys(true);
        if !memory {
            connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
        if let Some(timeout) = pool.statement_timeout {
            connect = connect.busy_timeout(timeout);
        }
        Ok(Self {
            connect,
            memory,
            url: url.to_owned(),
        })
    }
}
