//! Shared helpers for the Flextime benchmarks.
