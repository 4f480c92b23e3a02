//! Certificate login settings: the listener's certificate, the accepted CAs and their CRLs,
//! where the national identifier is read, and who may forward a verified card.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Settings, SettingsError};

/// The server certificate (PEM) used by the certificate-login listener.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Where the national identifier is read in a client certificate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CertIdentity {
    /// SAN otherName UPN `8.<RPPS>@carte-cps.fr` (IGC-Santé CPS cards).
    #[default]
    SanUpn,
    SubjectCn,
}

/// Certificate login (smart cards).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtlsSettings {
    /// The dedicated mTLS listener (off unless set); needs `tls.cert` and `tls.key`.
    pub listen: Option<SocketAddr>,
    /// Its public URL, for the link on the sign-in page (e.g. `https://carte.id.example.fr`).
    pub url: Option<String>,
    /// PEM bundle of the accepted CAs (the IGC-Santé chain in production).
    pub client_ca: Option<PathBuf>,
    /// CRLs (DER or PEM): file paths or `http(s)://` URLs, kept in memory and refreshed.
    pub crl: Vec<CrlSource>,
    /// Longest wait between two reads of a CRL (it is read sooner when its nextUpdate nears).
    pub crl_refresh_seconds: u64,
    /// How long a CRL past its nextUpdate is still used when no newer one can be had;
    /// 0 = fail closed: certificates are refused as soon as a CRL is out of date.
    pub crl_grace_hours: u64,
    pub identity: CertIdentity,
    /// TLS-terminating proxies (addresses or CIDR ranges) that may forward a verified client
    /// certificate in `proxy_header`, on the certificate route of `url`'s host only, and
    /// only with `proxy_secret`. Empty: forwarded certificates are never read.
    pub trusted_proxies: Vec<crate::forwarded::ProxyNet>,
    /// The one header format the proxy uses: `client-cert` (RFC 9440) or `x-ssl-client-cert`
    /// (nginx's `$ssl_client_escaped_cert`).
    pub proxy_header: Option<ProxyHeader>,
    /// A secret (at least 32 characters) the proxy sends in `Sesame-Proxy-Secret`: the proof
    /// that the certificate header was written by the proxy, not by a client through it.
    pub proxy_secret: Option<String>,
    /// Refuse to start with `client_ca` but no `crl`: a card revoked after loss or theft
    /// would still sign in. Set to `false` only on purpose (a test PKI, a CA without CRLs).
    pub crl_required: bool,
    /// Connections the mTLS listener serves at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client has to finish the TLS handshake and send its request headers.
    pub handshake_timeout_seconds: u64,
    /// A valid card bound to no account may be bound by signing in (password, and the second
    /// factor if the account has one) in the same request. Off by default: it lets whoever
    /// knows an account's password attach their own card to it (the owner is e-mailed).
    pub bind_on_first_use: bool,
}

impl Default for MtlsSettings {
    fn default() -> Self {
        Self {
            listen: None,
            url: None,
            client_ca: None,
            crl: Vec::new(),
            crl_refresh_seconds: 3600,
            crl_grace_hours: 0,
            identity: CertIdentity::default(),
            trusted_proxies: Vec::new(),
            proxy_header: None,
            proxy_secret: None,
            crl_required: true,
            max_connections: 256,
            handshake_timeout_seconds: 10,
            bind_on_first_use: false,
        }
    }
}

/// How a TLS-terminating proxy forwards the client certificate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// RFC 9440 `Client-Cert: :base64-DER:` (+ `Client-Cert-Chain`).
    ClientCert,
    /// nginx: `X-SSL-Client-Cert: $ssl_client_escaped_cert` (URL-encoded PEM).
    XSslClientCert,
}

impl ProxyHeader {
    pub fn name(self) -> &'static str {
        match self {
            ProxyHeader::ClientCert => "client-cert",
            ProxyHeader::XSslClientCert => "x-ssl-client-cert",
        }
    }
}

/// Where a CRL is read: a URL when it starts with `http://` or `https://`, else a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CrlSource {
    File(PathBuf),
    Url(url::Url),
}

impl TryFrom<String> for CrlSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.starts_with("http://") || s.starts_with("https://") {
            url::Url::parse(&s)
                .map(CrlSource::Url)
                .map_err(|e| format!("{s}: {e}"))
        } else if s.contains("://") {
            Err(format!("{s}: a CRL is a file path or an http(s) URL"))
        } else {
            Ok(CrlSource::File(s.into()))
        }
    }
}

impl From<CrlSource> for String {
    fn from(c: CrlSource) -> String {
        c.to_string()
    }
}

impl From<PathBuf> for CrlSource {
    fn from(p: PathBuf) -> Self {
        CrlSource::File(p)
    }
}

impl std::fmt::Display for CrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrlSource::File(p) => write!(f, "{}", p.display()),
            CrlSource::Url(u) => f.write_str(u.as_str()),
        }
    }
}

