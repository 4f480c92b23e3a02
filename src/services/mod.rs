//! The flows that handlers share, as methods on the state: sessions, throttling, the
//! records of a pending request and its codes, captchas, single-use form tokens, and
//! setting a password. Above `state`, below every handler module; no handler imports
//! another handler.

pub mod captcha;
pub mod credentials;
pub mod forms;
pub mod grant;
pub mod session;
pub mod throttle;
