//! Types that are valid once built, and the pure rules of the protocol. No I/O here.

pub mod audit;
pub mod claims;
pub mod client;
pub mod national_id;
pub mod passkey;
pub mod password;
pub mod pkce;
pub mod redirect_uri;
pub mod scope;
pub mod totp;
pub mod user;

pub use client::{Client, ClientId, GrantType, IdTokenAlg, TokenAuthMethod};
pub use pkce::CodeChallenge;
pub use redirect_uri::RedirectUri;
pub use scope::Scopes;
pub use user::{Email, Username};
