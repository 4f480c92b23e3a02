//! The heart: a portal sends a browser, the person signs in once, the portal gets tokens it
//! can verify with the openidconnect crate, and the SSO session answers the next requests.

use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeVerifier, TokenResponse,
};

use crate::both_backends;
use crate::helpers::{
    Backend, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, location, query,
};

async fn a_portal_signs_a_user_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("alice").await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let browser = app.browser();
    let req = auth_request(&app.issuer, "portal", &[]);

    let res = browser.sign_in(&req.url, "alice", PASSWORD).await;
    assert_eq!(res.status(), 303, "never 307 after a password POST");
    let back = location(&res);
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert_eq!(q["state"], req.state);
    assert_eq!(q["iss"], app.issuer);
    assert!(q["code"].len() >= 43, "≥ 128-bit code");
    assert_eq!(q.len(), 3, "only code, state and iss");

    let portal = app.portal("portal", Some(&secret), REDIRECT).await;
    let tokens = portal
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(req.verifier.clone()))
        .request_async(&app.http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&portal.id_token_verifier(), &Nonce::new(req.nonce.clone()))
        .expect("valid ID token");
    assert_eq!(claims.subject().as_str(), user.id);
    assert_eq!(claims.issuer().as_str(), app.issuer);
    assert!(claims.auth_time().is_some());
    assert_eq!(claims.auth_method_refs().unwrap()[0].as_str(), "pwd");
    assert!(claims.auth_context_ref().is_some());
    assert!(
        claims.name().is_none(),
        "profile claims go to userinfo, not the ID token"
    );
    let at_hash = claims.access_token_hash().expect("at_hash");
    let expected = openidconnect::AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&portal.id_token_verifier()).unwrap(),
    )
    .unwrap();
    assert_eq!(at_hash, &expected);
    assert!(tokens.refresh_token().is_some(), "this portal may refresh");

    let info: CoreUserInfoClaims = portal
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&app.http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), user.id);
    assert_eq!(info.email().unwrap().as_str(), "alice@example.fr");
    assert_eq!(info.email_verified(), Some(true));
    assert_eq!(
        info.given_name().unwrap().get(None).unwrap().as_str(),
        "Alice"
    );

    let events = app.audit_events().await;
    assert!(events.contains(&"login_ok".to_string()), "{events:?}");
}

async fn the_sso_session_answers_the_next_request_with_the_same_auth_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let portal = app.portal("portal", Some(&secret), REDIRECT).await;
    let browser = app.browser();

    let first = auth_request(&app.issuer, "portal", &[]);
    let code1 = query(&location(
        &browser.sign_in(&first.url, "alice", PASSWORD).await,
    ))["code"]
        .clone();
    let second = auth_request(&app.issuer, "portal", &[("prompt", "none")]);
    let res = browser.get(&second.url).await;
    assert_eq!(res.status(), 303);
    let q = query(&location(&res));
    assert_eq!(q["state"], second.state);
    let code2 = q["code"].clone();

    let mut auth_times = Vec::new();
    for (code, req) in [(code1, &first), (code2, &second)] {
        let t = portal
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(PkceCodeVerifier::new(req.verifier.clone()))
            .request_async(&app.http)
            .await
            .unwrap();
        let c = t
            .id_token()
            .unwrap()
            .claims(&portal.id_token_verifier(), &Nonce::new(req.nonce.clone()))
            .unwrap()
            .clone();
        auth_times.push((c.subject().clone(), c.auth_time()));
    }
    assert_eq!(auth_times[0], auth_times[1], "same sub, same auth_time");
}

async fn prompt_login_and_max_age_ask_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    app.create_client(ClientSpec::portal("portal")).await;
    let browser = app.signed_in("alice", "portal").await;
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let res = browser
            .get(&auth_request(&app.issuer, "portal", &[extra]).url)
            .await;
        assert!(
            location(&res).starts_with("/interaction/"),
            "{extra:?} shows the sign-in page again"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = browser
        .get(&auth_request(&app.issuer, "portal", &[("max_age", "1")]).url)
        .await;
    assert!(
        location(&res).starts_with("/interaction/"),
        "max_age=1 after 2 s"
    );
    let res = browser
        .get(&auth_request(&app.issuer, "portal", &[("max_age", "3600")]).url)
        .await;
    assert!(
        location(&res).starts_with(REDIRECT),
        "a recent enough session answers"
    );
}