impl Settings {
    /// The certificate-login settings hold together: a listener has its certificate and CAs,
    /// CAs have CRLs (unless on purpose), a proxy proves itself.
    pub(super) fn validate_mtls(&self) -> Result<(), SettingsError> {
        if self.mtls.listen.is_some()
            && (self.tls.cert.is_none() || self.tls.key.is_none() || self.mtls.client_ca.is_none())
        {
            return Err(SettingsError::Invalid {
                key: "mtls.listen",
                expected: "tls.cert, tls.key and mtls.client_ca set as well".into(),
            });
        }
        self.validate_mtls_proxy()?;
        if self.mtls.client_ca.is_some() && self.mtls.crl.is_empty() && self.mtls.crl_required {
            return Err(SettingsError::Invalid {
                key: "mtls.crl",
                expected: "at least one CRL for mtls.client_ca (a lost or stolen card must stop \
                           signing in); set mtls.crl_required = false only on purpose"
                    .into(),
            });
        }
        if self.mtls.max_connections == 0 || self.mtls.handshake_timeout_seconds == 0 {
            return Err(SettingsError::Invalid {
                key: "mtls.max_connections",
                expected: "max_connections and handshake_timeout_seconds at least 1".into(),
            });
        }
        if self.mtls.crl_refresh_seconds == 0 {
            return Err(SettingsError::Invalid {
                key: "mtls.crl_refresh_seconds",
                expected: "at least 1".into(),
            });
        }
        Ok(())
    }

    /// A forwarded certificate needs all of: proxies, one header format, a secret, and a
    /// certificate host apart from the issuer's (the only place the header is read).
    fn validate_mtls_proxy(&self) -> Result<(), SettingsError> {
        let m = &self.mtls;
        if m.trusted_proxies.is_empty() {
            return Ok(());
        }
        let invalid = |key, expected: &str| SettingsError::Invalid {
            key,
            expected: expected.into(),
        };
        if m.client_ca.is_none() {
            return Err(invalid(
                "mtls.client_ca",
                "set, to verify forwarded certificates",
            ));
        }
        if m.proxy_header.is_none() {
            return Err(invalid(
                "mtls.proxy_header",
                "client-cert (RFC 9440) or x-ssl-client-cert (nginx) with mtls.trusted_proxies",
            ));
        }
        if m.proxy_secret.as_ref().is_none_or(|s| s.len() < 32) {
            return Err(invalid(
                "mtls.proxy_secret",
                "a secret of at least 32 characters, sent by the proxy in Sesame-Proxy-Secret",
            ));
        }
        let host = m
            .url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        let issuer_host = url::Url::parse(&self.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        if host.is_none() || host == issuer_host {
            return Err(invalid(
                "mtls.url",
                "the proxy's certificate host (https://carte.example.fr), apart from the issuer's",
            ));
        }
        Ok(())
    }

    /// The host on which a forwarded certificate is read (`mtls.url`'s), when forwarding is on.
    pub fn certificate_host(&self) -> Option<String> {
        let url = url::Url::parse(self.mtls.url.as_deref()?).ok()?;
        let host = url.host_str()?;
        Some(match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};

    use super::*;

    fn with(toml: &str) -> Result<(), SettingsError> {
        let s: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| SettingsError::Parse(e.to_string()))?;
        s.validate()
    }

    fn refused_key(toml: &str) -> &'static str {
        match with(toml) {
            Err(SettingsError::Invalid { key, .. }) => key,
            other => panic!("{toml}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_ca_without_crl_is_refused_unless_on_purpose() {
        assert_eq!(refused_key("[mtls]\nclient_ca = \"ca.pem\""), "mtls.crl");
        with("[mtls]\nclient_ca = \"ca.pem\"\ncrl_required = false").expect("on purpose");
        with("[mtls]\nclient_ca = \"ca.pem\"\ncrl = [\"ca.crl\"]").expect("with a CRL");
    }

    #[test]
    fn a_certificate_proxy_must_prove_itself_on_its_own_host() {
        let base = "issuer = \"https://id.example.fr\"\n[mtls]\nclient_ca = \"ca.pem\"\n\
                    crl = [\"ca.crl\"]\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
        assert_eq!(refused_key(base), "mtls.proxy_header");
        let header = format!("{base}proxy_header = \"client-cert\"\n");
        assert_eq!(refused_key(&header), "mtls.proxy_secret");
        let short = format!("{header}proxy_secret = \"short\"\n");
        assert_eq!(refused_key(&short), "mtls.proxy_secret");
        let secret = format!("{header}proxy_secret = \"{}\"\n", "s".repeat(32));
        assert_eq!(refused_key(&secret), "mtls.url");
        let same = format!("{secret}url = \"https://id.example.fr\"\n");
        assert_eq!(refused_key(&same), "mtls.url", "not on the issuer's host");
        with(&format!("{secret}url = \"https://carte.example.fr\"\n")).expect("complete");
        let bad = "trusted_proxies = [\"10.0.0.0/40\"]";
        assert!(matches!(with(bad), Err(SettingsError::Parse(_))));
    }

    #[test]
    fn crl_sources_are_files_or_http_urls() {
        let s: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(
                "[mtls]\ncrl = [\"ca.crl\", \"http://crl.example.fr/ca.crl\"]\ncrl_grace_hours = 6",
            ))
            .extract()
            .expect("valid");
        assert_eq!(s.mtls.crl.len(), 2);
        assert!(
            matches!(&s.mtls.crl[0], CrlSource::File(p) if p == std::path::Path::new("ca.crl"))
        );
        assert!(
            matches!(&s.mtls.crl[1], CrlSource::Url(u) if u.host_str() == Some("crl.example.fr"))
        );
        assert_eq!(
            (s.mtls.crl_grace_hours, s.mtls.crl_refresh_seconds),
            (6, 3600)
        );
        assert!(CrlSource::try_from("ldap://x/ca".to_string()).is_err());
    }
}
