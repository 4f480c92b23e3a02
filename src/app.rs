//! The shared state every handler reads, and the router that names every endpoint.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use bytes::Bytes;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::{RedisUrls, Settings};
use crate::keys::KeyRing;
use crate::login::password::Passwords;
use crate::oidc::backchannel::Backchannel;
use crate::store::{Db, Ephemeral};
use crate::web::Templates;
use crate::{login, oidc, web};

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
    Password(#[from] crate::login::password::PasswordError),
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
        let webauthn = login::passkey::relying_party(&settings).map_err(Internal::Passkeys)?;
        crate::mail::spawn_worker(db.clone(), settings.mail.clone()).map_err(Internal::Mail)?;
        let discovery = oidc::discovery::document(&settings);
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

    pub fn now(&self) -> i64 {
        crate::store::db::now()
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

pub async fn open_ephemeral(
    settings: &Settings,
) -> Result<Ephemeral, crate::store::ephemeral::EphemeralError> {
    match &settings.redis_url {
        None => Ok(Ephemeral::memory()),
        Some(urls) => Ephemeral::redis(&RedisUrls::as_list(urls), &settings.redis_prefix).await,
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(login::home))
        .route("/static/sesame.css", get(web_css))
        .route("/healthz", get(oidc::health::alive))
        .route("/readyz", get(oidc::health::ready))
        .route("/.well-known/openid-configuration", get(oidc::discovery::discovery))
        .route("/jwks", get(oidc::discovery::jwks))
        .route("/authorize", get(oidc::authorize::get).post(oidc::authorize::post))
        .route("/interaction/{uid}", get(login::interaction))
        .route("/interaction/{uid}/login", post(login::password_login))
        .route("/interaction/{uid}/consent", post(login::consent))
        .route("/interaction/{uid}/cancel", post(login::cancel))
        .route("/interaction/{uid}/password", get(login::change::show).post(login::change::submit))
        .route("/password/forgot", get(login::forgot::show).post(login::forgot::submit))
        .route("/password/reset/{token}", get(login::forgot::show_reset).post(login::forgot::reset))
        .route("/interaction/{uid}/certificate", get(login::certificate::back))
        .route("/certificate/{uid}", get(login::certificate::from_proxy))
        .route("/interaction/{uid}/totp", get(login::totp::show).post(login::totp::submit))
        .route("/interaction/{uid}/passkey", get(login::passkey::show).post(login::passkey::submit))
        .route("/static/passkey.js", get(web_js))
        .route("/account", get(crate::account::show))
        .route("/account/totp", post(crate::account::totp::start))
        .route("/account/totp/confirm", post(crate::account::totp::confirm))
        .route("/account/totp/remove", post(crate::account::totp::remove))
        .route("/account/password", post(crate::account::change_password))
        .route("/account/passkeys", post(crate::account::passkeys::start))
        .route("/account/passkeys/finish", post(crate::account::passkeys::finish))
        .route("/account/passkeys/remove", post(crate::account::passkeys::remove))
        .route("/account/certificates/remove", post(crate::account::certificates::remove))
        .route("/token", post(oidc::token::token))
        .route("/userinfo", get(oidc::userinfo::get).post(oidc::userinfo::post))
        .route("/introspect", post(oidc::introspect::introspect))
        .route("/revoke", post(oidc::introspect::revoke))
        .route("/logout", get(oidc::logout::get).post(oidc::logout::post))
        .route("/logout/confirm", post(oidc::logout::confirm))
        .fallback(login::not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(web::headers::security_headers))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // The route template only: paths and queries can carry tokens (reset links, a
            // misused userinfo call) and codes.
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
                tracing::info_span!("http", method = %req.method(), route = route.as_deref().unwrap_or("-"), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn web_js() -> impl axum::response::IntoResponse {
    (
        [
            ("content-type", "text/javascript; charset=utf-8"),
            ("cache-control", "public, max-age=3600"),
        ],
        web::templates::PASSKEY_JS,
    )
}

pub(crate) async fn web_css() -> impl axum::response::IntoResponse {
    (
        [
            ("content-type", "text/css; charset=utf-8"),
            ("cache-control", "public, max-age=3600"),
        ],
        web::templates::CSS,
    )
}
