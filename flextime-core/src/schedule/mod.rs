//! The scheduling domain record (work in progress in this commit).
