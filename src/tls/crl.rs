//! Revocation lists kept in memory and refreshed, and the client-certificate verifier built
//! on them.
//!
//! webpki does the checks (signature of the CRL, serial lookup, a card whose CA has no CRL
//! is refused, nextUpdate when failing closed); this module only decides *which* CRLs it
//! gets, and swaps a freshly built `WebPkiClientVerifier` in when one changes, so that the
//! mTLS listener's `ServerConfig` and the proxy-header path see new CRLs without a restart.
//!
//! Two things webpki cannot know are checked here: a configured CRL that was never loaded
//! (with no CRL at all webpki would skip revocation, so we refuse instead), and the grace
//! period after nextUpdate (webpki can only enforce nextUpdate itself, which is the
//! fail-closed setting).

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};

use crate::config::{CrlSource, MtlsSettings};

/// How long a CRL download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A CRL is read again this long before its nextUpdate, so the new one is in hand in time.
const MARGIN_SECONDS: i64 = 300;
/// The longest wait before trying again after a failed read.
const RETRY_SECONDS: u64 = 60;
/// Real CRLs of a national PKI run to a few MiB; anything far larger is refused unread.
const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;
/// Clock skew tolerated on a CRL's thisUpdate.
const SKEW_SECONDS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("CRL {0}: {1}")]
    Read(String, String),
    #[error("CRL {0}: not a CRL: {1}")]
    Parse(String, String),
    #[error("CRL {0}: refused by the verifier: {1}")]
    Unusable(String, VerifierBuilderError),
    #[error("CRL {0}: not authentic: {1}")]
    Forged(String, String),
}

/// Why every certificate is refused for now: the status of revocation cannot be known.
#[derive(thiserror::Error)]
#[error("revocation status unknown: {0}")]
pub struct RevocationUnknown(pub String);

// rustls prints the errors it carries with `Debug`: let the handshake log read plainly.
impl std::fmt::Debug for RevocationUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// One CRL as last read.
#[derive(Debug, Clone)]
struct Crl {
    der: CertificateRevocationListDer<'static>,
    /// The issuer's name (DER): a slot keeps the CA of its first list.
    issuer: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
}

impl Crl {
    /// DER or PEM; the dates are read here to plan the next refresh. The list must be
    /// signed by one of the configured CAs and not dated in the future before it is kept:
    /// CRLs often travel over plain HTTP, and a forged one dated 2099 would otherwise
    /// refuse every card and shut out every genuine list after it.
    fn parse(
        source: &CrlSource,
        bytes: Vec<u8>,
        issuers: &[CertificateDer<'static>],
    ) -> Result<Self, CrlError> {
        let der = match CertificateRevocationListDer::from_pem_slice(&bytes) {
            Ok(c) => c,
            Err(_) => CertificateRevocationListDer::from(bytes),
        };
        let (_, crl) = x509_parser::parse_x509_crl(der.as_ref())
            .map_err(|e| CrlError::Parse(source.to_string(), e.to_string()))?;
        let forged = |why: &str| CrlError::Forged(source.to_string(), why.to_owned());
        let signed = issuers.iter().any(|ca| {
            x509_parser::parse_x509_certificate(ca.as_ref()).is_ok_and(|(_, ca)| {
                ca.subject() == crl.issuer() && crl.verify_signature(ca.public_key()).is_ok()
            })
        });
        if !signed {
            return Err(forged("not signed by a configured CA"));
        }
        if crl.last_update().timestamp() > now() + SKEW_SECONDS {
            return Err(forged("thisUpdate is in the future"));
        }
        Ok(Self {
            issuer: crl.issuer().as_raw().to_vec(),
            this_update: crl.last_update().timestamp(),
            next_update: crl.next_update().map(|t| t.timestamp()),
            der,
        })
    }
}

/// A configured CRL and what is known of it.
#[derive(Debug, Clone)]
struct Slot {
    source: CrlSource,
    crl: Option<Crl>,
    last_read_failed: bool,
}

/// The CRLs in force and the verifier built on them, replaced together.
#[derive(Debug)]
struct Current {
    slots: Vec<Slot>,
    verifier: Arc<dyn ClientCertVerifier>,
}

/// A `ClientCertVerifier` that delegates to a webpki verifier rebuilt whenever a CRL changes.
#[derive(Debug)]
pub struct LiveVerifier {
    roots: Arc<RootCertStore>,
    /// The CA certificates themselves, to authenticate a CRL before keeping it.
    issuers: Vec<CertificateDer<'static>>,
    /// 0 = fail closed at nextUpdate.
    grace_seconds: i64,
    refresh_seconds: u64,
    /// The roots never change, so their names are kept here (the trait lends them out).
    hints: Vec<DistinguishedName>,
    http: reqwest::Client,
    current: RwLock<Current>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn now() -> i64 {
    UnixTime::now().as_secs() as i64
}

impl LiveVerifier {
    /// Reads every CRL once. A file that cannot be read is a settings error; a URL that does
    /// not answer is not (certificates are refused until it does).
    pub async fn load(
        roots: RootCertStore,
        issuers: Vec<CertificateDer<'static>>,
        s: &MtlsSettings,
    ) -> Result<Arc<Self>, CrlError> {
        let roots = Arc::new(roots);
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| CrlError::Read("client".into(), e.to_string()))?;
        let grace_seconds = (s.crl_grace_hours as i64).saturating_mul(3600);
        let mut slots = Vec::new();
        for source in &s.crl {
            let read = read(&http, source, &issuers).await;
            if let (CrlSource::File(_), Err(e)) = (source, &read) {
                return Err(CrlError::Read(source.to_string(), e.to_string()));
            }
            if let Err(e) = &read {
                tracing::warn!(error = %e, "CRL not available: certificates are refused until it is");
            }
            slots.push(Slot {
                source: source.clone(),
                last_read_failed: read.is_err(),
                crl: read.ok(),
            });
        }
        let verifier = build(&roots, &slots, grace_seconds)
            .map_err(|e| CrlError::Unusable("mtls.crl".into(), e))?;
        Ok(Arc::new(Self {
            hints: verifier.root_hint_subjects().to_vec(),
            roots,
            issuers,
            grace_seconds,
            refresh_seconds: s.crl_refresh_seconds,
            http,
            current: RwLock::new(Current { slots, verifier }),
        }))
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // A poisoned lock only means a panic elsewhere mid-swap; the data is whole.
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads CRL `index` again and swaps the verifier if it changed.
    async fn refresh(&self, index: usize) -> Result<(), CrlError> {
        let Some(source) = self.current().slots.get(index).map(|s| s.source.clone()) else {
            return Ok(());
        };
        let result = match read(&self.http, &source, &self.issuers).await {
            Ok(crl) => self.install(index, crl),
            Err(e) => Err(e),
        };
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = cur.slots.get_mut(index) {
            slot.last_read_failed = result.is_err();
        }
        result
    }

