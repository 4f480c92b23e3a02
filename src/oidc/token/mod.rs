//! The token endpoint: `authorization_code`, `refresh_token` and `client_credentials`, each
//! read top to bottom as its RFC section. Errors are RFC 6749 §5.2 JSON; nothing is cached.

mod client_credentials;
mod code;
mod refresh;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::net::SocketAddr;

use super::client_auth::authenticate;
use super::error::OAuthError;
use super::id_token::IdTokenInput;
use super::params::Params;
use crate::crypto::{random_token, token_hash};
use crate::domain::claims::{self, ClaimsRequest};
use crate::domain::user::User;
use crate::domain::{Client, GrantType, Scopes};
use crate::services::grant::{AccessGrant, AuthContext, RefreshGrant, access_key};
use crate::services::throttle::{Gate, TOKEN_FAILURES_PER_ADDRESS};
use crate::state::AppState;
use crate::store::db::refresh_tokens::{NewFamily, NewRefreshToken};

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Client-authentication failures are counted per address: guessing secrets is slowed,
    // valid traffic never is. Counted before the check (parallel guesses all count), given
    // back when the client authenticated.
    let address = state.client_ip(&peer, &headers);
    match state
        .address_attempt("token", &address, TOKEN_FAILURES_PER_ADDRESS)
        .await
    {
        Ok(Gate::Wait(s)) => return OAuthError::too_many_requests(s).into_response(),
        Ok(Gate::Open) => {}
        Err(e) => return OAuthError::from(e).into_response(),
    }
    let outcome = handle(&state, &headers, &body).await;
    let failed_auth =
        matches!(&outcome, Err(e) if e.error == crate::oidc::error::ErrorCode::InvalidClient);
    if !failed_auth && let Err(e) = state.address_forgive("token", &address).await {
        tracing::warn!(error = %e, "cannot release a token attempt");
    }
    match outcome {
        Ok(r) => {
            let mut res = Json(r).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            res
        }
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, OAuthError> {
    let p = Params::from_form(headers, body)?;
    if let Some(name) = p.duplicated(&[]) {
        return Err(OAuthError::invalid_request(format!(
            "parameter {name} is repeated"
        )));
    }
    let client = authenticate(state, headers, &p).await?;
    let grant = match p.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("authorization_code") => GrantType::AuthorizationCode,
        Some("refresh_token") => GrantType::RefreshToken,
        Some("client_credentials") => GrantType::ClientCredentials,
        Some(_) => return Err(OAuthError::unsupported_grant_type("unsupported grant_type")),
    };
    if !client.allows(grant) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use this grant type",
        ));
    }
    match grant {
        GrantType::AuthorizationCode => code::authorization_code(state, &client, &p).await,
        GrantType::RefreshToken => refresh::refresh_token(state, &client, &p).await,
        GrantType::ClientCredentials => {
            client_credentials::client_credentials(state, &client, &p).await
        }
    }
}

pub(super) async fn active_user(state: &AppState, user_id: &str) -> Result<User, OAuthError> {
    match state.cached_user(user_id).await? {
        Some(u) if !u.disabled => Ok(u),
        _ => Err(OAuthError::invalid_grant("the account is not active")),
    }
}

pub(super) struct Issued {
    response: TokenResponse,
    family: Option<String>,
}

/// The refresh token that goes with an issuance.
pub(super) enum Refresh {
    /// A new family, when the client may refresh (a code was redeemed).
    Start,
    /// The successor already stored by a rotation.
    Rotated { family: String, token: String },
}

pub(super) fn refresh_grant(
    scopes: &Scopes,
    auth: &AuthContext,
    claims: &ClaimsRequest,
) -> RefreshGrant {
    RefreshGrant {
        scopes: scopes.clone(),
        auth: auth.clone(),
        claims: claims.clone(),
        offline: scopes.contains("offline_access"),
    }
}

pub(super) fn refresh_expiry(state: &AppState) -> i64 {
    state.now() + state.settings.tokens.refresh_token_days as i64 * 86_400
}

