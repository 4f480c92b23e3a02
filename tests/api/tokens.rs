//! Token, userinfo, introspection and revocation endpoints, as strict portals and attackers
//! use them. Errors are RFC 6749 §5.2 JSON with `Cache-Control: no-store`.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{
    AuthRequest, Backend, Browser, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, location,
    query,
};

/// Signs alice in through `browser` for `client_id`; returns the code and its request.
async fn code_for(
    app: &TestApp,
    browser: &Browser,
    client_id: &str,
    extra: &[(&str, &str)],
) -> (String, AuthRequest) {
    let req = auth_request(&app.issuer, client_id, extra);
    let mut res = browser.get(&req.url).await;
    if location(&res).starts_with("/interaction/") {
        res = browser.sign_in(&req.url, "alice", PASSWORD).await;
    }
    let q = query(&location(&res));
    (
        q.get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code: {q:?}")),
        req,
    )
}

async fn post_token(
    app: &TestApp,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(client.0, Some(client.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    (status, res.json().await.unwrap(), headers)
}

async fn exchange(
    app: &TestApp,
    client: (&str, &str),
    code: &str,
    req: &AuthRequest,
) -> (u16, Value) {
    let (s, v, _) = post_token(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &req.verifier),
        ],
    )
    .await;
    (s, v)
}

fn assert_error(status: u16, body: &Value, expected_status: u16, error: &str) {
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (expected_status, error),
        "{body}"
    );
    let d = body["error_description"].as_str().unwrap();
    assert!(
        d.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    );
}

async fn userinfo_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn setup(backend: Backend) -> (TestApp, String, String) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let s1 = app.create_client(ClientSpec::portal("c1")).await.unwrap();
    let s2 = app.create_client(ClientSpec::portal("c2")).await.unwrap();
    (app, s1, s2)
}

async fn a_replayed_code_fails_and_revokes_what_it_produced(backend: Backend) {
    let (app, s1, _) = setup(backend).await;
    let b = app.browser();
    let (code, req) = code_for(&app, &b, "c1", &[]).await;
    let (status, first) = exchange(&app, ("c1", &s1), &code, &req).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert!(first["expires_in"].as_u64().unwrap() > 0);
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, at).await, 200);
    let (status, again) = exchange(&app, ("c1", &s1), &code, &req).await;
    assert_error(status, &again, 400, "invalid_grant");
    assert_eq!(
        userinfo_status(&app, at).await,
        401,
        "the first access token is revoked"
    );
    let rt = first["refresh_token"].as_str().unwrap();
    let (status, body, _) = post_token(
        &app,
        ("c1", &s1),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_error(status, &body, 400, "invalid_grant");
    assert!(
        app.audit_events()
            .await
            .contains(&"code_replayed".to_string())
    );
}

async fn concurrent_redemptions_have_one_winner(backend: Backend) {
    let (app, s1, _) = setup(backend).await;
    let (code, req) = code_for(&app, &app.browser(), "c1", &[]).await;
    let (a, b) = tokio::join!(
        exchange(&app, ("c1", &s1), &code, &req),
        exchange(&app, ("c1", &s1), &code, &req)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400]);
}

async fn a_code_is_bound_to_its_client_redirect_uri_and_verifier(backend: Backend) {
    let (app, s1, s2) = setup(backend).await;
    let b = app.browser();
    let (code, req) = code_for(&app, &b, "c1", &[]).await;
    let (s, v) = exchange(&app, ("c2", &s2), &code, &req).await;
    assert_error(s, &v, 400, "invalid_grant");

    let (code, req) = code_for(&app, &b, "c1", &[]).await;
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &req.verifier),
        ],
    )
    .await;
    assert_error(s, &v, 400, "invalid_grant");

    for verifier in [None, Some("x".repeat(43))] {
        let (code, _) = code_for(&app, &b, "c1", &[]).await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = &verifier {
            form.push(("code_verifier", v));
        }
        let (s, v, _) = post_token(&app, ("c1", &s1), &form).await;
        assert_error(s, &v, 400, "invalid_grant");
    }
    // PKCE downgrade: no challenge at authorize, a verifier at the token endpoint.
    let (code, _) = code_for(
        &app,
        &b,
        "c1",
        &[("code_challenge", ""), ("code_challenge_method", "")],
    )
    .await;
    let v43 = "a".repeat(43);
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &v43),
        ],
    )
    .await;
    assert_error(s, &v, 400, "invalid_grant");
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[
            ("grant_type", "authorization_code"),
            ("code", "garbage"),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_error(s, &v, 400, "invalid_grant");
}

async fn codes_expire(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.tokens.code_seconds = 1).await;
    app.create_user("alice").await;
    let s1 = app.create_client(ClientSpec::portal("c1")).await.unwrap();
    let (code, req) = code_for(&app, &app.browser(), "c1", &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (s, v) = exchange(&app, ("c1", &s1), &code, &req).await;
    assert_error(s, &v, 400, "invalid_grant");
}

