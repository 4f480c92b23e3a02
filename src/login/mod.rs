//! The hosted sign-in pages: the pending request at `/interaction/{uid}` shows the sign-in form
//! or the consent form; their POSTs finish the request and send the browser to the portal.

pub mod password;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use crate::app::{AppState, Internal};
use crate::crypto::ct_eq;
use crate::domain::{Client, Username};
use crate::oidc::authorize::{same_browser, see_other};
use crate::oidc::discovery::ACR_PASSWORD;
use crate::oidc::grant::{Interaction, interaction_key, redirect_with};
use crate::store::db::audit::AuditEvent;
use crate::web::{Locale, Page};
use password::Verified;

/// Why an interaction page cannot go on.
enum Halt {
    Expired,
    Internal(Internal),
}

impl<E: Into<Internal>> From<E> for Halt {
    fn from(e: E) -> Self {
        Halt::Internal(e.into())
    }
}

impl Halt {
    fn respond(self, state: &AppState, locale: Locale) -> Response {
        match self {
            Halt::Expired => {
                state
                    .pages
                    .error_page(locale, "error.interaction_expired", StatusCode::BAD_REQUEST)
            }
            Halt::Internal(e) => {
                tracing::error!(error = %e, "sign-in page failed");
                state
                    .pages
                    .error_page(locale, "error.internal", StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
        .into_response()
    }
}

/// The interaction `uid`, if it exists and belongs to this browser.
async fn load(
    state: &AppState,
    headers: &HeaderMap,
    uid: &str,
) -> Result<(Interaction, Client), Halt> {
    let interaction: Interaction = state
        .eph
        .get_json(&interaction_key(uid))
        .await?
        .ok_or(Halt::Expired)?;
    if !same_browser(headers, &interaction) {
        return Err(Halt::Expired);
    }
    let client = state
        .db
        .client(&interaction.request.client_id)
        .await?
        .ok_or(Halt::Expired)?;
    Ok((interaction, client))
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
        Ok((i, client)) if i.user_id.is_some() => {
            consent_page(&state, &uid, &i, &client).into_response()
        }
        Ok((i, client)) => {
            let username = i.request.login_hint.clone().unwrap_or_default();
            login_page(&state, &uid, &i, &client, &username, None).into_response()
        }
        Err(h) => h.respond(&state, locale),
    }
}

pub async fn password_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Form(form): Form<LoginForm>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    let (interaction, client) = match load(&state, &headers, &uid).await {
        Ok(x) => x,
        Err(h) => return h.respond(&state, locale),
    };
    if !ct_eq(form.csrf_token.as_bytes(), interaction.csrf.as_bytes()) {
        return login_page(
            &state,
            &uid,
            &interaction,
            &client,
            &form.username,
            Some("login.csrf"),
        )
        .with_status(StatusCode::FORBIDDEN)
        .into_response();
    }
    match sign_in(&state, &form.username, &form.password).await {
        Ok(Some(user_id)) => finish_login(&state, &uid, interaction, &client, &user_id).await,
        Ok(None) => login_page(
            &state,
            &uid,
            &interaction,
            &client,
            &form.username,
            Some("login.failed"),
        )
        .with_status(StatusCode::UNAUTHORIZED)
        .into_response(),
        Err(e) => Halt::Internal(e).respond(&state, interaction.locale),
    }
}

/// Checks the credentials; the same answer and the same cost whether the account is
/// unknown, disabled or the password wrong.
async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Option<String>, Internal> {
    let user = match Username::parse(username) {
        Ok(u) => state.db.user_by_username(&u).await?,
        Err(_) => None,
    };
    let verified = state
        .passwords
        .verify(
            user.as_ref().and_then(|u| u.password_hash.as_deref()),
            password,
        )
        .await;
    let (event, ok) = match (&user, verified) {
        (Some(u), Verified::Yes(rehash)) if !u.disabled => {
            if let Some(h) = rehash {
                state.db.set_password_hash(&u.id, &h).await?;
            }
            ("login_ok", true)
        }
        (Some(u), Verified::Yes(_)) if u.disabled => ("login_refused_disabled", false),
        _ => ("login_failed", false),
    };
    state
        .db
        .audit(AuditEvent {
            event,
            user_id: user.as_ref().map(|u| u.id.as_str()),
            detail: user
                .is_none()
                .then(|| serde_json::json!({ "reason": "unknown identifier" })),
            ..Default::default()
        })
        .await?;
    Ok(if ok { user.map(|u| u.id) } else { None })
}

async fn finish_login(
    state: &AppState,
    uid: &str,
    mut interaction: Interaction,
    client: &Client,
    user_id: &str,
) -> Response {
    let locale = interaction.locale;
    let result = async {
        let (mut current, cookie) = state
            .start_session(user_id, vec!["pwd".into()], ACR_PASSWORD)
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
        .unwrap_or_else(|e| Halt::Internal(e).respond(state, locale))
}

pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    let (interaction, client) = match load(&state, &headers, &uid).await {
        Ok(x) => x,
        Err(h) => return h.respond(&state, locale),
    };
    if !ct_eq(form.csrf_token.as_bytes(), interaction.csrf.as_bytes())
        || interaction.user_id.is_none()
    {
        return Halt::Expired.respond(&state, locale);
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
            return Err(Halt::Expired);
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
        .unwrap_or_else(|h: Halt| h.respond(&state, locale))
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    match load(&state, &headers, &uid).await {
        Ok((i, _)) if ct_eq(form.csrf_token.as_bytes(), i.csrf.as_bytes()) => {
            deny(&state, &uid, &i).await
        }
        Ok(_) => Halt::Expired.respond(&state, locale),
        Err(h) => h.respond(&state, locale),
    }
}

/// The user said no: `access_denied` back to the portal.
async fn deny(state: &AppState, uid: &str, interaction: &Interaction) -> Response {
    if let Err(e) = state.eph.delete(&interaction_key(uid)).await {
        return Halt::Internal(e.into()).respond(state, interaction.locale);
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

fn login_page(
    state: &AppState,
    uid: &str,
    i: &Interaction,
    client: &Client,
    username: &str,
    error: Option<&str>,
) -> Page {
    let html = state.pages.render(
        "login.html",
        i.locale,
        context! {
            client_name => client.id.to_string(),
            action => format!("/interaction/{uid}/login"),
            cancel_action => format!("/interaction/{uid}/cancel"),
            csrf_token => i.csrf.clone(),
            username => username.to_owned(),
            error => error.map(|k| crate::web::templates::text(i.locale, k)),
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
            action => format!("/interaction/{uid}/consent"),
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
        Some(_) => crate::oidc::logout::menu_csrf(&state, &headers)
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
