//! Passkeys with a software authenticator (webauthn-authenticator-rs `SoftPasskey`):
//! registration from « Mon compte » (password first, e-mail after), passwordless sign-in with
//! a discoverable credential, the passkey as the second factor after the password, replayed
//! answers refused, removal, and `acr`/`amr` in the ID tokens.

use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, TestApp, auth_request, cli, forms, location, query,
    unescape,
};

const LOA2: &str = "urn:sesame:loa:2";

/// Passkeys need a domain name: the same server, its issuer spelled `localhost`.
fn on_localhost(s: &mut sesame::config::Settings) {
    s.issuer = s.issuer.replace("127.0.0.1", "localhost");
}

/// The WebAuthn options a page hands to passkey.js.
fn options(html: &str) -> Value {
    let raw = html
        .split("data-options=\"")
        .nth(1)
        .expect("a passkey form")
        .split('"')
        .next()
        .unwrap();
    serde_json::from_str(&unescape(raw)).unwrap()
}

/// The index of the form posting to `action`.
fn form_to(html: &str, action: &str) -> usize {
    forms(html)
        .iter()
        .position(|f| f.action == action)
        .unwrap_or_else(|| panic!("no form to {action}"))
}

struct Device {
    key: SoftPasskey,
    origin: Url,
    /// The credential it holds, and the account handle it stored with it.
    credential: Option<(String, String)>,
}

impl Device {
    fn new(app: &TestApp) -> Self {
        Self {
            key: SoftPasskey::new(true),
            origin: Url::parse(&app.issuer).unwrap(),
            credential: None,
        }
    }

    fn register(&mut self, options: Value) -> String {
        let user = options["publicKey"]["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let answer = self
            .key
            .do_registration(
                self.origin.clone(),
                serde_json::from_value(options).unwrap(),
            )
            .unwrap();
        let answer = serde_json::to_value(&answer).unwrap();
        self.credential = Some((answer["id"].as_str().unwrap().to_owned(), user));
        answer.to_string()
    }

    /// Answers a challenge. With no allowed credentials listed (a discoverable request), it
    /// picks its own and returns the account handle, as a platform authenticator does.
    fn answer(&mut self, mut options: Value) -> String {
        let (id, user) = self.credential.clone().expect("registered");
        let discoverable = options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty());
        if discoverable {
            options["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": id }]);
        }
        let answer = self
            .key
            .do_authentication(
                self.origin.clone(),
                serde_json::from_value(options).unwrap(),
            )
            .unwrap();
        let mut answer = serde_json::to_value(&answer).unwrap();
        if discoverable {
            answer["response"]["userHandle"] = json!(user);
        }
        answer.to_string()
    }
}

/// Adds a passkey named `name` from the signed-in browser's « Mon compte ».
async fn add_passkey(b: &Browser, device: &mut Device, name: &str) -> reqwest::Response {
    let account = b.get("/account").await.text().await.unwrap();
    let i = form_to(&account, "/account/passkeys");
    let page = b
        .submit(&account, i, &[("password", PASSWORD), ("name", name)])
        .await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"),
        "passkey.js may run, nothing inline"
    );
    let html = page.text().await.unwrap();
    let answer = device.register(options(&html));
    let finish = form_to(&html, "/account/passkeys/finish");
    b.submit(&html, finish, &[("credential", &answer)]).await
}

