//! Sésame: an OpenID Connect identity provider for e-health portals.
//!
//! # Layout, from the top floor down (imports run downwards only)
//! - [`cli`]: the `sesame` commands; [`demo`]: `sesame demo`, its portal and test PKI.
//! - [`server`]: binds and serves (and the mTLS listener); [`app`]: the router alone.
//! - Handlers, which never import one another: [`oidc`] (protocol endpoints), [`login`]
//!   (the hosted sign-in pages of a pending request), [`account`] (« Mon compte »).
//! - [`services`]: the flows handlers share, as methods on the state: sessions,
//!   throttling, pending requests and codes, captchas, form tokens, setting a password.
//! - [`state`]: `AppState`, what every handler reads, and `Internal`, our failures.
//! - Components the state holds: [`keys`] (signing key ring, JWKS), [`mail`] (outbox and
//!   worker), [`tls`] (card verification, CRLs, mTLS listener), [`hashing`] (argon2id
//!   pool), [`backchannel`] (logout token queue), [`metadata`] (discovery document),
//!   [`web`] (templates, locales, cookies, security headers, shared pages).
//! - [`store`]: the durable store (sqlx: SQLite or PostgreSQL) and the ephemeral store
//!   (Redis or memory) behind one interface each.
//! - [`domain`]: types valid once built and the pure protocol rules; no I/O.
//! - [`config`] (settings), [`forwarded`] (client address behind proxies), [`crypto`],
//!   [`telemetry`].
//!
//! # Where each flow is handled
//! | flow | file |
//! |---|---|
//! | F1 account created (temporary password e-mailed) | `cli.rs` (`user create`), `mail/` |
//! | F2 operator reset | `cli.rs` (`user reset-password`), `services/session.rs` (`end_all`) |
//! | F3 forced change at sign-in | `login/change.rs`, `services/credentials.rs` |
//! | F4 forgotten password (captcha, e-mailed link) | `login/forgot.rs`, `services/captcha.rs` |
//! | F5 « Mon compte » password change | `account/mod.rs`, `services/credentials.rs` |
//! | F6 choose how to sign in (the sign-in page) | `login/mod.rs` |
//! | certificate (CPS card) login | `login/certificate.rs`, `tls.rs`, `tls/crl.rs` |
//! | F7 sign out (« Se déconnecter », RP-initiated, back-channel) | `oidc/logout.rs`, `services/session.rs`, `backchannel.rs` |
//! | code flow + PKCE | `oidc/authorize.rs`, `login/mod.rs`, `services/grant.rs`, `oidc/token.rs` |
//! | refresh, introspection, revocation | `oidc/token.rs`, `oidc/introspect.rs`, `store/db/refresh_tokens.rs` |
//! | passkeys | `login/passkey.rs`, `account/passkeys.rs`, `domain/passkey.rs` |
//! | TOTP | `login/totp.rs`, `account/totp.rs`, `domain/totp.rs` |

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
