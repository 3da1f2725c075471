#![doc = include_str!("docs.md")]

mod backend;
mod config;

pub use backend::{ChangeListener, PostgresAdapter};
pub use config::PostgresConfig;
