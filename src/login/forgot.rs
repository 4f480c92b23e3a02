//! F4, the forgotten password: identifier + code à recopier → one neutral answer whether or
//! not the account exists → an e-mailed single-use link (256-bit, kept hashed, one hour; a
//! new request voids the older link) → new password → confirmation page and e-mail. A
//! completed reset ends every session and refresh token of the account.

use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::time::Duration;

use crate::domain::audit::Event;
use crate::web::PageError;
use crate::web::form::PageForm;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::crypto::{random_token, token_hash};
use crate::domain::Username;
use crate::domain::user::User;
use crate::mail::Kind;
use crate::services::credentials::latest_reset_key;
use crate::services::credentials::messages;
use crate::services::throttle::{CAPTCHA_PER_ADDRESS, FORGOT_PER_ADDRESS, Gate};
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::done;
use crate::web::templates::text;
use crate::web::{Locale, Page};

#[derive(Deserialize, Default)]
pub struct CaptchaChoice {
    captcha: Option<String>,
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    captcha_id: String,
    #[serde(default)]
    captcha: String,
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    new_password: secrecy::SecretString,
    #[serde(default)]
    new_password_confirm: secrecy::SecretString,
}

/// A reset link's record, under the hash of its token.
#[derive(Serialize, Deserialize)]
struct ResetGrant {
    user_id: String,
    expires_at: i64,
    /// A password set since (by any flow, the operator's included) voids the link.
    #[serde(default)]
    issued_at: i64,
}

fn reset_key(token: &str) -> String {
    format!("reset:{}", token_hash(token))
}

pub async fn show(
    State(state): State<AppState>,
    locale: Locale,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(choice): Query<CaptchaChoice>,
) -> Result<Response, PageError> {
    let text_captcha = choice.captcha.as_deref() == Some("text");
    // Each page draws a captcha and keeps it with a form token: counted per address.
    let address = state.client_ip(&peer, &headers);
    if let Gate::Wait(s) = state
        .address_attempt("captcha", &address, CAPTCHA_PER_ADDRESS)
        .await?
    {
        return Ok(state.pages.busy_page(locale, s));
    }
    forgot_page(&state, locale, "", None, text_captcha, StatusCode::OK).await
}

