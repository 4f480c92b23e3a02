//! UserInfo (OIDC Core §5.3), GET and POST, token in the `Authorization` header or, for POST,
//! in the form body (RFC 6750 §2.1–2.2); never in the query. Errors per RFC 6750 §3.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::params::{Params, is_form};
use crate::crypto::token_hash;
use crate::domain::claims;
use crate::services::grant::AccessGrant;
use crate::state::AppState;

enum BearerError {
    /// No token at all: a bare challenge, without `error` (RFC 6750 §3.1).
    Missing,
    InvalidRequest(&'static str),
    InvalidToken(&'static str),
    InsufficientScope,
    Internal,
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let (status, challenge) = match self {
            BearerError::Missing => (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="sesame""#.to_owned(),
            ),
            BearerError::InvalidRequest(d) => (
                StatusCode::BAD_REQUEST,
                format!(
                    r#"Bearer realm="sesame", error="invalid_request", error_description="{d}""#
                ),
            ),
            BearerError::InvalidToken(d) => (
                StatusCode::UNAUTHORIZED,
                format!(r#"Bearer realm="sesame", error="invalid_token", error_description="{d}""#),
            ),
            BearerError::InsufficientScope => (
                StatusCode::FORBIDDEN,
                r#"Bearer realm="sesame", error="insufficient_scope", scope="openid""#.to_owned(),
            ),
            BearerError::Internal => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({"error": "server_error"})),
                )
                    .into_response();
            }
        };
        let mut res = status.into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).expect("ASCII"),
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    userinfo(&state, &headers, None)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let body_token = if is_form(&headers) {
        Params::parse(&body).get("access_token").map(str::to_owned)
    } else {
        None
    };
    userinfo(&state, &headers, body_token)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn userinfo(
    state: &AppState,
    headers: &HeaderMap,
    body_token: Option<String>,
) -> Result<Response, BearerError> {
    let header_token = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| BearerError::InvalidRequest("malformed Authorization header"))?;
            match v.split_once(' ') {
                Some((scheme, t))
                    if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() =>
                {
                    Some(t.trim().to_owned())
                }
                _ => return Err(BearerError::InvalidRequest("expected a Bearer token")),
            }
        }
    };
    let token = match (header_token, body_token) {
        (Some(_), Some(_)) => {
            return Err(BearerError::InvalidRequest("use one way to send the token"));
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return Err(BearerError::Missing),
    };
    let grant: AccessGrant = state
        .access_grant(&token_hash(&token))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "userinfo lookup failed");
            BearerError::Internal
        })?
        .ok_or(BearerError::InvalidToken(
            "the access token is invalid or expired",
        ))?;
    let Some(user_id) = grant
        .user_id
        .as_deref()
        .filter(|_| grant.scopes.contains("openid"))
    else {
        return Err(BearerError::InsufficientScope);
    };
    let user = match state.cached_user(user_id).await {
        Ok(Some(u)) if grant.honoured_by(&u) => u,
        Ok(_) => return Err(BearerError::InvalidToken("the account is not active")),
        Err(e) => {
            tracing::error!(error = %e, "userinfo user lookup failed");
            return Err(BearerError::Internal);
        }
    };
    let mut body = Map::new();
    body.insert("sub".into(), Value::String(user.id.clone()));
    body.extend(claims::values(
        &user,
        grant.userinfo_claims.iter().map(String::as_str),
    ));
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
