pub mod config;
pub mod crypto;
pub mod domain;
pub mod keys;
pub mod store;