    fn install(&self, index: usize, crl: Crl) -> Result<(), CrlError> {
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = cur.slots.get(index) else {
            return Ok(());
        };
        if let Some(old) = &slot.crl {
            if old.der == crl.der {
                return Ok(());
            }
            // Another CA's genuine list served at this address must not stand in for this one.
            if old.issuer != crl.issuer {
                return Err(CrlError::Forged(
                    slot.source.to_string(),
                    "issued by another CA than the list in hand".into(),
                ));
            }
            // An older list (a replay by whoever serves it) must not undo revocations.
            if crl.this_update < old.this_update {
                return Err(CrlError::Read(
                    slot.source.to_string(),
                    "older than the CRL in hand; ignored".into(),
                ));
            }
        }
        let mut slots = cur.slots.clone();
        let source = slot.source.to_string();
        if let Some(s) = slots.get_mut(index) {
            s.crl = Some(crl);
        }
        let verifier = build(&self.roots, &slots, self.grace_seconds)
            .map_err(|e| CrlError::Unusable(source.clone(), e))?;
        tracing::info!(crl = %source, "CRL updated");
        *cur = Current { slots, verifier };
        Ok(())
    }

    /// Why no certificate can be accepted now, if so.
    fn refusal(&self, cur: &Current, now: i64) -> Option<RevocationUnknown> {
        cur.slots.iter().find_map(|slot| match &slot.crl {
            None => Some(RevocationUnknown(format!(
                "CRL {} could not be read yet",
                slot.source
            ))),
            Some(Crl {
                next_update: Some(next),
                ..
            }) if self.grace_seconds > 0 && now >= next.saturating_add(self.grace_seconds) => {
                Some(RevocationUnknown(format!(
                    "CRL {} is past its nextUpdate and the grace period",
                    slot.source
                )))
            }
            _ => None,
        })
    }

    fn delay(&self, index: usize) -> Duration {
        let cur = self.current();
        let slot = cur.slots.get(index);
        next_refresh(
            now(),
            slot.and_then(|s| s.crl.as_ref())
                .and_then(|c| c.next_update),
            self.refresh_seconds,
            slot.is_none_or(|s| s.last_read_failed),
        )
    }

