//! A registered portal (OAuth client), valid once built.

use std::fmt;

use super::RedirectUri;

/// 1–128 characters, none of them control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.chars().count() > 128 || raw.chars().any(char::is_control) {
            return Err("a client id has 1 to 128 characters and no control character".into());
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $s),+ } }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok($name::$variant),)+
                    _ => Err(format!("`{s}` is not one of: {}", [$($s),+].join(", "))) }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// How a client authenticates at the token endpoint.
    TokenAuthMethod { ClientSecretBasic = "client_secret_basic", ClientSecretPost = "client_secret_post", None = "none" }
);
string_enum!(GrantType {
    AuthorizationCode = "authorization_code",
    RefreshToken = "refresh_token",
    ClientCredentials = "client_credentials",
});
string_enum!(
    /// The ID-token signature a client gets: RS256 unless it registered another.
    IdTokenAlg { RS256 = "RS256", ES256 = "ES256", EdDSA = "EdDSA" }
);

#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub backchannel_logout_uri: Option<RedirectUri>,
    pub auth_method: TokenAuthMethod,
    pub grants: Vec<GrantType>,
    /// The platform's own portals: no consent page.
    pub first_party: bool,
    /// Never receives a password-only session.
    pub sensitive: bool,
    /// The least `acr` its users must reach (one of the configured names).
    pub min_acr: Option<String>,
    pub id_token_alg: IdTokenAlg,
    pub created_at: i64,
    /// API scopes it may ask for with client_credentials.
    pub allowed_scopes: Vec<String>,
    /// APIs (RFC 8707 resource indicators) it may get JWT access tokens for.
    pub resources: Vec<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth_method == TokenAuthMethod::None
    }
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }
    /// Exact string match against the registered list.
    pub fn redirect_uri(&self, raw: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|r| r.as_str() == raw)
    }
    pub fn post_logout_redirect_uri(&self, raw: &str) -> Option<&RedirectUri> {
        self.post_logout_redirect_uris
            .iter()
            .find(|r| r.as_str() == raw)
    }
}

/// What an operator asks for with `sesame client create`; checked before anything is written.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub id: ClientId,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub backchannel_logout_uri: Option<RedirectUri>,
    pub auth_method: TokenAuthMethod,
    pub grants: Vec<GrantType>,
    pub first_party: bool,
    pub sensitive: bool,
    pub min_acr: Option<String>,
    pub id_token_alg: IdTokenAlg,
    pub allowed_scopes: Vec<String>,
    pub resources: Vec<String>,
}

impl NewClient {
    pub fn validate(&self) -> Result<(), String> {
        let public = self.auth_method == TokenAuthMethod::None;
        if self.grants.is_empty() {
            return Err("a client needs at least one grant".into());
        }
        if self.allows_code() && self.redirect_uris.is_empty() {
            return Err("the authorization_code grant needs at least one --redirect-uri".into());
        }
        if public && self.grants.contains(&GrantType::ClientCredentials) {
            return Err("a public client cannot use client_credentials".into());
        }
        for s in &self.allowed_scopes {
            if crate::domain::Scopes::parse(s).map(|p| p.iter().count()) != Ok(1) {
                return Err(format!("`{s}` is not a single scope token"));
            }
        }
        for r in &self.resources {
            match url::Url::parse(r) {
                Ok(u) if u.fragment().is_none() && matches!(u.scheme(), "https" | "http") => {}
                _ => {
                    return Err(format!(
                        "`{r}` is not an absolute http(s) URI without fragment"
                    ));
                }
            }
        }
        Ok(())
    }
    fn allows_code(&self) -> bool {
        self.grants.contains(&GrantType::AuthorizationCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for m in TokenAuthMethod::ALL {
            assert_eq!(m.as_str().parse::<TokenAuthMethod>().unwrap(), *m);
        }
        assert!("private_key_jwt".parse::<TokenAuthMethod>().is_err());
        assert!("password".parse::<GrantType>().is_err());
    }

    #[test]
    fn client_ids() {
        assert!(ClientId::parse("portail:santé+1").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a\nb").is_err());
    }
}
