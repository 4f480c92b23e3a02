//! « Mon compte » (F5): the signed-in person changes their password.

pub mod certificates;
pub mod passkeys;
pub mod totp;

use crate::domain::audit::Event;
use crate::web::PageError;
use crate::web::done;
use crate::web::form::{PageForm, PasswordChange};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use secrecy::ExposeSecret;
use std::net::SocketAddr;

use crate::crypto::{b64url, ct_eq, sha256};
use crate::services::session::Current;
use crate::services::throttle::Recheck;
use crate::state::{AppState, Internal};
use crate::web::templates::text_n;
use crate::web::{Locale, Page};

pub(crate) fn csrf(c: &Current) -> String {
    b64url(sha256(format!("account:{}", c.key)))
}

pub async fn show(
    State(state): State<AppState>,
    locale: Locale,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let c = state
        .current_session(&headers)
        .await?
        .ok_or_else(PageError::sign_in_first)?;
    page(&state, &c, locale, Vec::new()).await
}

pub async fn change_password(
    State(state): State<AppState>,
    locale: Locale,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    PageForm(form): PageForm<PasswordChange>,
) -> Result<Response, PageError> {
    let Some(current) = state.current_session(&headers).await? else {
        return Err(PageError::sign_in_first());
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
            form.old_password.expose_secret(),
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
            form.new_password.expose_secret(),
            form.new_password_confirm.expose_secret(),
            Event::PasswordChanged,
            locale,
        )
        .await?
    {
        Ok(()) => Ok(done(&state.pages, locale, "change.done", None)),
        Err(v) => {
            page(
                &state,
                &current,
                locale,
                crate::services::credentials::messages(locale, &v),
            )
            .await
        }
    }
}

async fn page(
    state: &AppState,
    c: &Current,
    locale: Locale,
    errors: Vec<String>,
) -> Result<Response, PageError> {
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
            logout_csrf => crate::services::session::session_csrf(c),
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

/// The signed-in session and its account, if the form's CSRF token is the session's own:
/// how every « Mon compte » change starts.
pub(crate) async fn owner(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: &str,
) -> Result<(Current, crate::domain::user::User), PageError> {
    let c = state
        .current_session(headers)
        .await?
        .filter(|c| ct_eq(csrf_token.as_bytes(), csrf(c).as_bytes()))
        .ok_or_else(PageError::sign_in_first)?;
    let user = state
        .db
        .user_by_id(&c.session.user_id)
        .await?
        .ok_or(Internal::Gone)?;
    Ok((c, user))
}

/// A « Mon compte » form: its CSRF token, and the account's password when the form asks for it.
pub trait AccountForm {
    fn csrf_token(&self) -> &str;
    fn password(&self) -> &str {
        ""
    }
}

/// `AccountForm` for a form with `csrf_token` and `password` fields.
macro_rules! account_form {
    ($form:ty) => {
        impl $crate::account::AccountForm for $form {
            fn csrf_token(&self) -> &str {
                &self.csrf_token
            }
            fn password(&self) -> &str {
                secrecy::ExposeSecret::expose_secret(&self.password)
            }
        }
    };
}
pub(crate) use account_form;

/// The signed-in owner of « Mon compte » and the form they posted (session and CSRF checked).
pub struct Owner<T> {
    pub current: Current,
    pub user: crate::domain::user::User,
    pub form: T,
}

impl<T> axum::extract::FromRequest<AppState> for Owner<T>
where
    T: serde::de::DeserializeOwned + AccountForm + Send,
{
    type Rejection = PageError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, PageError> {
        let headers = req.headers().clone();
        let PageForm(form) = PageForm::<T>::from_request(req, state)
            .await
            .map_err(PageError::Shown)?;
        let (current, user) = owner(state, &headers, form.csrf_token()).await?;
        Ok(Owner {
            current,
            user,
            form,
        })
    }
}

/// The same, having typed the account's password again: what adding or removing a sign-in
/// means asks for.
pub struct ConfirmedOwner<T>(pub Owner<T>);

impl<T> axum::extract::FromRequest<AppState> for ConfirmedOwner<T>
where
    T: serde::de::DeserializeOwned + AccountForm + Send,
{
    type Rejection = PageError;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, PageError> {
        let locale = Locale::negotiate(None, req.headers());
        let o = Owner::<T>::from_request(req, state).await?;
        if let Some(refusal) =
            password_refused(state, &o.current, &o.user, o.form.password(), locale).await?
        {
            return Err(PageError::Shown(refusal));
        }
        Ok(ConfirmedOwner(o))
    }
}

/// Checks the account's password, throttled like every other password check.
pub(crate) async fn password_refused(
    state: &AppState,
    c: &Current,
    user: &crate::domain::user::User,
    password: &str,
    locale: Locale,
) -> Result<Option<Response>, PageError> {
    let message = match state.recheck_password(user, None, password, None).await? {
        Recheck::Right => return Ok(None),
        Recheck::Wrong => crate::web::templates::text(locale, "change.wrong_old"),
        Recheck::Wait(s) => crate::web::templates::text_n(locale, "throttle.wait", s as i64),
    };
    Ok(Some(page(state, c, locale, vec![message]).await?))
}