pub async fn submit(
    State(state): State<AppState>,
    locale: Locale,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    PageForm(form): PageForm<ForgotForm>,
) -> Result<Response, PageError> {
    let address = state.client_ip(&peer, &headers);
    // Every request counts, before anything is checked or sent.
    if let Gate::Wait(s) = state
        .address_attempt("forgot", &address, FORGOT_PER_ADDRESS)
        .await?
    {
        // No new form, no captcha: a refused request writes and draws nothing.
        return Ok(state.pages.busy_page(locale, s));
    }
    if !state.spend_form_token(&form.csrf_token).await? {
        return forgot_page(
            &state,
            locale,
            &form.username,
            Some(text(locale, "login.csrf")),
            false,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    if !state.check_captcha(&form.captcha_id, &form.captcha).await? {
        let msg = text(locale, "captcha.wrong");
        return forgot_page(
            &state,
            locale,
            &form.username,
            Some(msg),
            false,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let user = match Username::parse(&form.username) {
        Ok(u) => state.db.user_by_username(&u).await?.filter(|u| !u.disabled),
        Err(_) => None,
    };
    // The same writes before answering whether the account exists or not, and the mail
    // and audit rows after: the answer's timing tells nothing either.
    let masked = match &user {
        Some(u) => state
            .settings
            .password
            .reset_shows_masked_email
            .then(|| mask(u.email.as_str())),
        None => None,
    };
    let link = issue_link(&state, user.as_ref()).await?;
    let (state2, address) = (state.clone(), address.clone());
    tokio::spawn(async move {
        if let Err(e) = mail_link(&state2, user.as_ref(), link, locale, &address).await {
            tracing::error!(error = %e, "password reset mail failed");
        }
    });
    let html = state.pages.render(
        "forgot_sent.html",
        locale,
        context! { masked_email => masked },
    );
    Ok(Page::ok(html).into_response())
}

/// Stores a new single-use link for `user` (and voids the older ones); for no account, the
/// same two writes of a throw-away record, so that both answers cost the same.
async fn issue_link(state: &AppState, user: Option<&User>) -> Result<String, Internal> {
    let token = random_token();
    let seconds = state.settings.password.reset_link_seconds.max(1);
    let ttl = match user {
        Some(_) => Duration::from_secs(seconds),
        None => Duration::from_secs(60),
    };
    let user_id = user.map_or_else(random_token, |u| u.id.clone());
    let grant = ResetGrant {
        user_id: user_id.clone(),
        expires_at: state.now() + ttl.as_secs() as i64,
        issued_at: state.now(),
    };
    state.eph.put_json(&reset_key(&token), &grant, ttl).await?;
    // Only the latest link counts: an older one, even unexpired, is void.
    state
        .eph
        .put(&latest_reset_key(&user_id), &token_hash(&token), ttl)
        .await?;
    Ok(token)
}

/// E-mails the link and writes the audit row (run after the answer).
async fn mail_link(
    state: &AppState,
    user: Option<&User>,
    token: String,
    locale: Locale,
    address: &str,
) -> Result<(), Internal> {
    let Some(user) = user else {
        state
            .db
            .audit(AuditEvent {
                ip: Some(address.to_owned()),
                ..AuditEvent::new(Event::PasswordResetUnknown)
            })
            .await?;
        return Ok(());
    };
    let minutes = state
        .settings
        .password
        .reset_link_seconds
        .max(1)
        .div_ceil(60);
    let link = format!("{}/password/reset/{token}", state.issuer());
    let ctx =
        context! { username => user.username.to_string(), link => link, valid_minutes => minutes };
    state
        .mailer
        .send(&state.db, &user.email, locale, Kind::PasswordResetLink, ctx)
        .await?;
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&user.id),
            ip: Some(address.to_owned()),
            ..AuditEvent::new(Event::PasswordResetRequested)
        })
        .await?;
    Ok(())
}

/// `jean.dupont@hopital.fr` → `j*********t@hopital.fr`, as the guide shows it.
fn mask(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let chars: Vec<char> = local.chars().collect();
    let masked = match chars.len() {
        0..=2 => "*".repeat(chars.len()),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    };
    format!("{masked}@{domain}")
}

/// The live grant of `token` and its account, if it is the latest link of that account and
/// no password was set since it was issued (an operator's reset reaches no in-memory store
/// of the server's, so the time is compared too).
async fn live_grant(state: &AppState, token: &str) -> Result<Option<(ResetGrant, User)>, Internal> {
    let Some(grant) = state.eph.get_json::<ResetGrant>(&reset_key(token)).await? else {
        return Ok(None);
    };
    let latest = state.eph.get(&latest_reset_key(&grant.user_id)).await?;
    if latest.as_deref() != Some(token_hash(token).as_str()) || grant.expires_at <= state.now() {
        return Ok(None);
    }
    let Some(user) = state.db.user_by_id(&grant.user_id).await? else {
        return Ok(None);
    };
    if user.password_changed_at > grant.issued_at || user.disabled {
        return Ok(None);
    }
    Ok(Some((grant, user)))
}

pub async fn show_reset(
    State(state): State<AppState>,
    locale: Locale,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    if live_grant(&state, &token).await?.is_none() {
        return Ok(invalid(&state, locale));
    }
    reset_page(&state, locale, &token, "", Vec::new()).await
}

pub async fn reset(
    State(state): State<AppState>,
    locale: Locale,
    Path(token): Path<String>,
    PageForm(form): PageForm<ResetForm>,
) -> Result<Response, PageError> {
    // The link first (read only): a post to no live link writes nothing, not even a
    // new form.
    let Some((grant, user)) = live_grant(&state, &token).await? else {
        return Ok(invalid(&state, locale));
    };
    if !state.spend_form_token(&form.csrf_token).await? {
        return reset_page(
            &state,
            locale,
            &token,
            &form.username,
            vec![text(locale, "login.csrf")],
        )
        .await;
    }
    if Username::parse(&form.username).ok().as_ref() != Some(&user.username) {
        return reset_page(
            &state,
            locale,
            &token,
            &form.username,
            vec![text(locale, "reset.wrong_username")],
        )
        .await;
    }
    // Spend the link first: of two submissions racing, only one changes the password.
    if state.eph.take(&reset_key(&token)).await?.is_none() {
        return Ok(invalid(&state, locale));
    }
    match state
        .set_password(
            &user,
            form.new_password.expose_secret(),
            form.new_password_confirm.expose_secret(),
            Event::PasswordReset,
            locale,
        )
        .await?
    {
        Ok(()) => {
            state.end_all_sessions(&user.id).await?;
            state.account_cleared(user.username.as_str()).await?;
            Ok(done(&state.pages, locale, "reset.done", None))
        }
        Err(v) => {
            // The link stays usable for a corrected attempt, until its own expiry.
            let left = (grant.expires_at - state.now()).max(1) as u64;
            state
                .eph
                .put_json(&reset_key(&token), &grant, Duration::from_secs(left))
                .await?;
            Ok(reset_page(&state, locale, &token, &form.username, messages(locale, &v)).await?)
        }
    }
}

fn invalid(state: &AppState, locale: Locale) -> Response {
    state
        .pages
        .error_page(locale, "reset.invalid", StatusCode::BAD_REQUEST)
        .into_response()
}

async fn forgot_page(
    state: &AppState,
    locale: Locale,
    username: &str,
    error: Option<String>,
    text_captcha: bool,
    status: StatusCode,
) -> Result<Response, PageError> {
    let captcha = state.new_captcha(locale, text_captcha).await?;
    let html = state.pages.render(
        "forgot.html",
        locale,
        context! {
            csrf_token => state.new_form_token().await?,
            username => username.to_owned(),
            error => error,
            captcha => captcha.map(|c| Value::from(minijinja::value::Serde(c))),
        },
    );
    Ok(Page::ok(html).with_status(status).into_response())
}

async fn reset_page(
    state: &AppState,
    locale: Locale,
    token: &str,
    username: &str,
    errors: Vec<String>,
) -> Result<Response, PageError> {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let html = state.pages.render(
        "reset.html",
        locale,
        context! {
            action => crate::web::path_attr(format!("/password/reset/{token}")),
            csrf_token => state.new_form_token().await?,
            username => username.to_owned(),
            errors => errors,
            policy => Value::from(minijinja::value::Serde(state.settings.password.clone())),
        },
    );
    Ok(Page::ok(html).with_status(status).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_like_the_guide() {
        assert_eq!(
            super::mask("jean.dupont@hopital.fr"),
            "j*********t@hopital.fr"
        );
        assert_eq!(super::mask("jo@x.fr"), "**@x.fr");
    }
}
