//! Integration tests: one binary, a module per area. Each scenario runs on SQLite + memory
//! and on PostgreSQL + Redis (`both_backends!`).

mod helpers;
mod smtp;
mod strong_auth;

mod abuse;
mod authorize;
mod certificates;
mod cli;
mod clock;
mod code_flow;
mod demo;
mod durable;
mod ephemeral;
mod foundation;
mod hostile;
mod leftovers;
mod logout;
mod pages;
mod passkeys;
mod password_flows;
mod throttling;
mod token_races;
mod tokens;
