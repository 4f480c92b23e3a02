//! Consent for third-party portals, and « Annuler »: the portal is told `access_denied`.

use super::{deny, load_posted};
use crate::domain::Client;
use crate::domain::audit::Event;
use crate::services::grant::{Interaction, interaction_key};
use crate::state::AppState;
use crate::store::db::audit::AuditEvent;
use crate::web::Page;
use crate::web::PageError;
use crate::web::form::PageForm;
use crate::web::see_other;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    let (interaction, client) = load_posted(&state, &headers, &uid, &form.csrf_token).await?;
    let Some(asked) = interaction.progress.signed_in() else {
        return Err(PageError::expired());
    };
    if form.decision != "allow" {
        return Ok(deny(&state, &uid, &interaction).await);
    }
    // The consent must come from the signed-in user who was asked.
    let Some(mut current) = state
        .current_session(&headers)
        .await?
        .filter(|c| c.session.user_id == asked)
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
            user_id: Some(&current.session.user_id),
            client_id: Some(client.id.as_str()),
            detail: Some(serde_json::json!({ "scope": interaction.request.scopes.to_string() })),
            ..AuditEvent::new(Event::ConsentGranted)
        })
        .await?;
    state.eph.delete(&interaction_key(&uid)).await?;
    Ok(see_other(
        &state.issue_code(&interaction.request, &mut current).await?,
    ))
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    let (i, _) = load_posted(&state, &headers, &uid, &form.csrf_token).await?;
    Ok(deny(&state, &uid, &i).await)
}

pub(super) fn consent_page(state: &AppState, uid: &str, i: &Interaction, client: &Client) -> Page {
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
