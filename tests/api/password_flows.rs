//! The guide's password flows, end to end through the pages and a real SMTP server:
//! F1/F3 (temporary password, forced change, then on to the portal), F2 (operator reset),
//! F4 (forgotten password), F5 (« Mon compte »), throttling, and mail that waits out an
//! SMTP outage.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, cli, forms, location,
    query,
};
use crate::smtp::Sink;

/// The answer of the page's captcha, read where the server keeps it.
async fn captcha(app: &TestApp, html: &str) -> (String, String) {
    app.captcha(html).await
}

fn field(mail: &str, label: &str) -> String {
    mail.lines()
        .find_map(|l| l.split_once(label).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("{label} in {mail}"))
}

fn link(mail: &str) -> String {
    mail.lines()
        .find(|l| l.contains("/password/reset/"))
        .expect("a link")
        .trim()
        .to_owned()
}

/// Signs in with a password that must be changed; returns the change page's HTML.
async fn reach_change_page(app: &TestApp, b: &Browser, user: &str, password: &str) -> String {
    reach_change_page_for(
        app,
        b,
        user,
        password,
        &auth_request(&app.issuer, "portal", &[]),
    )
    .await
}

async fn reach_change_page_for(
    _app: &TestApp,
    b: &Browser,
    user: &str,
    password: &str,
    req: &crate::helpers::AuthRequest,
) -> String {
    let res = b.sign_in(&req.url, user, password).await;
    assert_eq!(
        location(&res),
        format!("{}/password", location(&res).trim_end_matches("/password")),
        "to the change form"
    );
    assert!(location(&res).ends_with("/password"), "{}", location(&res));
    let page = b.get(&location(&res)).await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

async fn f1_f3_temporary_password_then_forced_change_then_the_portal(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |_| {}).await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    cli(
        &app,
        &[
            "user",
            "create",
            "jmartin",
            "--email",
            "jmartin@example.fr",
            "--given-name",
            "Jeanne",
            "--family-name",
            "Martin",
        ],
    );
    let mail = sink.wait_for("jmartin@example.fr", 1).await;
    assert!(mail.contains("Votre identifiant : jmartin"), "{mail}");
    let temporary = field(&mail, "Votre mot de passe provisoire :");
    assert!(mail.contains("support technique"));

    let b = app.browser();
    let first = auth_request(&app.issuer, "portal", &[]);
    let html = reach_change_page_for(&app, &b, "jmartin", &temporary, &first).await;
    assert!(html.contains("Attention : votre mot de passe a expiré, veuillez le modifier afin de pouvoir vous authentifier"));
    for name in [
        "username",
        "old_password",
        "new_password",
        "new_password_confirm",
        "captcha",
    ] {
        assert!(html.contains(&format!("name=\"{name}\"")), "{name}");
    }

    // Rules named one by one.
    let (_cid, answer) = captcha(&app, &html).await;
    let res = b
        .submit(
            &html,
            0,
            &[
                ("username", "jmartin"),
                ("old_password", &temporary),
                ("new_password", "abc"),
                ("new_password_confirm", "abd"),
                ("captcha", &answer),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    for msg in [
        "au moins 8 caractères",
        "au moins un chiffre",
        "au moins un caractère spécial",
        "La confirmation ne correspond pas",
    ] {
        assert!(html.contains(msg), "{msg}");
    }
    // A wrong captcha changes nothing.
    let res = b
        .submit(
            &html,
            0,
            &[
                ("username", "jmartin"),
                ("old_password", &temporary),
                ("new_password", "Nouveau#Mdp2026"),
                ("new_password_confirm", "Nouveau#Mdp2026"),
                ("captcha", "wrong"),
            ],
        )
        .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("Le code recopié est incorrect"));
    // The right one, through the text alternative.
    let alt = b
        .get(&format!("{}?captcha=text", forms(&html)[0].action))
        .await
        .text()
        .await
        .unwrap();
    assert!(alt.contains("Recopiez ces 6 caractères"));
    let (_cid, answer) = captcha(&app, &alt).await;
    let res = b
        .submit(
            &alt,
            0,
            &[
                ("username", "jmartin"),
                ("old_password", &temporary),
                ("new_password", "Nouveau#Mdp2026"),
                ("new_password_confirm", "Nouveau#Mdp2026"),
                ("captcha", &answer),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Votre mot de passe a été modifié"));
    let confirmation = sink.wait_for("jmartin@example.fr", 2).await;
    assert!(confirmation.contains(
        "Si vous n'avez pas effectué ce changement, merci de contacter le support technique au"
    ));

    // « Continuer »: back to the portal with a code, no second sign-in.
    let continue_url = html
        .split("class=\"button\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/");
    let res = b.get(&continue_url).await;
    let q = query(&location(&res));
    let code = q.get("code").expect("a code for the portal");
    assert_eq!(q["state"], first.state, "the request that asked continues");
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth("portal", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", first.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let tokens: serde_json::Value = res.json().await.unwrap();
    let id = app
        .state
        .keys
        .verify_jwt(tokens["id_token"].as_str().expect("an ID token"))
        .unwrap();
    let user = app
        .state
        .db
        .user_by_username(&sesame::domain::Username::parse("jmartin").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        id["sub"],
        user.id.as_str(),
        "the portal gets the person who changed the password"
    );
    // The new password works; the temporary one no longer does.
    assert!(
        query(&location(
            &app.browser()
                .sign_in(
                    &auth_request(&app.issuer, "portal", &[]).url,
                    "jmartin",
                    "Nouveau#Mdp2026"
                )
                .await
        ))
        .contains_key("code")
    );
    assert_eq!(
        app.browser()
            .sign_in(
                &auth_request(&app.issuer, "portal", &[]).url,
                "jmartin",
                &temporary
            )
            .await
            .status(),
        401
    );
}

async fn f2_operator_reset_and_expire(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |_| {}).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    let _open_session = app.signed_in("alice", "portal").await;
    cli(&app, &["user", "reset-password", "alice"]);
    let mail = sink.wait_for("alice@example.fr", 1).await;
    assert!(mail.contains("Votre code de connexion a été réinitialisé. Pour votre première connexion, utilisez le mot de passe provisoire suivant :"), "{mail}");
    assert!(mail.contains("« Mon compte »"));
    let temporary = field(&mail, "utilisez le mot de passe provisoire suivant :");
    assert_eq!(
        app.browser()
            .sign_in(
                &auth_request(&app.issuer, "portal", &[]).url,
                "alice",
                PASSWORD
            )
            .await
            .status(),
        401,
        "the old password is gone"
    );
    reach_change_page(&app, &app.browser(), "alice", &temporary).await;

    app.create_user("bob").await;
    cli(&app, &["user", "expire-password", "bob"]);
    reach_change_page(&app, &app.browser(), "bob", PASSWORD).await;

    cli(&app, &["user", "disable", "bob"]);
    assert_eq!(
        app.browser()
            .sign_in(
                &auth_request(&app.issuer, "portal", &[]).url,
                "bob",
                PASSWORD
            )
            .await
            .status(),
        401
    );
    cli(&app, &["user", "enable", "bob"]);
    reach_change_page(&app, &app.browser(), "bob", PASSWORD).await;
}

async fn f4_forgotten_password(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |_| {}).await;
    let (bcl, told) = crate::logout::backchannel_receiver().await;
    let mut portal = ClientSpec::portal("portal");
    portal.backchannel_logout_uri = Some(bcl);
    app.create_client(portal).await;
    let user = app.create_user("alice").await;
    let secret_session = app.signed_in("alice", "portal").await;

    let b = app.browser();
    let res = b.get(&auth_request(&app.issuer, "portal", &[]).url).await;
    let login = b.get(&location(&res)).await.text().await.unwrap();
    assert!(
        login.contains("href=\"&#x2f;password&#x2f;forgot\"")
            || login.contains("href=\"/password/forgot\""),
        "« Mot de passe oublié »"
    );

    // Unknown identifier: the same page, and no mail.
    let ask = |who: &'static str| {
        let (app, b) = (&app, &b);
        async move {
            let html = b.get("/password/forgot").await.text().await.unwrap();
            let (_cid, answer) = captcha(app, &html).await;
            let res = b
                .submit(&html, 0, &[("username", who), ("captcha", &answer)])
                .await;
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    };
    let unknown = ask("nobody").await;
    let known = ask("alice").await;
    let body = |h: &str| h.split("<main>").nth(1).unwrap().to_owned();
    assert_eq!(body(&unknown), body(&known), "one neutral answer");
    let first_link = link(&sink.wait_for("alice@example.fr", 1).await);
    assert!(first_link.starts_with(&app.issuer), "{first_link}");
    // A second request voids the first link.
    ask("alice").await;
    let mail = sink.wait_for("alice@example.fr", 2).await;
    let second_link = link(&mail);
    assert_ne!(first_link, second_link);
    assert_eq!(
        b.get(&first_link).await.status(),
        400,
        "voided by the newer request"
    );
    assert_eq!(sink.count("nobody@example.fr"), 0);

    let form = b.get(&second_link).await.text().await.unwrap();
    assert!(form.contains("au moins 1 chiffre"), "the policy is shown");
    let res = b
        .submit(
            &form,
            0,
            &[
                ("username", "bob"),
                ("new_password", "Encore#Neuf2026"),
                ("new_password_confirm", "Encore#Neuf2026"),
            ],
        )
        .await;
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("ne correspond pas à cette demande"),
        "wrong identifier"
    );
    let form = b.get(&second_link).await.text().await.unwrap();
    let res = b
        .submit(
            &form,
            0,
            &[
                ("username", "alice"),
                ("new_password", "password1!"),
                ("new_password_confirm", "password1!"),
            ],
        )
        .await;
    assert!(res.text().await.unwrap().contains("trop courant"));
    let form = b.get(&second_link).await.text().await.unwrap();
    let res = b
        .submit(
            &form,
            0,
            &[
                ("username", "alice"),
                ("new_password", "Encore#Neuf2026"),
                ("new_password_confirm", "Encore#Neuf2026"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Vos sessions ouvertes ont été fermées")
    );
    assert!(
        sink.wait_for("alice@example.fr", 3)
            .await
            .contains("merci de contacter le support technique")
    );
    assert_eq!(b.get(&second_link).await.status(), 400, "single use");

    // Every session of the account ended, and its portal was told (back-channel logout).
    let res = secret_session
        .get(&auth_request(&app.issuer, "portal", &[("prompt", "none")]).url)
        .await;
    assert_eq!(query(&location(&res))["error"], "login_required");
    for _ in 0..50 {
        if !told.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        told.lock()
            .unwrap()
            .first()
            .is_some_and(|b| b.starts_with("logout_token=")),
        "the portal hears of the reset"
    );
    assert!(
        query(&location(
            &app.browser()
                .sign_in(
                    &auth_request(&app.issuer, "portal", &[]).url,
                    "alice",
                    "Encore#Neuf2026"
                )
                .await
        ))
        .contains_key("code")
    );
    let events = app.audit_events().await;
    assert!(
        events.contains(&"password_reset".to_string())
            && events.contains(&"password_reset_requested".to_string())
    );
    let _ = user;
}

async fn f4_links_expire(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |s| s.password.reset_link_seconds = 1).await;
    app.create_user("alice").await;
    let b = app.browser();
    let html = b.get("/password/forgot").await.text().await.unwrap();
    let (_cid, answer) = captcha(&app, &html).await;
    b.submit(&html, 0, &[("username", "alice"), ("captcha", &answer)])
        .await;
    let l = link(&sink.wait_for("alice@example.fr", 1).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let res = b.get(&l).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("plus valable"));
}

async fn f5_mon_compte(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |_| {}).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    let b = app.browser();
    assert_eq!(
        b.get("/account").await.status(),
        401,
        "signed-in people only"
    );
    b.sign_in(
        &auth_request(&app.issuer, "portal", &[]).url,
        "alice",
        PASSWORD,
    )
    .await;
    let home = b.get("/").await.text().await.unwrap();
    assert!(
        home.contains("Mon compte"),
        "the name menu leads to « Mon compte »"
    );
    let html = b.get("/account").await.text().await.unwrap();
    assert!(html.contains("CHANGER MON MOT DE PASSE"), "{html}");
    let form_index = forms(&html)
        .iter()
        .position(|f| f.action == "/account/password")
        .unwrap();
    let res = b
        .submit(
            &html,
            form_index,
            &[
                ("username", "alice"),
                ("old_password", "Wrong#Old123"),
                ("new_password", "Autre#Secret99"),
                ("new_password_confirm", "Autre#Secret99"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("pas été modifié"));
    let res = b
        .submit(
            &html,
            form_index,
            &[
                ("username", "alice"),
                ("old_password", PASSWORD),
                ("new_password", PASSWORD),
                ("new_password_confirm", PASSWORD),
            ],
        )
        .await;
    assert!(
        res.text().await.unwrap().contains("déjà été utilisé"),
        "history"
    );
    let res = b
        .submit(
            &html,
            form_index,
            &[
                ("username", "alice"),
                ("old_password", PASSWORD),
                ("new_password", "Autre#Secret99"),
                ("new_password_confirm", "Autre#Secret99"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Votre mot de passe a été modifié")
    );
    assert!(
        sink.wait_for("alice@example.fr", 1)
            .await
            .contains("Si vous n'avez pas effectué ce changement")
    );
    assert_eq!(
        app.browser()
            .sign_in(
                &auth_request(&app.issuer, "portal", &[]).url,
                "alice",
                PASSWORD
            )
            .await
            .status(),
        401
    );
    // And the one before cannot come back either.
    let html = b.get("/account").await.text().await.unwrap();
    let res = b
        .submit(
            &html,
            form_index,
            &[
                ("username", "alice"),
                ("old_password", "Autre#Secret99"),
                ("new_password", PASSWORD),
                ("new_password_confirm", PASSWORD),
            ],
        )
        .await;
    assert!(res.text().await.unwrap().contains("déjà été utilisé"));
}

async fn repeated_failures_are_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    for i in 1..=6 {
        let res = app
            .browser()
            .sign_in(
                &auth_request(&app.issuer, "portal", &[]).url,
                "alice",
                "Wrong#Pass1",
            )
            .await;
        let expected = if i <= 5 { 401 } else { 429 };
        assert_eq!(res.status(), expected, "attempt {i}");
        if i == 6 {
            assert!(
                res.text()
                    .await
                    .unwrap()
                    .contains("Réessayez dans 30 secondes")
            );
        }
    }
    let res = app
        .browser()
        .sign_in(
            &auth_request(&app.issuer, "portal", &[]).url,
            "alice",
            PASSWORD,
        )
        .await;
    assert_eq!(res.status(), 429, "even the right password waits");
    // Unknown identifiers behave the same (no enumeration through throttling).
    for _ in 0..6 {
        app.browser()
            .sign_in(
                &auth_request(&app.issuer, "portal", &[]).url,
                "ghost",
                "Wrong#Pass1",
            )
            .await;
    }
    let res = app
        .browser()
        .sign_in(
            &auth_request(&app.issuer, "portal", &[]).url,
            "ghost",
            "Wrong#Pass1",
        )
        .await;
    assert_eq!(res.status(), 429);
    // The token endpoint answers 429 with Retry-After after many failed client authentications.
    let mut last = None;
    for _ in 0..61 {
        last = Some(
            app.http
                .post(app.url("/token"))
                .basic_auth("portal", Some("wrong"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status(), 429);
    assert!(last.headers().contains_key("retry-after"));
}

async fn parallel_sign_ins_of_one_account_all_succeed(backend: Backend) {
    // Throttling counts attempts in flight, but a clean account tolerates a burst.
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (b, url) = (app.browser(), auth_request(&app.issuer, "portal", &[]).url);
            tokio::spawn(async move { location(&b.sign_in(&url, "alice", PASSWORD).await) })
        })
        .collect();
    for t in tasks {
        let to = t.await.unwrap();
        assert!(query(&to).contains_key("code"), "{to}");
    }
}

async fn mail_waits_out_an_smtp_outage(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(backend, |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        s.mail.poll_seconds = 1;
        s.mail.retry_seconds = 1;
    })
    .await;
    app.create_user("alice").await;
    let b = app.browser();
    let html = b.get("/password/forgot").await.text().await.unwrap();
    let (_cid, answer) = captcha(&app, &html).await;
    b.submit(&html, 0, &[("username", "alice"), ("captcha", &answer)])
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        app.state.db.pending_mail_count().await.unwrap(),
        1,
        "kept while SMTP is down"
    );
    let (sink, _) = Sink::start(&format!("127.0.0.1:{port}")).await;
    let mail = sink.wait_for("alice@example.fr", 1).await;
    assert!(mail.contains("/password/reset/"));
    assert_eq!(app.state.db.pending_mail_count().await.unwrap(), 0);
}

async fn a_hash_made_with_weaker_settings_is_upgraded_at_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let user = app.create_user("alice").await;
    let weak_settings = sesame::config::PasswordSettings {
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        ..Default::default()
    };
    let weak = sesame::hashing::Passwords::new(&weak_settings)
        .unwrap()
        .hash(PASSWORD)
        .await
        .unwrap();
    let strong = user.password_hash.clone().unwrap();
    app.state
        .db
        .rehash_password(&user.id, &strong, &weak)
        .await
        .unwrap();
    let before = app.state.db.user_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(
        before.password_hash.as_deref(),
        Some(weak.as_str()),
        "stored weak"
    );
    app.signed_in("alice", "portal").await;
    let stored = app.state.db.user_by_id(&user.id).await.unwrap().unwrap();
    let stored = stored.password_hash.unwrap();
    assert!(stored.contains("m=19456,t=2,p=1"), "re-hashed: {stored}");
    assert_ne!(stored, weak);
}

both_backends!(
    a_hash_made_with_weaker_settings_is_upgraded_at_sign_in,
    f1_f3_temporary_password_then_forced_change_then_the_portal,
    f2_operator_reset_and_expire,
    f4_forgotten_password,
    f4_links_expire,
    f5_mon_compte,
    repeated_failures_are_throttled,
    parallel_sign_ins_of_one_account_all_succeed,
    mail_waits_out_an_smtp_outage,
);

#[tokio::test]
async fn without_smtp_mails_land_in_the_outbox_folder() {
    let app = TestApp::spawn_with(Backend::Embedded, |s| s.mail.poll_seconds = 1).await;
    app.create_user("alice").await;
    let b = app.browser();
    let html = b.get("/password/forgot").await.text().await.unwrap();
    let (_cid, answer) = captcha(&app, &html).await;
    b.submit(&html, 0, &[("username", "alice"), ("captcha", &answer)])
        .await;
    let dir = app.state.settings.mail.outbox_dir.clone();
    for _ in 0..50 {
        if std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) == 1 {
            let eml = std::fs::read_dir(&dir)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let raw = std::fs::read_to_string(eml).unwrap().replace("\r\n", "\n");
            assert!(crate::smtp::plain_text(&raw).contains("/password/reset/"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no .eml in {}", dir.display());
}
