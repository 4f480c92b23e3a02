//! `/.well-known/openid-configuration` and `/jwks`: bytes made once (`metadata.rs`, the
//! key ring), served with their cache lifetimes.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

const JSON: [(header::HeaderName, &str); 2] = [
    (header::CONTENT_TYPE, "application/json"),
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
];

pub async fn discovery(State(state): State<AppState>) -> impl IntoResponse {
    (
        JSON,
        [(header::CACHE_CONTROL, "public, max-age=300")],
        state.discovery.clone(),
    )
}

pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // Short cache: a rotated key must reach relying parties quickly.
    (
        JSON,
        [(header::CACHE_CONTROL, "public, max-age=60")],
        state.keys.jwks_json(),
    )
}