async fn a_wrong_password_or_unknown_account_gets_one_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    app.create_client(ClientSpec::portal("portal")).await;
    let mut pages = Vec::new();
    for (user, pw) in [
        ("alice", "Wrong#Pass1"),
        ("nobody", PASSWORD),
        ("<b>bad id</b>", PASSWORD),
    ] {
        let res = app
            .browser()
            .sign_in(&auth_request(&app.issuer, "portal", &[]).url, user, pw)
            .await;
        assert_eq!(res.status(), 401);
        let html = res.text().await.unwrap();
        assert!(html.contains("Identifiant ou mot de passe incorrect."));
        assert!(!html.contains("<b>bad id</b>"), "escaped");
        pages.push(
            html.split("role=\"alert\"")
                .nth(1)
                .unwrap()
                .split("</p>")
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(
        pages.windows(2).all(|w| w[0] == w[1]),
        "no user enumeration"
    );
    let events = app.audit_events().await;
    assert_eq!(events.iter().filter(|e| *e == "login_failed").count(), 3);
}

async fn a_forged_or_missing_csrf_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    app.create_client(ClientSpec::portal("portal")).await;
    let browser = app.browser();
    let res = browser
        .get(&auth_request(&app.issuer, "portal", &[]).url)
        .await;
    let page = location(&res);
    let html = browser.get(&page).await.text().await.unwrap();
    let action = crate::helpers::forms(&html)[0].action.clone();
    let res = browser
        .post(
            &action,
            &[
                ("username".into(), "alice".into()),
                ("password".into(), PASSWORD.into()),
                ("csrf_token".into(), "forged".into()),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    // Another browser cannot use this sign-in request at all.
    let other = app.browser();
    let res = other.get(&page).await;
    assert_eq!(res.status(), 400);
}

async fn pages_are_french_by_default_and_english_on_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    for (extra, expect, csp_origin) in [
        (None, "Mot de passe", true),
        (Some(("ui_locales", "en fr")), "Password", true),
        (Some(("ui_locales", "se")), "Mot de passe", true),
    ] {
        let browser = app.browser();
        let extra: Vec<_> = extra.into_iter().collect();
        let res = browser
            .get(&auth_request(&app.issuer, "portal", &extra).url)
            .await;
        let page = browser.get(&location(&res)).await;
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
        assert_eq!(
            csp.contains("https://portal.example.fr"),
            csp_origin,
            "the form may lead back to the portal"
        );
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert!(page.text().await.unwrap().contains(expect), "{extra:?}");
    }
    let browser = app.browser();
    let lang = ("accept-language", "en-GB,en;q=0.9,fr;q=0.5");
    let res = browser
        .http
        .get(auth_request(&app.issuer, "portal", &[]).url)
        .header(lang.0, lang.1)
        .send()
        .await
        .unwrap();
    let page = browser
        .http
        .get(browser.abs(&location(&res)))
        .header(lang.0, lang.1)
        .send()
        .await
        .unwrap();
    assert!(
        page.text().await.unwrap().contains("Password"),
        "Accept-Language picks English"
    );
    let html = app
        .browser()
        .get(&location(&res))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("a expiré"),
        "another browser cannot use this sign-in request"
    );
}

async fn consent_is_asked_once_for_third_party_portals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let mut spec = ClientSpec::portal("thirdparty");
    spec.first_party = false;
    app.create_client(spec).await;
    let browser = app.browser();
    let req = auth_request(&app.issuer, "thirdparty", &[]);
    let res = browser.sign_in(&req.url, "alice", PASSWORD).await;
    let consent = location(&res);
    assert!(
        consent.starts_with("/interaction/"),
        "consent page next: {consent}"
    );
    let html = browser.get(&consent).await.text().await.unwrap();
    assert!(html.contains("Autoriser") && html.contains("votre adresse électronique"));
    let res = browser.submit(&html, 0, &[("decision", "allow")]).await;
    assert_eq!(query(&location(&res))["state"], req.state);
    assert!(query(&location(&res)).contains_key("code"));
    // Remembered: the next request goes straight back; prompt=consent asks again.
    let res = browser
        .get(&auth_request(&app.issuer, "thirdparty", &[("prompt", "none")]).url)
        .await;
    assert!(query(&location(&res)).contains_key("code"));
    let res = browser
        .get(&auth_request(&app.issuer, "thirdparty", &[("prompt", "consent")]).url)
        .await;
    assert!(location(&res).starts_with("/interaction/"));
    // Wider scopes are a new question; prompt=none then says consent_required.
    let res = browser
        .get(
            &auth_request(
                &app.issuer,
                "thirdparty",
                &[
                    ("prompt", "none"),
                    ("scope", "openid email profile offline_access"),
                ],
            )
            .url,
        )
        .await;
    assert!(
        query(&location(&res)).contains_key("code"),
        "offline_access is dropped without prompt=consent"
    );
}

