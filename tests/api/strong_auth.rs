//! Strong authentication with TOTP: enrolment from « Mon compte », the second factor at
//! sign-in, codes never accepted twice, recovery codes, step-up through `acr_values` and
//! through a sensitive portal, and `acr`/`amr` in the ID tokens.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, TestApp, auth_request, forms, location, query,
};

const LOA1: &str = "urn:sesame:loa:1";
const LOA2: &str = "urn:sesame:loa:2";

fn totp_code(secret: &str, offset_steps: i64) -> String {
    let totp = sesame::domain::totp::authenticator(secret, "x", "x").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    totp.generate((now + offset_steps * 30) as u64).to_string()
}

/// Enrols TOTP for the signed-in `b`; returns (secret, recovery codes, the code it used).
async fn enrol(b: &Browser) -> (String, Vec<String>, String) {
    let account = b.get("/account").await.text().await.unwrap();
    let i = forms(&account)
        .iter()
        .position(|f| f.action == "/account/totp")
        .expect("enable form");
    assert_eq!(
        b.submit(&account, i, &[("password", "Wrong#Pass1")])
            .await
            .status(),
        400,
        "the password is asked"
    );
    let account = b.get("/account").await.text().await.unwrap();
    let page = b
        .submit(&account, i, &[("password", PASSWORD)])
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("svg+xml;base64,"), "a QR code");
    let secret = page
        .split("id=\"totp-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let wrong = b.submit(&page, 0, &[("code", "000000")]).await;
    assert_eq!(wrong.status(), 400);
    let used = totp_code(&secret, 0);
    let done = b
        .submit(&page, 0, &[("code", &used)])
        .await
        .text()
        .await
        .unwrap();
    let codes: Vec<String> = done
        .split("<code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "recovery codes shown once");
    (secret, codes, used)
}

async fn totp_second_factor_with_replay_and_recovery_codes(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |_| {}).await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    app.create_user("alice").await;
    let first = app.signed_in("alice", "portal").await;
    let (totp_secret, recovery, used) = enrol(&first).await;
    assert!(
        sink.wait_for("alice@example.fr", 1)
            .await
            .contains("a été ajouté"),
        "an e-mail on a new factor"
    );

    // A new sign-in: password, then the code.
    let b = app.browser();
    let req = auth_request(&app.issuer, "portal", &[]);
    let res = b.sign_in(&req.url, "alice", PASSWORD).await;
    assert!(
        location(&res).ends_with("/totp"),
        "the password alone does not open a session"
    );
    let page = b.get(&location(&res)).await.text().await.unwrap();
    let bad = b.submit(&page, 0, &[("code", "123456")]).await;
    assert_eq!(bad.status(), 401);
    // The code used at enrolment is not accepted again; a later step's is.
    let replay = b.submit(&page, 0, &[("code", &used)]).await;
    assert_eq!(replay.status(), 401, "a code is never accepted twice");
    let res = b
        .submit(&page, 0, &[("code", &totp_code(&totp_secret, 1))])
        .await;
    let code = query(&location(&res))["code"].clone();
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(claims["acr"], LOA2);
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    // A recovery code works once.
    let c = app.browser();
    let res = c
        .sign_in(
            &auth_request(&app.issuer, "portal", &[]).url,
            "alice",
            PASSWORD,
        )
        .await;
    let page = c.get(&location(&res)).await.text().await.unwrap();
    let res = c
        .submit(&page, 0, &[("code", &recovery[0].to_uppercase())])
        .await;
    assert!(query(&location(&res)).contains_key("code"));
    let d = app.browser();
    let res = d
        .sign_in(
            &auth_request(&app.issuer, "portal", &[]).url,
            "alice",
            PASSWORD,
        )
        .await;
    let page = d.get(&location(&res)).await.text().await.unwrap();
    assert_eq!(
        d.submit(&page, 0, &[("code", &recovery[0])]).await.status(),
        401,
        "spent"
    );

    // Removing the factor needs the password and sends an e-mail.
    let account = first.get("/account").await.text().await.unwrap();
    let i = forms(&account)
        .iter()
        .position(|f| f.action == "/account/totp/remove")
        .unwrap();
    assert_eq!(
        first
            .submit(&account, i, &[("password", "Wrong#Pass1")])
            .await
            .status(),
        400
    );
    assert_eq!(
        first
            .submit(&account, i, &[("password", PASSWORD)])
            .await
            .status(),
        200
    );
    assert!(
        sink.wait_for("alice@example.fr", 2)
            .await
            .contains("a été retiré")
    );
    let events = app.audit_events().await;
    assert!(
        events.contains(&"totp_added".to_string()) && events.contains(&"totp_removed".to_string())
    );
}

