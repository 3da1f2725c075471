//! # flextime-webhooks
//!
//! Receive, verify and durably hand off webhooks from any provider.
//!
//! - [`verify`]: one [`verify::Verifier`] per provider scheme (Standard
//!   Webhooks, Stripe, GitHub, Slack, Twilio, Shopify, Notion, generic HMAC),
//!   constant-time, with secret rotation and timestamp windows.
//! - [`receiver`]: an axum router that checks every request, refuses bad ones
//!   with a typed 4xx, drops replays, and answers 2xx only once the event is
//!   in durable hands; typed handlers run after the hand-off.
//! - [`dispatch`]: outbound delivery. A [`dispatch::Dispatcher`] signs
//!   (Standard Webhooks), retries on a schedule, keeps endpoint health,
//!   guards against SSRF, and keeps pending deliveries in a durable store.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod dispatch;
pub mod receiver;
pub mod verify;
