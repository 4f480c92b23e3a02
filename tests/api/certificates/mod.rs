//! Certificate login with a test PKI made by rcgen: a good card, an expired one, one from
//! another CA, one revoked by CRL, one without clientAuth, one bound to no account; through
//! the mTLS listener and through a trusted proxy's header (RFC 9440 and nginx forms); and
//! CRLs published at a URL by the test CA: refreshed, stale, unreachable.

use std::time::Duration;

use sesame::config::{CrlSource, ProxyHeader, Settings};
use time::OffsetDateTime;

mod mtls;
mod pki;

use mtls::{mtls_listener, tls_client};
use pki::{Card, Pki, Publisher, ca, crl_pem, hours, pki, rpps_id};

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, location, query,
};

async fn app_with(backend: Backend, pki: &Pki, trusted: bool) -> (TestApp, String) {
    app_tweaked(backend, pki, trusted, |_| {}).await
}

/// `app_with`, then `tweak` on the settings (e.g. other CRLs).
async fn app_tweaked(
    backend: Backend,
    pki: &Pki,
    trusted: bool,
    tweak: impl FnOnce(&mut Settings),
) -> (TestApp, String) {
    let d = pki.dir.path().to_owned();
    let app = TestApp::spawn_with(backend, |s| {
        s.mtls.client_ca = Some(d.join("ca.pem"));
        s.mtls.crl = vec![d.join("crl.pem").into()];
        s.tls.cert = Some(d.join("server.pem"));
        s.tls.key = Some(d.join("server.key"));
        if trusted {
            s.mtls.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            s.mtls.proxy_header = Some(ProxyHeader::ClientCert);
            s.mtls.proxy_secret = Some(PROXY_SECRET.into());
        }
        s.mtls.url = Some("https://carte.example.fr".into());
        tweak(s);
    })
    .await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let alice = app.create_user("alice").await;
    app.state
        .db
        .bind_certificate(&rpps_id("1000123456"), &alice.id)
        .await
        .unwrap();
    (app, secret)
}

/// Starts a sign-in; returns the interaction uid.
async fn start(app: &TestApp, b: &Browser) -> (String, crate::helpers::AuthRequest) {
    let req = auth_request(&app.issuer, "portal", &[]);
    let res = b.get(&req.url).await;
    let page = location(&res);
    let html = b.get(&page).await.text().await.unwrap();
    assert!(
        html.contains("Authentification par certificat client"),
        "the F6 choice"
    );
    (page.trim_start_matches("/interaction/").to_owned(), req)
}

/// What the test proxy sends in `Sesame-Proxy-Secret`.
const PROXY_SECRET: &str = "a-proxy-secret-of-at-least-32-characters";
/// The certificate host of `app_tweaked` (`mtls.url`).
const CARD_HOST: &str = "carte.example.fr";

/// The card as a trusted TLS-terminating proxy forwards it (RFC 9440 `Client-Cert`), on the
/// certificate host, with its secret.
async fn via_proxy(app: &TestApp, uid: &str, card: &Card) -> reqwest::Response {
    forwarded(
        app,
        uid,
        &[
            ("host", CARD_HOST),
            ("sesame-proxy-secret", PROXY_SECRET),
            ("client-cert", &rfc9440(card)),
        ],
    )
    .await
}

/// `/certificate/{uid}` on the main listener with these headers.
async fn forwarded(app: &TestApp, uid: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.http.get(app.url(&format!("/certificate/{uid}")));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn rfc9440(card: &Card) -> String {
    format!(
        ":{}:",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &card.der)
    )
}

