//! Introspection (RFC 7662) and revocation (RFC 7009), each limited to the calling client's
//! own tokens: another client's token is simply "not active" / left alone.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::client_auth::authenticate;
use super::error::OAuthError;
use super::params::Params;
use crate::crypto::token_hash;
use crate::domain::Client;
use crate::services::grant::{AccessGrant, RefreshGrant, access_key};
use crate::state::AppState;

/// What a presented token turned out to be.
enum Found {
    Access(String, AccessGrant),
    Refresh(crate::store::db::refresh_tokens::RefreshRecord),
    Nothing,
}

async fn find(state: &AppState, client: &Client, token: &str) -> Result<Found, OAuthError> {
    let hash = token_hash(token);
    if let Some(g) = state.access_grant(&hash).await? {
        if g.client_id == client.id.as_str() {
            return Ok(Found::Access(hash, g));
        }
        return Ok(Found::Nothing);
    }
    match state.db.refresh_token(&hash).await? {
        Some(r) if r.client_id == client.id.as_str() => Ok(Found::Refresh(r)),
        _ => Ok(Found::Nothing),
    }
}

/// A user's access token is active only while its account honours it (disabled, or reset
/// since: seen within the account cache's 2 s; the CLI cannot always reach the ephemeral store).
async fn account_active(state: &AppState, g: &AccessGrant) -> Result<bool, OAuthError> {
    let Some(user_id) = &g.user_id else {
        return Ok(true);
    };
    Ok(state
        .cached_user(user_id)
        .await?
        .is_some_and(|u| g.honoured_by(&u)))
}

async fn parse(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Client, String), OAuthError> {
    let p = Params::from_form(headers, body)?;
    if let Some(name) = p.duplicated(&[]) {
        return Err(OAuthError::invalid_request(format!(
            "parameter {name} is repeated"
        )));
    }
    let client = authenticate(state, headers, &p).await?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    Ok((client, token.to_owned()))
}

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (client, token) = parse(&state, &headers, &body).await?;
        Ok::<Value, OAuthError>(match find(&state, &client, &token).await? {
            Found::Access(_, g) if account_active(&state, &g).await? => json!({
                "active": true, "token_type": "Bearer", "client_id": g.client_id, "scope": g.scopes.to_string(),
                "sub": g.user_id.unwrap_or(g.client_id), "iat": g.iat, "exp": g.exp, "iss": state.issuer(),
            }),
            Found::Refresh(r) if !r.revoked && !r.spent && r.expires_at > state.now() => {
                let grant: RefreshGrant = serde_json::from_str(&r.grant_json)?;
                json!({
                    "active": true, "token_type": "refresh_token", "client_id": r.client_id, "scope": grant.scopes.to_string(),
                    "sub": r.user_id, "exp": r.expires_at, "iss": state.issuer(),
                })
            }
            _ => json!({ "active": false }),
        })
    };
    match result.await {
        Ok(v) => {
            let mut res = Json(v).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => e.into_response(),
    }
}

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let (client, token) = parse(&state, &headers, &body).await?;
        match find(&state, &client, &token).await? {
            Found::Access(hash, _) => state.eph.delete(&access_key(&hash)).await?,
            Found::Refresh(r) => state.revoke_family(&r.family_id).await?,
            Found::Nothing => {}
        }
        Ok::<_, OAuthError>(())
    };
    match result.await {
        // RFC 7009 §2.2: 200 whether or not the token was valid.
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}
