//! Settings: built-in defaults < TOML file < `SESAME_*` environment (`__` nests).
//!
//! Every key has a default that runs the demo on one machine; production
//! changes `issuer`, `database_url`, `redis_url` and `keys.*`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Public URL, byte-identical in metadata, tokens and responses.
    pub issuer: String,
    pub listen: SocketAddr,
    pub database_url: String,
    /// Unset: the in-memory store (one process). One URL, or a list for a Redis Cluster.
    pub redis_url: Option<RedisUrls>,
    /// Prefix of every key Sésame writes to Redis, so that one Redis can serve several deployments.
    pub redis_prefix: String,
    pub keys_dir: PathBuf,
    pub keys: KeySettings,
    /// « Code à recopier » on the forms that ask for it: `image` or `off`.
    pub captcha: CaptchaMode,
    pub mail: MailSettings,
    pub session: SessionSettings,
    pub tokens: TokenSettings,
    pub password: PasswordSettings,
    pub branding: Branding,
    pub acr: AcrSettings,
    pub passkeys: PasskeySettings,
    pub tls: TlsSettings,
    pub mtls: MtlsSettings,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges): the client is
    /// the right-most hop that is not one of them. Nothing else: forwarding a client
    /// certificate is `mtls.trusted_proxies` plus its secret.
    pub trusted_proxies: Vec<crate::forwarded::ProxyNet>,
    pub log_format: LogFormat,
}

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

/// « Code à recopier » on the forms that ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaMode {
    #[default]
    Image,
    Off,
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

/// The `acr` values Sésame asserts (names are the platform's choice).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcrSettings {
    /// A password alone.
    pub password: String,
    /// Two factors of different kinds (password + one-time code, …).
    pub two_factor: String,
}

impl AcrSettings {
    /// Whether a portal's minimum asks for more than a password. A name that is not (or no
    /// longer) configured counts as the strongest level: a typo must not weaken a portal.
    pub fn above_password(&self, min_acr: Option<&str>) -> bool {
        min_acr.is_some_and(|a| a != self.password)
    }

    pub fn is_known(&self, acr: &str) -> bool {
        acr == self.password || acr == self.two_factor
    }
}

impl Default for AcrSettings {
    fn default() -> Self {
        Self {
            password: "urn:sesame:loa:1".into(),
            two_factor: "urn:sesame:loa:2".into(),
        }
    }
}

