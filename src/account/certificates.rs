//! « Mon compte » → the cards bound to the account: listed, and removable (a lost or
//! replaced card) after the password is asked again; the owner is e-mailed.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::{ConfirmedOwner, Owner};
use crate::domain::audit::Event;
use crate::mail::Kind;
use crate::services::credentials::notify;
use crate::state::AppState;
use crate::store::db::audit::AuditEvent;
use crate::web::Locale;
use crate::web::PageError;
use crate::web::templates::text;

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: secrecy::SecretString,
    #[serde(default)]
    national_id: String,
}

super::account_form!(RemoveForm);

pub async fn remove(
    State(state): State<AppState>,
    locale: Locale,
    ConfirmedOwner(Owner {
        current: _,
        user,
        form,
    }): ConfirmedOwner<RemoveForm>,
) -> Result<Response, PageError> {
    if !state
        .db
        .unbind_certificate(&user.id, &form.national_id)
        .await?
    {
        return Err(PageError::not_found());
    }
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&user.id),
            detail: Some(serde_json::json!({ "national_id": form.national_id })),
            ..AuditEvent::new(Event::CertificateUnboundByOwner)
        })
        .await?;
    let factor = format!("{} ({})", text(locale, "cert.factor"), form.national_id);
    notify(&state, &user, locale, Kind::FactorRemoved, &factor).await?;
    // A card is removed when lost: whoever holds it (and its PIN) loses the sessions too.
    state.end_all_sessions(&user.id).await?;
    let mut res = crate::web::done(&state.pages, locale, "cert.removed", None);
    res.headers_mut()
        .append(axum::http::header::SET_COOKIE, state.clear_session_cookie());
    Ok(res)
}
