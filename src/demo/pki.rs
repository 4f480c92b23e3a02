//! The demo's own test PKI, so that « Authentification par certificat client » works out of
//! the box: a CA, a server certificate for the mTLS listener (127.0.0.1 and localhost), and a
//! card whose SAN UPN carries a valid national identifier, as a CPS card does.
//!
//! Made once and kept in the demo folder, so that what a browser imported stays valid across
//! restarts. The CA's private key is never written: nothing can be signed with it later, and
//! its name constraints (localhost, 127.0.0.0/8) keep a browser that trusts it from trusting
//! it for any real site.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, OtherNameValue,
    SanType, date_time_ymd,
};

use crate::domain::national_id::{NationalId, with_check_digit};

/// The PKCS#12 file's password (a browser asks for one when importing).
pub const P12_PASSWORD: &str = "demo";
/// The card's RPPS number without its check digit.
const RPPS: &str = "1000765432";
/// The UPN otherName of Microsoft's smart-card logon, used by IGC-Santé.
const UPN_OID: [u64; 10] = [1, 3, 6, 1, 4, 1, 311, 20, 2, 3];

/// Where the files are.
pub struct DemoPki {
    pub dir: PathBuf,
    pub national_id: NationalId,
}

impl DemoPki {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn card_cert(&self) -> PathBuf {
        self.dir.join("card.pem")
    }
    pub fn card_key(&self) -> PathBuf {
        self.dir.join("card.key")
    }
    pub fn card_p12(&self) -> PathBuf {
        self.dir.join("card.p12")
    }

    fn files(&self) -> [PathBuf; 6] {
        [
            self.ca(),
            self.server_cert(),
            self.server_key(),
            self.card_cert(),
            self.card_key(),
            self.card_p12(),
        ]
    }

    /// The PKI in `dir`, made there on first use (or when a file is missing).
    pub fn open_or_create(dir: &Path) -> anyhow::Result<Self> {
        let national_id = NationalId::parse(&format!("8{}", with_check_digit(RPPS)))
            .map_err(anyhow::Error::msg)?;
        let pki = Self {
            dir: dir.to_owned(),
            national_id,
        };
        if !pki.files().iter().all(|f| f.exists()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            pki.create().context("making the demo PKI")?;
        }
        Ok(pki)
    }

    fn create(&self) -> anyhow::Result<()> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "Sésame démo — AC de test");
        ca.distinguished_name
            .push(DnType::OrganizationName, "Sésame (démo, ne pas utiliser)");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![
                GeneralSubtree::DnsName("localhost".into()),
                GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([127, 0, 0, 0], 8)),
            ],
            excluded_subtrees: Vec::new(),
        });
        validity(&mut ca);
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::from_params(&ca, &ca_key);

        let mut server = CertificateParams::new(vec!["localhost".to_owned()])?;
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut server);
        let server_key = KeyPair::generate()?;
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let mut card = CertificateParams::new(Vec::<String>::new())?;
        card.distinguished_name.push(
            DnType::CommonName,
            format!("{}/Camille MARTIN", self.national_id),
        );
        let upn = format!(
            "8.{}@carte-cps.fr",
            self.national_id.as_str().trim_start_matches('8')
        );
        card.subject_alt_names.push(SanType::OtherName((
            UPN_OID.to_vec(),
            OtherNameValue::Utf8String(upn),
        )));
        card.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        card.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut card);
        let card_key = KeyPair::generate()?;
        let card_cert = card.signed_by(&card_key, &issuer)?;

        let p12 = pkcs12(
            card_key.serialized_der(),
            card_cert.der(),
            ca_cert.der(),
            &self.national_id,
        )?;
        write(&self.ca(), ca_cert.pem().as_bytes(), false)?;
        write(&self.server_cert(), server_cert.pem().as_bytes(), false)?;
        write(
            &self.server_key(),
            server_key.serialize_pem().as_bytes(),
            true,
        )?;
        write(&self.card_cert(), card_cert.pem().as_bytes(), false)?;
        write(&self.card_key(), card_key.serialize_pem().as_bytes(), true)?;
        write(&self.card_p12(), &p12, true)
    }
}

/// Twenty years from 2025: the files outlive any demo, and no date is past 2049 (UTCTime).
fn validity(p: &mut CertificateParams) {
    (p.not_before, p.not_after) = (date_time_ymd(2025, 1, 1), date_time_ymd(2045, 1, 1));
}

/// The card and its CA in one password-protected file, as browsers import a certificate.
fn pkcs12(key: &[u8], cert: &[u8], ca: &[u8], id: &NationalId) -> anyhow::Result<Vec<u8>> {
    use p12_keystore::{
        Certificate, KeyStore, KeyStoreEntry, LocalKeyId, PrivateKey, PrivateKeyChain,
    };
    let chain = PrivateKeyChain::new(
        LocalKeyId(crate::crypto::sha256(cert).to_vec()),
        PrivateKey::from_der(key)?,
        [Certificate::from_der(cert)?, Certificate::from_der(ca)?],
    );
    let mut store = KeyStore::new();
    store.add_entry(
        &format!("Carte démo {id}"),
        KeyStoreEntry::PrivateKeyChain(chain),
    );
    Ok(store.writer(P12_PASSWORD).write()?)
}

/// Private keys are readable by their owner only.
fn write(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    use std::io::Write;
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_kept_and_consistent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = DemoPki::open_or_create(dir.path()).expect("made");
        let ca = std::fs::read(pki.ca()).expect("ca.pem");
        let again = DemoPki::open_or_create(dir.path()).expect("kept");
        assert_eq!(
            std::fs::read(again.ca()).expect("ca.pem"),
            ca,
            "not made anew"
        );
        assert!(
            !dir.path().join("ca.key").exists(),
            "the CA key is not kept"
        );

        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let card = CertificateDer::from_pem_file(pki.card_cert()).expect("card.pem");
        let id = crate::tls::national_id(&card, crate::config::CertIdentity::SanUpn)
            .expect("a UPN with a valid identifier");
        assert_eq!(id, pki.national_id);

        let p12 = std::fs::read(pki.card_p12()).expect("card.p12");
        let store = p12_keystore::KeyStore::from_pkcs12(
            &p12,
            P12_PASSWORD,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .expect("opens with the printed password");
        let (_, chain) = store.private_key_chain().expect("the card's key");
        assert_eq!(
            chain.certs().first().map(|c| c.as_der()),
            Some(card.as_ref())
        );
    }
}
