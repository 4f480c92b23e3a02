//! The discovery document (what Sésame implements, nothing more), built once from the
//! settings; `oidc/discovery.rs` serves it.

use bytes::Bytes;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, AuthenticationContextClass, IssuerUrl, JsonWebKeySetUrl,
    LanguageTag, ProviderMetadata, ResponseTypes, Scope, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::domain::{IdTokenAlg, TokenAuthMethod, claims, scope};

/// Discovery members the core type lacks.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Extra {
    pub end_session_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub authorization_response_iss_parameter_supported: bool,
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    pub frontchannel_logout_supported: bool,
}
impl AdditionalProviderMetadata for Extra {}

pub type Metadata = ProviderMetadata<
    Extra,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

pub fn document(s: &Settings) -> Bytes {
    let url = |path: &str| format!("{}{path}", s.issuer);
    let methods: Vec<String> = vec!["client_secret_basic".into(), "client_secret_post".into()];
    let metadata = Metadata::new(
        IssuerUrl::new(s.issuer.clone()).expect("issuer validated by the settings"),
        AuthUrl::new(url("/authorize")).expect("url"),
        JsonWebKeySetUrl::new(url("/jwks")).expect("url"),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        IdTokenAlg::ALL
            .iter()
            .map(|a| crate::keys::signer::core_alg(*a))
            .collect::<Vec<CoreJwsSigningAlgorithm>>(),
        Extra {
            end_session_endpoint: url("/logout"),
            introspection_endpoint: url("/introspect"),
            revocation_endpoint: url("/revoke"),
            introspection_endpoint_auth_methods_supported: methods.clone(),
            revocation_endpoint_auth_methods_supported: methods,
            code_challenge_methods_supported: vec!["S256".into()],
            authorization_response_iss_parameter_supported: true,
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            frontchannel_logout_supported: false,
        },
    )
    .set_token_endpoint(Some(TokenUrl::new(url("/token")).expect("url")))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(url("/userinfo")).expect("url")))
    .set_scopes_supported(Some(
        scope::SUPPORTED
            .iter()
            .map(|s| Scope::new((*s).into()))
            .collect(),
    ))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query]))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
        CoreGrantType::ClientCredentials,
    ]))
    .set_acr_values_supported(Some(vec![
        AuthenticationContextClass::new(s.acr.password.clone()),
        AuthenticationContextClass::new(s.acr.two_factor.clone()),
    ]))
    .set_token_endpoint_auth_methods_supported(Some(
        TokenAuthMethod::ALL
            .iter()
            .map(|m| match m {
                TokenAuthMethod::ClientSecretBasic => CoreClientAuthMethod::ClientSecretBasic,
                TokenAuthMethod::ClientSecretPost => CoreClientAuthMethod::ClientSecretPost,
                TokenAuthMethod::None => CoreClientAuthMethod::None,
            })
            .collect(),
    ))
    .set_claims_supported(Some(
        claims::supported()
            .into_iter()
            .map(|c| CoreClaimName::new(c.into()))
            .collect(),
    ))
    .set_claim_types_supported(Some(vec![CoreClaimType::Normal]))
    .set_display_values_supported(Some(vec![CoreAuthDisplay::Page, CoreAuthDisplay::Popup]))
    .set_ui_locales_supported(Some(
        crate::web::locale::SUPPORTED
            .iter()
            .map(|l| LanguageTag::new((*l).into()))
            .collect(),
    ))
    .set_claims_parameter_supported(Some(true))
    .set_request_parameter_supported(Some(false))
    .set_request_uri_parameter_supported(Some(false))
    .set_require_request_uri_registration(Some(false));
    Bytes::from(serde_json::to_vec(&metadata).expect("metadata serialises"))
}
