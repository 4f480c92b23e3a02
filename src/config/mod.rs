//! Settings: built-in defaults < TOML file < `SESAME_*` environment (`__` nests).
//!
//! Every key has a default that runs the demo on one machine; production
//! changes `issuer`, `database_url`, `redis_url` and `keys.*`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod mtls;

pub use mtls::{CertIdentity, CrlSource, MtlsSettings, ProxyHeader, TlsSettings};

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

/// « Code à recopier » on the forms that ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaMode {
    #[default]
    Image,
    Off,
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

    /// Every setting that cannot be used is refused at start, with its key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.validate_issuer()?;
        self.validate_stores()?;
        self.validate_limits()?;
        self.validate_mail()?;
        self.validate_mtls()
    }

    /// The issuer is byte-identical in tokens: an https URL (http only on loopback), bare.
    fn validate_issuer(&self) -> Result<(), SettingsError> {
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
        Ok(())
    }

    /// SQLite or PostgreSQL; Redis URLs.
    fn validate_stores(&self) -> Result<(), SettingsError> {
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
        Ok(())
    }

    /// Key sizes, lifetimes and the hashing pool.
    fn validate_limits(&self) -> Result<(), SettingsError> {
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
        if self.password.max_concurrent_hashes == 0 {
            return Err(SettingsError::Invalid {
                key: "password.max_concurrent_hashes",
                expected: "at least 1".into(),
            });
        }
        Ok(())
    }

    /// The SMTP URL and the sender.
    fn validate_mail(&self) -> Result<(), SettingsError> {
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
        Ok(())
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