async fn step_up_through_acr_values_and_sensitive_portals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let mut sensitive = ClientSpec::portal("dossier-patient");
    sensitive.first_party = true;
    sensitive.sensitive = true;
    let sensitive_secret = app.create_client(sensitive).await.unwrap();
    let mut strong_minimum = ClientSpec::portal("ordonnances");
    strong_minimum.min_acr = Some(LOA2.into());
    app.create_client(strong_minimum).await.unwrap();
    let mut weak_minimum = ClientSpec::portal("annuaire");
    weak_minimum.min_acr = Some(LOA1.into());
    app.create_client(weak_minimum).await.unwrap();
    app.create_user("alice").await;
    app.create_user("bob").await;

    // Bob has only a password: a sensitive portal and acr_values=loa:2 are refused to him.
    let bob = app.browser();
    let res = bob
        .sign_in(
            &auth_request(&app.issuer, "dossier-patient", &[]).url,
            "bob",
            PASSWORD,
        )
        .await;
    assert_eq!(query(&location(&res))["error"], "access_denied");
    let res = bob
        .sign_in(
            &auth_request(&app.issuer, "portal", &[]).url,
            "bob",
            PASSWORD,
        )
        .await;
    assert!(query(&location(&res)).contains_key("code"));
    // A portal's minimum level works like the sensitive flag when it is above a password.
    let res = bob
        .get(&auth_request(&app.issuer, "ordonnances", &[]).url)
        .await;
    assert_eq!(query(&location(&res))["error"], "access_denied");
    let res = bob
        .get(&auth_request(&app.issuer, "annuaire", &[]).url)
        .await;
    assert!(query(&location(&res)).contains_key("code"));
    let res = bob
        .get(&auth_request(&app.issuer, "portal", &[("acr_values", LOA2)]).url)
        .await;
    assert_eq!(
        query(&location(&res))["error"],
        "access_denied",
        "no second factor to step up with"
    );
    let res = bob
        .get(
            &auth_request(
                &app.issuer,
                "portal",
                &[("acr_values", &format!("{LOA1} {LOA2}"))],
            )
            .url,
        )
        .await;
    assert!(
        query(&location(&res)).contains_key("code"),
        "either level is fine"
    );

    // Alice signs in with a password, enrols TOTP, then steps up without typing her password again.
    let alice = app.browser();
    let req = auth_request(&app.issuer, "portal", &[]);
    let code = query(&location(&alice.sign_in(&req.url, "alice", PASSWORD).await))["code"].clone();
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(
        (claims["acr"].as_str().unwrap(), claims["amr"].clone()),
        (LOA1, serde_json::json!(["pwd"]))
    );
    let (totp_secret, _, _) = enrol(&alice).await;
    let res = alice
        .get(
            &auth_request(
                &app.issuer,
                "portal",
                &[("acr_values", LOA2), ("prompt", "none")],
            )
            .url,
        )
        .await;
    assert_eq!(query(&location(&res))["error"], "interaction_required");
    let req = auth_request(&app.issuer, "dossier-patient", &[]);
    let res = alice.get(&req.url).await;
    assert!(
        location(&res).ends_with("/totp"),
        "straight to the second factor: {}",
        location(&res)
    );
    let page = alice.get(&location(&res)).await.text().await.unwrap();
    let res = alice
        .submit(&page, 0, &[("code", &totp_code(&totp_secret, 1))])
        .await;
    let code = query(&location(&res))["code"].clone();
    let claims = app
        .id_claims("dossier-patient", &sensitive_secret, &code, &req.verifier)
        .await;
    assert_eq!(claims["acr"], LOA2);
    assert!(claims["amr"].as_array().unwrap().contains(&"otp".into()));
    // The session is now strong: the next sensitive request goes straight through.
    let res = alice
        .get(&auth_request(&app.issuer, "dossier-patient", &[("prompt", "none")]).url)
        .await;
    assert!(query(&location(&res)).contains_key("code"));
    let d: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["acr_values_supported"], serde_json::json!([LOA1, LOA2]));
}

both_backends!(
    totp_second_factor_with_replay_and_recovery_codes,
    step_up_through_acr_values_and_sensitive_portals
);
