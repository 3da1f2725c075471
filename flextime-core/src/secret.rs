//! [`Secret`]: a string that never prints itself.
//!
//! ```
//! use flextime_core::Secret;
//!
//! let key = Secret::new("sk_live_123");
//! assert_eq!(format!("{key}"), "[REDACTED]");
//! assert_eq!(format!("{key:?}"), "Secret([REDACTED])");
//! assert_eq!(key.expose(), "sk_live_123");
//! ```

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// A secret string (API key, signing secret, password, token).
///
/// `Debug` and `Display` print `[REDACTED]`; the memory is zeroed on drop
/// (through the `secrecy` crate). Read it with [`Secret::expose`] only at the
/// point of use. It deserializes from a plain string and deliberately does not
/// implement `Serialize`, so it cannot leak into a serialized config or log.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret value. Call this only where the value is used.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Constant-time equality with another secret.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        crate::constant_time_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from short-circuiting the loop.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Conf {
        #[allow(dead_code)]
        key: Secret,
    }

    #[test]
    fn never_printed() {
        let conf: Conf = serde_json::from_str(r#"{"key":"hunter2"}"#).unwrap();
        let debug = format!("{conf:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("[REDACTED]"));
    }

    #[test]
    fn equality() {
        assert!(Secret::new("a").ct_eq(&Secret::new("a")));
        assert!(!Secret::new("a").ct_eq(&Secret::new("b")));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
