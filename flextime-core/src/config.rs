//! Configuration: typed structs from a TOML file, a profile, and
//! environment overrides.
//!
//! Layers, later ones winning:
//! 1. the file's top-level keys;
//! 2. the file's `[profile.<name>]` table for the active [`Profile`]
//!    (`dev`, `test` or `prod`; from [`ConfigLoader::profile`], else the
//!    `FLEXTIME_PROFILE` variable, else `dev`);
//! 3. environment variables with the prefix (`FLEXTIME_` by default), `__`
//!    separating nesting levels: `FLEXTIME_DB__MAX_CONNECTIONS=20` sets
//!    `db.max_connections`. Values are parsed as TOML scalars (`20` is a
//!    number, `true` a boolean). `FLEXTIME_PROFILE`, `FLEXTIME_TEST_*` and the
//!    tooling variables in [`RESERVED_ENV_KEYS`] are not configuration and are
//!    ignored.
//!
//! Errors name the key and the expected type but never echo the offending
//! value, since it may be a secret.
//!
//! ```
//! use flextime_core::config::{ConfigLoader, Profile};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Conf { listen: String, workers: u32 }
//!
//! let conf: Conf = ConfigLoader::new()
//!     .toml_str(r#"
//!         listen = "127.0.0.1:8080"
//!         workers = 2
//!         [profile.prod]
//!         workers = 16
//!     "#)
//!     .profile(Profile::Prod)
//!     .env_prefix("DOCTEST_NOT_SET_")
//!     .load()
//!     .unwrap();
//! assert_eq!((conf.listen.as_str(), conf.workers), ("127.0.0.1:8080", 16));
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A deployment profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Local development (the default).
    #[default]
    Dev,
    /// Automated tests.
    Test,
    /// Production.
    Prod,
}

impl Profile {
    /// The profile's name as used in `[profile.<name>]`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
            Self::Prod => "prod",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dev" | "development" => Ok(Self::Dev),
            "test" => Ok(Self::Test),
            "prod" | "production" => Ok(Self::Prod),
            other => Err(Error::invalid_input(format!(
                "unknown profile {other:?}: expected dev, test or prod"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
enum TomlInput {
    File(PathBuf),
    Text(String),
}

/// Loads a typed configuration; see the module docs for the layering.
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    toml: Vec<TomlInput>,
    profile: Option<Profile>,
    env_prefix: String,
}

impl Default for ConfigLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigLoader {
    /// No file, profile from the environment, prefix `FLEXTIME_`.
    pub fn new() -> Self {
        Self {
            toml: Vec::new(),
            profile: None,
            env_prefix: "FLEXTIME_".into(),
        }
    }

    /// Read a TOML file (a missing file is an error).
    #[must_use]
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.toml.push(TomlInput::File(path.as_ref().to_owned()));
        self
    }

    /// Read TOML text.
    #[must_use]
    pub fn toml_str(mut self, text: impl Into<String>) -> Self {
        self.toml.push(TomlInput::Text(text.into()));
        self
    }

    /// Choose the profile explicitly.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Change the environment prefix.
    #[must_use]
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = prefix.into();
        self
    }

    /// The profile that [`ConfigLoader::load`] will use.
    pub fn active_profile(&self) -> Result<Profile> {
        if let Some(p) = self.profile {
            return Ok(p);
        }
        match std::env::var(format!("{}PROFILE", self.env_prefix)) {
            Ok(v) => v.parse(),
            Err(_) => Ok(Profile::Dev),
        }
    }

    /// Build the configuration.
    pub fn load<T: DeserializeOwned>(&self) -> Result<T> {
        let profile = self.active_profile()?;
        let mut figment = Figment::new();
        for input in &self.toml {
            let (text, origin) = match input {
                TomlInput::File(path) => (
                    std::fs::read_to_string(path).map_err(|e| {
                        Error::from(e).context(format!("reading config file {}", path.display()))
                    })?,
                    path.display().to_string(),
                ),
                TomlInput::Text(text) => (text.clone(), "TOML text".to_owned()),
            };
            let mut table: toml::Table = toml::from_str(&text)
                .map_err(|e| Error::invalid_input(format!("{origin}: {}", e.message())))?;
            let profiles = table.remove("profile");
            figment = figment.merge(Serialized::defaults(table));
            if let Some(toml::Value::Table(mut profiles)) = profiles
                && let Some(overrides) = profiles.remove(profile.as_str())
            {
                figment = figment.merge(Serialized::defaults(overrides));
            }
        }
        let env = Env::prefixed(&self.env_prefix).split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            !key.starts_with("test_") && !RESERVED_ENV_KEYS.contains(&key.as_str())
        });
        figment
            .merge(env)
            .extract::<T>()
            .map_err(|e| Error::invalid_input(describe(&e)))
    }
}

