//! The authorization endpoint's errors: a page when there is nowhere safe to redirect, else
//! a redirect with `error`, `error_description` (ASCII), `state` and `iss`.

use crate::both_backends;
use crate::helpers::{
    Backend, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, location, query,
};

/// Asserts an error page: 400 HTML, no redirect anywhere.
async fn assert_page(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 400, "{what}");
    assert!(
        res.headers().get("location").is_none(),
        "{what}: never a redirect"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"));
    let html = res.text().await.unwrap();
    assert!(html.contains("Erreur"), "{what}");
}

/// Asserts an error redirect to the registered URI; returns its parameters.
fn assert_redirect(
    res: &reqwest::Response,
    app: &TestApp,
    state: &str,
    error: &str,
) -> std::collections::HashMap<String, String> {
    assert_eq!(res.status(), 303);
    let to = location(res);
    assert!(to.starts_with(REDIRECT), "{to}");
    let q = query(&to);
    assert_eq!(q["error"], error, "{to}");
    assert_eq!(q["state"], state);
    assert_eq!(q["iss"], app.issuer);
    assert!(!q.contains_key("code"));
    let d = &q["error_description"];
    assert!(
        d.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "ASCII description: {d}"
    );
    q
}

async fn unknown_client_or_redirect_uri_gets_a_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut spec = ClientSpec::portal("portal");
    spec.redirect_uris
        .push("https://portal.example.fr/cb?dummy1=lorem".into());
    app.create_client(spec).await;
    let b = app.browser();
    assert_page(
        b.get(&auth_request(&app.issuer, "ghost", &[]).url).await,
        "unknown client",
    )
    .await;
    assert_page(
        b.get(&auth_request(&app.issuer, "portal", &[("client_id", "")]).url)
            .await,
        "no client",
    )
    .await;
    for bad in [
        "https://portal.example.fr/cb/x1y2z3",
        "https://portal.example.fr/cb?foo=bar",
        "https://portal.example.fr/cb/",
        "https://PORTAL.example.fr/cb",
        "http://portal.example.fr/cb",
        "https://portal.example.fr:443/cb",
        "https://portal.example.fr/cb?dummy1=ipsum",
        "",
    ] {
        assert_page(
            b.get(&auth_request(&app.issuer, "portal", &[("redirect_uri", bad)]).url)
                .await,
            bad,
        )
        .await;
    }
    // A registered query is kept, and the response is appended.
    app.create_user("alice").await;
    let req = auth_request(
        &app.issuer,
        "portal",
        &[("redirect_uri", "https://portal.example.fr/cb?dummy1=lorem")],
    );
    let res = b.sign_in(&req.url, "alice", PASSWORD).await;
    let to = location(&res);
    assert!(
        to.starts_with("https://portal.example.fr/cb?dummy1=lorem&code="),
        "{to}"
    );
}

async fn request_errors_go_back_to_the_portal(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let b = app.browser();
    for (extra, error) in [
        (vec![("response_type", "")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "profile")], "invalid_scope"),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("prompt", "bogus")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge", "tooshort")], "invalid_request"),
        (vec![("claims", "not json")], "invalid_request"),
        (
            vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
        (
            vec![("request_uri", "https://x.fr/r")],
            "request_uri_not_supported",
        ),
        (vec![("id_token_hint", "not.a.jwt")], "invalid_request"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("prompt", "none")], "login_required"),
    ] {
        let req = auth_request(&app.issuer, "portal", &extra);
        let res = b.get(&req.url).await;
        assert_redirect(&res, &app, &req.state, error);
    }
    // A repeated parameter.
    let req = auth_request(&app.issuer, "portal", &[]);
    let res = b.get(&format!("{}&scope=openid", req.url)).await;
    assert_redirect(&res, &app, &req.state, "invalid_request");
}

async fn public_clients_must_use_pkce(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut spec = ClientSpec::portal("spa");
    spec.auth_method = sesame::domain::TokenAuthMethod::None;
    app.create_client(spec).await;
    let b = app.browser();
    let req = auth_request(
        &app.issuer,
        "spa",
        &[("code_challenge", ""), ("code_challenge_method", "")],
    );
    assert_redirect(&b.get(&req.url).await, &app, &req.state, "invalid_request");
    let req = auth_request(&app.issuer, "spa", &[]);
    assert_eq!(b.get(&req.url).await.status(), 303);
}

