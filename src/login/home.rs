//! Sésame's own home page (the name menu, « Mon compte », « Se déconnecter ») and the 404 page.

use crate::state::AppState;
use crate::web::{Locale, Page};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;

/// `/`: who is signed in, with the « Se déconnecter » menu.
pub async fn home(State(state): State<AppState>, locale: Locale, headers: HeaderMap) -> Response {
    // One session read: the name in the menu and the sign-out button's token both come from it.
    let (name, csrf) = match state.current_session(&headers).await {
        Ok(Some(c)) => (
            state
                .db
                .user_by_id(&c.session.user_id)
                .await
                .ok()
                .flatten()
                .map(|u| u.display_name()),
            crate::services::session::session_csrf(&c),
        ),
        _ => (None, String::new()),
    };
    let html = state.pages.render(
        "home.html",
        locale,
        context! { signed_in_name => name, logout_csrf => csrf },
    );
    Page::ok(html).into_response()
}

pub async fn not_found(State(state): State<AppState>, locale: Locale) -> Response {
    state
        .pages
        .error_page(locale, "error.not_found", StatusCode::NOT_FOUND)
        .into_response()
}
