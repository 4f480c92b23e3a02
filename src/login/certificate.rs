//! « Authentification par certificat client »: the browser visits the mTLS listener (or a
//! TLS-terminating proxy that forwards the certificate), the certificate is verified and its
//! national identifier mapped to an account, and the result comes back to the main flow as a
//! single-use token, bound to the pending request and to the browser that started it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::{Halt, Proof, finish_login, load};
use crate::app::{AppState, Internal};
use crate::crypto::{random_token, token_hash};
use crate::oidc::authorize::see_other;
use crate::store::db::audit::AuditEvent;
use crate::tls::PeerChain;
use crate::web::Locale;
use rustls_pki_types::CertificateDer;

#[derive(Serialize, Deserialize)]
struct CertGrant {
    uid: String,
    user_id: String,
}

fn grant_key(token: &str) -> String {
    format!("certlogin:{}", token_hash(token))
}

impl Proof {
    /// A CPS card: possession of the card and knowledge of its PIN (RFC 8176).
    pub fn certificate(state: &AppState) -> Self {
        Self {
            amr: vec!["sc".into(), "pin".into(), "mfa".into()],
            acr: state.settings.acr.two_factor.clone(),
        }
    }
}

/// The routes of the dedicated mTLS listener.
pub fn mtls_router(state: AppState) -> Router {
    Router::new()
        .route("/certificate/{uid}", get(on_mtls))
        .layer(axum::middleware::from_fn(
            crate::web::headers::security_headers,
        ))
        .with_state(state)
}

async fn on_mtls(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Extension(chain): Extension<PeerChain>,
) -> Response {
    let chain: Vec<CertificateDer<'static>> =
        chain.0.map(|c| c.as_ref().clone()).unwrap_or_default();
    check(&state, &headers, &uid, &chain).await
}

/// The same step behind a TLS-terminating proxy: the certificate comes in a header, taken
/// only from the configured proxy addresses, and its chain is verified here all the same.
pub async fn from_proxy(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    let trusted = state.settings.mtls.trusted_proxies.contains(&peer.ip());
    let chain = if trusted {
        crate::tls::from_headers(&headers).unwrap_or_default()
    } else {
        Vec::new()
    };
    check(&state, &headers, &uid, &chain).await
}

async fn check(
    state: &AppState,
    headers: &HeaderMap,
    uid: &str,
    chain: &[CertificateDer<'_>],
) -> Response {
    let locale = Locale::negotiate(None, headers);
    let refuse = |key: &str| {
        state
            .pages
            .error_page(locale, key, StatusCode::FORBIDDEN)
            .into_response()
    };
    let Some(certs) = &state.certs else {
        return refuse("cert.off");
    };
    if chain.is_empty() {
        return refuse("cert.none");
    }
    let national_id = match certs.verify(chain) {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(error = %e, "client certificate refused");
            let _ = state
                .db
                .audit(AuditEvent {
                    event: "certificate_refused",
                    detail: Some(serde_json::json!({ "reason": e.to_string() })),
                    ..Default::default()
                })
                .await;
            return refuse("cert.invalid");
        }
    };
    let result = async {
        let Some(user_id) = state.db.user_for_certificate(national_id.as_str()).await? else {
            state
                .db
                .audit(AuditEvent {
                    event: "certificate_unbound",
                    detail: Some(serde_json::json!({ "national_id": national_id.as_str() })),
                    ..Default::default()
                })
                .await?;
            return Ok(refuse("cert.unbound"));
        };
        let token = random_token();
        state
            .eph
            .put_json(
                &grant_key(&token),
                &CertGrant {
                    uid: uid.to_owned(),
                    user_id,
                },
                Duration::from_secs(120),
            )
            .await?;
        Ok::<_, Internal>(see_other(&format!(
            "{}/interaction/{uid}/certificate?token={token}",
            state.issuer()
        )))
    };
    result
        .await
        .unwrap_or_else(|e| Halt::Internal(e).respond(state, locale))
}

#[derive(Deserialize)]
pub struct Back {
    #[serde(default)]
    token: String,
}

/// Back on the main listener: spend the token, open a two-factor session, go on.
pub async fn back(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Query(q): Query<Back>,
) -> Response {
    let locale = Locale::negotiate(None, &headers);
    let result = async {
        let (i, client) = load(&state, &headers, &uid).await?;
        let grant: CertGrant = state
            .eph
            .take_json(&grant_key(&q.token))
            .await?
            .ok_or(Halt::Expired)?;
        if grant.uid != uid || !state.user_active(&grant.user_id).await? {
            return Err(Halt::Expired);
        }
        state
            .db
            .audit(AuditEvent {
                event: "login_ok_certificate",
                user_id: Some(&grant.user_id),
                ..Default::default()
            })
            .await?;
        Ok(finish_login(
            &state,
            &uid,
            i,
            &client,
            &grant.user_id,
            Proof::certificate(&state),
        )
        .await)
    };
    result
        .await
        .unwrap_or_else(|h: Halt| h.respond(&state, locale))
}
