//! TOTP (RFC 6238) as the second factor after the password, or to step up a password-only
//! session. A time step is accepted once per account (atomically, in the database); recovery
//! codes are 80-bit, shown once, stored as hashes and spent on use.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use super::{Proof, finish_login, load, load_posted, pending_account};
use crate::domain::audit::Event;
use crate::domain::totp::{authenticator, recovery_hash};
use crate::services::grant::Interaction;
use crate::services::grant::Progress;
use crate::services::throttle::Gate;
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::Page;
use crate::web::PageError;
use crate::web::form::PageForm;
use crate::web::templates::{text, text_n};

impl AppState {
    pub async fn totp_enrolled(&self, user_id: &str) -> Result<bool, Internal> {
        Ok(self.db.totp_secret(user_id).await?.is_some())
    }

    /// A current TOTP code (each time step once) or an unused recovery code.
    pub async fn check_second_factor(
        &self,
        user_id: &str,
        account: &str,
        code: &str,
    ) -> Result<bool, Internal> {
        let code = code.trim();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let Some(sealed) = self.db.totp_secret(user_id).await? else {
                return Ok(false);
            };
            let secret = String::from_utf8(self.secrets.open(&format!("totp:{user_id}"), &sealed)?)
                .unwrap_or_default();
            let Some(totp) = authenticator(&secret, account, &self.settings.branding.name) else {
                return Ok(false);
            };
            return match totp.check_current(code) {
                Some(step) => Ok(self.db.accept_totp_step(user_id, step as i64).await?),
                None => Ok(false),
            };
        }
        Ok(self
            .db
            .use_recovery_code(user_id, &recovery_hash(code))
            .await?)
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, PageError> {
    let (i, _) = load(&state, &headers, &uid).await?;
    if i.progress.second_factor().is_none() {
        return Err(PageError::expired());
    }
    Ok(page(&state, &uid, &i, None, StatusCode::OK).await?)
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, PageError> {
    let (mut i, client) = load_posted(&state, &headers, &uid, &form.csrf_token).await?;
    let user_id = i
        .progress
        .second_factor()
        .map(str::to_owned)
        .ok_or_else(PageError::expired)?;
    let user = pending_account(&state, &user_id).await?;
    let identifier = user.username.to_string();
    let l = i.locale;
    if let Gate::Wait(s) = state.account_gate(&identifier).await? {
        let error = Some(text_n(l, "throttle.wait", s as i64));
        return Ok(page(&state, &uid, &i, error, StatusCode::TOO_MANY_REQUESTS).await?);
    }
    if !state
        .check_second_factor(&user.id, &identifier, &form.code)
        .await?
    {
        state.account_failed(&identifier).await?;
        let address = state.client_ip(&peer, &headers);
        state
            .step_failed(Event::SecondFactorFailed, Some(&user.id), &address)
            .await?;
        let error = Some(text(l, "totp.wrong"));
        return Ok(page(&state, &uid, &i, error, StatusCode::UNAUTHORIZED).await?);
    }
    state.account_succeeded(&identifier).await?;
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&user.id),
            ..AuditEvent::new(Event::LoginOkTwoFactor)
        })
        .await?;
    i.progress = Progress::SignIn;
    Ok(finish_login(
        &state,
        &uid,
        i,
        &client,
        &user.id,
        Proof::password_and_otp(&state),
    )
    .await)
}

/// The second-factor page: the user's passkeys (a fresh challenge) and/or the code form.
pub(crate) async fn page(
    state: &AppState,
    uid: &str,
    i: &Interaction,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Internal> {
    let user_id = i.progress.second_factor().unwrap_or_default();
    let options = state.passkey_challenge(uid, Some(user_id)).await?;
    let html = state.pages.render(
        "totp.html",
        i.locale,
        context! {
            action => crate::web::path_attr(format!("/interaction/{uid}/totp")),
            passkey_action => crate::web::path_attr(format!("/interaction/{uid}/passkey")),
            csrf_token => i.csrf.clone(),
            totp => state.totp_enrolled(user_id).await?,
            options => options,
            error => error,
        },
    );
    Ok(Page::ok(html)
        .with_status(status)
        .with_script()
        .allowing_form_target(i.request.redirect_uri.origin())
        .into_response())
}
