//! Client certificates: the verifier (chain to the configured CAs, validity dates, EKU
//! clientAuth, revocation by CRL — webpki through rustls, ring only), the national identifier
//! read from the card, and the dedicated mTLS listener where a browser is asked for a card
//! only when the person chose « Authentification par certificat client ».

pub mod crl;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::server::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tower::ServiceExt;

use crate::config::{CertIdentity, Settings};
use crate::domain::national_id::NationalId;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}: {1}")]
    Load(String, String),
    #[error(transparent)]
    Crl(#[from] crl::CrlError),
    #[error("certificate refused: {0}")]
    Invalid(String),
    #[error("no national identifier in the certificate: {0}")]
    NoIdentity(String),
}

/// The peer's certificate chain, put into each request by the mTLS accept loop.
#[derive(Clone, Default)]
pub struct PeerChain(pub Option<Arc<Vec<CertificateDer<'static>>>>);

#[derive(Clone)]
pub struct ClientCerts {
    /// Shared by the mTLS listener and the proxy-header path; follows CRL refreshes.
    verifier: Arc<crl::LiveVerifier>,
    identity: CertIdentity,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ClientCerts {
    /// `None` when no CA bundle is configured (certificate login off). Reads the CRLs once;
    /// [`Self::spawn_crl_refresh`] keeps them fresh.
    pub async fn from_settings(s: &Settings) -> Result<Option<Self>, CertError> {
        let Some(ca) = &s.mtls.client_ca else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        let mut issuers = Vec::new();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| load(ca, e))? {
            let cert = cert.map_err(|e| load(ca, e))?;
            issuers.push(cert.clone());
            roots.add(cert).map_err(|e| load(ca, e))?;
        }
        if roots.is_empty() {
            return Err(load(ca, "no certificate in the bundle"));
        }
        if s.mtls.crl.is_empty() {
            tracing::warn!(
                ca = %ca.display(),
                "certificate login WITHOUT revocation checks (mtls.crl_required = false): \
                 a lost or stolen card still signs in"
            );
        }
        let verifier = crl::LiveVerifier::load(roots, issuers, &s.mtls).await?;
        Ok(Some(Self {
            verifier,
            identity: s.mtls.identity,
        }))
    }

    /// Background refresh of the CRLs (one task each; they end with the last clone).
    pub fn spawn_crl_refresh(&self) {
        self.verifier.spawn_refresh();
    }

    /// Checks the chain and reads the national identifier from the end-entity certificate.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<NationalId, CertError> {
        let (end, intermediates) = chain
            .split_first()
            .ok_or_else(|| CertError::Invalid("no certificate".into()))?;
        self.verifier
            .verify_client_cert(end, intermediates, UnixTime::now())
            .map_err(|e| match e {
                // Ours (revocation status unknown): its own words, not rustls's Debug form.
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
                    CertError::Invalid(o.to_string())
                }
                e => CertError::Invalid(e.to_string()),
            })?;
        national_id(end, self.identity)
    }

    /// The TLS configuration of the mTLS listener: a card is asked for, never required at
    /// the handshake (so a missing one gets a readable page, not a TLS alert).
    pub fn server_config(&self, s: &Settings) -> Result<ServerConfig, CertError> {
        let (cert, key) = (
            s.tls.cert.as_ref().expect("validated"),
            s.tls.key.as_ref().expect("validated"),
        );
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| load(cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| load(cert, e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| load(key, e))?;
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| load(cert, e))?
            .with_client_cert_verifier(self.verifier.clone() as Arc<dyn ClientCertVerifier>)
            .with_single_cert(chain, key)
            .map_err(|e| load(cert, e))?;
        // No resumption: a resumed session skips the certificate check, so a card revoked
        // since (or a CRL gone stale) would still get in; and each sign-in should prove the
        // card is present.
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

fn load(path: &Path, e: impl std::fmt::Display) -> CertError {
    CertError::Load(path.display().to_string(), e.to_string())
}

const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

/// The national identifier where the settings say it is: SAN otherName UPN or subject CN.
pub fn national_id(
    cert: &CertificateDer<'_>,
    identity: CertIdentity,
) -> Result<NationalId, CertError> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| CertError::Invalid(e.to_string()))?;
    match identity {
        CertIdentity::SanUpn => {
            let san = x509
                .subject_alternative_name()
                .ok()
                .flatten()
                .ok_or_else(|| CertError::NoIdentity("no SAN".into()))?;
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::OtherName(oid, value) = name
                    && oid.to_id_string() == UPN_OID
                    && let Some(upn) = der_utf8(value)
                {
                    return NationalId::from_upn(&upn).map_err(CertError::NoIdentity);
                }
            }
            Err(CertError::NoIdentity("no UPN in the SAN".into()))
        }
        CertIdentity::SubjectCn => {
            let cn = x509
                .subject()
                .iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok())
                .unwrap_or("");
            NationalId::from_cn(cn).map_err(CertError::NoIdentity)
        }
    }
}

