//! The router: every endpoint by name, and the middleware around them. Nothing else lives
//! here, so nothing imports it but the server.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{account, login, oidc, web};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(login::home::home))
        .route("/static/sesame.css", get(web::css))
        .route("/healthz", get(oidc::health::alive))
        .route("/readyz", get(oidc::health::ready))
        .route("/.well-known/openid-configuration", get(oidc::discovery::discovery))
        .route("/jwks", get(oidc::discovery::jwks))
        .route("/authorize", get(oidc::authorize::get).post(oidc::authorize::post))
        .route("/interaction/{uid}", get(login::password::interaction))
        .route("/interaction/{uid}/login", post(login::password::password_login))
        .route("/interaction/{uid}/consent", post(login::consent::consent))
        .route("/interaction/{uid}/cancel", post(login::consent::cancel))
        .route("/interaction/{uid}/password", get(login::change::show).post(login::change::submit))
        .route("/password/forgot", get(login::forgot::show).post(login::forgot::submit))
        .route("/password/reset/{token}", get(login::forgot::show_reset).post(login::forgot::reset))
        .route("/interaction/{uid}/certificate", get(login::certificate::back))
        .route("/certificate/{uid}", get(login::certificate::from_proxy))
        .route("/interaction/{uid}/totp", get(login::totp::show).post(login::totp::submit))
        .route("/interaction/{uid}/passkey", get(login::passkey::show).post(login::passkey::submit))
        .route("/static/passkey.js", get(web::passkey_js))
        .route("/account", get(account::show))
        .route("/account/totp", post(account::totp::start))
        .route("/account/totp/confirm", post(account::totp::confirm))
        .route("/account/totp/remove", post(account::totp::remove))
        .route("/account/password", post(account::change_password))
        .route("/account/passkeys", post(account::passkeys::start))
        .route("/account/passkeys/finish", post(account::passkeys::finish))
        .route("/account/passkeys/remove", post(account::passkeys::remove))
        .route("/account/certificates/remove", post(account::certificates::remove))
        .route("/token", post(oidc::token::token))
        .route("/userinfo", get(oidc::userinfo::get).post(oidc::userinfo::post))
        .route("/introspect", post(oidc::introspect::introspect))
        .route("/revoke", post(oidc::introspect::revoke))
        .route("/logout", get(oidc::logout::get).post(oidc::logout::post))
        .route("/logout/confirm", post(oidc::logout::confirm))
        .fallback(login::home::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.pages.clone(),
            web::failure::render_failed_pages,
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(web::headers::security_headers))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // The route template only: paths and queries can carry tokens (reset links, a
            // misused userinfo call) and codes.
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
                tracing::info_span!("http", method = %req.method(), route = route.as_deref().unwrap_or("-"), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
