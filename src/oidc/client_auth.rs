//! Client authentication at the token, introspection and revocation endpoints:
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients.
//! One method per request, the one the client registered; secrets compared as hashes in
//! constant time.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::OAuthError;
use super::params::Params;
use crate::crypto::{ct_eq, token_hash};
use crate::domain::{Client, TokenAuthMethod};
use crate::state::AppState;

/// Who is calling, as the request claims it.
enum Presented {
    Basic { id: String, secret: String },
    Post { id: String, secret: String },
    IdOnly(String),
}

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    p: &Params,
) -> Result<Client, OAuthError> {
    let presented = presented(headers, p)?;
    let (id, secret, method) = match &presented {
        Presented::Basic { id, secret } => (id, Some(secret), TokenAuthMethod::ClientSecretBasic),
        Presented::Post { id, secret } => (id, Some(secret), TokenAuthMethod::ClientSecretPost),
        Presented::IdOnly(id) => (id, None, TokenAuthMethod::None),
    };
    let client = state.client(id).await?;
    // Hash even for an unknown client, so timing does not tell which ids exist.
    let presented_hash = secret.map(|s| token_hash(s));
    let Some(client) = client else {
        return Err(OAuthError::invalid_client("client authentication failed"));
    };
    if client.auth_method != method {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    if let (Some(given), Some(stored)) = (&presented_hash, &client.secret_hash) {
        if !ct_eq(given.as_bytes(), stored.as_bytes()) {
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
    } else if method != TokenAuthMethod::None {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    if p.get("client_id")
        .is_some_and(|cid| cid != client.id.as_str())
    {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    Ok(client)
}

fn presented(headers: &HeaderMap, p: &Params) -> Result<Presented, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(v) => Some(parse_basic(v.to_str().map_err(|_| bad_basic())?)?),
        None => None,
    };
    match (basic, p.get("client_secret")) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method per request",
        )),
        (Some((id, secret)), None) => Ok(Presented::Basic { id, secret }),
        (None, Some(secret)) => match p.get("client_id") {
            Some(id) => Ok(Presented::Post {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            None => Err(OAuthError::invalid_client("client_id is required")),
        },
        (None, None) => match p.get("client_id") {
            Some(id) => Ok(Presented::IdOnly(id.to_owned())),
            None => Err(OAuthError::invalid_client(
                "client authentication is required",
            )),
        },
    }
}

fn bad_basic() -> OAuthError {
    OAuthError::invalid_client("malformed Basic authorization header")
}

/// RFC 6749 §2.3.1: base64 of `urlencode(id):urlencode(secret)`.
fn parse_basic(value: &str) -> Result<(String, String), OAuthError> {
    let (scheme, b64) = value.split_once(' ').ok_or_else(bad_basic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "only Basic client authentication is supported",
        ));
    }
    let raw = STANDARD.decode(b64.trim()).map_err(|_| bad_basic())?;
    let raw = String::from_utf8(raw).map_err(|_| bad_basic())?;
    let (id, secret) = raw.split_once(':').ok_or_else(bad_basic)?;
    let decode = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default()
    };
    let id = decode(id);
    if id.is_empty() {
        return Err(bad_basic());
    }
    Ok((id, decode(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_form_decoded() {
        let v = format!("Basic {}", STANDARD.encode("portail%3Asant%C3%A9:s%2Bc+r"));
        assert_eq!(
            parse_basic(&v).unwrap(),
            ("portail:santé".into(), "s+c r".into())
        );
        assert!(parse_basic("Basic !!!").is_err());
        assert!(parse_basic(&format!("Basic {}", STANDARD.encode("nocolon"))).is_err());
        assert!(parse_basic("Bearer x").is_err());
    }
}
