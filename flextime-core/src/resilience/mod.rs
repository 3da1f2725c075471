//! Resilience: retries, rate limits, circuit breakers and timeouts.
//!
//! - [`RetryPolicy`]: exponential backoff with full jitter (built on
//!   `backon`), retrying only [retryable](crate::Error::is_retryable) errors and
//!   honouring a rate-limited error's `retry_after`.
//! - [`RateLimiter`] / [`KeyedRateLimiter`]: token buckets (GCRA, from
//!   `governor`) that either wait or refuse with a typed rate-limited error.
//! - [`CircuitBreaker`]: closed / open / half-open on consecutive failures or
//!   a failure ratio in a sliding window, on an injectable [`crate::Clock`].
//! - [`with_timeout`]: a deadline that turns into a typed timeout error.

mod breaker;
mod rate_limit;
mod retry;

pub use breaker::{BreakerConfig, BreakerPermit, CircuitBreaker, CircuitState};
pub use rate_limit::{KeyedRateLimiter, RateLimit, RateLimiter};
pub use retry::{Jitter, RetryPolicy};

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// Run `fut` under a deadline; on expiry the result is a timeout error that
/// names `what`.
///
/// ```
/// use flextime_core::resilience::with_timeout;
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let err = with_timeout(Duration::from_millis(5), "calendar fetch", std::future::pending::<flextime_core::Result<()>>())
///     .await
///     .unwrap_err();
/// assert_eq!(err.to_string(), "timed out: calendar fetch did not finish within 5 ms");
/// # });
/// ```
pub async fn with_timeout<T, F>(limit: Duration, what: &str, fut: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::timeout(format!(
            "{what} did not finish within {} ms",
            limit.as_millis()
        ))),
    }
}
