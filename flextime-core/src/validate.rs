//! Validation: every violation at once, each with the path of the field.
//!
//! A [`Validator`] checks a value and returns all [`Violation`]s it finds,
//! not only the first. Validators compose with [`ValidatorExt::and`],
//! [`ValidatorExt::at`] (nest under a path prefix) and [`FnValidator`].
//!
//! ```
//! use flextime_core::validate::{FnValidator, Validator, ValidatorExt, Violation};
//!
//! let non_empty = FnValidator::new(|s: &String| {
//!     if s.is_empty() { vec![Violation::new("", "required", "must not be empty")] } else { vec![] }
//! });
//! let short = FnValidator::new(|s: &String| {
//!     if s.len() > 3 { vec![Violation::new("", "too_long", "at most 3 characters")] } else { vec![] }
//! });
//! let both = non_empty.and(short).at("title");
//! let found = both.validate(&"long title".to_string());
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].path, "title");
//! assert_eq!(found[0].code, "too_long");
//! assert!(both.check(&"ok".to_string()).is_ok());
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One broken rule: where (a JSON-pointer-like dotted path such as
/// `attendees[2].email`), a stable machine code, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Dotted path of the offending field (`start.tz`, `attendees[0].email`);
    /// empty for the value as a whole.
    pub path: String,
    /// Stable machine-readable code (`required`, `end_before_start`, `unknown_time_zone` ...).
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
}

impl Violation {
    /// A violation at `path`.
    pub fn new(
        path: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            code: code.into(),
            message: message.into(),
        }
    }

    /// The same violation nested under `prefix` (`prefix.path`, or `prefix[..]`).
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = join_path(prefix, &self.path);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} ({})", self.message, self.code)
        } else {
            write!(f, "{}: {} ({})", self.path, self.message, self.code)
        }
    }
}

/// Join a path prefix and a suffix: `a` + `b` = `a.b`, `a` + `[0].b` = `a[0].b`.
pub fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Turn a list of violations into an [`Error`] of kind invalid input that
/// lists each of them, or `Ok(())` if there are none.
pub fn violations_to_result(violations: &[Violation]) -> Result<(), Error> {
    if violations.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    Err(Error::invalid_input(format!(
        "{} violation{}: {}",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" },
        list.join("; ")
    )))
}

/// Checks a value and reports every violation.
pub trait Validator<T: ?Sized>: Send + Sync {
    /// All violations found in `value`; empty when it is valid.
    fn validate(&self, value: &T) -> Vec<Violation>;

    /// `Ok(())` when valid, otherwise an invalid-input error listing every violation.
    fn check(&self, value: &T) -> Result<(), Error> {
        violations_to_result(&self.validate(value))
    }
}

/// Combinators for every [`Validator`].
pub trait ValidatorExt<T: ?Sized>: Validator<T> + Sized {
    /// Run both validators and report the violations of both.
    fn and<V: Validator<T>>(self, other: V) -> And<Self, V> {
        And(self, other)
    }

    /// Nest every violation path under `prefix`.
    fn at(self, prefix: impl Into<String>) -> At<Self> {
        At {
            inner: self,
            prefix: prefix.into(),
        }
    }
}

impl<T: ?Sized, V: Validator<T>> ValidatorExt<T> for V {}

/// Both validators; see [`ValidatorExt::and`].
#[derive(Debug, Clone)]
pub struct And<A, B>(A, B);

impl<T: ?Sized, A: Validator<T>, B: Validator<T>> Validator<T> for And<A, B> {
    fn validate(&self, value: &T) -> Vec<Violation> {
        let mut out = self.0.validate(value);
        out.extend(self.1.validate(value));
        out
    }
}

/// A validator nested under a path; see [`ValidatorExt::at`].
#[derive(Debug, Clone)]
pub struct At<V> {
    inner: V,
    prefix: String,
}

impl<T: ?Sized, V: Validator<T>> Validator<T> for At<V> {
    fn validate(&self, value: &T) -> Vec<Violation> {
        self.inner
            .validate(value)
            .into_iter()
            .map(|v| v.under(&self.prefix))
            .collect()
    }
}