/// Access token, refresh token (when the client may refresh) and ID token for a user's grant.
#[allow(clippy::too_many_arguments)]
pub(super) async fn issue(
    state: &AppState,
    client: &Client,
    user: &User,
    scopes: &Scopes,
    auth: &AuthContext,
    claims_request: &ClaimsRequest,
    nonce: Option<&str>,
    refresh: Refresh,
) -> Result<Issued, OAuthError> {
    let now = state.now();
    let ttl = state.settings.tokens.access_token_seconds;
    let (family, refresh_token) = match refresh {
        Refresh::Rotated { family, token } => (Some(family), Some(token)),
        Refresh::Start if client.allows(GrantType::RefreshToken) => {
            let (family, token) =
                start_family(state, client, user, scopes, auth, claims_request).await?;
            (Some(family), Some(token))
        }
        Refresh::Start => (None, None),
    };
    let mut userinfo_claims: BTreeSet<String> = claims::by_scope(scopes)
        .into_iter()
        .map(str::to_owned)
        .collect();
    userinfo_claims.extend(
        claims_request
            .userinfo
            .iter()
            .filter(|c| claims::supported().contains(&c.as_str()))
            .cloned(),
    );
    let grant = AccessGrant {
        client_id: client.id.to_string(),
        user_id: Some(user.id.clone()),
        scopes: scopes.clone(),
        userinfo_claims,
        iat: now,
        exp: now + ttl as i64,
        sid: family.is_none().then(|| auth.sid.clone()),
        epoch: Some(auth.epoch),
    };
    let access_token = state.store_access_token(&grant, family.as_deref()).await?;
    // A revocation that marked the family before the access token was filed under it did
    // not delete it (and one that marks it later will): look again.
    if let Some(f) = &family
        && !state.db.refresh_family_live(f).await?
    {
        state
            .eph
            .delete(&access_key(&token_hash(&access_token)))
            .await?;
        return Err(OAuthError::invalid_grant(
            "invalid, expired or revoked refresh token",
        ));
    }
    let id_token = scopes
        .contains("openid")
        .then(|| {
            state.mint_id_token(IdTokenInput {
                client,
                user,
                auth,
                nonce,
                claims: &claims_request.id_token,
                access_token: Some(&access_token),
            })
        })
        .transpose()?;
    Ok(Issued {
        response: TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            id_token,
            refresh_token,
            scope: scopes.to_string(),
        },
        family,
    })
}

/// A new refresh family for this grant, with its first token; refused when the account is
/// disabled or its sign-in epoch moved on since the grant's sign-in.
async fn start_family(
    state: &AppState,
    client: &Client,
    user: &User,
    scopes: &Scopes,
    auth: &AuthContext,
    claims_request: &ClaimsRequest,
) -> Result<(String, String), OAuthError> {
    let family = uuid::Uuid::new_v4().to_string();
    let grant = refresh_grant(scopes, auth, claims_request);
    let token = random_token();
    let started = state
        .db
        .start_refresh_family(
            NewFamily {
                family_id: &family,
                user_id: &user.id,
                client_id: client.id.as_str(),
                session_id: (!grant.offline).then_some(auth.sid.as_str()),
                auth_time: auth.auth_time,
                epoch: auth.epoch,
            },
            NewRefreshToken {
                token_hash: &token_hash(&token),
                grant_json: &serde_json::to_string(&grant)?,
                expires_at: refresh_expiry(state),
            },
        )
        .await?;
    if !started {
        return Err(OAuthError::invalid_grant("the account is not active"));
    }
    Ok((family, token))
}

impl AppState {
    /// Stores an opaque access token's grant under its hash; returns the token.
    pub async fn store_access_token(
        &self,
        grant: &AccessGrant,
        family: Option<&str>,
    ) -> Result<String, OAuthError> {
        let token = random_token();
        let key = access_key(&token_hash(&token));
        let ttl = Duration::from_secs((grant.exp - grant.iat).max(1) as u64);
        self.eph.put_json(&key, grant, ttl).await?;
        if let Some(f) = family {
            self.eph.own(&format!("family:{f}"), &key, ttl).await?;
        }
        Ok(token)
    }

    /// A live access token's grant: not expired, and its SSO session still there if it
    /// depends on one.
    pub async fn access_grant(
        &self,
        hash: &str,
    ) -> Result<Option<AccessGrant>, crate::store::ephemeral::EphemeralError> {
        let Some(grant) = self
            .eph
            .get_json::<AccessGrant>(&access_key(hash))
            .await?
            .filter(|g| g.exp > self.now())
        else {
            return Ok(None);
        };
        if let Some(sid) = &grant.sid
            && self
                .eph
                .get(&crate::services::session::sid_key(sid))
                .await?
                .is_none()
        {
            return Ok(None);
        }
        Ok(Some(grant))
    }

    /// Revokes a refresh-token family and every access token it produced.
    pub async fn revoke_family(&self, family: &str) -> Result<(), OAuthError> {
        self.db.revoke_refresh_family(family).await?;
        self.eph.delete_owner(&format!("family:{family}")).await?;
        Ok(())
    }
}
