//! Passkeys (WebAuthn, through webauthn-rs): « Authentification forte » signs in without a
//! password with a discoverable credential, and a registered passkey is also the second
//! factor after the password. Each challenge is parked in the ephemeral store, bound to the
//! pending request, and spent by the answer (single use).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PublicKeyCredential,
};

use super::{Proof, finish_login, load, load_posted};
use crate::crypto::ct_eq;
use crate::domain::audit::Event;
use crate::domain::passkey::{credential_key, user_handle};
use crate::services::grant::Interaction;
use crate::services::grant::Progress;
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::Page;
use crate::web::PageError;
use crate::web::form::PageForm;
use crate::web::templates::text;

/// How long a browser has to answer a challenge.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// The signature counter of a stored passkey (webauthn-rs keeps it in `cred.counter`).
fn stored_counter(credential: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(credential)
        .ok()
        .and_then(|v| v.pointer("/cred/counter").and_then(|c| c.as_u64()))
        .unwrap_or(0)
}

/// A parked challenge: anyone's discoverable credential, or one of a known user's passkeys.
#[derive(Serialize, Deserialize)]
enum Challenge {
    Discoverable(DiscoverableAuthentication),
    SecondFactor {
        user_id: String,
        state: PasskeyAuthentication,
    },
}

fn challenge_key(uid: &str) -> String {
    format!("passkey_auth:{uid}")
}

/// What a passkey proved.
pub struct PasskeyProof {
    /// The account's sign-in epoch, read as the passkey was checked.
    pub epoch: i64,
    pub user_id: String,
    /// Synced (backup-eligible) passkeys live in software; others in a security key or TPM.
    pub synced: bool,
}

impl Proof {
    /// A passkey with user verification; after the password when `with_password`.
    pub fn passkey(state: &AppState, p: &PasskeyProof, with_password: bool) -> Self {
        let kind = if p.synced { "swk" } else { "hwk" };
        let amr = if with_password {
            vec!["pwd".into(), kind.into(), "mfa".into()]
        } else {
            vec![kind.into(), "user".into(), "mfa".into()]
        };
        Self {
            amr,
            acr: state.settings.acr.two_factor.clone(),
        }
    }
}

impl AppState {
    /// Parks a new challenge for request `uid` and returns the options for the browser
    /// (JSON). `None` if passkeys are off or `user_id` has none.
    pub async fn passkey_challenge(
        &self,
        uid: &str,
        user_id: Option<&str>,
    ) -> Result<Option<String>, Internal> {
        let Some(rp) = &self.webauthn else {
            return Ok(None);
        };
        let (options, challenge) = match user_id {
            None => {
                let (mut rcr, state) = rp.start_discoverable_authentication()?;
                // Started by a button, not from the username field's autofill.
                rcr.mediation = None;
                (rcr, Challenge::Discoverable(state))
            }
            Some(user_id) => {
                let keys = self.passkeys_of(user_id).await?;
                if keys.is_empty() {
                    return Ok(None);
                }
                let (rcr, state) = rp.start_passkey_authentication(&keys)?;
                let user_id = user_id.to_owned();
                (rcr, Challenge::SecondFactor { user_id, state })
            }
        };
        self.eph
            .put_json(&challenge_key(uid), &challenge, CHALLENGE_TTL)
            .await?;
        Ok(Some(
            serde_json::to_string(&options).map_err(Internal::json)?,
        ))
    }

    /// The user's passkeys, as webauthn-rs wants them (unreadable rows are skipped).
    pub async fn passkeys_of(&self, user_id: &str) -> Result<Vec<Passkey>, Internal> {
        Ok(self
            .db
            .passkeys_of(user_id)
            .await?
            .iter()
            .filter_map(|r| serde_json::from_str(&r.credential).ok())
            .collect())
    }

    pub async fn has_second_factor(&self, user_id: &str) -> Result<bool, Internal> {
        Ok(self.totp_enrolled(user_id).await?
            || (self.webauthn.is_some() && !self.passkeys_of(user_id).await?.is_empty()))
    }