/// Authorize, then « Authentification forte » from the sign-in page: the passkey page.
async fn passkey_page(b: &Browser, authorize_url: &str) -> String {
    let res = b.get(authorize_url).await;
    let login = b.get(&location(&res)).await.text().await.unwrap();
    let link = login
        .split("href=\"")
        .filter_map(|h| h.split('"').next())
        .map(unescape)
        .find(|h| h.ends_with("/passkey"))
        .expect("« Authentification forte » on the sign-in page");
    let page = b.get(&link).await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

async fn passkeys_register_sign_in_without_password_and_as_second_factor(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, on_localhost).await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let owner_id = app.create_user("alice").await.id;
    let owner = app.signed_in("alice", "portal").await;

    // Registration: the password is asked first; the answer is accepted once.
    let account = owner.get("/account").await.text().await.unwrap();
    let i = form_to(&account, "/account/passkeys");
    let wrong = owner
        .submit(&account, i, &[("password", "Wrong#Pass1")])
        .await;
    assert_eq!(wrong.status(), 400, "the password is asked");
    let mut device = Device::new(&app);
    let done = add_passkey(&owner, &mut device, "Cabinet").await;
    let status = done.status();
    let body = done.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("a été ajoutée"), "{body}");
    let mail = sink.wait_for("alice@example.fr", 1).await;
    assert!(
        mail.contains("a été ajouté") && mail.contains("Cabinet"),
        "{mail}"
    );
    let account = owner.get("/account").await.text().await.unwrap();
    assert!(account.contains("Cabinet"), "listed in « Mon compte »");

    // Passwordless: the authenticator names the account.
    let b = app.browser();
    let req = auth_request(&app.issuer, "portal", &[]);
    let page = passkey_page(&b, &req.url).await;
    let answer = device.answer(options(&page));
    let res = b.submit(&page, 0, &[("credential", &answer)]).await;
    assert_eq!(res.status(), 303);
    let code = query(&location(&res))["code"].clone();
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(claims["acr"], LOA2);
    assert_eq!(claims["amr"], json!(["hwk", "user", "mfa"]));
    // The signature counter moved, where the clone check reads it.
    let rows = app.state.db.passkeys_of(&owner_id).await.unwrap();
    let stored: Value = serde_json::from_str(&rows[0].credential).unwrap();
    assert_eq!(
        stored.pointer("/cred/counter").and_then(Value::as_u64),
        Some(1)
    );

    // An answer is bound to its challenge: replayed on a new one, it is refused.
    let c = app.browser();
    let page = passkey_page(&c, &auth_request(&app.issuer, "portal", &[]).url).await;
    let replay = c.submit(&page, 0, &[("credential", &answer)]).await;
    assert_eq!(replay.status(), 401);
    let garbage = c.submit(&page, 0, &[("credential", "{not json")]).await;
    assert!(garbage.status().is_client_error(), "no 500 on garbage");

    // Second factor: the password alone no longer opens a session.
    let d = app.browser();
    let req = auth_request(&app.issuer, "portal", &[]);
    let res = d.sign_in(&req.url, "alice", PASSWORD).await;
    assert!(location(&res).ends_with("/totp"), "{}", location(&res));
    let page = d.get(&location(&res)).await.text().await.unwrap();
    let opts = options(&page);
    assert_eq!(
        opts["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "her passkey is offered"
    );
    let res = d
        .submit(&page, 0, &[("credential", &device.answer(opts))])
        .await;
    let code = query(&location(&res))["code"].clone();
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(claims["acr"], LOA2);
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "mfa"]));

    // Removal: password first, an e-mail, and the passkey no longer signs in.
    let account = owner.get("/account").await.text().await.unwrap();
    let i = form_to(&account, "/account/passkeys/remove");
    assert_eq!(
        owner
            .submit(&account, i, &[("password", "Wrong#Pass1")])
            .await
            .status(),
        400
    );
    let removed = owner.submit(&account, i, &[("password", PASSWORD)]).await;
    assert_eq!(removed.status(), 200);
    let mail = sink.wait_for("alice@example.fr", 2).await;
    assert!(
        mail.contains("a été retiré") && mail.contains("Cabinet"),
        "{mail}"
    );
    let e = app.browser();
    let page = passkey_page(&e, &auth_request(&app.issuer, "portal", &[]).url).await;
    let res = e
        .submit(&page, 0, &[("credential", &device.answer(options(&page)))])
        .await;
    assert_eq!(res.status(), 401, "a removed passkey signs no one in");

    let events = app.audit_events().await;
    for event in [
        "passkey_added",
        "login_ok_passkey",
        "login_ok_two_factor",
        "passkey_failed",
        "passkey_removed",
    ] {
        assert!(events.contains(&event.to_string()), "audit {event}");
    }
}

