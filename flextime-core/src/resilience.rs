//! resilience (work in progress in this commit).
