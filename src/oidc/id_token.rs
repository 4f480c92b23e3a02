//! ID tokens, built with openidconnect's types and signed with the client's algorithm.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, AuthenticationContextClass,
    AuthenticationMethodReference, ClientId, EndUserEmail, EndUserFamilyName, EndUserGivenName,
    EndUserName, EndUserUsername, IdToken, IdTokenClaims, IssuerUrl, LocalizedClaim, Nonce,
    StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};

use crate::domain::Client;
use crate::domain::user::User;
use crate::services::grant::AuthContext;
use crate::state::AppState;

/// `sid` (Back-Channel Logout §2.1), beside the standard claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}
impl AdditionalClaims for SessionClaims {}

pub type SesameIdToken = IdToken<
    SessionClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

pub struct IdTokenInput<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub auth: &'a AuthContext,
    pub nonce: Option<&'a str>,
    /// Identity claims asked for in the ID token itself (`claims` parameter).
    pub claims: &'a BTreeSet<String>,
    pub access_token: Option<&'a str>,
}

impl AppState {
    pub fn mint_id_token(
        &self,
        i: IdTokenInput<'_>,
    ) -> Result<String, openidconnect::JsonWebTokenError> {
        let now = self.now();
        let ts = |t: i64| Utc.timestamp_opt(t, 0).single().unwrap_or_else(Utc::now);
        let mut std = StandardClaims::new(SubjectIdentifier::new(i.user.id.clone()));
        for name in i.claims {
            std = match name.as_str() {
                "name" => std.set_name(Some(LocalizedClaim::from(EndUserName::new(
                    i.user.display_name(),
                )))),
                "given_name" => std.set_given_name(
                    i.user
                        .given_name
                        .clone()
                        .map(|g| LocalizedClaim::from(EndUserGivenName::new(g))),
                ),
                "family_name" => std.set_family_name(
                    i.user
                        .family_name
                        .clone()
                        .map(|f| LocalizedClaim::from(EndUserFamilyName::new(f))),
                ),
                "preferred_username" => std.set_preferred_username(Some(EndUserUsername::new(
                    i.user.username.to_string(),
                ))),
                "email" => std.set_email(Some(EndUserEmail::new(i.user.email.as_str().to_owned()))),
                "email_verified" => std.set_email_verified(Some(true)),
                "updated_at" => std.set_updated_at(Some(ts(i.user.updated_at))),
                _ => std,
            };
        }
        let claims = IdTokenClaims::new(
            IssuerUrl::new(self.issuer().to_owned()).expect("issuer validated by the settings"),
            vec![Audience::new(i.client.id.to_string())],
            ts(now + self.settings.tokens.id_token_seconds as i64),
            ts(now),
            std,
            SessionClaims {
                sid: Some(i.auth.sid.clone()),
            },
        )
        .set_auth_time(Some(ts(i.auth.auth_time)))
        .set_nonce(i.nonce.map(|n| Nonce::new(n.to_owned())))
        .set_auth_context_ref(Some(AuthenticationContextClass::new(i.auth.acr.clone())))
        .set_auth_method_refs(Some(
            i.auth
                .amr
                .iter()
                .map(|m| AuthenticationMethodReference::new(m.clone()))
                .collect(),
        ))
        .set_authorized_party(Some(ClientId::new(i.client.id.to_string())));
        let key = self.keys.signer(i.client.id_token_alg);
        let access_token = i.access_token.map(|t| AccessToken::new(t.to_owned()));
        let token = SesameIdToken::new(
            claims,
            key.as_ref(),
            key.core_alg(),
            access_token.as_ref(),
            None,
        )?;
        Ok(token.to_string())
    }
}
