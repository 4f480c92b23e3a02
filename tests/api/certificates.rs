//! Certificate login with a test PKI made by rcgen: a good card, an expired one, one from
//! another CA, one revoked by CRL, one without clientAuth, one bound to no account; through
//! the mTLS listener and through a trusted proxy's header (RFC 9440 and nginx forms); and
//! CRLs published at a URL by the test CA: refreshed, stale, unreachable.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, OtherNameValue,
    RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};
use sesame::config::{CrlSource, ProxyHeader, Settings};
use time::OffsetDateTime;

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, location, query,
};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

struct Card {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn card(ca: &Ca, national_id: &str, serial: u64, expired: bool, client_auth: bool) -> Card {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, format!("{national_id}/Jeanne MARTIN"));
    p.subject_alt_names.push(SanType::OtherName((
        vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        OtherNameValue::Utf8String(format!("8.{}@carte-cps.fr", &national_id[1..])),
    )));
    p.extended_key_usages = vec![if client_auth {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    p.serial_number = Some(SerialNumber::from(serial));
    if expired {
        (p.not_before, p.not_after) = (date_time_ymd(2001, 1, 1), date_time_ymd(2002, 1, 1));
    } else {
        (p.not_before, p.not_after) = (date_time_ymd(2020, 1, 1), date_time_ymd(2090, 1, 1));
    }
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = p.signed_by(&key, &issuer).unwrap();
    Card {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// A CRL of `ca` revoking `serials`, in PEM.
fn crl_pem(
    ca: &Ca,
    serials: &[u64],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> String {
    CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(this_update.unix_timestamp() as u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: date_time_ymd(2025, 6, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&Issuer::from_params(&ca.params, &ca.key))
    .unwrap()
    .pem()
    .unwrap()
}

fn rpps_id(ten: &str) -> String {
    format!("8{}", sesame::domain::national_id::with_check_digit(ten))
}

struct Pki {
    good: Card,
    expired: Card,
    foreign: Card,
    revoked: Card,
    server_auth_only: Card,
    unbound: Card,
    dir: tempfile::TempDir,
    ca_pem: String,
    /// The CA itself, to publish new CRLs.
    ca: Ca,
}

fn pki() -> Pki {
    let a = ca("IGC-Santé TEST");
    let b = ca("Another CA");
    let id = rpps_id("1000123456");
    let pki_dir = tempfile::tempdir().unwrap();
    let revoked = card(&a, &id, 42, false, true);
    let crl = crl_pem(
        &a,
        &[42],
        date_time_ymd(2025, 1, 1),
        date_time_ymd(2090, 1, 1),
    );
    std::fs::write(pki_dir.path().join("ca.pem"), &a.pem).unwrap();
    std::fs::write(pki_dir.path().join("crl.pem"), crl).unwrap();
    // The mTLS listener's own certificate, for 127.0.0.1.
    let mut sp = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    sp.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap())];
    let skey = KeyPair::generate().unwrap();
    let server = sp
        .signed_by(&skey, &Issuer::from_params(&a.params, &a.key))
        .unwrap();
    std::fs::write(pki_dir.path().join("server.pem"), server.pem()).unwrap();
    std::fs::write(pki_dir.path().join("server.key"), skey.serialize_pem()).unwrap();
    Pki {
        good: card(&a, &id, 1, false, true),
        expired: card(&a, &id, 2, true, true),
        foreign: card(&b, &id, 3, false, true),
        revoked,
        server_auth_only: card(&a, &id, 4, false, false),
        unbound: card(&a, &rpps_id("1000999999"), 5, false, true),
        ca_pem: a.pem.clone(),
        ca: a,
        dir: pki_dir,
    }
}

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

/// Starts the mTLS listener of `app` on a free port; returns the port.
async fn mtls_listener(app: &TestApp) -> u16 {
    let certs = app.state.certs.clone().expect("configured");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = certs.server_config(&app.state.settings).unwrap();
    tokio::spawn(sesame::tls::serve_mtls_on(
        listener,
        config,
        sesame::login::certificate::mtls_router(app.state.clone()),
        sesame::tls::MtlsLimits::from_settings(&app.state.settings),
    ));
    port
}

/// A TLS connection to the mTLS listener presenting `card`, with nothing sent yet.
async fn raw_tls(
    pki: &Pki,
    card: &Card,
    port: u16,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from(card.der.clone())],
        PrivateKeyDer::from_pem_slice(card.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap().into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection (or 5 s of silence).
async fn read_all(conn: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {
                out.extend_from_slice(b"\n<still open>");
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The review's workstation: the card holder signs in and leaves; on the same kept-alive
/// connection the next person asks again. The card proved itself in the handshake only,
/// so a connection serves one sign-in and closes.
async fn one_sign_in_per_mtls_connection(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let pki = pki();
    let (app, _) = app_tweaked(backend, &pki, false, |s| {
        s.mtls.handshake_timeout_seconds = 1;
    })
    .await;
    let port = mtls_listener(&app).await;
    let (first, _) = start(&app, &app.browser()).await;
    let (second, _) = start(&app, &app.browser()).await;
    let mut conn = raw_tls(&pki, &pki.good, port).await;
    let get = |uid: &str| format!("GET /certificate/{uid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    conn.write_all(get(&first).as_bytes()).await.unwrap();
    conn.write_all(get(&second).as_bytes()).await.unwrap();
    let answer = read_all(&mut conn).await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    assert!(answer.contains(&format!("/interaction/{first}/certificate")));
    assert!(!answer.contains(&second), "{answer}");
    assert!(!answer.contains("<still open>"), "closed after one answer");

    // An idle connection is dropped after the handshake timeout, with or without TLS.
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let silent = read_all(&mut idle).await;
    assert!(!silent.contains("<still open>"), "no handshake: closed");
    let mut idle = raw_tls(&pki, &pki.good, port).await;
    let silent = read_all(&mut idle).await;
    assert!(!silent.contains("<still open>"), "no request: closed");

    // A card for no pending request signs no one in.
    let mut conn = raw_tls(&pki, &pki.good, port).await;
    conn.write_all(get("no-such-request").as_bytes())
        .await
        .unwrap();
    let answer = read_all(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(!answer.contains("certificate?token="), "{answer}");
}

/// A client that trusts the test CA and presents `card`.
fn tls_client(pki: &Pki, card: Option<&Card>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
    if let Some(c) = card {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{}{}", c.cert_pem, c.key_pem).as_bytes()).unwrap(),
        );
    }
    b.build().unwrap()
}

async fn cards_through_the_mtls_listener(backend: Backend) {
    let pki = pki();
    let (app, _) = app_with(backend, &pki, false).await;
    let port = mtls_listener(&app).await;
    let tls_client = |card: Option<&Card>| tls_client(&pki, card);
    let b = app.browser();
    let (uid, _) = start(&app, &b).await;
    let url = format!("https://127.0.0.1:{port}/certificate/{uid}");
    let none = tls_client(None).get(&url).send().await.unwrap();
    assert_eq!(none.status(), 403, "no card: a page, not a TLS failure");
    assert!(
        tls_client(Some(&pki.foreign))
            .get(&url)
            .send()
            .await
            .is_err(),
        "another CA fails the handshake"
    );
    assert!(
        tls_client(Some(&pki.revoked))
            .get(&url)
            .send()
            .await
            .is_err(),
        "a revoked card fails the handshake"
    );
    let res = tls_client(Some(&pki.good)).get(&url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let res = b.get(&location(&res)).await;
    assert!(location(&res).starts_with(REDIRECT), "back to the portal");
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

/// The test CA's CRL distribution point: serves what was last published, or 503 (down).
#[derive(Clone, Default)]
struct Publisher(Arc<Mutex<Option<String>>>);

impl Publisher {
    /// Serves on 127.0.0.1:0; returns the publisher and the CRL's URL.
    async fn start(first: String) -> (Self, CrlSource) {
        let p = Self::default();
        p.publish(Some(first));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ca.crl", listener.local_addr().unwrap());
        let state = p.clone();
        let app = axum::Router::new().route(
            "/ca.crl",
            axum::routing::get(move || {
                let crl = state.0.lock().unwrap().clone();
                async move {
                    match crl {
                        Some(pem) => (axum::http::StatusCode::OK, pem),
                        None => (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (p, CrlSource::try_from(url).unwrap())
    }

    fn publish(&self, crl: Option<String>) {
        *self.0.lock().unwrap() = crl;
    }
}

fn hours(h: i64) -> time::Duration {
    time::Duration::hours(h)
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
    cards_through_the_mtls_listener,
    one_sign_in_per_mtls_connection,
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
