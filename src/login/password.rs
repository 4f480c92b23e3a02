//! « Identifiant / Mot de passe »: the sign-in page of a pending request (or its resume after
//! consent or a forced change) and its POST, throttled per account and per address.

use super::{Proof, ask_second_factor, deny_weak, finish_login, load};
use crate::crypto::ct_eq;
use crate::domain::audit::Event;
use crate::domain::{Client, Username};
use crate::hashing::Verified;
use crate::services::grant::Progress;
use crate::services::grant::{Interaction, interaction_key};
use crate::services::throttle::{Gate, LOGIN_FAILURES_PER_ADDRESS};
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::Page;
use crate::web::PageError;
use crate::web::form::PageForm;
use crate::web::see_other;
use crate::web::templates::{text, text_n};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: secrecy::SecretString,
    #[serde(default)]
    csrf_token: String,
}

pub async fn interaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    match load(&state, &headers, &uid).await {
        Ok((i, client)) if i.progress.signed_in().is_some() => {
            resume(&state, &headers, &uid, i, &client)
                .await
                .unwrap_or_else(|h| h.into_response())
        }
        Ok((i, _)) if i.progress.must_change().is_some() => {
            see_other(&format!("/interaction/{uid}/password"))
        }
        Ok((i, client)) => {
            let username = i.request.login_hint.clone().unwrap_or_default();
            login_page_text(&state, &uid, &i, &client, &username, None).into_response()
        }
        Err(h) => h.into_response(),
    }
}

/// The user has signed in: ask for consent if needed, else back to the portal with a code.
async fn resume(
    state: &AppState,
    headers: &HeaderMap,
    uid: &str,
    i: Interaction,
    client: &Client,
) -> Result<Response, PageError> {
    let mut current = state
        .current_session(headers)
        .await?
        .filter(|c| Some(c.session.user_id.as_str()) == i.progress.signed_in())
        .ok_or_else(PageError::expired)?;
    if state
        .needs_consent(client, &current.session.user_id, &i.request)
        .await?
    {
        return Ok(super::consent::consent_page(state, uid, &i, client).into_response());
    }
    // Taken, not deleted: of two concurrent resumes, one gets a code.
    if state.eph.take(&interaction_key(uid)).await?.is_none() {
        return Err(PageError::expired());
    }
    Ok(see_other(
        &state.issue_code(&i.request, &mut current).await?,
    ))
}

/// What a sign-in attempt came to.
enum SignIn {
    /// The account, and its sign-in epoch as read with the password checked.
    Ok(String, i64),
    /// The password was right but must be changed first (F3).
    MustChange(String, i64),
    Failed,
    /// Too many failures: try again in this many seconds.
    Throttled(u64),
}