async fn the_owner_unbinds_a_card_from_mon_compte(backend: Backend) {
    let pki = pki();
    let (app, _) = app_with(backend, &pki, true).await;
    // alice's card is bound by app_with; she signs in with her password and removes it.
    let alice = app.signed_in("alice", "portal").await;
    let account = alice.get("/account").await.text().await.unwrap();
    let id = rpps_id("1000123456");
    assert!(account.contains(&id), "the bound card is listed");
    let i = crate::helpers::forms(&account)
        .iter()
        .position(|f| f.action == "/account/certificates/remove")
        .expect("a remove form");
    let wrong = alice
        .submit(&account, i, &[("password", "Wrong#Pass1")])
        .await;
    assert_eq!(wrong.status(), 400, "the password is asked");
    assert_eq!(try_card(&app, &pki.good).await.0, 303, "still bound");
    let done = alice.submit(&account, i, &[("password", PASSWORD)]).await;
    assert_eq!(done.status(), 200);
    assert_eq!(
        alice.get("/account").await.status(),
        401,
        "a lost card ends the account's sessions"
    );
    assert_eq!(app.state.db.user_for_certificate(&id).await.unwrap(), None);
    let (status, _) = try_card(&app, &pki.good).await;
    assert_eq!(status, 403, "the card signs no one in any more");
    assert!(
        app.audit_events()
            .await
            .contains(&"certificate_unbound_by_owner".to_string())
    );
}

async fn cards_through_a_trusted_proxy(backend: Backend) {
    let pki = pki();
    let (app, secret) = app_with(backend, &pki, true).await;
    for (name, c) in [
        ("expired", &pki.expired),
        ("other CA", &pki.foreign),
        ("revoked", &pki.revoked),
        ("no clientAuth", &pki.server_auth_only),
        ("unbound", &pki.unbound),
    ] {
        let b = app.browser();
        let (uid, _) = start(&app, &b).await;
        let res = via_proxy(&app, &uid, c).await;
        assert_eq!(res.status(), 403, "{name}");
        assert!(
            res.text().await.unwrap().contains(if name == "unbound" {
                "associé à aucun compte"
            } else {
                "pas accepté"
            }),
            "{name}"
        );
    }
    let b = app.browser();
    let (uid, req) = start(&app, &b).await;
    let res = via_proxy(&app, &uid, &pki.good).await;
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(back.contains(&format!("/interaction/{uid}/certificate?token=")));
    // The token is worthless in another browser, and good once in the one that started.
    assert_eq!(app.browser().get(&back).await.status(), 400);
    let res = b.get(&back).await;
    let code = query(&location(&res))["code"].clone();
    assert!(location(&res).starts_with(REDIRECT));
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(claims["acr"], "urn:sesame:loa:2");
    assert_eq!(claims["amr"], serde_json::json!(["sc", "pin", "mfa"]));
    assert_eq!(b.get(&back).await.status(), 400, "single use");

    let events = app.audit_events().await;
    assert!(
        events.contains(&"certificate_refused".to_string())
            && events.contains(&"login_ok_certificate".to_string())
    );
}

/// nginx's `$ssl_client_escaped_cert` form, when it is the configured one.
async fn cards_through_nginx(backend: Backend) {
    let pki = pki();
    let (app, _) = app_tweaked(backend, &pki, true, |s| {
        s.mtls.proxy_header = Some(ProxyHeader::XSslClientCert);
    })
    .await;
    // nginx percent-encodes (ngx_escape_uri): spaces as %20, newlines as %0A, '+' as %2B.
    let escaped: String = pki
        .good
        .cert_pem
        .chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '\n' => "%0A".to_owned(),
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let nginx = [
        ("host", CARD_HOST),
        ("sesame-proxy-secret", PROXY_SECRET),
        ("x-ssl-client-cert", escaped.as_str()),
    ];
    let (uid, _) = start(&app, &app.browser()).await;
    assert_eq!(forwarded(&app, &uid, &nginx).await.status(), 303);
    let (uid, _) = start(&app, &app.browser()).await;
    let res = via_proxy(&app, &uid, &pki.good).await;
    assert_eq!(res.status(), 403, "the other format is not read");
}

