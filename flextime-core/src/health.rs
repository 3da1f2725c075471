//! [`HealthCheck`]: is a dependency usable right now?
//!
//! Every backend (a queue, a database, a connector) implements
//! [`HealthCheck`]. A [`HealthRegistry`] runs all registered checks
//! concurrently, each under a timeout, and folds them into one report.
//!
//! ```
//! use flextime_core::health::{FnHealthCheck, HealthRegistry, HealthReport, HealthStatus};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let registry = HealthRegistry::new(Duration::from_secs(1))
//!     .with(FnHealthCheck::new("memory", || async { HealthReport::healthy() }))
//!     .with(FnHealthCheck::new("cache", || async { HealthReport::degraded("evicting") }));
//! let report = registry.run().await;
//! assert_eq!(report.status, HealthStatus::Degraded);
//! assert_eq!(report.checks.len(), 2);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How usable a dependency is. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Fully working.
    Healthy,
    /// Working, but slower or with reduced capacity.
    Degraded,
    /// Not usable.
    Unhealthy,
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        })
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The status.
    pub status: HealthStatus,
    /// What is wrong or noteworthy (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HealthReport {
    /// Healthy, no detail.
    pub fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            detail: None,
        }
    }

    /// Degraded, with a reason.
    pub fn degraded(detail: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            detail: Some(detail.into()),
        }
    }

    /// Unhealthy, with a reason.
    pub fn unhealthy(detail: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            detail: Some(detail.into()),
        }
    }

    /// Healthy if `result` is `Ok`, otherwise unhealthy with the error's text.
    pub fn from_result<T>(result: &crate::Result<T>) -> Self {
        match result {
            Ok(_) => Self::healthy(),
            Err(e) => Self::unhealthy(e.to_string()),
        }
    }
}

/// A check of one dependency.
#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync {
    /// The dependency's name (`postgres`, `kafka`, `google-calendar` ...).
    fn name(&self) -> &str;

    /// Check it now.
    async fn check(&self) -> HealthReport;
}

/// A health check from an async closure.
pub struct FnHealthCheck<F> {
    name: String,
    f: F,
}

impl<F> FnHealthCheck<F> {
    /// A check named `name` that runs `f`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
        }
    }
}

impl<F> fmt::Debug for FnHealthCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnHealthCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl<F, Fut> HealthCheck for FnHealthCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = HealthReport> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        (self.f)().await
    }
}

/// One named entry of a [`RegistryReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedReport {
    /// The check's name.
    pub name: String,
    /// Its report.
    #[serde(flatten)]
    pub report: HealthReport,
}

/// The folded result of every check: the worst status wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryReport {
    /// The worst status of all checks (healthy when there are none).
    pub status: HealthStatus,
    /// Each check, in registration order.
    pub checks: Vec<NamedReport>,
}

/// Runs every registered check concurrently, each under a timeout; a check
/// that does not answer in time is unhealthy.
#[derive(Clone)]
pub struct HealthRegistry {
    timeout: Duration,
    checks: Vec<Arc<dyn HealthCheck>>,
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|c| c.name().to_owned()).collect();
        f.debug_struct("HealthRegistry")
            .field("timeout", &self.timeout)
            .field("checks", &names)
            .finish()
    }
}

impl HealthRegistry {
    /// An empty registry whose checks each get `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            checks: Vec::new(),
        }
    }

    /// Register a check.
    #[must_use]
    pub fn with(mut self, check: impl HealthCheck + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Register a shared check.
    pub fn register(&mut self, check: Arc<dyn HealthCheck>) {
        self.checks.push(check);
    }

    /// Run every check and fold the results.
    pub async fn run(&self) -> RegistryReport {
        let runs = self.checks.iter().map(|check| {
            let check = Arc::clone(check);
            let timeout = self.timeout;
            async move {
                let report = match tokio::time::timeout(timeout, check.check()).await {
                    Ok(report) => report,
                    Err(_) => HealthReport::unhealthy(format!(
                        "check did not answer within {} ms",
                        timeout.as_millis()
                    )),
                };
                metrics::gauge!(crate::telemetry::HEALTH_STATUS, "check" => check.name().to_owned())
                    .set(match report.status {
                        HealthStatus::Healthy => 0.0,
                        HealthStatus::Degraded => 1.0,
                        HealthStatus::Unhealthy => 2.0,
                    });
                NamedReport {
                    name: check.name().to_owned(),
                    report,
                }
            }
        });
        let checks = futures::future::join_all(runs).await;
        let status = checks
            .iter()
            .map(|c| c.report.status)
            .max()
            .unwrap_or(HealthStatus::Healthy);
        RegistryReport { status, checks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slow_check_is_unhealthy_after_timeout() {
        let registry = HealthRegistry::new(Duration::from_millis(100))
            .with(FnHealthCheck::new("fast", || async {
                HealthReport::healthy()
            }))
            .with(FnHealthCheck::new("stuck", || async {
                futures::future::pending::<()>().await;
                HealthReport::healthy()
            }));
        let report = registry.run().await;
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.checks[0].report, HealthReport::healthy());
        assert_eq!(report.checks[1].name, "stuck");
        assert!(
            report.checks[1]
                .report
                .detail
                .as_deref()
                .unwrap()
                .contains("100 ms")
        );
    }

    #[tokio::test]
    async fn empty_registry_is_healthy_and_serializes() {
        let report = HealthRegistry::new(Duration::from_secs(1)).run().await;
        assert_eq!(report.status, HealthStatus::Healthy);
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({"status": "healthy", "checks": []})
        );
    }

    #[test]
    fn from_result() {
        let r: crate::Result<()> = Err(crate::Error::unavailable("down"));
        assert_eq!(
            HealthReport::from_result(&r).status,
            HealthStatus::Unhealthy
        );
        assert_eq!(
            HealthReport::from_result(&Ok(())).status,
            HealthStatus::Healthy
        );
    }
}
