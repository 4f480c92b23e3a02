//! The token endpoint: `authorization_code`, `refresh_token` and `client_credentials`, each
//! read top to bottom as its RFC section. Errors are RFC 6749 §5.2 JSON; nothing is cached.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;

use super::client_auth::authenticate;
use super::error::OAuthError;
use super::id_token::IdTokenInput;
use super::params::Params;
use crate::crypto::{random_token, token_hash};
use crate::domain::claims::{self, ClaimsRequest};
use crate::domain::user::User;
use crate::domain::{Client, GrantType, Scopes};
use crate::services::grant::{
    AccessGrant, AuthContext, CodeGrant, RedeemedCode, RefreshGrant, access_key, code_key,
    redeemed_key,
};
use crate::services::throttle::{Gate, TOKEN_FAILURES_PER_ADDRESS};
use crate::state::AppState;
use crate::store::db::audit::AuditEvent;
use crate::store::db::refresh_tokens::{NewFamily, NewRefreshToken, Rotation};

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
    let failed_auth = matches!(&outcome, Err(e) if e.error == "invalid_client");
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
        GrantType::AuthorizationCode => authorization_code(state, &client, &p).await,
        GrantType::RefreshToken => refresh_token(state, &client, &p).await,
        GrantType::ClientCredentials => client_credentials(state, &client, &p).await,
    }
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6) and single use (§4.1.2).
async fn authorization_code(
    state: &AppState,
    client: &Client,
    p: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = p
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    // Checked before it is taken: someone holding a leaked code without the client's
    // credentials, redirect URI or verifier must not burn it for the portal.
    let Some(grant) = state.eph.get_json::<CodeGrant>(&code_key(code)).await? else {
        return Err(replayed_or_unknown(state, client, code).await?);
    };
    if grant.client_id != client.id.as_str() {
        return Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        ));
    }
    if p.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&grant.code_challenge, p.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if challenge.verify(verifier) => {}
        (Some(_), _) => return Err(OAuthError::invalid_grant("PKCE verification failed")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier given but no code_challenge was",
            ));
        }
        (None, None) => {}
    }
    // Single use: of concurrent redemptions, the one that takes it wins.
    let Some(grant) = state.eph.take_json::<CodeGrant>(&code_key(code)).await? else {
        return Err(OAuthError::invalid_grant("authorization code already used"));
    };
    // Read afresh, not through the cache: a code from a sign-in that a reset (or the end of
    // all sessions) overtook, even by a moment, gives nothing.
    let user = match state.db.user_by_id(&grant.user_id).await? {
        Some(u) if !u.disabled && u.sign_in_epoch == grant.auth.epoch => u,
        _ => return Err(OAuthError::invalid_grant("the account is not active")),
    };
    let issued = issue(
        state,
        client,
        &user,
        &grant.scopes,
        &grant.auth,
        &grant.claims,
        grant.nonce.as_deref(),
        Refresh::Start,
    )
    .await?;
    let redeemed = RedeemedCode {
        access_hash: token_hash(&issued.response.access_token),
        family: issued.family.clone(),
        client_id: client.id.to_string(),
    };
    let ttl = Duration::from_secs(state.settings.tokens.access_token_seconds);
    state
        .eph
        .put_json(&redeemed_key(code), &redeemed, ttl)
        .await?;
    Ok(issued.response)
}

/// A code that is not there: replayed (revoke what it produced) or unknown.
async fn replayed_or_unknown(
    state: &AppState,
    client: &Client,
    code: &str,
) -> Result<OAuthError, OAuthError> {
    let unknown = || OAuthError::invalid_grant("invalid or expired authorization code");
    let key = redeemed_key(code);
    match state.eph.get_json::<RedeemedCode>(&key).await? {
        Some(r) if r.client_id == client.id.as_str() => {}
        // Another client's code, or none: nothing to say, nothing to revoke.
        _ => return Ok(unknown()),
    }
    let Some(redeemed) = state.eph.take_json::<RedeemedCode>(&key).await? else {
        return Ok(unknown());
    };
    // A replayed code: someone else may hold it. Revoke what it produced.
    state.eph.delete(&access_key(&redeemed.access_hash)).await?;
    if let Some(f) = &redeemed.family {
        state.revoke_family(f).await?;
    }
    state
        .db
        .audit(AuditEvent {
            event: "code_replayed",
            client_id: Some(client.id.as_str()),
            ..Default::default()
        })
        .await?;
    Ok(OAuthError::invalid_grant("authorization code already used"))
}