/// The string inside an otherName value: `[0] EXPLICIT` around a UTF8String (IA5 and
/// Printable accepted), read with asn1-rs (x509-parser's own DER reader).
fn der_utf8(bytes: &[u8]) -> Option<String> {
    use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
    let (_, outer) = Any::from_der(bytes).ok()?;
    let value = if outer.class() == Class::ContextSpecific && outer.tag() == Tag(0) {
        Any::from_der(outer.data).ok()?.1
    } else {
        outer
    };
    matches!(
        value.tag(),
        Tag::Utf8String | Tag::Ia5String | Tag::PrintableString
    )
    .then(|| String::from_utf8_lossy(value.data).into_owned())
}

/// The header in which a proxy proves itself (see `mtls.proxy_secret`).
pub const PROXY_SECRET_HEADER: &str = "sesame-proxy-secret";

/// A client certificate forwarded by a TLS-terminating proxy, read only when everything
/// holds: the peer is one of `mtls.trusted_proxies`, the request is for the certificate host
/// (`mtls.url`), and it carries the proxy's secret. CPS certificates are public, so a header
/// anyone could write would be a card anyone could present.
pub fn forwarded_chain(
    s: &Settings,
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
) -> Option<Vec<CertificateDer<'static>>> {
    let m = &s.mtls;
    let format = m.proxy_header?;
    if !m.trusted_proxies.iter().any(|p| p.contains(peer)) {
        return None;
    }
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    if !host.eq_ignore_ascii_case(&s.certificate_host()?) {
        return None;
    }
    let sent = headers.get(PROXY_SECRET_HEADER)?.as_bytes();
    let secret = m.proxy_secret.as_deref()?.as_bytes();
    if !crate::crypto::ct_eq(&crate::crypto::sha256(sent), &crate::crypto::sha256(secret)) {
        return None;
    }
    from_header(format, headers)
}

/// RFC 9440 `Client-Cert` (`:base64-DER:`, + `Client-Cert-Chain`), or nginx's
/// `$ssl_client_escaped_cert` (URL-encoded PEM) in `X-SSL-Client-Cert`: the one configured.
fn from_header(
    format: crate::config::ProxyHeader,
    headers: &axum::http::HeaderMap,
) -> Option<Vec<CertificateDer<'static>>> {
    use crate::config::ProxyHeader;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let one = |name: &str| {
        let mut all = headers.get_all(name).iter();
        let v = all.next()?;
        // Two copies: one of them was not written by the proxy.
        all.next().is_none().then_some(v)?.to_str().ok()
    };
    match format {
        ProxyHeader::ClientCert => {
            let der = b64
                .decode(one("client-cert")?.trim().trim_matches(':'))
                .ok()?;
            let mut chain = vec![CertificateDer::from(der)];
            if let Some(rest) = one("client-cert-chain") {
                for item in rest.split(',') {
                    chain.push(CertificateDer::from(
                        b64.decode(item.trim().trim_matches(':')).ok()?,
                    ));
                }
            }
            Some(chain)
        }
        ProxyHeader::XSslClientCert => {
            let v = one("x-ssl-client-cert")?;
            let pem: String =
                url::form_urlencoded::parse(format!("x={}", v.replace('+', "%2B")).as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .next()?;
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .filter_map(Result::ok)
                    .collect();
            (!chain.is_empty()).then_some(chain)
        }
    }
}

/// How the certificate-login listener bounds its clients (from `mtls.*`).
#[derive(Debug, Clone, Copy)]
pub struct MtlsLimits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// To finish the handshake, then again to send the request headers.
    pub handshake: Duration,
    /// The whole connection (one request and its answer).
    pub connection: Duration,
}

impl MtlsLimits {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            max_connections: s.mtls.max_connections,
            handshake: Duration::from_secs(s.mtls.handshake_timeout_seconds),
            connection: Duration::from_secs(s.mtls.handshake_timeout_seconds * 3),
        }
    }
}

/// Serves `app` over TLS on `addr`, putting each connection's client chain into its requests.
pub async fn serve_mtls(
    addr: SocketAddr,
    config: ServerConfig,
    app: Router,
    limits: MtlsLimits,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_mtls_on(listener, config, app, limits).await
}

/// One sign-in per connection: the card proves itself in the handshake, so a second
/// request on a kept-alive connection would sign in whoever sits at the workstation next as
/// the previous card holder. HTTP/1.1 only (no HTTP/2 streams), no keep-alive, timeouts for
/// the handshake, the headers and the whole exchange, a cap on connections, and an accept
/// loop that outlives its errors (file descriptors run out, then come back).
pub async fn serve_mtls_on(
    listener: tokio::net::TcpListener,
    mut config: ServerConfig,
    app: Router,
    limits: MtlsLimits,
) -> std::io::Result<()> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tracing::info!(addr = %listener.local_addr()?, "certificate-login listener");
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "certificate-login listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let chain = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect()));
            let svc = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerChain(chain.clone()));
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.handshake)
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
            if tokio::time::timeout(limits.connection, conn).await.is_err() {
                tracing::info!(%peer, "certificate-login connection timed out");
            }
        });
    }
}
