//! Test helpers (work in progress in this commit).