async fn denying_consent_returns_access_denied(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let mut spec = ClientSpec::portal("thirdparty");
    spec.first_party = false;
    app.create_client(spec).await;
    let browser = app.browser();
    let req = auth_request(&app.issuer, "thirdparty", &[]);
    let res = browser.sign_in(&req.url, "alice", PASSWORD).await;
    let html = browser.get(&location(&res)).await.text().await.unwrap();
    let res = browser.submit(&html, 0, &[("decision", "deny")]).await;
    let q = query(&location(&res));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], req.state);
    assert_eq!(q["iss"], app.issuer);
    let res = browser
        .get(&auth_request(&app.issuer, "thirdparty", &[("prompt", "none")]).url)
        .await;
    assert_eq!(query(&location(&res))["error"], "consent_required");
}

async fn es256_and_eddsa_portals_get_tokens_in_their_algorithm(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    for (id, alg, core) in [
        (
            "es",
            sesame::domain::IdTokenAlg::ES256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        ),
        (
            "ed",
            sesame::domain::IdTokenAlg::EdDSA,
            CoreJwsSigningAlgorithm::EdDsa,
        ),
    ] {
        let mut spec = ClientSpec::portal(id);
        spec.id_token_alg = alg;
        let secret = app.create_client(spec).await.unwrap();
        let browser = app.browser();
        let req = auth_request(&app.issuer, id, &[]);
        let code = query(&location(
            &browser.sign_in(&req.url, "alice", PASSWORD).await,
        ))["code"]
            .clone();
        let res = app
            .http
            .post(app.url("/token"))
            .basic_auth(id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &req.verifier),
            ])
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = res.json().await.unwrap();
        let id_token: CoreIdToken = body["id_token"].as_str().unwrap().parse().unwrap();
        let jwks = openidconnect::core::CoreJsonWebKeySet::new(portal_keys(&app).await);
        let verifier = CoreIdTokenVerifier::new_confidential_client(
            openidconnect::ClientId::new(id.into()),
            openidconnect::ClientSecret::new(secret.clone()),
            IssuerUrl::new(app.issuer.clone()).unwrap(),
            jwks,
        )
        .set_allowed_algs([core.clone()]);
        id_token
            .claims(&verifier, &Nonce::new(req.nonce.clone()))
            .expect("verifies in its own algorithm");
        assert_eq!(id_token.signing_alg().unwrap(), &core);
    }
}

async fn portal_keys(app: &TestApp) -> Vec<openidconnect::core::CoreJsonWebKey> {
    let jwks: openidconnect::core::CoreJsonWebKeySet = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks.keys().clone()
}

async fn claims_parameter_puts_claims_where_asked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("alice").await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let browser = app.browser();
    let req = auth_request(
        &app.issuer,
        "portal",
        &[
            ("scope", "openid"),
            (
                "claims",
                r#"{"id_token":{"email":{"essential":true}},"userinfo":{"name":null}}"#,
            ),
        ],
    );
    let code = query(&location(
        &browser.sign_in(&req.url, "alice", PASSWORD).await,
    ))["code"]
        .clone();
    let portal = app.portal("portal", Some(&secret), REDIRECT).await;
    let t = portal
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(req.verifier.clone()))
        .request_async(&app.http)
        .await
        .unwrap();
    let c = t
        .id_token()
        .unwrap()
        .claims(&portal.id_token_verifier(), &Nonce::new(req.nonce.clone()))
        .unwrap();
    assert_eq!(c.email().unwrap().as_str(), "alice@example.fr");
    assert!(c.name().is_none());
    let info: CoreUserInfoClaims = portal
        .user_info(t.access_token().clone(), None)
        .unwrap()
        .request_async(&app.http)
        .await
        .unwrap();
    assert_eq!(
        info.name().unwrap().get(None).unwrap().as_str(),
        "Alice Durand"
    );
    assert!(info.email().is_none(), "email scope not granted");
}

async fn malformed_forms_get_an_error_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let browser = app.browser();
    let res = browser
        .get(&auth_request(&app.issuer, "portal", &[]).url)
        .await;
    let page = location(&res);
    let res = browser
        .http
        .post(browser.abs(&format!("{page}/login")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=a&username=b&password=%FF%FE")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("La demande est invalide")
    );
}

both_backends!(
    malformed_forms_get_an_error_page,
    a_portal_signs_a_user_in,
    the_sso_session_answers_the_next_request_with_the_same_auth_time,
    prompt_login_and_max_age_ask_again,
    a_wrong_password_or_unknown_account_gets_one_message,
    a_forged_or_missing_csrf_token_is_refused,
    pages_are_french_by_default_and_english_on_request,
    consent_is_asked_once_for_third_party_portals,
    denying_consent_returns_access_denied,
    es256_and_eddsa_portals_get_tokens_in_their_algorithm,
    claims_parameter_puts_claims_where_asked,
);
