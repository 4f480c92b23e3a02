//! The hosted sign-in pages of a pending request (`/interaction/{uid}`), one file per step.
//! What the steps share lives here: loading the request (bound to its browser, its CSRF
//! token), the proof a step brings (`Proof`), finishing the sign-in (session, consent or code)
//! and the `access_denied` answers.

pub mod certificate;
pub mod change;
pub mod consent;
pub mod forgot;
pub mod home;
pub mod passkey;
pub mod password;
pub mod totp;

use crate::services::grant::Progress;
use crate::web::PageError;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::crypto::ct_eq;
use crate::domain::Client;
use crate::services::grant::same_browser;
use crate::services::grant::{Interaction, interaction_key, redirect_with};
use crate::state::{AppState, Internal};
use crate::web::see_other;

/// The interaction `uid`, if it exists and belongs to this browser.
pub(crate) async fn load(
    state: &AppState,
    headers: &HeaderMap,
    uid: &str,
) -> Result<(Interaction, Client), PageError> {
    let mut interaction: Interaction = state
        .eph
        .get_json(&interaction_key(uid))
        .await?
        .ok_or_else(PageError::expired)?;
    if !same_browser(state, headers, &interaction) {
        return Err(PageError::expired());
    }
    // The session this browser has now (another tab may have signed in since the request
    // was parked) is the one a sign-in here replaces.
    interaction.replaces = state.session_key_in(headers);
    let client = state
        .client(&interaction.request.client_id)
        .await?
        .ok_or_else(PageError::expired)?;
    Ok((interaction, client))
}

/// `load`, for a form posted from the request's own page (its CSRF token checked).
pub(crate) async fn load_posted(
    state: &AppState,
    headers: &HeaderMap,
    uid: &str,
    csrf_token: &str,
) -> Result<(Interaction, Client), PageError> {
    let (i, client) = load(state, headers, uid).await?;
    if !ct_eq(csrf_token.as_bytes(), i.csrf.as_bytes()) {
        return Err(PageError::expired());
    }
    Ok((i, client))
}

/// The account a pending request is about (password to change, second factor to give), if
/// it is still active.
pub(crate) async fn pending_account(
    state: &AppState,
    user_id: &str,
) -> Result<crate::domain::user::User, PageError> {
    state
        .db
        .user_by_id(user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(PageError::expired)
}

/// How a sign-in authenticated the person (RFC 8176 `amr`, and the `acr` it reaches).
pub(crate) struct Proof {
    pub amr: Vec<String>,
    pub acr: String,
}

impl Proof {
    pub fn password(state: &AppState) -> Self {
        Self {
            amr: vec!["pwd".into()],
            acr: state.settings.acr.password.clone(),
        }
    }
    pub fn password_and_otp(state: &AppState) -> Self {
        Self {
            amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
            acr: state.settings.acr.two_factor.clone(),
        }
    }
}

/// Opens the session, then consent or back to the portal with a code.
pub(crate) async fn finish_login(
    state: &AppState,
    uid: &str,
    mut interaction: Interaction,
    client: &Client,
    user_id: &str,
    proof: Proof,
) -> Response {
    let locale = interaction.locale;
    let result = async {
        // The epoch seen when the first factor was checked; for a card or a passkey alone,
        // checked in this request, the current one.
        let epoch = match interaction.epoch {
            Some(e) => e,
            None => state.active_epoch(user_id).await?.ok_or(Internal::Gone)?,
        };
        if let Some(national_id) = interaction.pending_binding.take() {
            let two_factors = proof.amr.iter().any(|m| m == "mfa");
            state
                .settle_pending_card(&national_id, user_id, two_factors, locale)
                .await?;
        }
        let (mut current, cookie) = state
            .start_session_replacing(
                user_id,
                proof.amr,
                &proof.acr,
                interaction.replaces.as_deref(),
                epoch,
            )
            .await?;
        let mut res = if state
            .needs_consent(client, user_id, &interaction.request)
            .await?
        {
            interaction.progress = Progress::SignedIn(user_id.to_owned());
            let ttl =
                std::time::Duration::from_secs(state.settings.tokens.interaction_minutes * 60);
            state
                .eph
                .put_json(&interaction_key(uid), &interaction, ttl)
                .await?;
            see_other(&format!("/interaction/{uid}"))
        } else {
            state.eph.delete(&interaction_key(uid)).await?;
            see_other(&state.issue_code(&interaction.request, &mut current).await?)
        };
        res.headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
        Ok::<_, Internal>(res)
    };
    result
        .await
        .unwrap_or_else(|e| PageError::from(e).into_response())
}

/// Parks the request until the second factor is given.
pub(crate) async fn ask_second_factor(
    state: &AppState,
    uid: &str,
    mut interaction: Interaction,
    user_id: &str,
) -> Response {
    interaction.progress = Progress::SecondFactor(user_id.to_owned());
    let ttl = std::time::Duration::from_secs(state.settings.tokens.interaction_minutes * 60);
    match state
        .eph
        .put_json(&interaction_key(uid), &interaction, ttl)
        .await
    {
        Ok(()) => see_other(&format!("/interaction/{uid}/totp")),
        Err(e) => PageError::from(e).into_response(),
    }
}

/// The portal needs two factors and the account has only a password.
pub(crate) async fn deny_weak(state: &AppState, uid: &str, interaction: &Interaction) -> Response {
    access_denied(
        state,
        uid,
        interaction,
        "strong authentication is required and the account has no second factor",
    )
    .await
}

/// The user said no.
pub(crate) async fn deny(state: &AppState, uid: &str, interaction: &Interaction) -> Response {
    access_denied(state, uid, interaction, "the user denied the request").await
}

/// Ends the pending request and sends `access_denied` back to the portal: the one redirect
/// path for a request that will not be served.
async fn access_denied(
    state: &AppState,
    uid: &str,
    interaction: &Interaction,
    description: &str,
) -> Response {
    if let Err(e) = state.eph.delete(&interaction_key(uid)).await {
        return PageError::from(e).into_response();
    }
    let r = &interaction.request;
    see_other(&redirect_with(
        &r.redirect_uri,
        r.state.as_deref(),
        state.issuer(),
        &[
            ("error", "access_denied"),
            ("error_description", description),
        ],
    ))
}
