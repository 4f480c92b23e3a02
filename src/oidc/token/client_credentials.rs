//! `client_credentials`: opaque tokens, or RFC 9068 JWTs for a registered `resource`.

use super::TokenResponse;
use std::collections::BTreeSet;

use serde_json::json;

use crate::crypto::random_token;
use crate::domain::{Client, Scopes};
use crate::oidc::error::OAuthError;
use crate::oidc::params::Params;
use crate::services::grant::AccessGrant;
use crate::state::AppState;

/// RFC 6749 §4.4: a portal's own access to an API. With an RFC 8707 `resource`, the token is
/// an RFC 9068 JWT the API verifies alone; without, an opaque token to introspect.
pub(super) async fn client_credentials(
    state: &AppState,
    client: &Client,
    p: &Params,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use client_credentials",
        ));
    }
    let scopes = Scopes::parse(p.get("scope").unwrap_or(""))
        .map_err(|_| OAuthError::invalid_scope("malformed scope"))?;
    if let Some(s) = scopes
        .iter()
        .find(|s| !client.allowed_scopes.iter().any(|a| a == s))
    {
        return Err(OAuthError::invalid_scope(format!(
            "scope {} is not allowed for this client",
            crate::oidc::error::ascii(s)
        )));
    }
    let ttl = state.settings.tokens.access_token_seconds;
    let now = state.now();
    let access_token = match p.get("resource") {
        Some(resource) => {
            if !client.resources.iter().any(|r| r == resource) {
                return Err(OAuthError {
                    error: crate::oidc::error::ErrorCode::InvalidTarget,
                    ..OAuthError::invalid_request("resource is not allowed for this client")
                });
            }
            let claims = json!({
                "iss": state.issuer(), "sub": client.id.as_str(), "aud": resource, "client_id": client.id.as_str(),
                "iat": now, "exp": now + ttl as i64, "jti": random_token(), "scope": scopes.to_string(),
            });
            state
                .keys
                .signer(client.id_token_alg)
                .sign_jwt("at+jwt", &claims)
        }
        None => {
            let grant = AccessGrant {
                client_id: client.id.to_string(),
                user_id: None,
                scopes: scopes.clone(),
                userinfo_claims: BTreeSet::new(),
                iat: now,
                exp: now + ttl as i64,
                sid: None,
                epoch: None,
            };
            state.store_access_token(&grant, None).await?
        }
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        id_token: None,
        refresh_token: None,
        scope: scopes.to_string(),
    })
}
