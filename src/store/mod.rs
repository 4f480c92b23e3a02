//! Where data lives: `db` for what must survive (accounts, clients, keys, audit),
//! `ephemeral` for what expires (sessions, codes, pending requests, counters).

pub mod cache;
pub mod db;
pub mod ephemeral;

pub use db::Db;
pub use ephemeral::{Ephemeral, Footprint};
