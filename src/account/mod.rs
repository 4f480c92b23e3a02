//! « Mon compte » (F5): the signed-in person changes their password.

pub mod certificates;
pub mod passkeys;
pub mod password;
pub mod totp;

use crate::web::form::PageForm;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde::Deserialize;
use std::net::SocketAddr;

use crate::app::{AppState, Internal};
use crate::crypto::{b64url, ct_eq, sha256};
use crate::login::throttle::Recheck;
use crate::mail::Kind;
use crate::session::Current;
use crate::web::templates::text_n;
use crate::web::{Locale, Page};

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

pub(crate) fn csrf(c: &Current) -> String {
    b64url(sha256(format!("account:{}", c.key)))
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let locale = Locale::negotiate(None, &headers);
    match state.current_session(&headers).await {
        Ok(Some(c)) => page(&state, &c, locale, Vec::new())
            .await
            .unwrap_or_else(|e| internal(&state, locale, e)),
        Ok(None) => signin_first(&state, locale),
        Err(e) => internal(&state, locale, e.into()),
    }
}

pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    PageForm(form): PageForm<ChangeForm>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    let result = async {
        let Some(current) = state.current_session(&headers).await? else {
            return Ok(signin_first(&state, locale));
        };
        if !ct_eq(form.csrf_token.as_bytes(), csrf(&current).as_bytes()) {
            return page(
                &state,
                &current,
                locale,
                vec![crate::web::templates::text(locale, "login.csrf")],
            )
            .await;
        }
        let user = state
            .db
            .user_by_id(&current.session.user_id)
            .await?
            .ok_or(Internal::Gone)?;
        let address = state.client_ip(&peer, &headers);
        let message = match state
            .recheck_password(
                &user,
                Some(&form.username),
                &form.old_password,
                Some(&address),
            )
            .await?
        {
            Recheck::Right => None,
            Recheck::Wrong => Some(crate::web::templates::text(locale, "change.wrong_old")),
            Recheck::Wait(s) => Some(text_n(locale, "throttle.wait", s as i64)),
        };
        if let Some(m) = message {
            return page(&state, &current, locale, vec![m]).await;
        }
        match state
            .set_password(
                &user,
                &form.new_password,
                &form.new_password_confirm,
                "password_changed",
                locale,
            )
            .await?
        {
            Ok(()) => Ok(done(&state, locale, "change.done", None)),
            Err(v) => page(&state, &current, locale, password::messages(locale, &v)).await,
        }
    };
    result.await.unwrap_or_else(|e| internal(&state, locale, e))
}

async fn page(
    state: &AppState,
    c: &Current,
    locale: Locale,
    errors: Vec<String>,
) -> Result<Response, Internal> {
    let user = state
        .db
        .user_by_id(&c.session.user_id)
        .await?
        .ok_or(Internal::Gone)?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let html = state.pages.render(
        "account.html",
        locale,
        context! {
            signed_in_name => user.display_name(),
            username => user.username.to_string(),
            logout_csrf => crate::oidc::logout::session_csrf(c),
            csrf_token => csrf(c),
            errors => errors,
            totp_enabled => state.totp_enrolled(&user.id).await?,
            passkeys_enabled => state.webauthn.is_some(),
            passkeys => passkey_list(state, &user.id).await?,
            certificates => state.db.certificates_of(&user.id).await?,
            policy => Value::from(minijinja::value::Serde(state.settings.password.clone())),
        },
    );
    Ok(Page::ok(html).with_status(status).into_response())
}

/// The account's passkeys, for the page: name, dates, and the id the remove form posts.
async fn passkey_list(state: &AppState, user_id: &str) -> Result<Vec<Value>, Internal> {
    let date = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%d/%m/%Y").to_string())
            .unwrap_or_default()
    };
    Ok(state
        .db
        .passkeys_of(user_id)
        .await?
        .into_iter()
        .map(|k| {
            context! {
                id => k.id, name => k.name, created => date(k.created_at),
                last_used => k.last_used_at.map(date),
            }
        })
        .collect())
}

/// The confirmation page shared by every password flow.
pub fn done(
    state: &AppState,
    locale: Locale,
    message: &str,
    continue_url: Option<String>,
) -> Response {
    let html = state.pages.render(
        "password_done.html",
        locale,
        context! { message => message, continue_url => continue_url },
    );
    Page::ok(html).into_response()
}

/// The signed-in session and its account, if the form's CSRF token is the session's own:
/// how every « Mon compte » change starts.
pub(crate) async fn owner(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: &str,
) -> Result<Option<(Current, crate::domain::user::User)>, Internal> {
    let Some(c) = state
        .current_session(headers)
        .await?
        .filter(|c| ct_eq(csrf_token.as_bytes(), csrf(c).as_bytes()))
    else {
        return Ok(None);
    };
    let user = state
        .db
        .user_by_id(&c.session.user_id)
        .await?
        .ok_or(Internal::Gone)?;
    Ok(Some((c, user)))
}

pub(crate) fn signin_first(state: &AppState, locale: Locale) -> Response {
    state
        .pages
        .error_page(locale, "account.signin_first", StatusCode::UNAUTHORIZED)
        .into_response()
}

pub fn internal(state: &AppState, locale: Locale, e: Internal) -> Response {
    let (key, status) = crate::oidc::error::page_error(&e, "account page failed");
    state.pages.error_page(locale, key, status).into_response()
}

/// Checks the account's password, throttled like every other password check.
pub(crate) async fn password_refused(
    state: &AppState,
    c: &Current,
    user: &crate::domain::user::User,
    password: &str,
    locale: Locale,
) -> Result<Option<Response>, Internal> {
    let message = match state.recheck_password(user, None, password, None).await? {
        Recheck::Right => return Ok(None),
        Recheck::Wrong => crate::web::templates::text(locale, "change.wrong_old"),
        Recheck::Wait(s) => crate::web::templates::text_n(locale, "throttle.wait", s as i64),
    };
    Ok(Some(page(state, c, locale, vec![message]).await?))
}

/// Tells the owner that a sign-in means was added or removed (with the support contact).
pub(crate) async fn notify(
    state: &AppState,
    user: &crate::domain::user::User,
    locale: Locale,
    kind: Kind,
    factor: &str,
) -> Result<(), Internal> {
    let when = chrono::Utc::now().format("%d/%m/%Y %H:%M UTC").to_string();
    let ctx = context! { username => user.username.to_string(), factor => factor, when => when };
    state
        .mailer
        .send(&state.db, &user.email, locale, kind, ctx)
        .await?;
    Ok(())
}
