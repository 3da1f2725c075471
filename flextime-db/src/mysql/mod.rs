#![doc = include_str!("docs.md")]

mod backend;
mod config;

pub use backend::MysqlAdapter;
pub use config::MysqlConfig;
