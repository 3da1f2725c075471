//! Stripe webhook events as a typed enum.
//!
//! [`StripeEvent::from_json`] reads an Event object (the body Stripe posts to
//! a webhook endpoint); with the `webhooks` feature, [`StripeEvent::verify`]
//! checks its `Stripe-Signature` with flextime-webhooks' Stripe verifier
//! first. The events a booking flow needs are typed ([`EventObject`]); every
//! other type is kept as [`EventObject::Unknown`] with its raw type and
//! object, so nothing is lost.

use flextime_core::{Error, Result};
use serde::Deserialize;

use crate::payments::{Charge, CheckoutSession, PaymentIntent};

/// The largest event body parsed.
const MAX_BODY: usize = 1024 * 1024;

/// A Stripe event.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    /// `evt_...`, the key to de-duplicate deliveries by.
    pub id: String,
    /// When it happened (Unix seconds).
    pub created: i64,
    /// Live or test mode.
    pub livemode: bool,
    /// The API version the object is rendered in.
    pub api_version: Option<String>,
    /// What happened, with the object it happened to.
    pub object: EventObject,
}

/// What an event says happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventObject {
    /// `payment_intent.succeeded`: the booking is paid.
    PaymentIntentSucceeded(PaymentIntent),
    /// `payment_intent.payment_failed`: an attempt failed
    /// (`last_payment_error` says why).
    PaymentIntentPaymentFailed(PaymentIntent),
    /// `checkout.session.completed`: the customer finished checkout.
    CheckoutSessionCompleted(CheckoutSession),
    /// `checkout.session.expired`: the customer never paid.
    CheckoutSessionExpired(CheckoutSession),
    /// `charge.refunded`: a charge was (partly) refunded.
    ChargeRefunded(Charge),
    /// Any other event type, kept whole.
    Unknown {
        /// The event type as Stripe spelled it.
        event_type: String,
        /// `data.object` as sent.
        object: serde_json::Value,
    },
}

impl EventObject {
    /// The event type (`payment_intent.succeeded` ...).
    pub fn event_type(&self) -> &str {
        match self {
            Self::PaymentIntentSucceeded(_) => "payment_intent.succeeded",
            Self::PaymentIntentPaymentFailed(_) => "payment_intent.payment_failed",
            Self::CheckoutSessionCompleted(_) => "checkout.session.completed",
            Self::CheckoutSessionExpired(_) => "checkout.session.expired",
            Self::ChargeRefunded(_) => "charge.refunded",
            Self::Unknown { event_type, .. } => event_type,
        }
    }

    /// The booking the object is for, from its metadata (`booking_id`) or,
    /// for a Checkout Session, its `client_reference_id`.
    pub fn booking_id(&self) -> Option<&str> {
        match self {
            Self::PaymentIntentSucceeded(pi) | Self::PaymentIntentPaymentFailed(pi) => {
                pi.booking_id()
            }
            Self::CheckoutSessionCompleted(cs) | Self::CheckoutSessionExpired(cs) => {
                cs.booking_id()
            }
            Self::ChargeRefunded(ch) => ch.metadata.get("booking_id").map(String::as_str),
            Self::Unknown { object, .. } => object.pointer("/metadata/booking_id")?.as_str(),
        }
    }
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: serde_json::Value,
}

impl StripeEvent {
    /// Parses an Event object. A body that is not an event, or a known event
    /// type whose object does not have the documented shape, is a typed
    /// `InvalidInput` naming the type and what broke.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        if body.len() > MAX_BODY {
            return Err(Error::invalid_input(format!(
                "stripe event: body of {} bytes is larger than {MAX_BODY}",
                body.len()
            )));
        }
        let raw: RawEvent = serde_json::from_slice(body)
            .map_err(|e| Error::invalid_input(format!("stripe event: not an event: {e}")))?;
        let object = match raw.event_type.as_str() {
            "payment_intent.succeeded" => {
                EventObject::PaymentIntentSucceeded(typed(&raw.event_type, raw.data.object)?)
            }
            "payment_intent.payment_failed" => {
                EventObject::PaymentIntentPaymentFailed(typed(&raw.event_type, raw.data.object)?)
            }
            "checkout.session.completed" => {
                EventObject::CheckoutSessionCompleted(typed(&raw.event_type, raw.data.object)?)
            }
            "checkout.session.expired" => {
                EventObject::CheckoutSessionExpired(typed(&raw.event_type, raw.data.object)?)
            }
            "charge.refunded" => {
                EventObject::ChargeRefunded(typed(&raw.event_type, raw.data.object)?)
            }
            _ => EventObject::Unknown {
                event_type: raw.event_type,
                object: raw.data.object,
            },
        };
        Ok(Self {
            id: raw.id,
            created: raw.created,
            livemode: raw.livemode,
            api_version: raw.api_version,
            object,
        })
    }

    /// Verifies `Stripe-Signature` with flextime-webhooks' Stripe verifier
    /// (timestamp tolerance included, at `now` in Unix seconds), then parses
    /// the body. A bad signature is a typed `Unauthorized` error carrying the
    /// verifier's reason code.
    #[cfg(feature = "webhooks")]
    pub fn verify(
        verifier: &flextime_webhooks::verify::Stripe,
        request: &flextime_webhooks::verify::WebhookRequest<'_>,
        now: i64,
    ) -> Result<Self> {
        use flextime_webhooks::verify::Verifier as _;
        verifier.verify(request, now).map_err(|rejection| {
            Error::unauthorized(format!("stripe event: {} ({rejection})", rejection.code()))
        })?;
        Self::from_json(request.body)
    }
}

fn typed<T: serde::de::DeserializeOwned>(event_type: &str, object: serde_json::Value) -> Result<T> {
    serde_json::from_value(object).map_err(|e| {
        Error::invalid_input(format!(
            "stripe event: {event_type}: data.object is malformed: {e}"
        ))
    })
}
