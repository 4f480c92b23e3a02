//! What travels between the steps of the code flow, and the step that ends it: issuing the
//! code and sending the browser back to the portal.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::{random_token, token_hash};
use crate::domain::claims::ClaimsRequest;
use crate::domain::{Client, CodeChallenge, RedirectUri, Scopes};
use crate::services::session::Current;
use crate::state::{AppState, Internal};
use crate::web::Locale;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
    pub select_account: bool,
}

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: RedirectUri,
    pub scopes: Scopes,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<CodeChallenge>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Vec<String>,
    pub claims: ClaimsRequest,
    /// `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
    /// Two factors are required: a sensitive portal, or `acr_values` naming only the two-factor level.
    #[serde(default)]
    pub need_mfa: bool,
}

/// How far the sign-in of a pending request has come (each step names the account it is for).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", content = "user_id", rename_all = "snake_case")]
pub enum Progress {
    /// No one has signed in yet.
    #[default]
    SignIn,
    /// The password was right but must be changed first (F3).
    MustChange(String),
    /// The first factor (a password, or a session) is done; the one-time code or a passkey is next.
    SecondFactor(String),
    /// Signed in: consent, or the resume after a password change, is next.
    SignedIn(String),
}

impl Progress {
    pub fn must_change(&self) -> Option<&str> {
        match self {
            Progress::MustChange(u) => Some(u),
            _ => None,
        }
    }
    pub fn second_factor(&self) -> Option<&str> {
        match self {
            Progress::SecondFactor(u) => Some(u),
            _ => None,
        }
    }
    pub fn signed_in(&self) -> Option<&str> {
        match self {
            Progress::SignedIn(u) => Some(u),
            _ => None,
        }
    }
}

/// A request waiting for the user at `/interaction/{uid}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interaction {
    pub request: AuthRequest,
    pub csrf: String,
    pub locale: Locale,
    /// How far the sign-in has come.
    #[serde(default)]
    pub progress: Progress,
    /// A verified card's national identifier, bound to whoever signs in next in this request
    /// (`mtls.bind_on_first_use`).
    #[serde(default)]
    pub pending_binding: Option<String>,
    /// Hash of the browser cookie of the browser that started it.
    pub browser: String,
    /// The store key of the session this browser has when the sign-in completes (set as the
    /// request is loaded): the sign-in replaces it (same account: its `sid` and portals
    /// carry over; another account: it ends, and its portals are told).
    #[serde(default)]
    pub replaces: Option<String>,
    /// The account's sign-in epoch when the first factor was checked: the session this
    /// request opens is void if a reset moved it on meanwhile.
    #[serde(default)]
    pub epoch: Option<i64>,
}

/// What a code stands for, until the portal redeems it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub scopes: Scopes,
    pub nonce: Option<String>,
    pub code_challenge: Option<CodeChallenge>,
    pub auth: AuthContext,
    pub claims: ClaimsRequest,
}

/// How and when the user authenticated; carried into every token of the grant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthContext {
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub sid: String,
    /// The account's sign-in epoch its sign-in saw (see `User::sign_in_epoch`).
    #[serde(default)]
    pub epoch: i64,
}

impl AuthContext {
    pub fn of(session: &crate::services::session::Session) -> Self {
        Self {
            auth_time: session.auth_time,
            acr: session.acr.clone(),
            amr: session.amr.clone(),
            sid: session.sid.clone(),
            epoch: session.epoch,
        }
    }
}

/// An access token's record (the token itself is never stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessGrant {
    pub client_id: String,
    /// `None` for client_credentials.
    pub user_id: Option<String>,
    pub scopes: Scopes,
    pub userinfo_claims: BTreeSet<String>,
    pub iat: i64,
    pub exp: i64,
    /// The SSO session a token without a refresh family depends on: it dies with it (logout,
    /// password reset, disabled account). Tokens of a family die with the family instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The sign-in epoch of the grant (user tokens): a reset, a disabling or the end of all
    /// sessions moves the account's on, and the token is inactive from then (within the
    /// account cache's 2 s), even where the ephemeral store cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

impl AccessGrant {
    /// Whether `user` (the token's account, as read now) still honours this token.
    pub fn honoured_by(&self, user: &crate::domain::user::User) -> bool {
        !user.disabled && self.epoch.is_none_or(|e| e == user.sign_in_epoch)
    }
}

/// A refresh token's grant (JSON in the durable store).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub scopes: Scopes,
    pub auth: AuthContext,
    pub claims: ClaimsRequest,
    pub offline: bool,
}

/// Left behind by a redeemed code so that a replay can revoke what the code produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedeemedCode {
    pub access_hash: String,
    pub family: Option<String>,
    /// Only the client the code was issued to can trigger the revocation: anyone else
    /// holding a leaked code must not be able to end the portal's grant.
    #[serde(default)]
    pub client_id: String,
}

pub fn interaction_key(uid: &str) -> String {
    format!("interaction:{uid}")
}
pub fn code_key(code: &str) -> String {
    format!("code:{}", token_hash(code))
}
pub fn redeemed_key(code: &str) -> String {
    format!("code_used:{}", token_hash(code))
}
pub fn access_key(hash: &str) -> String {
    format!("at:{hash}")
}

/// The response parameters an error or success redirect always carries.
pub fn redirect_with(
    req_uri: &RedirectUri,
    state: Option<&str>,
    issuer: &str,
    params: &[(&str, &str)],
) -> String {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if let Some(s) = state {
        all.push(("state", s));
    }
    all.push(("iss", issuer));
    req_uri.with_params(&all)
}

impl AppState {
    /// Whether this user must (still) consent to these scopes for this portal.
    pub async fn needs_consent(
        &self,
        client: &Client,
        user_id: &str,
        req: &AuthRequest,
    ) -> Result<bool, Internal> {
        if client.first_party {
            return Ok(false);
        }
        if req.prompt.consent {
            return Ok(true);
        }
        Ok(match self.db.consent(user_id, client.id.as_str()).await? {
            Some(granted) => !req.scopes.is_subset(&granted),
            None => true,
        })
    }

    /// Issues a single-use code for `session`'s user and returns the portal URL to go to.
    pub async fn issue_code(
        &self,
        req: &AuthRequest,
        session: &mut Current,
    ) -> Result<String, Internal> {
        let code = random_token();
        let grant = CodeGrant {
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.as_str().to_owned(),
            user_id: session.session.user_id.clone(),
            scopes: req.scopes.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            auth: AuthContext::of(&session.session),
            claims: req.claims.clone(),
        };
        self.eph
            .put_json(
                &code_key(&code),
                &grant,
                Duration::from_secs(self.settings.tokens.code_seconds),
            )
            .await?;
        self.add_portal(session, &req.client_id).await?;
        Ok(redirect_with(
            &req.redirect_uri,
            req.state.as_deref(),
            self.issuer(),
            &[("code", &code)],
        ))
    }
}

impl AppState {
    /// The account's current sign-in epoch, if it exists and is not disabled.
    pub async fn active_epoch(&self, user_id: &str) -> Result<Option<i64>, Internal> {
        Ok(self
            .db
            .user_by_id(user_id)
            .await?
            .filter(|u| !u.disabled)
            .map(|u| u.sign_in_epoch))
    }
}

/// True when this browser started the interaction (a link sent to a victim is worthless).
pub fn same_browser(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    interaction: &Interaction,
) -> bool {
    state
        .cookie(headers, crate::web::cookies::BROWSER)
        .is_some_and(|b| {
            crate::crypto::ct_eq(
                crate::crypto::token_hash(b).as_bytes(),
                interaction.browser.as_bytes(),
            )
        })
}
