#![doc = include_str!("docs.md")]

mod backend;
mod config;

pub use backend::SqliteAdapter;
pub use config::SqliteConfig;
