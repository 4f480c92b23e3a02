//! Protocol errors in the format each spec requires: RFC 6749 §5.2 JSON for the token,
//! introspection and revocation endpoints. `error_description` is plain ASCII English.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The RFC 6749 §5.2 error codes Sésame answers (and RFC 7009's, RFC 8707's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    UnsupportedTokenType,
    InvalidTarget,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::ServerError => "server_error",
        }
    }
}

#[derive(Debug)]
pub struct OAuthError {
    pub error: ErrorCode,
    pub description: Cow<'static, str>,
    pub status: StatusCode,
    /// Seconds for `Retry-After` on 429.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    fn new(
        error: ErrorCode,
        status: StatusCode,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            error,
            description: description.into(),
            status,
            retry_after: None,
        }
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, StatusCode::UNAUTHORIZED, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, StatusCode::BAD_REQUEST, d)
    }
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, StatusCode::BAD_REQUEST, d)
    }
    pub fn unsupported_grant_type(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnsupportedGrantType, StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, StatusCode::BAD_REQUEST, d)
    }
    pub fn unsupported_token_type(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnsupportedTokenType, StatusCode::BAD_REQUEST, d)
    }
    /// Too many failures from this address (RFC 6585), with `Retry-After`.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            error: ErrorCode::InvalidRequest,
            description: format!("too many failed requests; retry after {retry_after} seconds")
                .into(),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(retry_after),
        }
    }
    /// Our fault, logged by the caller; the client learns nothing more.
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        )
    }
}

/// Every internal failure becomes `server_error` after being logged once, here; a value the
/// database refused (a NUL byte on PostgreSQL…) is the caller's `invalid_request`.
impl<E: std::error::Error + 'static> From<E> for OAuthError {
    fn from(e: E) -> Self {
        if crate::store::db::refused(&e) {
            tracing::warn!(error = %e, "a request value was refused by the database");
            return Self::invalid_request("a parameter holds a value that cannot be used");
        }
        tracing::error!(error = %e, "internal error");
        Self::server_error()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": self.error.as_str(), "error_description": ascii(&self.description) });
        let mut res = (self.status, Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sesame\""),
            );
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Keeps only the characters RFC 6749 allows in `error_description`.
pub fn ascii(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptions_are_plain_ascii() {
        assert_eq!(super::ascii("a \"é\" \\ b\n"), "a   b");
    }
}