async fn passkeys_are_per_account_and_off_on_an_ip_issuer(backend: Backend) {
    let app = TestApp::spawn_with(backend, on_localhost).await;
    app.create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    app.create_user("alice").await;
    app.create_user("bob").await;
    let alice = app.signed_in("alice", "portal").await;
    let mut device = Device::new(&app);
    assert_eq!(
        add_passkey(&alice, &mut device, "Portable").await.status(),
        200
    );
    let mut bob_device = Device::new(&app);
    let bob = app.signed_in("bob", "portal").await;
    assert_eq!(
        add_passkey(&bob, &mut bob_device, "Bob").await.status(),
        200
    );

    // Alice's passkey does not pass as Bob's second factor.
    let b = app.browser();
    let res = b
        .sign_in(
            &auth_request(&app.issuer, "portal", &[]).url,
            "bob",
            PASSWORD,
        )
        .await;
    let page = b.get(&location(&res)).await.text().await.unwrap();
    let mut opts = options(&page);
    opts["publicKey"]["allowCredentials"] = json!([]);
    let res = b
        .submit(&page, 0, &[("credential", &device.answer(opts))])
        .await;
    assert_eq!(res.status(), 401);
    // Nor does a discoverable answer that names another account than the credential's.
    let c = app.browser();
    let page = passkey_page(&c, &auth_request(&app.issuer, "portal", &[]).url).await;
    device.credential.as_mut().unwrap().1 = bob_device.credential.clone().unwrap().1;
    let res = c
        .submit(&page, 0, &[("credential", &device.answer(options(&page)))])
        .await;
    assert_eq!(res.status(), 401);

    // On an IP-address issuer (browsers refuse passkeys there) nothing offers them.
    let plain = TestApp::spawn(Backend::Embedded).await;
    plain
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let p = plain.browser();
    let res = p.get(&auth_request(&plain.issuer, "portal", &[]).url).await;
    let uid_page = location(&res);
    let login = p.get(&uid_page).await.text().await.unwrap();
    assert!(
        !login.contains("/passkey\""),
        "no « Authentification forte »"
    );
    let res = p.get(&format!("{uid_page}/passkey")).await;
    assert_eq!(res.status(), 404);
}

async fn a_passkey_guards_the_account_after_a_forced_change_and_steps_up(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        on_localhost(s);
        s.captcha = sesame::services::captcha::CaptchaMode::Off;
    })
    .await;
    app.create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let mut sensitive = ClientSpec::portal("dossier");
    sensitive.sensitive = true;
    let sensitive_secret = app.create_client(sensitive).await.unwrap();
    let alice = app.create_user("alice").await;
    let a = app.signed_in("alice", "portal").await;
    let mut device = Device::new(&app);
    assert_eq!(add_passkey(&a, &mut device, "Cabinet").await.status(), 200);

    // Her password-only session steps up with the passkey for a sensitive portal.
    let req = auth_request(&app.issuer, "dossier", &[]);
    let res = a.get(&req.url).await;
    assert!(location(&res).ends_with("/totp"), "{}", location(&res));
    let page = a.get(&location(&res)).await.text().await.unwrap();
    let res = a
        .submit(&page, 0, &[("credential", &device.answer(options(&page)))])
        .await;
    let code = query(&location(&res))["code"].clone();
    let claims = app
        .id_claims("dossier", &sensitive_secret, &code, &req.verifier)
        .await;
    assert_eq!(claims["acr"], LOA2);

    // An expired password changed at sign-in is one factor still: the passkey comes next.
    app.state.db.set_password_expired(&alice.id).await.unwrap();
    let b = app.browser();
    let res = b
        .sign_in(
            &auth_request(&app.issuer, "portal", &[]).url,
            "alice",
            PASSWORD,
        )
        .await;
    assert!(location(&res).ends_with("/password"), "{}", location(&res));
    let form = b.get(&location(&res)).await.text().await.unwrap();
    let new = "Nouveau#Passe-2026";
    let done = b
        .submit(
            &form,
            0,
            &[
                ("username", "alice"),
                ("old_password", PASSWORD),
                ("new_password", new),
                ("new_password_confirm", new),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let next = done
        .split("href=\"")
        .filter_map(|h| h.split('"').next())
        .map(unescape)
        .find(|h| h.ends_with("/totp"))
        .unwrap_or_else(|| panic!("the second factor is next: {done}"));
    let page = b.get(&next).await.text().await.unwrap();
    let res = b
        .submit(&page, 0, &[("credential", &device.answer(options(&page)))])
        .await;
    assert!(query(&location(&res)).contains_key("code"));

    // An operator lists the account's factors and removes them (a lost phone, a compromise).
    let out = cli(&app, &["user", "factors", "alice", "--json"]);
    let factors: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(factors["passkeys"][0]["name"], "Cabinet");
    cli(&app, &["user", "remove-factors", "alice", "--all"]);
    let out = cli(&app, &["user", "factors", "alice", "--json"]);
    let factors: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(factors["passkeys"], json!([]));
    let e = app.browser();
    let page = passkey_page(&e, &auth_request(&app.issuer, "portal", &[]).url).await;
    let res = e
        .submit(&page, 0, &[("credential", &device.answer(options(&page)))])
        .await;
    assert_eq!(res.status(), 401, "removed by the operator");
    assert!(
        app.audit_events()
            .await
            .contains(&"factors_removed_by_operator".to_string())
    );
}

both_backends!(
    passkeys_register_sign_in_without_password_and_as_second_factor,
    passkeys_are_per_account_and_off_on_an_ip_issuer,
    a_passkey_guards_the_account_after_a_forced_change_and_steps_up
);