/// Passkeys (WebAuthn). The relying-party id is a domain name: browsers refuse IP addresses.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PasskeySettings {
    /// The RP id passkeys are bound to; unset = the issuer's host. A parent domain
    /// (`sante-region.fr` for `id.sante-region.fr`) keeps passkeys valid if the host changes.
    pub rp_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RedisUrls {
    One(String),
    Cluster(Vec<String>),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyStorage {
    /// Private keys in the database, encrypted under `keys.encryption_key`: every replica
    /// that shares the database signs with the same keys, and rotation needs no redeploy.
    Database,
    /// PKCS#8 PEM files in `keys_dir`, e.g. mounted from a Kubernetes secret: keys never
    /// touch the database, rotation is a new file rolled out with the secret.
    Files,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    pub storage: KeyStorage,
    /// Base64 of 32 bytes; unset = a key file `keys_dir/master.key` made on first start
    /// (fine for one machine; production sets it from a secret).
    pub encryption_key: Option<String>,
    /// Key size for RS256 (bits, ≥ 2048).
    pub rsa_bits: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// `smtp://host:25`, `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465`.
    pub smtp_url: Option<String>,
    pub from: String,
    /// Without `smtp_url`, mails are written here as `.eml` files.
    pub outbox_dir: PathBuf,
    /// First retry delay after a failed send; doubled at each attempt, up to one hour.
    pub retry_seconds: u64,
    /// How often the outbox is looked at.
    pub poll_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    pub idle_minutes: u64,
    pub max_hours: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    pub code_seconds: u64,
    pub access_token_seconds: u64,
    pub id_token_seconds: u64,
    pub refresh_token_days: u64,
    /// How long a pending authorization request waits for the user.
    pub interaction_minutes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub max_length: usize,
    pub require_letter: bool,
    pub require_digit: bool,
    pub require_special: bool,
    pub history: usize,
    /// CNIL 2022: 50 bits suffice because failed sign-ins are throttled; 80 otherwise.
    pub min_entropy_bits: u32,
    pub max_age_days: Option<u64>,
    pub temporary_validity_days: u64,
    /// Lifetime of a forgotten-password link.
    pub reset_link_seconds: u64,
    /// Show the masked address after a forgotten-password request, as the guide does
    /// (off by default: it tells whether the identifier exists).
    pub reset_shows_masked_email: bool,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; the rest wait, so a login storm never starves the runtime.
    pub max_concurrent_hashes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Branding {
    pub name: String,
    pub support_email: String,
    pub support_phone: String,
    pub portal_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://data/sesame.db".into(),
            redis_url: None,
            redis_prefix: "sesame:".into(),
            keys_dir: "keys".into(),
            keys: KeySettings::default(),
            captcha: Default::default(),
            mail: MailSettings::default(),
            session: SessionSettings::default(),
            tokens: TokenSettings::default(),
            password: PasswordSettings::default(),
            branding: Branding::default(),
            acr: AcrSettings::default(),
            passkeys: PasskeySettings::default(),
            tls: TlsSettings::default(),
            mtls: MtlsSettings::default(),
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            storage: KeyStorage::Database,
            encryption_key: None,
            rsa_bits: 2048,
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Sésame <no-reply@sesame.localhost>".into(),
            outbox_dir: "data/outbox".into(),
            retry_seconds: 30,
            poll_seconds: 2,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        // ANS figures: inactivity ≤ 30 min, SSO session ≤ 4 h.
        Self {
            idle_minutes: 30,
            max_hours: 4,
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            code_seconds: 60,
            access_token_seconds: 600,
            id_token_seconds: 600,
            refresh_token_days: 14,
            interaction_minutes: 30,
        }
    }
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 128,
            require_letter: true,
            require_digit: true,
            require_special: true,
            history: 5,
            min_entropy_bits: 50,
            max_age_days: None,
            temporary_validity_days: 7,
            reset_link_seconds: 3600,
            reset_shows_masked_email: false,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: 2,
        }
    }
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            name: "Sésame".into(),
            support_email: "support@sesame.localhost".into(),
            support_phone: "01 23 45 67 89".into(),
            portal_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// A setting that cannot be used, with the key and the form it expects.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings file {0} not found")]
    MissingFile(PathBuf),
    #[error("invalid settings: {0}")]
    Parse(String),
    #[error("invalid setting `{key}`: {expected}")]
    Invalid { key: &'static str, expected: String },
}

/// `SESAME_SERVICE_HOST`, `SESAME_PORT`, `SESAME_PORT_80_TCP_ADDR`, `SESAME_REDIS_SERVICE_PORT`,
/// `SESAME_REDIS_PORT_6379_TCP`…: Kubernetes' service links (for a Service `sesame`,
/// `sesame-redis`…), after the prefix. No setting has `service_host`, `service_port`, a
/// final `port` or `port_<number>` in its name.
fn service_link(key: &str) -> bool {
    let words: Vec<&str> = key.split('_').collect();
    key.contains("service_host")
        || key.contains("service_port")
        || words.last() == Some(&"port")
        || words
            .windows(2)
            .any(|w| w[0] == "port" && w[1].bytes().all(|b| b.is_ascii_digit()))
}

