//! The hosted sign-in pages: the pending request at `/interaction/{uid}` shows the sign-in form
//! or the consent form; their POSTs finish the request and send the browser to the portal.

pub mod certificate;
pub mod change;
pub mod forgot;
pub mod passkey;
pub mod totp;

use crate::web::PageError;
use crate::web::form::PageForm;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use crate::crypto::ct_eq;
use crate::domain::{Client, Username};
use crate::hashing::Verified;
use crate::services::grant::same_browser;
use crate::services::grant::{Interaction, interaction_key, redirect_with};
use crate::services::throttle::{Gate, LOGIN_FAILURES_PER_ADDRESS};
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::see_other;
use crate::web::templates::{text, text_n};
use crate::web::{Locale, Page};
use std::net::SocketAddr;

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

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

pub async fn interaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    match load(&state, &headers, &uid).await {
        Ok((i, client)) if i.user_id.is_some() => resume(&state, &headers, &uid, i, &client)
            .await
            .unwrap_or_else(|h| h.in_locale(locale).into_response()),
        Ok((i, _)) if i.must_change.is_some() => see_other(&format!("/interaction/{uid}/password")),
        Ok((i, client)) => {
            let username = i.request.login_hint.clone().unwrap_or_default();
            login_page_text(&state, &uid, &i, &client, &username, None).into_response()
        }
        Err(h) => h.in_locale(locale).into_response(),
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
        .filter(|c| Some(&c.session.user_id) == i.user_id.as_ref())
        .ok_or_else(PageError::expired)?;
    if state
        .needs_consent(client, &current.session.user_id, &i.request)
        .await?
    {
        return Ok(consent_page(state, uid, &i, client).into_response());
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
    let locale = Locale::negotiate(None, &headers);
    let (mut interaction, client) = match load(&state, &headers, &uid).await {
        Ok(x) => x,
        Err(h) => return h.in_locale(locale).into_response(),
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
        &form.password,
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
            interaction.must_change = Some(user_id);
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
        (Some(u), Verified::Yes(_)) if u.disabled => ("login_refused_disabled", None),
        (Some(u), Verified::Yes(_))
            if u.temporary_password_lapsed(now, p.temporary_validity_days) =>
        {
            ("login_refused_temporary_lapsed", None)
        }
        (Some(u), Verified::Yes(rehash)) => {
            if let (Some(h), Some(was)) = (rehash, u.password_hash.as_deref()) {
                state.db.rehash_password(&u.id, was, &h).await?;
            }
            state.account_succeeded(&identifier).await?;
            if u.must_change_password(now, p.max_age_days) {
                (
                    "login_must_change_password",
                    Some(SignIn::MustChange(u.id.clone(), u.sign_in_epoch)),
                )
            } else {
                ("login_ok", Some(SignIn::Ok(u.id.clone(), u.sign_in_epoch)))
            }
        }
        _ => ("login_failed", None),
    };
    state
        .db
        .audit(AuditEvent {
            event: outcome.0,
            user_id: user.as_ref().map(|u| u.id.as_str()),
            ip: Some(address.to_owned()),
            detail: user
                .is_none()
                .then(|| serde_json::json!({ "reason": "unknown identifier" })),
            ..Default::default()
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
        event: &'static str,
        user_id: Option<&str>,
        address: &str,
    ) -> Result<(), Internal> {
        self.address_count("login", address, LOGIN_FAILURES_PER_ADDRESS)
            .await?;
        self.db
            .audit(AuditEvent {
                event,
                user_id,
                ip: Some(address.to_owned()),
                ..Default::default()
            })
            .await?;
        Ok(())
    }
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
            interaction.user_id = Some(user_id.to_owned());
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

pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    let (interaction, client) = match load(&state, &headers, &uid).await {
        Ok(x) => x,
        Err(h) => return h.in_locale(locale).into_response(),
    };
    if !ct_eq(form.csrf_token.as_bytes(), interaction.csrf.as_bytes())
        || interaction.user_id.is_none()
    {
        return PageError::expired().in_locale(locale).into_response();
    }
    if form.decision != "allow" {
        return deny(&state, &uid, &interaction).await;
    }
    let result = async {
        // The consent must come from the signed-in user who was asked.
        let Some(mut current) = state
            .current_session(&headers)
            .await?
            .filter(|c| Some(&c.session.user_id) == interaction.user_id.as_ref())
        else {
            return Err(PageError::expired());
        };
        state
            .db
            .grant_consent(
                &current.session.user_id,
                client.id.as_str(),
                &interaction.request.scopes,
            )
            .await?;
        state
            .db
            .audit(AuditEvent {
                event: "consent_granted",
                user_id: Some(&current.session.user_id),
                client_id: Some(client.id.as_str()),
                detail: Some(
                    serde_json::json!({ "scope": interaction.request.scopes.to_string() }),
                ),
                ..Default::default()
            })
            .await?;
        state.eph.delete(&interaction_key(&uid)).await?;
        Ok(see_other(
            &state.issue_code(&interaction.request, &mut current).await?,
        ))
    };
    result
        .await
        .unwrap_or_else(|h: PageError| h.in_locale(locale).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    match load(&state, &headers, &uid).await {
        Ok((i, _)) if ct_eq(form.csrf_token.as_bytes(), i.csrf.as_bytes()) => {
            deny(&state, &uid, &i).await
        }
        Ok(_) => PageError::expired().in_locale(locale).into_response(),
        Err(h) => h.in_locale(locale).into_response(),
    }
}

/// Parks the request until the second factor is given.
async fn ask_second_factor(
    state: &AppState,
    uid: &str,
    mut interaction: Interaction,
    user_id: &str,
) -> Response {
    interaction.second_factor = Some(user_id.to_owned());
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
            (
                "error_description",
                "strong authentication is required and the account has no second factor",
            ),
        ],
    ))
}

/// The user said no: `access_denied` back to the portal.
async fn deny(state: &AppState, uid: &str, interaction: &Interaction) -> Response {
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
            ("error_description", "the user denied the request"),
        ],
    ))
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

fn consent_page(state: &AppState, uid: &str, i: &Interaction, client: &Client) -> Page {
    let scopes: Vec<String> = i.request.scopes.iter().map(str::to_owned).collect();
    let html = state.pages.render(
        "consent.html",
        i.locale,
        context! {
            client_name => client.id.to_string(),
            action => crate::web::path_attr(format!("/interaction/{uid}/consent")),
            csrf_token => i.csrf.clone(),
            scopes => scopes,
        },
    );
    Page::ok(html).allowing_form_target(i.request.redirect_uri.origin())
}

/// `/`: who is signed in, with the « Se déconnecter » menu.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let locale = Locale::negotiate(None, &headers);
    let name = match state.current_session(&headers).await {
        Ok(Some(c)) => state
            .db
            .user_by_id(&c.session.user_id)
            .await
            .ok()
            .flatten()
            .map(|u| u.display_name()),
        _ => None,
    };
    let csrf = match &name {
        Some(_) => crate::services::session::menu_csrf(&state, &headers)
            .await
            .unwrap_or_default(),
        None => String::new(),
    };
    let html = state.pages.render(
        "home.html",
        locale,
        context! { signed_in_name => name, logout_csrf => csrf },
    );
    Page::ok(html).into_response()
}

pub async fn not_found(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let locale = Locale::negotiate(None, &headers);
    state
        .pages
        .error_page(locale, "error.not_found", StatusCode::NOT_FOUND)
        .into_response()
}
