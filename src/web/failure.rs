//! One error type for every page handler. A handler returns `Result<Response, PageError>` and
//! uses `?` on any failure; the page itself (localised, styled, with its CSP) is rendered by
//! [`render_failed_pages`], the one layer that knows the templates and the request's language.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Locale, Templates};

/// Why a page could not be served.
#[derive(Debug)]
pub enum PageError {
    /// The caller's side: a message key of the locale files and its status.
    Refused {
        key: &'static str,
        status: StatusCode,
        /// The language of the flow when it is not the browser's (a request's `ui_locales`).
        locale: Option<Locale>,
    },
    /// Ours (a store, the key ring…), or a value the database refused: see [`super::page_error`].
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// A page already rendered for this refusal (the form again, with its message).
    Shown(Response),
}

impl PageError {
    pub fn refused(key: &'static str, status: StatusCode) -> Self {
        PageError::Refused {
            key,
            status,
            locale: None,
        }
    }

    /// The pending request is gone, or belongs to another browser.
    pub fn expired() -> Self {
        Self::refused("error.interaction_expired", StatusCode::BAD_REQUEST)
    }

    /// What the form names does not exist (or is not the caller's).
    pub fn not_found() -> Self {
        Self::refused("error.not_found", StatusCode::NOT_FOUND)
    }

    /// « Mon compte » without a session (or with another page's form).
    pub fn sign_in_first() -> Self {
        Self::refused("account.signin_first", StatusCode::UNAUTHORIZED)
    }

    /// The same, in the flow's language rather than the browser's.
    pub fn in_locale(self, l: Locale) -> Self {
        match self {
            PageError::Refused { key, status, .. } => PageError::Refused {
                key,
                status,
                locale: Some(l),
            },
            failed => failed,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError::Failed(Box::new(e))
    }
}

/// What the layer renders: set on the bare response by `into_response`.
#[derive(Clone, Copy)]
struct FailedPage {
    key: &'static str,
    locale: Option<Locale>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (key, status, locale) = match self {
            PageError::Refused {
                key,
                status,
                locale,
            } => (key, status, locale),
            PageError::Failed(e) => {
                let (key, status) = super::page_error(&*e, "page failed");
                (key, status, None)
            }
            PageError::Shown(res) => return res,
        };
        let mut res = status.into_response();
        res.extensions_mut().insert(FailedPage { key, locale });
        res
    }
}

/// Renders the error page of a failed handler, in the flow's language or the browser's. A
/// bare refusal from the framework itself (a path that is not UTF-8, a repeated query field,
/// a wrong method, no such route) gets the same page when a browser asked for a page.
pub async fn render_failed_pages(
    State(pages): State<Templates>,
    req: Request,
    next: Next,
) -> Response {
    // Kept aside (two reference-counted header values), read only if the answer failed: the
    // successful majority pays for no parsing.
    let mut asked = axum::http::HeaderMap::new();
    for name in [header::ACCEPT, header::ACCEPT_LANGUAGE] {
        if let Some(v) = req.headers().get(&name) {
            asked.insert(name, v.clone());
        }
    }
    let res = next.run(req).await;
    let (key, locale) = match res.extensions().get::<FailedPage>().copied() {
        Some(f) => (f.key, f.locale),
        None => match bare_refusal(&res) {
            Some(key) if wants_page(&asked) => (key, None),
            _ => return res,
        },
    };
    let locale = locale.unwrap_or_else(|| Locale::negotiate(None, &asked));
    pages.error_page(locale, key, res.status()).into_response()
}

fn wants_page(asked: &axum::http::HeaderMap) -> bool {
    asked
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The message key for a framework refusal: a 4xx with no body of ours (none, or plain text).
fn bare_refusal(res: &Response) -> Option<&'static str> {
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    match res.status() {
        _ if !plain => None,
        StatusCode::NOT_FOUND => Some("error.not_found"),
        StatusCode::BAD_REQUEST
        | StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => Some("error.bad_request"),
        _ => None,
    }
}
