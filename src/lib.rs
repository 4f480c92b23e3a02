//! Sésame: an OpenID Connect identity provider for e-health portals.
//!
//! # Layout
//! - [`config`]: settings (defaults < `sesame.toml` < `SESAME_*` environment).
//! - [`domain`]: types valid once built and the pure protocol rules; no I/O.
//! - [`store`]: the durable store (sqlx: SQLite or PostgreSQL) and the ephemeral store
//!   (Redis or memory) behind one interface each.
//! - [`keys`]: the signing key ring and its JWKS.
//! - [`oidc`]: protocol endpoints (discovery, authorize, token, userinfo, introspection,
//!   revocation, logout) and the services behind them.
//! - [`login`]: the hosted sign-in pages (interaction, consent).
//! - [`web`]: templates, locales, CSRF, security headers, error pages.
//! - [`app`]: the shared state and the router; [`server`] binds and serves.
//! - [`cli`]: the `sesame` commands; [`demo`]: `sesame demo` and its small portal.

pub mod account;
pub mod app;
pub mod backchannel;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod forwarded;
pub mod hashing;
pub mod keys;
pub mod login;
pub mod mail;
pub mod metadata;
pub mod oidc;
pub mod server;
pub mod services;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;