/// RFC 6749 §6, rotated at each use; a spent token presented again revokes its family (RFC 9700 §4.14.2).
async fn refresh_token(
    state: &AppState,
    client: &Client,
    p: &Params,
) -> Result<TokenResponse, OAuthError> {
    let token = p
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = token_hash(token);
    let invalid = || OAuthError::invalid_grant("invalid, expired or revoked refresh token");
    let record = state.db.refresh_token(&hash).await?.ok_or_else(invalid)?;
    if record.client_id != client.id.as_str() || record.revoked || record.expires_at <= state.now()
    {
        return Err(invalid());
    }
    // Every check that can fail comes before spending, so a bad request burns nothing.
    let mut grant: RefreshGrant = serde_json::from_str(&record.grant_json)?;
    if let Some(asked) = p.get("scope") {
        let asked =
            Scopes::parse(asked).map_err(|_| OAuthError::invalid_scope("malformed scope"))?;
        if !asked.is_subset(&grant.scopes) {
            return Err(OAuthError::invalid_scope(
                "scope exceeds the original grant",
            ));
        }
        grant.scopes = asked;
    }
    // The spend and the successor in one transaction, both refused once the family is revoked.
    let successor = random_token();
    let rotation = state
        .db
        .rotate_refresh_token(
            &hash,
            NewRefreshToken {
                token_hash: &token_hash(&successor),
                grant_json: &serde_json::to_string(&refresh_grant(
                    &grant.scopes,
                    &grant.auth,
                    &grant.claims,
                ))?,
                expires_at: refresh_expiry(state),
            },
        )
        .await?;
    let record = match rotation {
        Rotation::Rotated(r) => r,
        Rotation::Replayed(r) => {
            state.revoke_family(&r.family_id).await?;
            state
                .db
                .audit(AuditEvent {
                    event: "refresh_token_replayed",
                    user_id: Some(&r.user_id),
                    client_id: Some(client.id.as_str()),
                    ..Default::default()
                })
                .await?;
            return Err(invalid());
        }
        Rotation::Refused => return Err(invalid()),
    };
    // A refresh token without offline_access lives no longer than its SSO session.
    if !grant.offline
        && state
            .eph
            .get(&crate::services::session::sid_key(&grant.auth.sid))
            .await?
            .is_none()
    {
        state.revoke_family(&record.family_id).await?;
        return Err(OAuthError::invalid_grant(
            "the session of this refresh token has ended",
        ));
    }
    let user = active_user(state, &record.user_id).await?;
    let issued = issue(
        state,
        client,
        &user,
        &grant.scopes,
        &grant.auth,
        &grant.claims,
        None,
        Refresh::Rotated {
            family: record.family_id,
            token: successor,
        },
    )
    .await?;
    Ok(issued.response)
}

/// RFC 6749 §4.4: a portal's own access to an API. With an RFC 8707 `resource`, the token is
/// an RFC 9068 JWT the API verifies alone; without, an opaque token to introspect.
async fn client_credentials(
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
            super::error::ascii(s)
        )));
    }
    let ttl = state.settings.tokens.access_token_seconds;
    let now = state.now();
    let access_token = match p.get("resource") {
        Some(resource) => {
            if !client.resources.iter().any(|r| r == resource) {
                return Err(OAuthError {
                    error: "invalid_target",
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

async fn active_user(state: &AppState, user_id: &str) -> Result<User, OAuthError> {
    match state.cached_user(user_id).await? {
        Some(u) if !u.disabled => Ok(u),
        _ => Err(OAuthError::invalid_grant("the account is not active")),
    }
}

struct Issued {
    response: TokenResponse,
    family: Option<String>,
}

/// The refresh token that goes with an issuance.
enum Refresh {
    /// A new family, when the client may refresh (a code was redeemed).
    Start,
    /// The successor already stored by a rotation.
    Rotated { family: String, token: String },
}

fn refresh_grant(scopes: &Scopes, auth: &AuthContext, claims: &ClaimsRequest) -> RefreshGrant {
    RefreshGrant {
        scopes: scopes.clone(),
        auth: auth.clone(),
        claims: claims.clone(),
        offline: scopes.contains("offline_access"),
    }
}

fn refresh_expiry(state: &AppState) -> i64 {
    state.now() + state.settings.tokens.refresh_token_days as i64 * 86_400
}

/// Access token, refresh token (when the client may refresh) and ID token for a user's grant.
#[allow(clippy::too_many_arguments)]
async fn issue(
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
