//! Logout: RP-initiated (`end_session_endpoint`, GET and POST) and « Se déconnecter » on our
//! own pages. A valid `id_token_hint` for the signed-in user logs out at once; anything less
//! asks the person to confirm. Redirects go only to a `post_logout_redirect_uri` registered,
//! exactly, by the client the hint (or `client_id`) names.

use std::net::SocketAddr;
use std::time::Duration;

use crate::web::form::PageForm;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::authorize::hint_subject;
use super::params::{Params, is_form};
use crate::crypto::{ct_eq, random_token, token_hash};
use crate::services::session::Current;
use crate::services::session::session_csrf;
use crate::services::throttle::{Gate, LOGOUT_PER_ADDRESS};
use crate::state::{AppState, Internal};
use crate::web::see_other;
use crate::web::{Locale, Page};

/// A logout waiting for the person's confirmation.
#[derive(Serialize, Deserialize)]
struct Pending {
    redirect: Option<String>,
    /// Hash of the session it was asked for, so another browser cannot confirm it.
    session: Option<String>,
}

enum Bad {
    Request,
    /// Too many confirmations parked from this address: wait this many seconds.
    Busy(u64),
    Internal(Internal),
}

impl Bad {
    fn respond(self, state: &AppState, locale: Locale) -> Response {
        match self {
            Bad::Request => state
                .pages
                .error_page(locale, "error.bad_logout", StatusCode::BAD_REQUEST)
                .into_response(),
            Bad::Busy(wait) => state.pages.busy_page(locale, wait),
            Bad::Internal(e) => {
                let (key, status) = crate::web::page_error(&e, "logout failed");
                state.pages.error_page(locale, key, status).into_response()
            }
        }
    }
}

/// The longest `state` a portal may have carried back (the pending logout keeps it).
const MAX_STATE: usize = 512;

impl<E: Into<Internal>> From<E> for Bad {
    fn from(e: E) -> Self {
        Bad::Internal(e.into())
    }
}

pub async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let params = Params::parse(q.unwrap_or_default().as_bytes());
    logout(state, peer, headers, params).await
}

pub async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = if is_form(&headers) {
        Params::parse(&body)
    } else {
        Params::default()
    };
    logout(state, peer, headers, params).await
}

async fn logout(state: AppState, peer: SocketAddr, headers: HeaderMap, p: Params) -> Response {
    let locale = Locale::negotiate(p.get("ui_locales"), &headers);
    let address = state.client_ip(&peer, &headers);
    decide(&state, &headers, &address, &p, locale)
        .await
        .unwrap_or_else(|bad| bad.respond(&state, locale))
}

async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    address: &str,
    p: &Params,
    locale: Locale,
) -> Result<Response, Bad> {
    if p.duplicated(&[]).is_some() || p.get("state").is_some_and(|s| s.len() > MAX_STATE) {
        return Err(Bad::Request);
    }
    let current = state.current_session(headers).await?;
    // « Se déconnecter » from our own menu.
    if let Some(csrf) = p.get("csrf_token") {
        return match &current {
            Some(c) if ct_eq(csrf.as_bytes(), session_csrf(c).as_bytes()) => {
                finish(state, current, None, locale).await
            }
            _ => confirm_page(state, address, current.as_ref(), None, locale).await,
        };
    }
    let hint = match p.get("id_token_hint") {
        Some(h) => Some(verified_hint(state, h).ok_or(Bad::Request)?),
        None => None,
    };
    let client_id = match (
        hint.as_ref().map(|h| h.client_id.as_str()),
        p.get("client_id"),
    ) {
        (Some(a), Some(b)) if a != b => return Err(Bad::Request),
        (a, b) => a.or(b),
    };
    let redirect = match p.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match client_id {
                Some(id) => state.client(id).await?.ok_or(Bad::Request)?,
                None => return Err(Bad::Request),
            };
            let registered = client.post_logout_redirect_uri(uri).ok_or(Bad::Request)?;
            let mut params = Vec::new();
            if let Some(s) = p.get("state") {
                params.push(("state", s));
            }
            Some(registered.with_params(&params))
        }
    };
    let hint_matches = hint
        .as_ref()
        .is_some_and(|h| current.as_ref().is_none_or(|c| c.session.user_id == h.sub));
    if hint_matches {
        finish(state, current, redirect, locale).await
    } else {
        confirm_page(state, address, current.as_ref(), redirect, locale).await
    }
}

struct Hint {
    sub: String,
    client_id: String,
}

fn verified_hint(state: &AppState, hint: &str) -> Option<Hint> {
    let sub = hint_subject(state, hint)?;
    let claims = state.keys.verify_id_token(hint)?;
    let client_id = match claims.get("aud")? {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => claims
            .get("azp")
            .and_then(|v| v.as_str())
            .or_else(|| a.first().and_then(|v| v.as_str()))?
            .to_owned(),
        _ => return None,
    };
    Some(Hint { sub, client_id })
}

async fn confirm_page(
    state: &AppState,
    address: &str,
    current: Option<&Current>,
    redirect: Option<String>,
    locale: Locale,
) -> Result<Response, Bad> {
    // Each confirmation is kept 10 minutes: counted per address before it is.
    if let Gate::Wait(s) = state
        .address_attempt("logout", address, LOGOUT_PER_ADDRESS)
        .await?
    {
        return Err(Bad::Busy(s));
    }
    let csrf = random_token();
    let pending = Pending {
        redirect,
        session: current.map(|c| token_hash(&c.key)),
    };
    state
        .eph
        .put_json(
            &format!("logout:{}", token_hash(&csrf)),
            &pending,
            Duration::from_secs(600),
        )
        .await?;
    let html = state
        .pages
        .render("logout.html", locale, context! { csrf_token => csrf });
    let mut page = Page::ok(html);
    if let Some(r) = &pending.redirect {
        page = page.allowing_form_target(
            url::Url::parse(r)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default(),
        );
    }
    Ok(page.into_response())
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

pub async fn confirm(
    State(state): State<AppState>,
    locale: Locale,
    headers: HeaderMap,
    PageForm(form): PageForm<ConfirmForm>,
) -> Response {
    let result = async {
        let pending: Pending = state
            .eph
            .take_json(&format!("logout:{}", token_hash(&form.csrf_token)))
            .await?
            .ok_or(Bad::Request)?;
        let current = state.current_session(&headers).await?;
        if pending.session != current.as_ref().map(|c| token_hash(&c.key)) {
            return Err(Bad::Request);
        }
        if form.decision != "yes" {
            return Ok(see_other("/"));
        }
        finish(&state, current, pending.redirect, locale).await
    };
    result
        .await
        .unwrap_or_else(|bad| bad.respond(&state, locale))
}

/// Ends the session (if any), clears the cookie, then goes back to the portal or says goodbye.
async fn finish(
    state: &AppState,
    current: Option<Current>,
    redirect: Option<String>,
    locale: Locale,
) -> Result<Response, Bad> {
    if let Some(c) = &current {
        state.end_session(c).await?;
    }
    let mut res = match redirect {
        Some(to) => see_other(&to),
        None => {
            Page::ok(state.pages.render("logged_out.html", locale, context! {})).into_response()
        }
    };
    res.headers_mut()
        .append(header::SET_COOKIE, state.clear_session_cookie());
    Ok(res)
}
