//! « Mon compte » → passkeys: add one (named; the password first, like every change of a
//! sign-in means), or remove one. Each change sends an e-mail with the support contact.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{PasskeyRegistration, RegisterPublicKeyCredential};

use super::{ConfirmedOwner, Owner, csrf, page};
use crate::crypto::token_hash;
use crate::domain::audit::Event;
use crate::domain::passkey::{credential_key, user_handle};
use crate::mail::Kind;
use crate::services::credentials::notify;
use crate::services::session::Current;
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::PageError;
use crate::web::templates::text;
use crate::web::{Locale, Page};

/// Enough for a card reader, a phone, a laptop and spares; keeps the row count bounded.
const MAX_PASSKEYS: usize = 10;

#[derive(Deserialize)]
pub struct PasskeyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: secrecy::SecretString,
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    id: String,
}

super::account_form!(PasskeyForm);

/// A registration under way: the name chosen and webauthn-rs's state.
#[derive(Serialize, Deserialize)]
struct Pending {
    name: String,
    state: PasskeyRegistration,
}

fn pending_key(c: &Current) -> String {
    format!("passkey_reg:{}", token_hash(&c.key))
}

/// A name of 1 to 64 printable characters; the default name when left empty.
fn clean_name(name: &str, locale: Locale) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    match name.trim() {
        "" => text(locale, "passkey.name_default"),
        n => n.to_owned(),
    }
}

/// « clé d'accès « Cabinet » » in the e-mails.
fn factor_label(locale: Locale, name: &str) -> String {
    match locale {
        Locale::Fr => format!("{} « {name} »", text(locale, "passkey.factor")),
        _ => format!("{} “{name}”", text(locale, "passkey.factor")),
    }
}

pub async fn start(
    State(state): State<AppState>,
    locale: Locale,
    ConfirmedOwner(Owner {
        current: c,
        user,
        form,
    }): ConfirmedOwner<PasskeyForm>,
) -> Result<Response, PageError> {
    let rp = state
        .webauthn
        .as_ref()
        .ok_or_else(PageError::sign_in_first)?;
    let existing = state.passkeys_of(&user.id).await?;
    if existing.len() >= MAX_PASSKEYS {
        return page(&state, &c, locale, vec![text(locale, "passkey.too_many")]).await;
    }
    let handle = user_handle(&user.id).ok_or(Internal::Gone)?;
    let exclude = existing.iter().map(|k| k.cred_id().clone()).collect();
    let (options, reg) = rp.start_passkey_registration(
        handle,
        user.username.as_str(),
        &user.display_name(),
        Some(exclude),
    )?;
    // Ask for a discoverable credential where the authenticator can keep one, so that the
    // passkey also signs in without the identifier; the answer is checked the same way.
    let mut options = serde_json::to_value(&options).map_err(Internal::json)?;
    if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection") {
        sel["residentKey"] = Value::from("preferred");
    }
    let name = clean_name(&form.name, locale);
    let pending = Pending {
        name: name.clone(),
        state: reg,
    };
    state
        .eph
        .put_json(&pending_key(&c), &pending, Duration::from_secs(300))
        .await?;
    let html = state.pages.render(
        "passkey_enrol.html",
        locale,
        context! {
            name => name, csrf_token => csrf(&c), options => options.to_string(),
            signed_in_name => user.display_name(),
        },
    );
    Ok(Page::ok(html).with_script().into_response())
}

pub async fn finish(
    State(state): State<AppState>,
    locale: Locale,
    Owner {
        current: c,
        user,
        form,
    }: Owner<PasskeyForm>,
) -> Result<Response, PageError> {
    let rp = state
        .webauthn
        .as_ref()
        .ok_or_else(PageError::sign_in_first)?;
    let refused =
        || async { page(&state, &c, locale, vec![text(locale, "passkey.refused")]).await };
    let Some(pending) = state.eph.take_json::<Pending>(&pending_key(&c)).await? else {
        return refused().await;
    };
    let answer = match serde_json::from_str::<RegisterPublicKeyCredential>(&form.credential) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(error = %e, "passkey registration: unreadable answer");
            return refused().await;
        }
    };
    let passkey = match rp.finish_passkey_registration(&answer, &pending.state) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "passkey registration refused");
            return refused().await;
        }
    };
    let stored = serde_json::to_string(&passkey).map_err(Internal::json)?;
    let added = state
        .db
        .add_passkey(
            &user.id,
            &credential_key(passkey.cred_id()),
            &pending.name,
            &stored,
        )
        .await?;
    if !added {
        return refused().await;
    }
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&user.id),
            detail: Some(serde_json::json!({ "name": pending.name })),
            ..AuditEvent::new(Event::PasskeyAdded)
        })
        .await?;
    let factor = factor_label(locale, &pending.name);
    notify(&state, &user, locale, Kind::FactorAdded, &factor).await?;
    Ok(crate::web::done(
        &state.pages,
        locale,
        "passkey.added",
        None,
    ))
}

pub async fn remove(
    State(state): State<AppState>,
    locale: Locale,
    ConfirmedOwner(Owner {
        current: _,
        user,
        form,
    }): ConfirmedOwner<PasskeyForm>,
) -> Result<Response, PageError> {
    let Some(name) = state.db.delete_passkey(&user.id, &form.id).await? else {
        return Err(PageError::not_found());
    };
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&user.id),
            detail: Some(serde_json::json!({ "name": name })),
            ..AuditEvent::new(Event::PasskeyRemoved)
        })
        .await?;
    let factor = factor_label(locale, &name);
    notify(&state, &user, locale, Kind::FactorRemoved, &factor).await?;
    Ok(crate::web::done(
        &state.pages,
        locale,
        "passkey.removed",
        None,
    ))
}
