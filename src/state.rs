//! The shared state every handler reads: settings, both stores and the components that
//! live as long as the process (key ring, templates, password hasher, mailer, card
//! verifier, passkey relying party, back-channel queue). It imports no handler and no
//! service: the flows that use it (`services/`) sit above it.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::backchannel::Backchannel;
use crate::config::{RedisUrls, Settings};
use crate::hashing::Passwords;
use crate::keys::KeyRing;
use crate::store::{Db, Ephemeral};
use crate::web::Templates;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub db: Db,
    pub eph: Ephemeral,
    pub keys: KeyRing,
    pub pages: Templates,
    pub passwords: Passwords,
    pub clients: crate::store::cache::ClientCache,
    pub users: crate::store::cache::UserCache,
    pub mailer: crate::mail::Mailer,
    /// Client-certificate verification (`None` unless `mtls.client_ca` is set).
    pub certs: Option<crate::tls::ClientCerts>,
    /// The passkey relying party (`None` when the issuer is an IP address and no RP id is set).
    pub webauthn: Option<webauthn_rs::Webauthn>,
    /// Seals per-user secrets at rest (TOTP keys).
    pub secrets: crate::keys::sealed::Kek,
    pub backchannel: Backchannel,
    /// Discovery never changes while running: serialised once.
    pub discovery: Bytes,
    /// What `now()` reads.
    pub clock: Clock,
}

/// The time the flows read. Only tests move it (`advance`), so that idle and absolute session
/// lifetimes, links and temporary passwords are tested without sleeping; stores that expire
/// records themselves (Redis TTLs) keep the real time.
#[derive(Default)]
pub struct Clock {
    offset: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> i64 {
        crate::store::db::now() + self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the flows' time forward (tests).
    pub fn advance(&self, by: Duration) {
        self.offset
            .fetch_add(by.as_secs() as i64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What the page extractors need to render an error.
impl AsRef<Templates> for AppState {
    fn as_ref(&self) -> &Templates {
        &self.pages
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A failure of ours (a store, the key ring…), never the caller's: logged, then answered
/// as `server_error` or an error page.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error(transparent)]
    Db(#[from] crate::store::db::DbError),
    #[error(transparent)]
    Ephemeral(#[from] crate::store::ephemeral::EphemeralError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Password(#[from] crate::hashing::PasswordError),
    #[error("mail: {0}")]
    Mail(String),
    #[error(transparent)]
    Certificates(#[from] crate::tls::CertError),
    #[error("the account disappeared during the request")]
    Gone,
    #[error("passkeys: {0}")]
    Passkeys(String),
    #[error("serialisation: {0}")]
    Json(String),
}

impl Internal {
    pub fn json(e: serde_json::Error) -> Self {
        Internal::Json(e.to_string())
    }
}

impl From<webauthn_rs::prelude::WebauthnError> for Internal {
    fn from(e: webauthn_rs::prelude::WebauthnError) -> Self {
        Internal::Passkeys(e.to_string())
    }
}

impl AppState {
    /// Opens both stores (migrating the database), the key ring and the templates.
    pub async fn build(settings: Settings) -> Result<Self, Internal> {
        let db = Db::open(&settings.database_url).await?;
        let eph = open_ephemeral(&settings).await?;
        let keys = KeyRing::open(&settings, &db).await?;
        let passwords = Passwords::new(&settings.password)?;
        let pages = Templates::new(&settings.branding);
        let mailer = crate::mail::Mailer::new(&settings.branding);
        let secrets = crate::keys::sealed::Kek::from_settings(&settings)?;
        let certs = crate::tls::ClientCerts::from_settings(&settings).await?;
        let webauthn = relying_party(&settings).map_err(Internal::Passkeys)?;
        crate::mail::spawn_worker(db.clone(), settings.mail.clone()).map_err(Internal::Mail)?;
        let discovery = crate::metadata::document(&settings);
        let backchannel = Backchannel::start();
        Ok(Self(Arc::new(Inner {
            settings,
            db,
            eph,
            keys,
            pages,
            passwords,
            clients: Default::default(),
            users: Default::default(),
            mailer,
            secrets,
            certs,
            webauthn,
            backchannel,
            discovery,
            clock: Clock::default(),
        })))
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// A registered client, through the short-lived cache.
    pub async fn client(
        &self,
        id: &str,
    ) -> Result<Option<crate::domain::Client>, crate::store::db::DbError> {
        self.clients.get(&self.db, id).await
    }

    /// An account for the token-bearing endpoints, through the 2-second cache.
    pub async fn cached_user(
        &self,
        id: &str,
    ) -> Result<Option<crate::domain::user::User>, crate::store::db::DbError> {
        self.users.get(&self.db, id).await
    }

    /// Unix seconds, as the flows see them (sessions, links, codes, tokens): the system clock
    /// plus the tests' offset (see [`Clock`]).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Keeps replicas' key rings in step with rotations done elsewhere.
    pub fn spawn_key_reload(&self) {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = state.keys.reload().await {
                    tracing::warn!(error = %e, "signing keys reload failed; keeping the current ones");
                }
            }
        });
    }
}

impl AppState {
    /// Cookie `name` as this issuer names it (`__Host-` on https).
    pub fn cookie<'a>(&self, headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
        crate::web::cookies::get(headers, name, self.settings.secure_cookies())
    }

    pub fn set_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Option<u64>,
    ) -> axum::http::HeaderValue {
        crate::web::cookies::set(name, value, max_age, self.settings.secure_cookies())
    }

    pub fn clear_cookie(&self, name: &str) -> axum::http::HeaderValue {
        crate::web::cookies::clear(name, self.settings.secure_cookies())
    }
}

pub async fn open_ephemeral(
    settings: &Settings,
) -> Result<Ephemeral, crate::store::ephemeral::EphemeralError> {
    match &settings.redis_url {
        None => Ok(Ephemeral::memory()),
        Some(urls) => Ephemeral::redis(&RedisUrls::as_list(urls), &settings.redis_prefix).await,
    }
}

/// The relying party: `None` when the issuer's host is an IP address (browsers refuse
/// passkeys there) and no `passkeys.rp_id` is set.
fn relying_party(s: &Settings) -> Result<Option<webauthn_rs::Webauthn>, String> {
    let origin = url::Url::parse(&s.issuer).map_err(|e| e.to_string())?;
    let rp_id = match (&s.passkeys.rp_id, origin.domain()) {
        (Some(id), _) => id.clone(),
        (None, Some(host)) => host.to_owned(),
        (None, None) => return Ok(None),
    };
    webauthn_rs::WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(&s.branding.name).build())
        .map(Some)
        .map_err(|e| format!("passkeys.rp_id {rp_id:?} does not fit the issuer: {e}"))
}
