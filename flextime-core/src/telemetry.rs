//! telemetry (work in progress in this commit).
