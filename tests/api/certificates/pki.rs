//! The test PKI (rcgen): a CA, cards good and bad, CRLs, and a CRL distribution point.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, OtherNameValue,
    RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};
use sesame::config::CrlSource;
use time::OffsetDateTime;

pub(super) struct Ca {
    pub(super) params: CertificateParams,
    pub(super) key: KeyPair,
    pub(super) pem: String,
}

pub(super) fn ca(name: &str) -> Ca {
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

pub(super) struct Card {
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
    pub(super) der: Vec<u8>,
}

pub(super) fn card(
    ca: &Ca,
    national_id: &str,
    serial: u64,
    expired: bool,
    client_auth: bool,
) -> Card {
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
pub(super) fn crl_pem(
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

pub(super) fn rpps_id(ten: &str) -> String {
    format!("8{}", sesame::domain::national_id::with_check_digit(ten))
}

pub(super) struct Pki {
    pub(super) good: Card,
    pub(super) expired: Card,
    pub(super) foreign: Card,
    pub(super) revoked: Card,
    pub(super) server_auth_only: Card,
    pub(super) unbound: Card,
    pub(super) dir: tempfile::TempDir,
    pub(super) ca_pem: String,
    /// The CA itself, to publish new CRLs.
    pub(super) ca: Ca,
}

pub(super) fn pki() -> Pki {
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

/// The test CA's CRL distribution point: serves what was last published, or 503 (down).
#[derive(Clone, Default)]
pub(super) struct Publisher(Arc<Mutex<Option<String>>>);

impl Publisher {
    /// Serves on 127.0.0.1:0; returns the publisher and the CRL's URL.
    pub(super) async fn start(first: String) -> (Self, CrlSource) {
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

    pub(super) fn publish(&self, crl: Option<String>) {
        *self.0.lock().unwrap() = crl;
    }
}

pub(super) fn hours(h: i64) -> time::Duration {
    time::Duration::hours(h)
}