/// The review's attack: CPS certificates are public, so a header that a client can get
/// through a trusted proxy is a card anyone can present. Only the proxy's own proof, on the
/// certificate host, with the one configured header, lets a forwarded certificate in.
async fn a_forwarded_certificate_needs_the_proxys_proof(backend: Backend) {
    let pki = pki();
    let (app, _) = app_tweaked(backend, &pki, true, |s| {
        // The ingress is trusted for client addresses as well: that must not matter.
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let card = rfc9440(&pki.good);
    let issuer_host = app.issuer.trim_start_matches("http://").to_owned();
    let attempts: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "no secret",
            vec![("host", CARD_HOST), ("client-cert", &card)],
        ),
        (
            "a wrong secret",
            vec![
                ("host", CARD_HOST),
                (
                    "sesame-proxy-secret",
                    "a-proxy-secret-of-at-least-32-characterz",
                ),
                ("client-cert", &card),
            ],
        ),
        (
            "the issuer's host",
            vec![
                ("host", &issuer_host),
                ("sesame-proxy-secret", PROXY_SECRET),
                ("client-cert", &card),
            ],
        ),
        (
            "the header twice",
            vec![
                ("host", CARD_HOST),
                ("sesame-proxy-secret", PROXY_SECRET),
                ("client-cert", &card),
                ("client-cert", &card),
            ],
        ),
        (
            "another header format",
            vec![
                ("host", CARD_HOST),
                ("sesame-proxy-secret", PROXY_SECRET),
                ("x-ssl-client-cert", &card),
            ],
        ),
        (
            "a forwarded-for hop",
            vec![
                ("host", CARD_HOST),
                ("x-forwarded-for", "127.0.0.1"),
                ("client-cert", &card),
            ],
        ),
    ];
    for (what, headers) in attempts {
        let (uid, _) = start(&app, &app.browser()).await;
        let res = forwarded(&app, &uid, &headers).await;
        assert_eq!(res.status(), 403, "{what}");
        assert!(
            res.text().await.unwrap().contains("Aucun certificat"),
            "{what}"
        );
    }
    let (uid, _) = start(&app, &app.browser()).await;
    assert_eq!(
        via_proxy(&app, &uid, &pki.good).await.status(),
        303,
        "the proxy itself"
    );
}

async fn the_header_is_ignored_from_anyone_else(backend: Backend) {
    let pki = pki();
    // Trusted for addresses only (an ingress, a sidecar): no certificate from it.
    let (app, _) = app_tweaked(backend, &pki, false, |s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let b = app.browser();
    let (uid, _) = start(&app, &b).await;
    let res = via_proxy(&app, &uid, &pki.good).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("Aucun certificat"));
}

/// Starts a sign-in with the unbound card; returns the sign-in page (with the card parked).
async fn present_unbound_card(
    app: &TestApp,
    pki: &Pki,
    b: &Browser,
) -> (String, crate::helpers::AuthRequest) {
    let (uid, req) = start(app, b).await;
    let res = via_proxy(app, &uid, &pki.unbound).await;
    assert_eq!(res.status(), 303, "a valid card, bound to no one yet");
    let res = b.get(&location(&res)).await;
    assert_eq!(location(&res), format!("/interaction/{uid}"));
    let login = b.get(&location(&res)).await.text().await.unwrap();
    assert!(login.contains("associée à aucun compte"), "{login}");
    (login, req)
}

