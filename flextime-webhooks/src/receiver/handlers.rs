//! Typed handlers that run after the hand-off, and the worker that drives them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use flextime_core::resilience::RetryPolicy;
use flextime_core::{Error, Result};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::event::InboundEvent;

type BoxFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
type Erased = Arc<dyn Fn(InboundEvent) -> BoxFuture + Send + Sync>;

/// Handlers by event type, with a fallback.
///
/// A typed handler receives the event's data deserialized into `T` (a body
/// that does not fit `T` is a permanent, non-retryable failure) and the
/// whole [`InboundEvent`].
///
/// ```
/// use flextime_webhooks::receiver::Handlers;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct StripeEvent { id: String, data: serde_json::Value }
///
/// let handlers = Handlers::new()
///     .on("invoice.paid", |event: StripeEvent, _raw| async move {
///         println!("invoice paid: {}", event.id);
///         Ok(())
///     })
///     .fallback(|raw| async move {
///         println!("unhandled {}", raw.event_type());
///         Ok(())
///     });
/// assert!(handlers.handles("invoice.paid"));
/// ```
#[derive(Clone, Default)]
pub struct Handlers {
    by_type: HashMap<String, Erased>,
    fallback: Option<Erased>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<_> = self.by_type.keys().collect();
        types.sort();
        f.debug_struct("Handlers")
            .field("types", &types)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Handlers {
    /// No handlers (every event is acknowledged as handled).
    pub fn new() -> Self {
        Self::default()
    }

    /// Handle `event_type` with a typed handler.
    #[must_use]
    pub fn on<T, F, Fut>(mut self, event_type: impl Into<String>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, InboundEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Erased = Arc::new(move |event: InboundEvent| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let typed: T = event.envelope.data_as::<T>().map_err(|e| {
                    Error::permanent(format!(
                        "event {} ({}) does not fit its handler's type: {}",
                        event.envelope.id(),
                        event.event_type(),
                        e.message()
                    ))
                })?;
                handler(typed, event).await
            })
        });
        self.by_type.insert(event_type.into(), erased);
        self
    }

    /// Handle every event no typed handler claims.
    #[must_use]
    pub fn fallback<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(InboundEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.fallback = Some(Arc::new(move |event| Box::pin(handler(event))));
        self
    }

    /// Whether a typed handler exists for `event_type`.
    pub fn handles(&self, event_type: &str) -> bool {
        self.by_type.contains_key(event_type)
    }

    /// Run the handler for `event` (typed, else fallback, else nothing).
    pub async fn dispatch(&self, event: InboundEvent) -> Result<()> {
        let handler = self
            .by_type
            .get(event.event_type())
            .or(self.fallback.as_ref())
            .cloned();
        match handler {
            Some(h) => h(event).await,
            None => Ok(()),
        }
    }
}

/// An event whose handler failed for good, with the reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The event, untouched.
    pub event: InboundEvent,
    /// Why the handler gave up.
    pub error: String,
}

/// Drives handlers from a [`super::ChannelHandOff`] receiver.
///
/// Each event's handler is retried with the policy while it fails with a
/// retryable error; an event whose handler fails for good is sent, intact,
/// to the dead-letter channel. That channel is bounded: when nobody drains
/// it, the worker waits, the event channel fills, and the receiver answers
/// 503 so providers retry later. Nothing is dropped.
#[derive(Debug)]
pub struct HandlerWorker {
    handlers: Handlers,
    retry: RetryPolicy,
    dead_letters: mpsc::Sender<DeadLetter>,
}

impl HandlerWorker {
    /// A worker and the receiving end of its dead-letter channel (`capacity` at least 1).
    pub fn new(
        handlers: Handlers,
        retry: RetryPolicy,
        capacity: usize,
    ) -> (Self, mpsc::Receiver<DeadLetter>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                handlers,
                retry,
                dead_letters: tx,
            },
            rx,
        )
    }

    /// Process one event: handle it (with retries) or dead-letter it.
    pub async fn process(&self, event: InboundEvent) -> Result<()> {
        let result = self
            .retry
            .run(|| self.handlers.dispatch(event.clone()))
            .await;
        if let Err(e) = result {
            tracing::warn!(event_id = %event.envelope.id(), error = %e, "webhook handler failed; dead-lettering");
            self.dead_letters
                .send(DeadLetter {
                    event,
                    error: e.to_string(),
                })
                .await
                .map_err(|_| Error::unavailable("the dead-letter receiver is gone"))?;
        }
        Ok(())
    }

    /// Process events until the channel closes (every sender dropped).
    pub async fn run(self, mut events: mpsc::Receiver<InboundEvent>) -> Result<()> {
        while let Some(event) = events.recv().await {
            self.process(event).await?;
        }
        Ok(())
    }
}