async fn malformed_and_unauthenticated_requests(backend: Backend) {
    let (app, s1, _) = setup(backend).await;
    let (s, v, _) = post_token(&app, ("c1", &s1), &[("code", "x")]).await;
    assert_error(s, &v, 400, "invalid_request");
    for g in ["foo", "password", "implicit"] {
        let (s, v, _) = post_token(&app, ("c1", &s1), &[("grant_type", g)]).await;
        assert_error(s, &v, 400, "unsupported_grant_type");
    }
    let (s, v, _) = post_token(&app, ("c1", &s1), &[("grant_type", "client_credentials")]).await;
    assert_error(s, &v, 400, "unauthorized_client");
    let (s, v, h) = post_token(
        &app,
        ("c1", "wrong"),
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await;
    assert_error(s, &v, 401, "invalid_client");
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=")
    );
    let (s, v, _) = post_token(
        &app,
        ("ghost", "x"),
        &[("grant_type", "authorization_code")],
    )
    .await;
    assert_error(s, &v, 401, "invalid_client");
    // Basic and a body secret together; a confidential client without its secret; a method it did not register.
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "c1"),
            ("client_secret", &s1),
        ],
    )
    .await;
    assert_error(s, &v, 400, "invalid_request");
    for form in [
        vec![("grant_type", "authorization_code"), ("client_id", "c1")],
        vec![
            ("grant_type", "authorization_code"),
            ("client_id", "c1"),
            ("client_secret", s1.as_str()),
        ],
    ] {
        let res = app
            .http
            .post(app.url("/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }
    for header in ["Basic !!!notbase64", "Basic Y2xpZW50", "Bearer x", "Basic "] {
        let res = app
            .http
            .post(app.url("/token"))
            .header("authorization", header)
            .form(&[("grant_type", "authorization_code")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{header}");
    }
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth("c1", Some(&s1))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let res = app
        .http
        .get(app.url("/token?grant_type=authorization_code"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[
            ("grant_type", "authorization_code"),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_error(s, &v, 400, "invalid_request");
    let big = "x".repeat(70 * 1024);
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth("c1", Some(&s1))
        .form(&[("grant_type", big.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_client_error(),
        "an oversized body is a 4xx, not a 5xx"
    );
}

async fn client_secret_post_works_for_its_clients(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let mut spec = ClientSpec::portal("cp");
    spec.auth_method = sesame::domain::TokenAuthMethod::ClientSecretPost;
    let secret = app.create_client(spec).await.unwrap();
    let (code, req) = code_for(&app, &app.browser(), "cp", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", req.verifier.as_str()),
        ("client_id", "cp"),
        ("client_secret", secret.as_str()),
    ];
    let res = app
        .http
        .post(app.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The same client with Basic is refused: one registered method.
    let (s, v, _) = post_token(
        &app,
        ("cp", &secret),
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await;
    assert_error(s, &v, 401, "invalid_client");
}

async fn public_clients_redeem_with_pkce_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let mut spec = ClientSpec::portal("spa");
    spec.auth_method = sesame::domain::TokenAuthMethod::None;
    app.create_client(spec).await;
    let (code, req) = code_for(&app, &app.browser(), "spa", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", req.verifier.as_str()),
        ("client_id", "spa"),
    ];
    let res = app
        .http
        .post(app.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn refresh_tokens_rotate_and_a_replay_revokes_the_family(backend: Backend) {
    let (app, s1, s2) = setup(backend).await;
    let (code, req) = code_for(&app, &app.browser(), "c1", &[]).await;
    let (_, first) = exchange(&app, ("c1", &s1), &code, &req).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let id1 = app
        .state
        .keys
        .verify_jwt(first["id_token"].as_str().unwrap())
        .unwrap();

    let (s, v, _) = post_token(
        &app,
        ("c2", &s2),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_error(s, &v, 400, "invalid_grant");
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("scope", "openid email phone"),
        ],
    )
    .await;
    assert_error(s, &v, 400, "invalid_scope");

    let (s, second, _) = post_token(
        &app,
        ("c1", &s1),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("scope", "openid email"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["scope"], "email openid", "narrowed");
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "rotated");
    let id2 = app
        .state
        .keys
        .verify_jwt(second["id_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(id1["sub"], id2["sub"]);
    assert_eq!(id1["auth_time"], id2["auth_time"]);
    assert!(id2.get("nonce").is_none(), "no nonce on refresh");
    let at2 = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo_status(&app, &at2).await, 200);

    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_error(s, &v, 400, "invalid_grant");
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_error(s, &v, 400, "invalid_grant");
    assert_eq!(
        userinfo_status(&app, &at2).await,
        401,
        "the family's access tokens die with it"
    );
}

async fn client_credentials_opaque_and_jwt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut spec = ClientSpec::portal("api-client");
    spec.grants = vec![sesame::domain::GrantType::ClientCredentials];
    spec.allowed_scopes = vec!["api:read".into()];
    spec.resources = vec!["https://api.example.fr".into()];
    let secret = app.create_client(spec).await.unwrap();
    let c = ("api-client", secret.as_str());

    let (s, v, _) = post_token(
        &app,
        c,
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("id_token").is_none() && v.get("refresh_token").is_none());
    let opaque = v["access_token"].as_str().unwrap().to_owned();
    let res = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(c.0, Some(c.1))
        .form(&[("token", opaque.as_str())])
        .send()
        .await
        .unwrap();
    let i: Value = res.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["scope"], "api:read");
    assert_eq!(
        userinfo_status(&app, &opaque).await,
        403,
        "not a user's token"
    );

    let (s, v, _) = post_token(
        &app,
        c,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "api:read"),
            ("resource", "https://api.example.fr"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let jwt = v["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwt.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    let claims = app
        .state
        .keys
        .verify_jwt(jwt)
        .expect("signed by a published key");
    assert_eq!(claims["aud"], "https://api.example.fr");
    assert_eq!(claims["client_id"], "api-client");

    let (s, v, _) = post_token(
        &app,
        c,
        &[("grant_type", "client_credentials"), ("scope", "api:write")],
    )
    .await;
    assert_error(s, &v, 400, "invalid_scope");
    let (s, v, _) = post_token(
        &app,
        c,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://evil.example"),
        ],
    )
    .await;
    assert_error(s, &v, 400, "invalid_target");
}

async fn userinfo_accepts_the_token_the_standard_ways_only(backend: Backend) {
    let (app, s1, _) = setup(backend).await;
    let (code, req) = code_for(&app, &app.browser(), "c1", &[]).await;
    let (_, t) = exchange(&app, ("c1", &s1), &code, &req).await;
    let at = t["access_token"].as_str().unwrap();
    let get = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap() };
    let ok = get(app
        .http
        .get(app.url("/userinfo"))
        .header("authorization", format!("bearer {at}")))
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/json");
    let body: Value = ok.json().await.unwrap();
    assert!(body["updated_at"].as_i64().is_some(), "seconds, a number");
    assert_eq!(
        get(app.http.post(app.url("/userinfo")).bearer_auth(at))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(app
            .http
            .post(app.url("/userinfo"))
            .form(&[("access_token", at)]))
        .await
        .status(),
        200
    );
    let none = get(app.http.get(app.url("/userinfo"))).await;
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="sesame""#
    );
    let bad = get(app.http.get(app.url("/userinfo")).bearer_auth("nope")).await;
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    assert_eq!(
        get(app
            .http
            .get(app.url(&format!("/userinfo?access_token={at}"))))
        .await
        .status(),
        401,
        "never from the query"
    );
    assert_eq!(
        get(app
            .http
            .post(app.url("/userinfo"))
            .bearer_auth(at)
            .form(&[("access_token", at)]))
        .await
        .status(),
        400
    );
}

async fn introspection_and_revocation_see_only_the_callers_tokens(backend: Backend) {
    let (app, s1, s2) = setup(backend).await;
    let (code, req) = code_for(&app, &app.browser(), "c1", &[]).await;
    let (_, t) = exchange(&app, ("c1", &s1), &code, &req).await;
    let (at, rt) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    let introspect = |client: (&'static str, String), token: String| {
        let app = &app;
        async move {
            let res = app
                .http
                .post(app.url("/introspect"))
                .basic_auth(client.0, Some(client.1))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(res.headers()["cache-control"], "no-store");
            res.json::<Value>().await.unwrap()
        }
    };
    let own = introspect(("c1", s1.clone()), at.into()).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], "c1");
    assert_eq!(
        introspect(("c2", s2.clone()), at.into()).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        introspect(("c1", s1.clone()), rt.into()).await["token_type"],
        "refresh_token"
    );
    assert_eq!(
        introspect(("c1", s1.clone()), "garbage".into()).await["active"],
        false
    );
    let res = app
        .http
        .post(app.url("/introspect"))
        .basic_auth("c1", Some("wrong"))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Revocation: another client's attempt changes nothing; the owner's works.
    let revoke = |client: (&'static str, String), token: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/revoke"))
                .basic_auth(client.0, Some(client.1))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(revoke(("c2", s2.clone()), at.into()).await, 200);
    assert_eq!(userinfo_status(&app, at).await, 200);
    assert_eq!(revoke(("c1", s1.clone()), at.into()).await, 200);
    assert_eq!(userinfo_status(&app, at).await, 401);
    assert_eq!(revoke(("c1", s1.clone()), rt.into()).await, 200);
    let (s, v, _) = post_token(
        &app,
        ("c1", &s1),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_error(s, &v, 400, "invalid_grant");
    assert_eq!(revoke(("c1", s1.clone()), "unknown".into()).await, 200);
}

both_backends!(
    a_replayed_code_fails_and_revokes_what_it_produced,
    concurrent_redemptions_have_one_winner,
    a_code_is_bound_to_its_client_redirect_uri_and_verifier,
    codes_expire,
    malformed_and_unauthenticated_requests,
    client_secret_post_works_for_its_clients,
    public_clients_redeem_with_pkce_only,
    refresh_tokens_rotate_and_a_replay_revokes_the_family,
    client_credentials_opaque_and_jwt,
    userinfo_accepts_the_token_the_standard_ways_only,
    introspection_and_revocation_see_only_the_callers_tokens,
);
