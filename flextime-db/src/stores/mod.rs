//! The library's durable stores.
