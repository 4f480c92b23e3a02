//! One error type for every page handler. A handler returns `Result<Response, PageError>` and
//! uses `?` on any failure; the page itself (localised, styled, with its CSP) is rendered by
//! [`render_failed_pages`], the one layer that knows the templates and the request's language.

use axum::extract::{Request, State};
use axum::http::StatusCode;
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

/// Renders the error page of a failed handler, in the flow's language or the browser's.
pub async fn render_failed_pages(
    State(pages): State<Templates>,
    req: Request,
    next: Next,
) -> Response {
    let browser = Locale::negotiate(None, req.headers());
    let res = next.run(req).await;
    match res.extensions().get::<FailedPage>().copied() {
        Some(f) => pages
            .error_page(f.locale.unwrap_or(browser), f.key, res.status())
            .into_response(),
        None => res,
    }
}