impl Settings {
    /// Layers defaults, the TOML file (`path`, else `sesame.toml` if present) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match path {
            Some(p) if !p.exists() => return Err(SettingsError::MissingFile(p.to_owned())),
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            None if Path::new("sesame.toml").exists() => {
                figment = figment.merge(Toml::file_exact("sesame.toml"))
            }
            None => {}
        }
        // `SESAME_CONFIG` names the file, it is not a setting; nor are the variables
        // Kubernetes gives every pod for Services named `sesame…` (see `service_link`).
        let env = Env::prefixed("SESAME_")
            .split("__")
            .ignore(&["config"])
            .filter(|k| !service_link(&k.as_str().to_ascii_lowercase()));
        let settings: Settings = figment
            .merge(env)
            .extract()
            .map_err(|e| SettingsError::Parse(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let issuer = url::Url::parse(&self.issuer).map_err(|_| SettingsError::Invalid {
            key: "issuer",
            expected: "an absolute http(s) URL such as https://id.example.fr".into(),
        })?;
        if !matches!(issuer.scheme(), "http" | "https")
            || issuer.query().is_some()
            || issuer.fragment().is_some()
            || self.issuer.ends_with('/')
            || !issuer.username().is_empty()
        {
            return Err(SettingsError::Invalid {
                key: "issuer",
                expected: "an http(s) URL without query, fragment, credentials or trailing slash"
                    .into(),
            });
        }
        let loopback = matches!(issuer.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if issuer.scheme() == "http" && !loopback {
            return Err(SettingsError::Invalid {
                key: "issuer",
                expected: "an https URL (plain http only on a loopback address, for development)"
                    .into(),
            });
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(SettingsError::Invalid {
                key: "database_url",
                expected: "sqlite://PATH or postgres://USER@HOST/DB".into(),
            });
        }
        if let Some(urls) = &self.redis_url {
            let list = urls.as_list();
            if list.is_empty()
                || list
                    .iter()
                    .any(|u| !u.starts_with("redis://") && !u.starts_with("rediss://"))
            {
                return Err(SettingsError::Invalid {
                    key: "redis_url",
                    expected: "redis://HOST:PORT, or a list of them for a cluster".into(),
                });
            }
        }
        if self.keys.rsa_bits < 2048 {
            return Err(SettingsError::Invalid {
                key: "keys.rsa_bits",
                expected: "at least 2048".into(),
            });
        }
        if self.session.idle_minutes == 0 || self.session.max_hours == 0 {
            return Err(SettingsError::Invalid {
                key: "session",
                expected: "idle_minutes and max_hours above zero".into(),
            });
        }
        if self.tokens.code_seconds == 0 || self.tokens.code_seconds > 600 {
            return Err(SettingsError::Invalid {
                key: "tokens.code_seconds",
                expected: "between 1 and 600 (RFC 6749 caps codes at 10 minutes)".into(),
            });
        }
        if let Some(url) = &self.mail.smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(SettingsError::Invalid {
                key: "mail.smtp_url",
                expected: "smtp://HOST:PORT (add ?tls=required for STARTTLS) or smtps://HOST:PORT"
                    .into(),
            });
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(SettingsError::Invalid {
                key: "mail.from",
                expected: "an address such as Sésame <no-reply@example.fr>".into(),
            });
        }
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
        if self.password.max_concurrent_hashes == 0 {
            return Err(SettingsError::Invalid {
                key: "password.max_concurrent_hashes",
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

    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

impl RedisUrls {
    pub fn as_list(&self) -> Vec<String> {
        match self {
            RedisUrls::One(u) => u
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            RedisUrls::Cluster(v) => v.clone(),
        }
    }
}

/// figment's messages name the key path; keep them, drop the Debug noise.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                e.kind.to_string()
            } else {
                format!("`{key}`: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(toml: &str) -> Result<(), SettingsError> {
        let s: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| SettingsError::Parse(describe(e)))?;
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
        assert!(matches!(&s.mtls.crl[0], CrlSource::File(p) if p == Path::new("ca.crl")));
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
