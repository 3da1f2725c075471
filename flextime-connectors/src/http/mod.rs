//! The HTTP client stack every HTTP connector uses.