    /// Checks the browser's answer to the challenge parked for `uid` (spending it). `None`
    /// when it does not prove a passkey of an active account.
    pub async fn passkey_answer(
        &self,
        uid: &str,
        answer: &str,
    ) -> Result<Option<PasskeyProof>, Internal> {
        let Some(rp) = &self.webauthn else {
            return Ok(None);
        };
        let Some(challenge) = self.eph.take_json::<Challenge>(&challenge_key(uid)).await? else {
            return Ok(None);
        };
        let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(answer) else {
            return Ok(None);
        };
        let Some(row) = self
            .db
            .passkey_by_credential(&credential_key(answer.get_credential_id()))
            .await?
        else {
            return Ok(None);
        };
        let Ok(mut passkey) = serde_json::from_str::<Passkey>(&row.credential) else {
            return Ok(None);
        };
        let result = match challenge {
            Challenge::Discoverable(state) => {
                // The authenticator names the account; it must own the credential it used.
                let named = rp
                    .identify_discoverable_authentication(&answer)
                    .ok()
                    .map(|(handle, _)| handle);
                if named.is_none() || named != user_handle(&row.user_id) {
                    return Ok(None);
                }
                rp.finish_discoverable_authentication_v2(&answer, state, &passkey)
            }
            Challenge::SecondFactor { user_id, state } => {
                if !ct_eq(user_id.as_bytes(), row.user_id.as_bytes()) {
                    return Ok(None);
                }
                rp.finish_passkey_authentication(&answer, &state)
            }
        };
        let Ok(result) = result else {
            return Ok(None);
        };
        let Some(epoch) = self.active_epoch(&row.user_id).await? else {
            return Ok(None);
        };
        // An authenticator with a counter must move it past the stored one (the challenge's
        // snapshot may be older): a clone falls behind. Synced passkeys keep it at 0.
        if result.counter() > 0 && u64::from(result.counter()) <= stored_counter(&row.credential) {
            tracing::warn!("passkey counter did not move: possible cloned authenticator");
            return Ok(None);
        }
        passkey.update_credential(&result);
        let credential = serde_json::to_string(&passkey).map_err(Internal::json)?;
        // Compare-and-swap on what was read: a concurrent use, or a removal, wins.
        if !self
            .db
            .passkey_used(&row.id, &row.credential, &credential)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(PasskeyProof {
            epoch,
            user_id: row.user_id,
            synced: result.backup_eligible(),
        }))
    }
}

#[derive(Deserialize)]
pub struct AnswerForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    credential: String,
}

/// « Authentification forte »: the passkey page (passwordless).
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, PageError> {
    let (i, _) = load(&state, &headers, &uid).await?;
    page(&state, &uid, &i, None, StatusCode::OK).await
}

/// The browser's answer, passwordless or as the second factor after the password.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    PageForm(form): PageForm<AnswerForm>,
) -> Result<Response, PageError> {
    let (mut i, client) = load_posted(&state, &headers, &uid, &form.csrf_token).await?;
    let after_password = i.progress.second_factor().map(str::to_owned);
    let proof = state
        .passkey_answer(&uid, &form.credential)
        .await?
        .filter(|p| after_password.as_ref().is_none_or(|u| *u == p.user_id));
    let Some(proof) = proof else {
        let address = state.client_ip(&peer, &headers);
        state
            .step_failed(Event::PasskeyFailed, after_password.as_deref(), &address)
            .await?;
        let error = Some(text(i.locale, "passkey.failed"));
        return Ok(match after_password {
            Some(_) => super::totp::page(&state, &uid, &i, error, StatusCode::UNAUTHORIZED).await?,
            None => page(&state, &uid, &i, error, StatusCode::UNAUTHORIZED).await?,
        });
    };
    state
        .db
        .audit(AuditEvent {
            user_id: Some(&proof.user_id),
            ..AuditEvent::new(if after_password.is_some() {
                Event::LoginOkTwoFactor
            } else {
                Event::LoginOkPasskey
            })
        })
        .await?;
    i.progress = Progress::SignIn;
    // Passwordless, the passkey is the first factor: its session is in the epoch read with it.
    i.epoch = i.epoch.or(Some(proof.epoch));
    let proof_of = Proof::passkey(&state, &proof, after_password.is_some());
    Ok(finish_login(&state, &uid, i, &client, &proof.user_id, proof_of).await)
}

async fn page(
    state: &AppState,
    uid: &str,
    i: &Interaction,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let Some(options) = state.passkey_challenge(uid, None).await? else {
        return Ok(state
            .pages
            .error_page(i.locale, "passkey.off", StatusCode::NOT_FOUND)
            .into_response());
    };
    let html = state.pages.render(
        "passkey.html",
        i.locale,
        context! {
            action => crate::web::path_attr(format!("/interaction/{uid}/passkey")),
            password_url => crate::web::path_attr(format!("/interaction/{uid}")),
            certificate_url => state.settings.mtls.url.as_ref().map(|u| format!("{u}/certificate/{uid}")),
            csrf_token => i.csrf.clone(),
            options => options,
            error => error,
        },
    );
    Ok(Page::ok(html)
        .with_status(status)
        .with_script()
        .allowing_form_target(i.request.redirect_uri.origin())
        .into_response())
}