pub async fn password_login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<LoginForm>,
) -> Response {
    let (mut interaction, client) = match load(&state, &headers, &uid).await {
        Ok(x) => x,
        Err(h) => return h.into_response(),
    };
    let page = |i: &Interaction, error: String, status: StatusCode| {
        login_page_text(&state, &uid, i, &client, &form.username, Some(error))
            .with_status(status)
            .into_response()
    };
    let l = interaction.locale;
    if !ct_eq(form.csrf_token.as_bytes(), interaction.csrf.as_bytes()) {
        return page(&interaction, text(l, "login.csrf"), StatusCode::FORBIDDEN);
    }
    match sign_in(
        &state,
        &state.client_ip(&peer, &headers),
        &form.username,
        form.password.expose_secret(),
    )
    .await
    {
        Ok(SignIn::Ok(user_id, epoch)) => {
            interaction.epoch = Some(epoch);
            match state.has_second_factor(&user_id).await {
                // With a second factor enrolled, the password alone never opens a session.
                Ok(true) => ask_second_factor(&state, &uid, interaction, &user_id).await,
                Ok(false) if interaction.request.need_mfa => {
                    deny_weak(&state, &uid, &interaction).await
                }
                Ok(false) => {
                    finish_login(
                        &state,
                        &uid,
                        interaction,
                        &client,
                        &user_id,
                        Proof::password(&state),
                    )
                    .await
                }
                Err(e) => PageError::from(e).into_response(),
            }
        }
        Ok(SignIn::MustChange(user_id, epoch)) => {
            interaction.epoch = Some(epoch);
            interaction.progress = Progress::MustChange(user_id);
            let ttl =
                std::time::Duration::from_secs(state.settings.tokens.interaction_minutes * 60);
            match state
                .eph
                .put_json(&interaction_key(&uid), &interaction, ttl)
                .await
            {
                Ok(()) => see_other(&format!("/interaction/{uid}/password")),
                Err(e) => PageError::from(e).into_response(),
            }
        }
        Ok(SignIn::Failed) => page(
            &interaction,
            text(l, "login.failed"),
            StatusCode::UNAUTHORIZED,
        ),
        Ok(SignIn::Throttled(s)) => page(
            &interaction,
            text_n(l, "throttle.wait", s as i64),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(e) => PageError::from(e).into_response(),
    }
}

/// Checks the credentials; the same answer and the same cost whether the account is
/// unknown, disabled or the password wrong. Failures are throttled per identifier (as
/// typed, so unknown ones behave like real ones) and per client address.
async fn sign_in(
    state: &AppState,
    address: &str,
    username: &str,
    password: &str,
) -> Result<SignIn, Internal> {
    let parsed = Username::parse(username);
    let identifier = parsed
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_else(|_| username.trim().to_lowercase());
    // Counted before the password is checked, so that parallel guesses all count; a right
    // password gives its attempt back.
    if let Gate::Wait(s) = state
        .address_attempt("login", address, LOGIN_FAILURES_PER_ADDRESS)
        .await?
    {
        return Ok(SignIn::Throttled(s));
    }
    if let Gate::Wait(s) = state.account_gate(&identifier).await? {
        return Ok(SignIn::Throttled(s));
    }
    let user = match &parsed {
        Ok(u) => state.db.user_by_username(u).await?,
        Err(_) => None,
    };
    let verified = state
        .passwords
        .verify(
            user.as_ref().and_then(|u| u.password_hash.as_deref()),
            password,
        )
        .await;
    let now = state.now();
    let p = &state.settings.password;
    let outcome = match (&user, verified) {
        (Some(u), Verified::Yes(_)) if u.disabled => (Event::LoginRefusedDisabled, None),
        (Some(u), Verified::Yes(_))
            if u.temporary_password_lapsed(now, p.temporary_validity_days) =>
        {
            (Event::LoginRefusedTemporaryLapsed, None)
        }
        (Some(u), Verified::Yes(rehash)) => {
            if let (Some(h), Some(was)) = (rehash, u.password_hash.as_deref()) {
                state.db.rehash_password(&u.id, was, &h).await?;
            }
            state.account_succeeded(&identifier).await?;
            if u.must_change_password(now, p.max_age_days) {
                (
                    Event::LoginMustChangePassword,
                    Some(SignIn::MustChange(u.id.clone(), u.sign_in_epoch)),
                )
            } else {
                (
                    Event::LoginOk,
                    Some(SignIn::Ok(u.id.clone(), u.sign_in_epoch)),
                )
            }
        }
        _ => (Event::LoginFailed, None),
    };
    state
        .db
        .audit(AuditEvent {
            user_id: user.as_ref().map(|u| u.id.as_str()),
            ip: Some(address.to_owned()),
            detail: user
                .is_none()
                .then(|| serde_json::json!({ "reason": "unknown identifier" })),
            ..AuditEvent::new(outcome.0)
        })
        .await?;
    if let Some(ok) = outcome.1 {
        state.address_forgive("login", address).await?;
        return Ok(ok);
    }
    Ok(match state.account_failed(&identifier).await? {
        Gate::Wait(s) => SignIn::Throttled(s),
        Gate::Open => SignIn::Failed,
    })
}

impl AppState {
    /// A failed sign-in step other than the password (a code, a passkey): it counts against
    /// the client address like a wrong password, and is audited.
    pub(crate) async fn step_failed(
        &self,
        event: Event,
        user_id: Option<&str>,
        address: &str,
    ) -> Result<(), Internal> {
        self.address_count("login", address, LOGIN_FAILURES_PER_ADDRESS)
            .await?;
        self.db
            .audit(AuditEvent {
                user_id,
                ip: Some(address.to_owned()),
                ..AuditEvent::new(event)
            })
            .await?;
        Ok(())
    }
}

fn login_page_text(
    state: &AppState,
    uid: &str,
    i: &Interaction,
    client: &Client,
    username: &str,
    error: Option<String>,
) -> Page {
    let html = state.pages.render(
        "login.html",
        i.locale,
        context! {
            client_name => client.id.to_string(),
            action => crate::web::path_attr(format!("/interaction/{uid}/login")),
            cancel_action => crate::web::path_attr(format!("/interaction/{uid}/cancel")),
            csrf_token => i.csrf.clone(),
            username => username.to_owned(),
            error => error,
            certificate_url => state.settings.mtls.url.as_ref().map(|u| format!("{u}/certificate/{uid}")),
            binding => i.pending_binding.is_some(),
            passkey_url => state.webauthn.as_ref().map(|_| crate::web::path_attr(format!("/interaction/{uid}/passkey"))),
        },
    );
    Page::ok(html).allowing_form_target(i.request.redirect_uri.origin())
}
