//! The protocol endpoints, one file each, and the services they share.

pub mod authorize;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod health;
pub mod id_token;
pub mod introspect;
pub mod logout;
pub mod params;
pub mod token;
pub mod userinfo;