/// A validator from a closure.
pub struct FnValidator<F>(F);

impl<F> FnValidator<F> {
    /// Wrap `f`, which returns the violations of a value.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F> fmt::Debug for FnValidator<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnValidator")
    }
}

impl<T: ?Sized, F: Fn(&T) -> Vec<Violation> + Send + Sync> Validator<T> for FnValidator<F> {
    fn validate(&self, value: &T) -> Vec<Violation> {
        (self.0)(value)
    }
}

/// Every validator in a list, all run; violations concatenated.
pub struct All<T: ?Sized>(Vec<Box<dyn Validator<T>>>);

impl<T: ?Sized> All<T> {
    /// An empty list (always valid).
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Add a validator.
    #[must_use]
    pub fn with(mut self, validator: impl Validator<T> + 'static) -> Self {
        self.0.push(Box::new(validator));
        self
    }
}

impl<T: ?Sized> Default for All<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized> fmt::Debug for All<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "All({} validators)", self.0.len())
    }
}

impl<T: ?Sized> Validator<T> for All<T> {
    fn validate(&self, value: &T) -> Vec<Violation> {
        self.0.iter().flat_map(|v| v.validate(value)).collect()
    }
}

/// Validate each element of a slice, paths prefixed with `[index]`.
#[derive(Debug, Clone)]
pub struct Each<V>(pub V);

impl<T, V: Validator<T>> Validator<[T]> for Each<V> {
    fn validate(&self, value: &[T]) -> Vec<Violation> {
        value
            .iter()
            .enumerate()
            .flat_map(|(i, item)| {
                let prefix = format!("[{i}]");
                self.0
                    .validate(item)
                    .into_iter()
                    .map(move |v| v.under(&prefix))
            })
            .collect()
    }
}

/// Validates `serde_json::Value` objects: the listed fields must be present and non-null.
#[derive(Debug, Clone)]
pub struct RequiredFields(pub Vec<String>);

impl Validator<serde_json::Value> for RequiredFields {
    fn validate(&self, value: &serde_json::Value) -> Vec<Violation> {
        self.0
            .iter()
            .filter(|field| {
                crate::transform::get_path(value, field).is_none_or(serde_json::Value::is_null)
            })
            .map(|field| Violation::new(field.clone(), "required", "is required"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positive() -> impl Validator<i64> {
        FnValidator::new(|n: &i64| {
            if *n > 0 {
                vec![]
            } else {
                vec![Violation::new("", "not_positive", "must be > 0")]
            }
        })
    }

    #[test]
    fn each_reports_every_index() {
        let v = Each(positive()).at("counts");
        let found = v.validate(&[1, 0, 5, -2][..]);
        let paths: Vec<_> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["counts[1]", "counts[3]"]);
    }

    #[test]
    fn all_collects_from_every_member() {
        let v = All::new()
            .with(positive())
            .with(FnValidator::new(|n: &i64| {
                if n % 2 == 0 {
                    vec![]
                } else {
                    vec![Violation::new("", "odd", "must be even")]
                }
            }));
        assert_eq!(v.validate(&-1).len(), 2);
        assert_eq!(v.validate(&2).len(), 0);
        let err = v.check(&-1).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("2 violations"), "{err}");
    }

    #[test]
    fn required_fields_on_json() {
        let v = RequiredFields(vec!["title".into(), "start.tz".into()]);
        let found = v.validate(&serde_json::json!({"title": "x", "start": {"tz": null}}));
        assert_eq!(
            found,
            [Violation::new("start.tz", "required", "is required")]
        );
    }

    #[test]
    fn path_joining() {
        assert_eq!(join_path("a", "b"), "a.b");
        assert_eq!(join_path("a", "[0].b"), "a[0].b");
        assert_eq!(join_path("", "b"), "b");
        assert_eq!(join_path("a", ""), "a");
    }
}
