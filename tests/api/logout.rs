//! Logout: RP-initiated with and without a hint, the confirmation page, « Se déconnecter »,
//! back-channel logout tokens, and what a logout revokes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, POST_LOGOUT, REDIRECT, TestApp, auth_request, forms,
    location, query,
};

/// A portal's back-channel endpoint on loopback that keeps what it receives.
/// A portal's back-channel logout endpoint on loopback: its URL and the bodies it received.
pub async fn backchannel_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/bcl",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bcl", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Signs alice in for `client_id`; returns (tokens, browser).
async fn signed_in(app: &TestApp, client_id: &str, secret: &str) -> (Value, Browser) {
    let b = app.browser();
    let req = auth_request(&app.issuer, client_id, &[]);
    let code = query(&location(&b.sign_in(&req.url, "alice", PASSWORD).await))["code"].clone();
    let tokens: Value = app
        .http
        .post(app.url("/token"))
        .basic_auth(client_id, Some(secret))
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
    (tokens, b)
}

async fn session_gone(app: &TestApp, b: &Browser, client_id: &str) -> bool {
    let res = b
        .get(&auth_request(&app.issuer, client_id, &[("prompt", "none")]).url)
        .await;
    query(&location(&res)).get("error").map(String::as_str) == Some("login_required")
}

