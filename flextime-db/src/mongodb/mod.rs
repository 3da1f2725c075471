#![doc = include_str!("docs.md")]

mod backend;
mod config;

pub use backend::MongoAdapter;
pub use config::MongoConfig;
