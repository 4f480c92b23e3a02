//! « Mon compte » → strong authentication: enrol a TOTP app (QR code made here), get recovery
//! codes once, or remove it. Both changes send an e-mail with the support contact.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use super::{ConfirmedOwner, Owner, csrf};
use crate::crypto::token_hash;
use crate::domain::audit::Event;
use crate::domain::totp::{authenticator, recovery_codes, recovery_hash};
use crate::mail::Kind;
use crate::services::credentials::notify;
use crate::services::session::Current;
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::PageError;
use crate::web::templates::text;
use crate::web::{Locale, Page};

#[derive(Deserialize)]
pub struct TotpForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: secrecy::SecretString,
}

super::account_form!(TotpForm);

fn pending_key(c: &Current) -> String {
    format!("totp_pending:{}", token_hash(&c.key))
}

pub async fn start(
    State(state): State<AppState>,
    locale: Locale,
    ConfirmedOwner(Owner {
        current: c,
        user,
        form: _,
    }): ConfirmedOwner<TotpForm>,
) -> Result<Response, PageError> {
    let secret = totp_rs::Secret::generate().to_base32();
    state
        .eph
        .put(&pending_key(&c), &secret, Duration::from_secs(600))
        .await?;
    Ok(enrol_page(
        &state,
        &c,
        locale,
        &secret,
        user.username.as_str(),
        None,
        StatusCode::OK,
    ))
}

pub async fn confirm(
    State(state): State<AppState>,
    locale: Locale,
    Owner {
        current: c,
        user,
        form,
    }: Owner<TotpForm>,
) -> Result<Response, PageError> {
    let Some(secret) = state.eph.get(&pending_key(&c)).await? else {
        return Err(PageError::sign_in_first());
    };
    let totp = authenticator(
        &secret,
        user.username.as_str(),
        &state.settings.branding.name,
    )
    .ok_or(Internal::Gone)?;
    let Some(step) = totp.check_current(form.code.trim()) else {
        let error = text(locale, "totp.wrong");
        return Ok(enrol_page(
            &state,
            &c,
            locale,
            &secret,
            user.username.as_str(),
            Some(error),
            StatusCode::BAD_REQUEST,
        ));
    };
    let codes = recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    let sealed = state
        .secrets
        .seal(&format!("totp:{}", user.id), secret.as_bytes());
    state
        .db
        .save_totp(&user.id, &sealed, step as i64, &hashes)
        .await?;
    state.eph.delete(&pending_key(&c)).await?;
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&user.id),
            ..AuditEvent::new(Event::TotpAdded)
        })
        .await?;
    notify(&state, &user, locale, Kind::FactorAdded, "TOTP").await?;
    let html = state.pages.render(
        "totp_enrol.html",
        locale,
        context! { recovery_codes => codes, signed_in_name => user.display_name() },
    );
    Ok(Page::ok(html).into_response())
}

pub async fn remove(
    State(state): State<AppState>,
    locale: Locale,
    ConfirmedOwner(Owner {
        current: _,
        user,
        form: _,
    }): ConfirmedOwner<TotpForm>,
) -> Result<Response, PageError> {
    if state.db.delete_totp(&user.id).await? {
        state
            .db
            .audit(AuditEvent {
                user_id: Some(&user.id),
                ..AuditEvent::new(Event::TotpRemoved)
            })
            .await?;
        notify(&state, &user, locale, Kind::FactorRemoved, "TOTP").await?;
    }
    Ok(crate::web::done(&state.pages, locale, "totp.removed", None))
}

fn enrol_page(
    state: &AppState,
    c: &Current,
    locale: Locale,
    secret: &str,
    account: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let url = authenticator(secret, account, &state.settings.branding.name)
        .and_then(|t| t.to_url().ok())
        .unwrap_or_default();
    let html = state.pages.render(
        "totp_enrol.html",
        locale,
        context! { qr => qr_svg(&url), secret => secret.to_owned(), csrf_token => csrf(c), error => error },
    );
    Page::ok(html).with_status(status).into_response()
}

/// The otpauth URL as an SVG QR code in a `data:` URL (allowed by our CSP's `img-src data:`).
fn qr_svg(text: &str) -> String {
    use base64::Engine;
    let Ok(qr) = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium) else {
        return String::new();
    };
    let n = qr.size();
    let mut path = String::new();
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + 4, y + 4));
            }
        }
    }
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {s} {s}" shape-rendering="crispEdges"><rect width="{s}" height="{s}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##,
        s = n + 8
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}