async fn an_unbound_card_is_bound_only_after_two_factors(backend: Backend) {
    let pki = pki();
    let (sink, url) = crate::smtp::Sink::start("127.0.0.1:0").await;
    let (app, secret) = app_tweaked(backend, &pki, true, |s| {
        s.mtls.bind_on_first_use = true;
        s.mail.smtp_url = Some(url);
        s.mail.poll_seconds = 1;
    })
    .await;
    let unbound_id = rpps_id("1000999999");
    let bound_to = || async {
        app.state
            .db
            .user_for_certificate(&unbound_id)
            .await
            .unwrap()
    };

    // Bob: a password alone (which a forgotten-password reset, i.e. a mailbox, gives to
    // whoever holds the mailbox). He signs in at the password level; the card stays unbound
    // and no link is mailed: a mailbox must never lead to the two-factor level.
    app.create_user("bob").await;
    let b = app.browser();
    let (login, req) = present_unbound_card(&app, &pki, &b).await;
    let wrong = b
        .submit(
            &login,
            0,
            &[("username", "bob"), ("password", "Wrong#Pass1")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let res = b
        .submit(&login, 0, &[("username", "bob"), ("password", PASSWORD)])
        .await;
    let code = query(&location(&res))["code"].clone();
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd"]),
        "the card is not a factor"
    );
    assert_eq!(bound_to().await, None);
    assert!(
        app.audit_events()
            .await
            .contains(&"certificate_binding_refused".to_string())
    );
    let (uid, _) = start(&app, &app.browser()).await;
    assert_eq!(
        via_proxy(&app, &uid, &pki.unbound).await.status(),
        303,
        "the card is still bound to no one (met at first use again)"
    );

    // Carol has a second factor: her sign-in proves two, and binds the card at once.
    let carol = app.create_user("carol").await;
    let totp_secret = app.with_totp(&carol).await;
    let c = app.browser();
    let (login, req) = present_unbound_card(&app, &pki, &c).await;
    let res = c
        .submit(&login, 0, &[("username", "carol"), ("password", PASSWORD)])
        .await;
    let page = c.get(&location(&res)).await.text().await.unwrap();
    let otp = crate::helpers::totp_now(&totp_secret);
    let res = c.submit(&page, 0, &[("code", &otp)]).await;
    let code = query(&location(&res))["code"].clone();
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(bound_to().await, Some(carol.id.clone()));
    assert!(
        sink.wait_for("carol@example.fr", 1)
            .await
            .contains("a été ajouté")
    );

    // From now on the card alone signs Carol in.
    let d = app.browser();
    let (uid, req) = start(&app, &d).await;
    let res = via_proxy(&app, &uid, &pki.unbound).await;
    let res = d.get(&location(&res)).await;
    let code = query(&location(&res))["code"].clone();
    let claims = app.id_claims("portal", &secret, &code, &req.verifier).await;
    assert_eq!(claims["sub"], carol.id.as_str());
    assert_eq!(claims["amr"], serde_json::json!(["sc", "pin", "mfa"]));
    let events = app.audit_events().await;
    assert!(events.contains(&"certificate_bound".to_string()));
}

/// Signs `card` in through the trusted-proxy header; the status, and the refusal's audit
/// reason (empty when accepted).
async fn try_card(app: &TestApp, card: &Card) -> (u16, String) {
    let b = app.browser();
    let (uid, _) = start(app, &b).await;
    let res = via_proxy(app, &uid, card).await;
    let status = res.status().as_u16();
    if status != 403 {
        return (status, String::new());
    }
    let rows = app.state.db.recent_audit(100).await.unwrap();
    let reason = rows
        .iter()
        .find(|r| r.event == "certificate_refused")
        .map(|r| r.detail.clone())
        .unwrap_or_default();
    (status, reason)
}

async fn a_card_revoked_later_is_refused_after_the_crl_refresh(backend: Backend) {
    let pki = pki();
    let now = OffsetDateTime::now_utc();
    let (ca_site, url) =
        Publisher::start(crl_pem(&pki.ca, &[], now - hours(1), now + hours(24))).await;
    let (app, _) = app_tweaked(backend, &pki, true, |s| {
        s.mtls.crl = vec![url];
        s.mtls.crl_refresh_seconds = 1;
    })
    .await;
    let port = mtls_listener(&app).await;
    assert_eq!(try_card(&app, &pki.good).await.0, 303);
    let b = app.browser();
    let (uid, _) = start(&app, &b).await;
    let url = format!("https://127.0.0.1:{port}/certificate/{uid}");
    let res = tls_client(&pki, Some(&pki.good)).get(&url).send().await;
    assert_eq!(res.unwrap().status(), 303, "accepted by the listener too");

    // A forged list (same CA name, another key, dated ahead so as to shadow every genuine
    // list after it) is not kept: the card is still accepted after a few refreshes.
    let impostor = ca("IGC-Santé TEST");
    let far = now + hours(24 * 365 * 50);
    ca_site.publish(Some(crl_pem(&impostor, &[1], far, far + hours(24))));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        try_card(&app, &pki.good).await.0,
        303,
        "a forged CRL is ignored"
    );

    // The CA revokes the card (serial 1) and publishes a new list.
    ca_site.publish(Some(crl_pem(&pki.ca, &[1], now, now + hours(24))));
    let certs = app.state.certs.clone().unwrap();
    let good = rustls_pki_types::CertificateDer::from(pki.good.der.clone());
    let mut refused = false;
    for _ in 0..100 {
        if certs.verify(std::slice::from_ref(&good)).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the new CRL was picked up within 10 s");
    let (status, reason) = try_card(&app, &pki.good).await;
    assert_eq!(status, 403);
    assert!(reason.contains("Revoked"), "{reason}");
    assert!(
        tls_client(&pki, Some(&pki.good))
            .get(&url)
            .send()
            .await
            .is_err(),
        "the listener refuses it without a restart"
    );
}

/// A backend of the same kind with its own data, for a second server in one scenario.
async fn another(backend: &Backend) -> Backend {
    match backend {
        Backend::Embedded => Backend::Embedded,
        Backend::External { .. } => Backend::external().await.expect("up, as the first one"),
    }
}

async fn an_unreachable_crl_fails_closed_unless_a_grace_period(backend: Backend) {
    let pki = pki();
    let now = OffsetDateTime::now_utc();
    // The list in hand went past its nextUpdate an hour ago, and the URL is down since.
    let stale = crl_pem(&pki.ca, &[42], now - hours(48), now - hours(1));
    let (ca_site, url) = Publisher::start(stale).await;
    let app_with_grace = |grace: u64| {
        let url = url.clone();
        move |s: &mut Settings| {
            s.mtls.crl = vec![url];
            s.mtls.crl_refresh_seconds = 1;
            s.mtls.crl_grace_hours = grace;
        }
    };
    let (closed, _) = app_tweaked(another(&backend).await, &pki, true, app_with_grace(0)).await;
    let (grace, _) = app_tweaked(another(&backend).await, &pki, true, app_with_grace(24)).await;
    ca_site.publish(None);

    let (status, reason) = try_card(&closed, &pki.good).await;
    assert_eq!(status, 403, "fail closed");
    assert!(reason.contains("revocation status unknown"), "{reason}");
    assert_eq!(
        try_card(&grace, &pki.good).await.0,
        303,
        "within the grace period"
    );
    assert_eq!(
        try_card(&grace, &pki.revoked).await.0,
        403,
        "the stale list still counts"
    );

    // A CRL never fetched: the server starts, and refuses every card meanwhile.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/ca.crl", l.local_addr().unwrap())
    };
    let (never, _) = app_tweaked(backend, &pki, true, |s| {
        s.mtls.crl = vec![CrlSource::try_from(down).unwrap()];
        s.mtls.crl_grace_hours = 24;
    })
    .await;
    let (status, reason) = try_card(&never, &pki.good).await;
    assert_eq!(status, 403, "never fetched: refused, grace or not");
    assert!(reason.contains("revocation status unknown"), "{reason}");
}

