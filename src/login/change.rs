//! F3: a temporary or expired password must be changed before the sign-in goes on.
//! "Attention : votre mot de passe a expiré…" → change form → confirmation page and e-mail →
//! the pending authorization request continues to the portal without a second sign-in.

use secrecy::ExposeSecret;
use std::net::SocketAddr;

use crate::domain::audit::Event;
use crate::services::grant::Progress;
use crate::web::PageError;
use crate::web::form::{PageForm, PasswordChange};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{load, load_posted, pending_account};
use crate::services::credentials::messages;
use crate::services::grant::{Interaction, interaction_key};
use crate::services::throttle::Recheck;
use crate::state::{AppState, Internal};
use crate::web::Page;
use crate::web::templates::{text, text_n};

#[derive(Deserialize, Default)]
pub struct CaptchaChoice {
    captcha: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Query(choice): Query<CaptchaChoice>,
) -> Result<Response, PageError> {
    let (i, _) = load(&state, &headers, &uid).await?;
    let user_id = i
        .progress
        .must_change()
        .map(str::to_owned)
        .ok_or_else(PageError::expired)?;
    let user = state
        .db
        .user_by_id(&user_id)
        .await?
        .ok_or_else(PageError::expired)?;
    let text_captcha = choice.captcha.as_deref() == Some("text");
    form_page(
        &state,
        &uid,
        &i,
        user.username.as_str(),
        Vec::new(),
        text_captcha,
    )
    .await
    .map_err(PageError::from)
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<PasswordChange>,
) -> Result<Response, PageError> {
    let (mut i, _) = load_posted(&state, &headers, &uid, &form.csrf_token).await?;
    let user_id = i
        .progress
        .must_change()
        .map(str::to_owned)
        .ok_or_else(PageError::expired)?;
    let user = pending_account(&state, &user_id).await?;
    let l = i.locale;
    let retry = |errors: Vec<String>| {
        let (state, uid, i, name) = (&state, &uid, &i, user.username.to_string());
        async move {
            form_page(state, uid, i, &name, errors, false)
                .await
                .map(|r| r.into_response())
        }
    };
    if !state.check_captcha(&form.captcha_id, &form.captcha).await? {
        return Ok(retry(vec![text(l, "captcha.wrong")]).await?);
    }
    let address = state.client_ip(&peer, &headers);
    match state
        .recheck_password(
            &user,
            Some(&form.username),
            form.old_password.expose_secret(),
            Some(&address),
        )
        .await?
    {
        Recheck::Right => {}
        Recheck::Wrong => return Ok(retry(vec![text(l, "change.wrong_old")]).await?),
        Recheck::Wait(s) => return Ok(retry(vec![text_n(l, "throttle.wait", s as i64)]).await?),
    }
    if let Err(v) = state
        .set_password(
            &user,
            form.new_password.expose_secret(),
            form.new_password_confirm.expose_secret(),
            Event::PasswordChangedAtSignIn,
            l,
        )
        .await?
    {
        return Ok(retry(messages(l, &v)).await?);
    }
    i.progress = Progress::SignIn;
    let ttl = std::time::Duration::from_secs(state.settings.tokens.interaction_minutes * 60);
    // The new password is one factor, like the old: a second factor still comes next,
    // and a portal that needs two is refused to an account that has one only.
    if state.has_second_factor(&user.id).await? {
        i.progress = Progress::SecondFactor(user.id.clone());
        state.eph.put_json(&interaction_key(&uid), &i, ttl).await?;
        return Ok(crate::web::done(
            &state.pages,
            l,
            "change.done",
            Some(format!("/interaction/{uid}/totp")),
        ));
    }
    if i.request.need_mfa {
        return Ok(super::deny_weak(&state, &uid, &i).await);
    }
    if let Some(national_id) = i.pending_binding.take() {
        state
            .settle_pending_card(&national_id, &user.id, false, l)
            .await?;
    }
    // Signed in now: the confirmation page leads back into the pending request.
    let (_, cookie) = state
        .start_session_replacing(
            &user.id,
            vec!["pwd".into()],
            &state.settings.acr.password,
            i.replaces.take().as_deref(),
            i.epoch.unwrap_or(user.sign_in_epoch),
        )
        .await?;
    i.progress = Progress::SignedIn(user.id.clone());
    state.eph.put_json(&interaction_key(&uid), &i, ttl).await?;
    let mut res = crate::web::done(
        &state.pages,
        l,
        "change.done",
        Some(format!("/interaction/{uid}")),
    );
    res.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(res)
}

async fn form_page(
    state: &AppState,
    uid: &str,
    i: &Interaction,
    username: &str,
    errors: Vec<String>,
    text_captcha: bool,
) -> Result<Response, Internal> {
    let captcha = state.new_captcha(i.locale, text_captcha).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let html = state.pages.render(
        "password_change.html",
        i.locale,
        context! {
            heading => "expired.title",
            warning => true,
            errors => errors,
            action => crate::web::path_attr(format!("/interaction/{uid}/password")),
            csrf_token => i.csrf.clone(),
            username => username.to_owned(),
            captcha => captcha.map(|c| Value::from(minijinja::value::Serde(c))),
            policy => Value::from(minijinja::value::Serde(state.settings.password.clone())),
        },
    );
    Ok(Page::ok(html).with_status(status).into_response())
}
