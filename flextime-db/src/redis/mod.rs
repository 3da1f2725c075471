#![doc = include_str!("docs.md")]

mod backend;
mod config;
mod scripts;

pub use backend::RedisAdapter;
pub use config::RedisConfig;