both_backends!(
    the_owner_unbinds_a_card_from_mon_compte,
    an_unbound_card_is_bound_only_after_two_factors,
    cards_through_a_trusted_proxy,
    cards_through_nginx,
    a_forwarded_certificate_needs_the_proxys_proof,
    the_header_is_ignored_from_anyone_else,
    a_card_revoked_later_is_refused_after_the_crl_refresh,
    an_unreachable_crl_fails_closed_unless_a_grace_period
);

#[test]
fn bind_certificate_from_a_pem_file() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("card.pem"), &pki.good.cert_pem).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sesame"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("SESAME_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args([
            "user",
            "create",
            "jmartin",
            "--email",
            "j@x.fr",
            "--password-stdin",
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"Tres#Secret1").unwrap();
    assert!(child.wait().unwrap().success());
    let o = run(&["user", "bind-certificate", "jmartin", "--cert", "card.pem"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&rpps_id("1000123456")));
    // The owner is told of the new sign-in means: the mail waits in the outbox.
    let url = format!("sqlite://{}", dir.path().join("data/sesame.db").display());
    let queued = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = sesame::store::Db::open(&url).await.unwrap();
        db.pending_mail_count().await.unwrap()
    });
    assert_eq!(
        queued, 1,
        "one e-mail: the binding (the account had a chosen password)"
    );
    let o = run(&[
        "user",
        "bind-certificate",
        "jmartin",
        "--national-id",
        "812345678900",
    ]);
    assert!(!o.status.success(), "a wrong Luhn digit is refused");
}