    /// One task per CRL, ending when the verifier is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) {
        for index in 0..self.current().slots.len() {
            let weak: Weak<Self> = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let Some(delay) = weak.upgrade().map(|v| v.delay(index)) else {
                        return;
                    };
                    tokio::time::sleep(delay).await;
                    let Some(v) = weak.upgrade() else { return };
                    if let Err(e) = v.refresh(index).await {
                        tracing::warn!(error = %e, "CRL refresh failed; keeping the one in hand");
                    }
                }
            });
        }
    }
}

/// The webpki verifier for these CRLs (those not read yet are left out: `refusal` covers them).
fn build(
    roots: &Arc<RootCertStore>,
    slots: &[Slot],
    grace_seconds: i64,
) -> Result<Arc<dyn ClientCertVerifier>, VerifierBuilderError> {
    let crls = slots
        .iter()
        .filter_map(|s| s.crl.as_ref().map(|c| c.der.clone()));
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .with_crls(crls)
        .allow_unauthenticated();
    if grace_seconds == 0 {
        // Fail closed: webpki refuses once a CRL is past its nextUpdate.
        builder = builder.enforce_revocation_expiration();
    }
    builder.build()
}

async fn read(
    http: &reqwest::Client,
    source: &CrlSource,
    issuers: &[CertificateDer<'static>],
) -> Result<Crl, CrlError> {
    let fail = |e: &dyn std::fmt::Display| CrlError::Read(source.to_string(), e.to_string());
    let bytes = match source {
        CrlSource::File(path) => tokio::fs::read(path).await.map_err(|e| fail(&e))?,
        CrlSource::Url(url) => {
            let mut res = http
                .get(url.clone())
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| fail(&e))?;
            let mut bytes = Vec::new();
            while let Some(chunk) = res.chunk().await.map_err(|e| fail(&e))? {
                if bytes.len() + chunk.len() > MAX_CRL_BYTES {
                    return Err(fail(&"larger than 32 MiB"));
                }
                bytes.extend_from_slice(&chunk);
            }
            bytes
        }
    };
    Crl::parse(source, bytes, issuers)
}

/// When to read a CRL again: at the latest after `interval`, earlier when its nextUpdate
/// nears, and never sooner than the retry pace once it is due (or after a failure), so a
/// publisher late with its next list is polled, not hammered.
pub fn next_refresh(now: i64, next_update: Option<i64>, interval: u64, failed: bool) -> Duration {
    let interval = interval.max(1);
    let retry = interval.min(RETRY_SECONDS);
    let secs = if failed {
        retry
    } else {
        match next_update {
            Some(next) => {
                let before = next.saturating_sub(MARGIN_SECONDS).saturating_sub(now);
                u64::try_from(before).unwrap_or(0).clamp(retry, interval)
            }
            None => interval,
        }
    };
    Duration::from_secs(secs)
}

/// Unknown revocation status, from webpki or from us, reads the same in logs and audit rows.
fn unknown(reason: impl Into<String>) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        RevocationUnknown(reason.into()),
    ))))
}

impl ClientCertVerifier for LiveVerifier {
    fn offer_client_auth(&self) -> bool {
        self.current().verifier.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.current().verifier.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verifier = {
            let cur = self.current();
            if let Some(r) = self.refusal(&cur, now.as_secs() as i64) {
                return Err(unknown(r.0));
            }
            cur.verifier.clone()
        };
        verifier
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(
                    CertificateError::ExpiredRevocationList
                    | CertificateError::ExpiredRevocationListContext { .. },
                ) => unknown("a CRL is past its nextUpdate"),
                rustls::Error::InvalidCertificate(CertificateError::UnknownRevocationStatus) => {
                    unknown("no CRL for the issuing CA")
                }
                e => e,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = self.current().verifier.clone();
        verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verifier = self.current().verifier.clone();
        verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().verifier.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_before_next_update_and_retry_sooner() {
        let h = 3600;
        // Far from nextUpdate: the interval.
        assert_eq!(next_refresh(0, Some(10 * h), 3600, false).as_secs(), 3600);
        // nextUpdate within the interval: a margin before it.
        assert_eq!(next_refresh(0, Some(1800), 3600, false).as_secs(), 1500);
        // Due or past due: polled at the retry pace, not in a loop.
        assert_eq!(next_refresh(0, Some(10), 3600, false).as_secs(), 60);
        assert_eq!(next_refresh(0, Some(-h), 3600, false).as_secs(), 60);
        // After a failure, sooner; never more often than the interval allows.
        assert_eq!(next_refresh(0, None, 3600, true).as_secs(), 60);
        assert_eq!(next_refresh(0, None, 1, true).as_secs(), 1);
        assert_eq!(next_refresh(0, None, 1, false).as_secs(), 1);
        assert_eq!(next_refresh(0, None, 0, false).as_secs(), 1);
    }
}
