//! `refresh_token` (RFC 6749 §6), rotated at each use; a spent token presented again revokes
//! its family (RFC 9700 §4.14.2).

use super::{Refresh, TokenResponse, active_user, issue, refresh_expiry, refresh_grant};
use crate::crypto::{random_token, token_hash};
use crate::domain::audit::Event;
use crate::domain::{Client, Scopes};
use crate::oidc::error::OAuthError;
use crate::oidc::params::Params;
use crate::services::grant::RefreshGrant;
use crate::state::AppState;
use crate::store::db::audit::AuditEvent;
use crate::store::db::refresh_tokens::{NewRefreshToken, Rotation};

/// RFC 6749 §6, rotated at each use; a spent token presented again revokes its family (RFC 9700 §4.14.2).
pub(super) async fn refresh_token(
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
                    user_id: Some(&r.user_id),
                    client_id: Some(client.id.as_str()),
                    ..AuditEvent::new(Event::RefreshTokenReplayed)
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
