//! Error pages: every refusal a browser can meet is a page in its language, whether a
//! handler or the framework itself refused.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn page(app: &TestApp, method: reqwest::Method, path: &str, lang: &str) -> (u16, String) {
    let res = app
        .http
        .request(method, app.url(path))
        .header("accept", "text/html")
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let is_html = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
    let csp = res.headers().contains_key("content-security-policy");
    let body = res.text().await.unwrap();
    assert!(
        is_html && csp,
        "{path}: a styled page with its CSP ({status}: {body})"
    );
    (status, body)
}

/// The second review's blank and plain-text answers: a path that is not UTF-8, a repeated
/// query field, a wrong method, no such route.
async fn framework_refusals_are_pages_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let get = reqwest::Method::GET;
    for path in [
        "/interaction/%FF",
        "/password/reset/%FF",
        "/password/forgot?captcha=a&captcha=b",
    ] {
        let (status, body) = page(&app, get.clone(), path, "fr").await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains("<main"), "{path}: {body}");
    }
    let (status, body) = page(&app, reqwest::Method::PUT, "/authorize", "en").await;
    assert_eq!(status, 405);
    assert!(body.contains("lang=\"en\""), "{body}");
    // An API client that did not ask for a page keeps the bare answer.
    let res = app.http.put(app.url("/authorize")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert!(!res.text().await.unwrap().contains("<html"));
}

both_backends!(framework_refusals_are_pages_too);
