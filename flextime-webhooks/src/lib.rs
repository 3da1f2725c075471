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
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod receiver;
pub mod verify;
