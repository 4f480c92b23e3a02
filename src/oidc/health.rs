//! `/healthz`: the process answers. `/readyz`: both stores answer, else 503.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::state::AppState;

pub async fn alive() -> &'static str {
    "ok"
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let timeout = std::time::Duration::from_secs(2);
    let db = matches!(
        tokio::time::timeout(timeout, state.db.ping()).await,
        Ok(Ok(()))
    );
    let eph = matches!(
        tokio::time::timeout(timeout, state.eph.ping()).await,
        Ok(Ok(()))
    );
    let status = if db && eph {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok| if ok { "ok" } else { "unavailable" };
    (
        status,
        Json(json!({ "database": word(db), "ephemeral_store": word(eph) })),
    )
}
