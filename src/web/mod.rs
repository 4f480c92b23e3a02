//! What the browser sees: templates, locales, cookies, security headers, error pages.

pub mod cookies;
pub mod failure;
pub mod form;
pub mod headers;
pub mod locale;
pub mod templates;

pub use failure::PageError;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use locale::Locale;
pub use templates::Templates;

/// A rendered HTML page. Pages are never cached, and their CSP lets forms post to us and,
/// when the form leads back to a portal, lets the browser follow that redirect.
pub struct Page {
    pub status: StatusCode,
    pub html: String,
    /// Origins a form on this page may end up at (after our 303), besides our own.
    pub form_targets: Vec<String>,
    /// Whether the page runs our own script (`/static/passkey.js`).
    pub script: bool,
}

impl Page {
    pub fn ok(html: String) -> Self {
        Self {
            status: StatusCode::OK,
            html,
            form_targets: Vec::new(),
            script: false,
        }
    }
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
    pub fn with_script(mut self) -> Self {
        self.script = true;
        self
    }
    pub fn allowing_form_target(mut self, origin: String) -> Self {
        if !origin.is_empty() && origin != "null" {
            self.form_targets.push(origin);
        }
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let form_action = std::iter::once("'self'".to_owned())
            .chain(self.form_targets)
            .collect::<Vec<_>>()
            .join(" ");
        let script = if self.script {
            " script-src 'self';"
        } else {
            ""
        };
        let csp = format!(
            "default-src 'none'; style-src 'self'; img-src 'self' data:;{script} \
             form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        );
        let mut res = (self.status, self.html).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        res
    }
}

impl Templates {
    /// An error page for a person: localised message, never a stack trace or an internal id.
    pub fn error_page(&self, locale: Locale, key: &str, status: StatusCode) -> Page {
        let html = self.render(
            "error.html",
            locale,
            minijinja::context! { error => templates::text(locale, key) },
        );
        Page::ok(html).with_status(status)
    }

    /// 429 for a client over one of its per-address limits, with `Retry-After`.
    pub fn busy_page(&self, locale: Locale, wait_secs: u64) -> Response {
        let minutes = wait_secs.div_ceil(60).max(1) as i64;
        let html = self.render(
            "error.html",
            locale,
            minijinja::context! { error => templates::text_n(locale, "error.busy", minutes) },
        );
        let mut res = Page::ok(html)
            .with_status(StatusCode::TOO_MANY_REQUESTS)
            .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
        res
    }
}

/// A path for an `action` or `href` attribute, unescaped when it holds only characters that
/// need no escaping (our paths and base64url tokens), so that the HTML stays plain; anything
/// else is left to auto-escaping.
pub fn path_attr(path: String) -> minijinja::Value {
    if path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
    {
        minijinja::Value::from_safe_string(path)
    } else {
        minijinja::Value::from(path)
    }
}

/// The stylesheet, cached an hour.
pub async fn css() -> impl axum::response::IntoResponse {
    (
        [
            ("content-type", "text/css; charset=utf-8"),
            ("cache-control", "public, max-age=3600"),
        ],
        templates::CSS,
    )
}

/// The one script (passkeys), cached an hour.
pub async fn passkey_js() -> impl axum::response::IntoResponse {
    (
        [
            ("content-type", "text/javascript; charset=utf-8"),
            ("cache-control", "public, max-age=3600"),
        ],
        templates::PASSKEY_JS,
    )
}

/// The confirmation page after a change (password, factor), with an optional way on.
pub fn done(
    pages: &Templates,
    locale: Locale,
    message: &str,
    continue_url: Option<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let html = pages.render(
        "password_done.html",
        locale,
        minijinja::context! { message => message, continue_url => continue_url },
    );
    Page::ok(html).into_response()
}

/// A failure on a page: logged, then the error page (the details stay in the log). A value
/// the database refused is the caller's (400), anything else ours (500).
pub fn internal(
    pages: &Templates,
    locale: Locale,
    e: impl std::error::Error + 'static,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (key, status) = page_error(&e, "page failed");
    pages.error_page(locale, key, status).into_response()
}

/// The error page for a failure while serving a page: the message key and status, 400 for a
/// value the database refused (the caller's), otherwise 500 (logged here).
pub fn page_error(
    e: &(dyn std::error::Error + 'static),
    what: &str,
) -> (&'static str, axum::http::StatusCode) {
    if crate::store::db::refused(e) {
        tracing::warn!(error = %e, "{what}: a request value was refused by the database");
        ("error.bad_request", axum::http::StatusCode::BAD_REQUEST)
    } else {
        tracing::error!(error = %e, "{what}");
        (
            "error.internal",
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    }
}

/// A 303 to `location`.
pub fn see_other(location: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::SEE_OTHER,
        [(axum::http::header::LOCATION, location)],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_paths_skip_escaping() {
        assert!(super::path_attr("/interaction/abc-_9/login".into()).is_safe());
        assert!(!super::path_attr("/password/reset/\"><script>".into()).is_safe());
    }
}