async fn the_state_comes_back_byte_exact_or_not_at_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let b = app.browser();
    let state = format!("{}-._~", "aZ09".repeat(31));
    let req = auth_request(
        &app.issuer,
        "portal",
        &[("prompt", "none"), ("state", &state)],
    );
    let q = query(&location(&b.get(&req.url).await));
    assert_eq!(q["state"], state);
    let req = auth_request(&app.issuer, "portal", &[("prompt", "none"), ("state", "")]);
    let q = query(&location(&b.get(&req.url).await));
    assert!(!q.contains_key("state"), "no state sent, none returned");
}

async fn post_requests_work_like_get(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    app.create_client(ClientSpec::portal("portal")).await;
    let b = app.browser();
    let req = auth_request(
        &app.issuer,
        "portal",
        &[
            ("extra", "foobar"),
            ("display", "popup"),
            ("login_hint", "alice"),
        ],
    );
    let (_, q) = req.url.split_once('?').unwrap();
    let res = b
        .http
        .post(app.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(q.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let html = b.get(&location(&res)).await.text().await.unwrap();
    assert!(
        html.contains("value=\"alice\""),
        "login_hint prefills the identifier"
    );
    let res = b
        .submit(&html, 0, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert!(query(&location(&res)).contains_key("code"));
}

async fn an_id_token_hint_for_someone_else_is_login_required(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    app.create_user("bob").await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    // Bob's ID token…
    let bob = app.browser();
    let req = auth_request(&app.issuer, "portal", &[]);
    let code = query(&location(&bob.sign_in(&req.url, "bob", PASSWORD).await))["code"].clone();
    let t: serde_json::Value = app
        .http
        .post(app.url("/token"))
        .basic_auth("portal", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &req.verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bob_token = t["id_token"].as_str().unwrap().to_owned();
    // …works as a hint for Bob's session, not for Alice's.
    let req = auth_request(
        &app.issuer,
        "portal",
        &[("prompt", "none"), ("id_token_hint", &bob_token)],
    );
    assert!(query(&location(&bob.get(&req.url).await)).contains_key("code"));
    let alice = app.signed_in("alice", "portal").await;
    let req = auth_request(
        &app.issuer,
        "portal",
        &[("prompt", "none"), ("id_token_hint", &bob_token)],
    );
    assert_redirect(
        &alice.get(&req.url).await,
        &app,
        &req.state,
        "login_required",
    );
    // A hint with its signature stripped is refused.
    let parts: Vec<&str> = bob_token.split('.').collect();
    let forged = format!(
        "{}.{}.",
        sesame::crypto::b64url(r#"{"alg":"none"}"#),
        parts[1]
    );
    let req = auth_request(
        &app.issuer,
        "portal",
        &[("prompt", "none"), ("id_token_hint", &forged)],
    );
    assert_redirect(
        &bob.get(&req.url).await,
        &app,
        &req.state,
        "invalid_request",
    );
}

async fn a_disabled_client_grant_or_cors_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut spec = ClientSpec::portal("machine");
    spec.grants = vec![sesame::domain::GrantType::ClientCredentials];
    spec.redirect_uris = vec![REDIRECT.into()];
    app.create_client(spec).await;
    let b = app.browser();
    let req = auth_request(&app.issuer, "machine", &[]);
    assert_redirect(
        &b.get(&req.url).await,
        &app,
        &req.state,
        "unauthorized_client",
    );
    let res = b
        .http
        .get(&req.url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers().get("access-control-allow-origin").is_none(),
        "no CORS on authorize"
    );
}

both_backends!(
    unknown_client_or_redirect_uri_gets_a_page,
    request_errors_go_back_to_the_portal,
    public_clients_must_use_pkce,
    the_state_comes_back_byte_exact_or_not_at_all,
    post_requests_work_like_get,
    an_id_token_hint_for_someone_else_is_login_required,
    a_disabled_client_grant_or_cors_is_refused,
);
