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

use super::{Proof, finish_login, load};
use crate::crypto::{random_token, token_hash};
use crate::domain::audit::Event;
use crate::services::grant::interaction_key;
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::tls::PeerChain;
use crate::web::Locale;
use crate::web::PageError;
use crate::web::see_other;
use rustls_pki_types::CertificateDer;

/// What the mTLS side hands back: the account the card is bound to, or (binding at first
/// use) the card's identifier alone.
#[derive(Serialize, Deserialize)]
struct CertGrant {
    uid: String,
    user_id: Option<String>,
    national_id: String,
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
        // Its error pages (no card, card refused) are styled like every other page.
        .route("/static/sesame.css", get(crate::web::css))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(
            state.pages.clone(),
            crate::web::failure::render_failed_pages,
        ))
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

/// The same step behind a TLS-terminating proxy: the certificate comes in a header, read
/// only from a proxy that proved itself on the certificate host (`tls::forwarded_chain`),
/// and its chain is verified here all the same.
pub async fn from_proxy(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Response {
    let chain =
        crate::tls::forwarded_chain(&state.settings, peer.ip(), &headers).unwrap_or_default();
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
    // A card is worth presenting only for a request that is waiting for one (either path).
    match state.eph.get(&interaction_key(uid)).await {
        Ok(Some(_)) => {}
        Ok(None) => return PageError::expired().into_response(),
        Err(e) => return PageError::from(e).into_response(),
    }
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
                    detail: Some(serde_json::json!({ "reason": e.to_string() })),
                    ..AuditEvent::new(Event::CertificateRefused)
                })
                .await;
            return refuse("cert.invalid");
        }
    };
    let result = async {
        let user_id = state.db.user_for_certificate(national_id.as_str()).await?;
        if user_id.is_none() {
            state
                .db
                .audit(AuditEvent {
                    detail: Some(serde_json::json!({ "national_id": national_id.as_str() })),
                    ..AuditEvent::new(Event::CertificateUnbound)
                })
                .await?;
            if !state.settings.mtls.bind_on_first_use {
                return Ok(refuse("cert.unbound"));
            }
        }
        let token = random_token();
        state
            .eph
            .put_json(
                &grant_key(&token),
                &CertGrant {
                    uid: uid.to_owned(),
                    user_id,
                    national_id: national_id.as_str().to_owned(),
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
        .unwrap_or_else(|e| PageError::from(e).into_response())
}

#[derive(Deserialize)]
pub struct Back {
    #[serde(default)]
    token: String,
}

impl AppState {
    /// What becomes of a card parked in a request once someone has signed in to finish it:
    /// bound only when that sign-in proved two factors the account already had. A password
    /// and a mailbox are not enough: both fall to a forgotten-password reset, and the card
    /// would then assert the two-factor level for whoever presented it. Otherwise an operator
    /// binds it (`sesame user bind-certificate`).
    pub(crate) async fn settle_pending_card(
        &self,
        national_id: &str,
        user_id: &str,
        two_factors: bool,
        locale: Locale,
    ) -> Result<(), Internal> {
        if !two_factors {
            self.db
                .audit(AuditEvent {
                    user_id: Some(user_id),
                    detail: Some(serde_json::json!({
                        "national_id": national_id,
                        "reason": "no second factor in this sign-in",
                    })),
                    ..AuditEvent::new(Event::CertificateBindingRefused)
                })
                .await?;
            return Ok(());
        }
        let user = self.db.user_by_id(user_id).await?.ok_or(Internal::Gone)?;
        if !self
            .db
            .bind_certificate_if_free(national_id, &user.id)
            .await?
        {
            return Ok(());
        }
        self.db
            .audit(AuditEvent {
                user_id: Some(&user.id),
                detail: Some(serde_json::json!({ "national_id": national_id, "at": "first use" })),
                ..AuditEvent::new(Event::CertificateBound)
            })
            .await?;
        let factor = format!(
            "{} ({national_id})",
            crate::web::templates::text(locale, "cert.factor")
        );
        crate::services::credentials::notify(
            self,
            &user,
            locale,
            crate::mail::Kind::FactorAdded,
            &factor,
        )
        .await
    }
}

/// Back on the main listener: spend the token, open a two-factor session, go on (or, for a
/// card bound to no account, ask for the sign-in that will bind it).
pub async fn back(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Query(q): Query<Back>,
) -> Result<Response, PageError> {
    let (mut i, client) = load(&state, &headers, &uid).await?;
    let grant: CertGrant = state
        .eph
        .take_json(&grant_key(&q.token))
        .await?
        .ok_or_else(PageError::expired)?;
    if grant.uid != uid {
        return Err(PageError::expired());
    }
    let Some(user_id) = grant.user_id else {
        i.pending_binding = Some(grant.national_id);
        let ttl = std::time::Duration::from_secs(state.settings.tokens.interaction_minutes * 60);
        state.eph.put_json(&interaction_key(&uid), &i, ttl).await?;
        return Ok(see_other(&format!("/interaction/{uid}")));
    };
    // The card is the first factor: the session it opens is in the epoch read here.
    i.epoch = Some(
        state
            .active_epoch(&user_id)
            .await?
            .ok_or_else(PageError::expired)?,
    );
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&user_id),
            ..AuditEvent::new(Event::LoginOkCertificate)
        })
        .await?;
    Ok(finish_login(
        &state,
        &uid,
        i,
        &client,
        &user_id,
        Proof::certificate(&state),
    )
    .await)
}
