//! `authorization_code` (RFC 6749 §4.1.3): a code is checked (client, redirect URI, PKCE),
//! then taken; a replay by its own client revokes what it produced.

use super::{Refresh, TokenResponse, issue};
use std::time::Duration;

use crate::crypto::token_hash;
use crate::domain::Client;
use crate::domain::audit::Event;
use crate::oidc::error::OAuthError;
use crate::oidc::params::Params;
use crate::services::grant::{CodeGrant, RedeemedCode, access_key, code_key, redeemed_key};
use crate::state::AppState;
use crate::store::db::audit::AuditEvent;

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6) and single use (§4.1.2).
pub(super) async fn authorization_code(
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
            client_id: Some(client.id.as_str()),
            ..AuditEvent::new(Event::CodeReplayed)
        })
        .await?;
    Ok(OAuthError::invalid_grant("authorization code already used"))
}
