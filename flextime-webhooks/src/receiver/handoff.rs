//! Hand-off: putting an accepted event in durable hands before answering 2xx.

use std::fmt;
use std::time::Duration;

use flextime_core::health::{HealthCheck, HealthReport};
use flextime_core::{Error, Result};
use tokio::sync::mpsc;

use super::event::InboundEvent;

/// Where accepted events go. The receiver answers 2xx only after
/// [`HandOff::hand_off`] returned `Ok`; on `Err` (or when it does not finish
/// within the source's hand-off timeout) it answers 503 with `Retry-After`
/// so the provider retries, and nothing is lost.
#[async_trait::async_trait]
pub trait HandOff: Send + Sync + fmt::Debug {
    /// Take responsibility for `event`.
    async fn hand_off(&self, event: InboundEvent) -> Result<()>;

    /// Whether the hand-off can take events right now.
    async fn health(&self) -> HealthReport {
        HealthReport::healthy()
    }
}

/// The default hand-off: a bounded in-process channel. When it is full the
/// hand-off waits (up to the receiver's hand-off timeout), then fails, and
/// the provider is told to retry: back-pressure all the way to the sender.
#[derive(Debug, Clone)]
pub struct ChannelHandOff {
    tx: mpsc::Sender<InboundEvent>,
}

impl ChannelHandOff {
    /// A channel holding at most `capacity` events (at least 1) and its receiving end.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<InboundEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }

    /// How many more events fit right now.
    pub fn remaining_capacity(&self) -> usize {
        self.tx.capacity()
    }
}

#[async_trait::async_trait]
impl HandOff for ChannelHandOff {
    async fn hand_off(&self, event: InboundEvent) -> Result<()> {
        self.tx
            .send(event)
            .await
            .map_err(|_| Error::unavailable("the event channel's receiver is gone"))
    }

    async fn health(&self) -> HealthReport {
        if self.tx.is_closed() {
            HealthReport::unhealthy("the event channel's receiver is gone")
        } else if self.tx.capacity() == 0 {
            HealthReport::degraded("the event channel is full")
        } else {
            HealthReport::healthy()
        }
    }
}

/// A [`HealthCheck`] over a hand-off, for a [`flextime_core::HealthRegistry`].
#[derive(Debug)]
pub struct HandOffHealth<H> {
    name: String,
    handoff: H,
}

impl<H> HandOffHealth<H> {
    /// A check named `name`.
    pub fn new(name: impl Into<String>, handoff: H) -> Self {
        Self {
            name: name.into(),
            handoff,
        }
    }
}

#[async_trait::async_trait]
impl<H: HandOff> HealthCheck for HandOffHealth<H> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        self.handoff.health().await
    }
}

#[async_trait::async_trait]
impl<H: HandOff + ?Sized> HandOff for std::sync::Arc<H> {
    async fn hand_off(&self, event: InboundEvent) -> Result<()> {
        (**self).hand_off(event).await
    }

    async fn health(&self) -> HealthReport {
        (**self).health().await
    }
}

/// Default time a hand-off may take before the request is answered 503.
pub const DEFAULT_HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);
