//! The dedicated mTLS listener: a card in the handshake, one sign-in per connection.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::pki::{Card, Pki, pki};
use super::{app_tweaked, app_with, start};
use crate::both_backends;
use crate::helpers::{Backend, REDIRECT, TestApp, location};

/// Starts the mTLS listener of `app` on a free port; returns the port.
pub(super) async fn mtls_listener(app: &TestApp) -> u16 {
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
pub(super) fn tls_client(pki: &Pki, card: Option<&Card>) -> reqwest::Client {
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

both_backends!(
    cards_through_the_mtls_listener,
    one_sign_in_per_mtls_connection,
);