/// Variables under the prefix that belong to Flextime's tooling, not to
/// configuration (besides everything starting with `TEST_`).
pub const RESERVED_ENV_KEYS: &[&str] = &[
    "profile",
    "require_services",
    "cache",
    "env_file",
    "shared_dir",
    "services_timeout",
    "services_verbose",
    "tansu_build_timeout",
];

/// Describe figment errors by key and expectation, never by value.
fn describe(errors: &figment::Error) -> String {
    use figment::error::Kind;
    let parts: Vec<String> = errors
        .clone()
        .into_iter()
        .map(|e| {
            let what = match &e.kind {
                Kind::InvalidType(_, expected) => format!("wrong type, expected {expected}"),
                Kind::InvalidValue(_, expected) => format!("invalid value, expected {expected}"),
                Kind::InvalidLength(_, expected) => format!("wrong length, expected {expected}"),
                Kind::MissingField(field) => format!("missing field `{field}`"),
                Kind::UnknownField(field, _) => format!("unknown field `{field}`"),
                Kind::UnknownVariant(v, expected) => {
                    format!("unknown variant `{v}`, expected one of {expected:?}")
                }
                Kind::DuplicateField(field) => format!("duplicate field `{field}`"),
                Kind::Message(m) => m.clone(),
                _ => "unsupported value".to_owned(),
            };
            let key = e.path.join(".");
            let from = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("configuration: {what}{from}")
            } else {
                format!("configuration key `{key}`: {what}{from}")
            }
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::Secret;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Db {
        url: String,
        #[serde(default)]
        max_connections: u32,
        password: Option<Secret>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        name: String,
        db: Db,
    }

    const FILE: &str = r#"
        name = "hub"
        [db]
        url = "sqlite::memory:"
        max_connections = 4
        [profile.test.db]
        max_connections = 1
        [profile.prod.db]
        url = "postgres://db/prod"
    "#;

    #[test]
    fn profile_then_env_override() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("flextime.toml", FILE)?;
            jail.set_env("FTCONF_DB__MAX_CONNECTIONS", "32");
            jail.set_env("FTCONF_DB__PASSWORD", "hunter2");
            jail.set_env("FTCONF_PROFILE", "prod");
            jail.set_env("FTCONF_TEST_POSTGRES_URL", "ignored");
            jail.set_env("FTCONF_REQUIRE_SERVICES", "1");
            jail.set_env("FTCONF_CACHE", "/tmp/cache");
            let conf: Conf = ConfigLoader::new()
                .env_prefix("FTCONF_")
                .file("flextime.toml")
                .load()
                .unwrap();
            assert_eq!(conf.name, "hub");
            assert_eq!(conf.db.url, "postgres://db/prod");
            assert_eq!(conf.db.max_connections, 32);
            assert_eq!(conf.db.password.unwrap().expose(), "hunter2");
            let test: Conf = ConfigLoader::new()
                .file("flextime.toml")
                .profile(Profile::Test)
                .env_prefix("NOPE_")
                .load()
                .unwrap();
            assert_eq!(test.db.max_connections, 1);
            assert_eq!(test.db.url, "sqlite::memory:");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key_but_not_the_value() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FTCONF_DB__MAX_CONNECTIONS", "s3cr3t-value");
            let err = ConfigLoader::new()
                .env_prefix("FTCONF_")
                .toml_str("name = 'x'\n[db]\nurl = 'u'\n")
                .load::<Conf>()
                .unwrap_err();
            let text = err.to_string();
            assert!(text.contains("db.max_connections"), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn bad_profile_missing_file_and_missing_field() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FTCONF_PROFILE", "staging");
            let err = ConfigLoader::new()
                .env_prefix("FTCONF_")
                .toml_str(FILE)
                .load::<Conf>()
                .unwrap_err();
            assert!(err.to_string().contains("staging"), "{err}");
            Ok(())
        });
        let err = ConfigLoader::new()
            .env_prefix("FTCONF_")
            .file("/definitely/not/here.toml")
            .load::<Conf>()
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        let err = ConfigLoader::new()
            .env_prefix("NOPE_")
            .toml_str("name = 'x'")
            .load::<Conf>()
            .unwrap_err();
        assert!(err.to_string().contains("missing field `db`"), "{err}");
    }
}
