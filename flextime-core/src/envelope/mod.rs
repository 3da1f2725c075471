//! CloudEvents 1.0 envelopes (work in progress in this commit).