async fn rp_initiated_logout_with_a_hint_redirects_and_tells_the_portals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let (bcl, received) = backchannel_receiver().await;
    let mut spec = ClientSpec::portal("c1");
    spec.backchannel_logout_uri = Some(bcl);
    let secret = app.create_client(spec).await.unwrap();
    let (tokens, b) = signed_in(&app, "c1", &secret).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let id_claims = app.state.keys.verify_jwt(id_token).unwrap();
    let state = "s".repeat(90);

    let url = format!(
        "/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state={state}",
        url::form_urlencoded::byte_serialize(POST_LOGOUT.as_bytes()).collect::<String>()
    );
    let res = b.get(&url).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("{POST_LOGOUT}?state={state}"));
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(session_gone(&app, &b, "c1").await);

    let rt = tokens["refresh_token"].as_str().unwrap();
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth("c1", Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        400,
        "the session's refresh tokens end with it"
    );
    assert_eq!(
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let mut body = None;
    for _ in 0..50 {
        if let Some(b) = received.lock().unwrap().first().cloned() {
            body = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = body.expect("a logout token was POSTed");
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(form.len(), 1, "only logout_token");
    let token = &form["logout_token"];
    let claims = app
        .state
        .keys
        .verify_jwt(token)
        .expect("signed with a published key");
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["aud"], "c1");
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert!(claims.get("nonce").is_none());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    assert_eq!(
        claims["events"],
        serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
}

async fn without_state_the_redirect_has_none_and_post_works_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let secret = app.create_client(ClientSpec::portal("c1")).await.unwrap();
    let (tokens, b) = signed_in(&app, "c1", &secret).await;
    let res = b
        .post(
            "/logout",
            &[
                (
                    "id_token_hint".into(),
                    tokens["id_token"].as_str().unwrap().into(),
                ),
                ("post_logout_redirect_uri".into(), POST_LOGOUT.into()),
            ],
        )
        .await;
    assert_eq!(location(&res), POST_LOGOUT);
    assert!(session_gone(&app, &b, "c1").await);
}

async fn bad_logout_requests_never_redirect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let secret = app.create_client(ClientSpec::portal("c1")).await.unwrap();
    app.create_client(ClientSpec::portal("c2")).await;
    let (tokens, b) = signed_in(&app, "c1", &secret).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let parts: Vec<&str> = hint.split('.').collect();
    let unsigned = format!(
        "{}.{}.",
        sesame::crypto::b64url(r#"{"alg":"none"}"#),
        parts[1]
    );
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    for (what, url) in [
        (
            "unregistered",
            format!(
                "/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
                enc("https://portal.example.fr/bad")
            ),
        ),
        (
            "query added",
            format!(
                "/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
                enc(&format!("{POST_LOGOUT}?foo=bar"))
            ),
        ),
        (
            "unsigned hint",
            format!(
                "/logout?id_token_hint={unsigned}&post_logout_redirect_uri={}",
                enc(POST_LOGOUT)
            ),
        ),
        (
            "other client",
            format!(
                "/logout?id_token_hint={hint}&client_id=c2&post_logout_redirect_uri={}",
                enc(POST_LOGOUT)
            ),
        ),
        (
            "no client",
            format!("/logout?post_logout_redirect_uri={}", enc(POST_LOGOUT)),
        ),
    ] {
        let res = b.get(&url).await;
        assert_eq!(res.status(), 400, "{what}");
        assert!(res.headers().get("location").is_none(), "{what}");
    }
    assert!(!session_gone(&app, &b, "c1").await, "nothing happened");
}

async fn without_a_hint_the_person_confirms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let secret = app.create_client(ClientSpec::portal("c1")).await.unwrap();
    let (_, b) = signed_in(&app, "c1", &secret).await;
    let url = format!(
        "/logout?client_id=c1&state=xyz&post_logout_redirect_uri={}",
        url::form_urlencoded::byte_serialize(POST_LOGOUT.as_bytes()).collect::<String>()
    );
    let res = b.get(&url).await;
    assert_eq!(res.status(), 200, "a confirmation page, no redirect");
    let html = res.text().await.unwrap();
    assert!(html.contains("Voulez-vous vous déconnecter"));
    // Another browser cannot confirm it.
    let stranger = app.browser();
    let f = &forms(&html)[0];
    let res = stranger
        .post(
            &f.action,
            &[f.hidden[0].clone(), ("decision".into(), "yes".into())],
        )
        .await;
    assert_eq!(res.status(), 400);
    let html = b.get(&url).await.text().await.unwrap();
    let res = b.submit(&html, 0, &[("decision", "yes")]).await;
    assert_eq!(location(&res), format!("{POST_LOGOUT}?state=xyz"));
    assert!(session_gone(&app, &b, "c1").await);
    // No parameters at all: confirm, then a "signed out" page.
    let html = b.get("/logout").await.text().await.unwrap();
    let res = b.submit(&html, 0, &[("decision", "yes")]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Vous êtes déconnecté"));
}

async fn the_menu_signs_out_and_a_down_portal_does_not_block(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let mut spec = ClientSpec::portal("c1");
    spec.backchannel_logout_uri = Some("http://127.0.0.1:9/down".into());
    // No refresh grant: its access tokens belong to no family, only to the session.
    spec.grants = vec![sesame::domain::GrantType::AuthorizationCode];
    let secret = app.create_client(spec).await.unwrap();
    let (tokens, b) = signed_in(&app, "c1", &secret).await;
    let userinfo = || {
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
    };
    assert_eq!(userinfo().await.unwrap().status(), 200);
    let home = b.get("/").await.text().await.unwrap();
    assert!(
        home.contains("Alice Durand") && home.contains("Se déconnecter"),
        "the name menu"
    );
    let started = std::time::Instant::now();
    let res = b.submit(&home, 0, &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the portal being down does not hold the user"
    );
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Vous êtes déconnecté"));
    assert!(session_gone(&app, &b, "c1").await);
    assert!(app.audit_events().await.contains(&"logout".to_string()));
    assert_eq!(
        userinfo().await.unwrap().status(),
        401,
        "no access token outlives the sign-on session"
    );
}

async fn every_portal_of_a_session_is_told_even_after_racing_sign_ins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let (bcl, received) = backchannel_receiver().await;
    let mut secrets = Vec::new();
    for id in ["c1", "c2", "c3"] {
        let mut spec = ClientSpec::portal(id);
        spec.backchannel_logout_uri = Some(bcl.clone());
        secrets.push(app.create_client(spec).await.unwrap());
    }
    let (_, b) = signed_in(&app, "c1", &secrets[0]).await;
    // Two portals' requests at once on the same session (two tabs).
    let (a2, a3) = (
        auth_request(&app.issuer, "c2", &[]),
        auth_request(&app.issuer, "c3", &[]),
    );
    let (r2, r3) = tokio::join!(b.get(&a2.url), b.get(&a3.url));
    assert!(query(&location(&r2)).contains_key("code"));
    assert!(query(&location(&r3)).contains_key("code"));
    let home = b.get("/").await.text().await.unwrap();
    assert_eq!(b.submit(&home, 0, &[]).await.status(), 200);
    let mut audiences = std::collections::BTreeSet::new();
    for _ in 0..50 {
        audiences = received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|body| {
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                let claims = app.state.keys.verify_jwt(&form["logout_token"])?;
                claims["aud"].as_str().map(str::to_owned)
            })
            .collect();
        if audiences.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        audiences.into_iter().collect::<Vec<_>>(),
        ["c1", "c2", "c3"],
        "each portal of the session gets its logout token"
    );
}

both_backends!(
    rp_initiated_logout_with_a_hint_redirects_and_tells_the_portals,
    without_state_the_redirect_has_none_and_post_works_too,
    bad_logout_requests_never_redirect,
    without_a_hint_the_person_confirms,
    the_menu_signs_out_and_a_down_portal_does_not_block,
    every_portal_of_a_session_is_told_even_after_racing_sign_ins,
);
