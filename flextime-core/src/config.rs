//! config (work in progress in this commit).
