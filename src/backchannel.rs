//! Back-channel logout (OIDC Back-Channel Logout 1.0): a signed logout token POSTed to each
//! portal of the session. Deliveries run on their own tasks with retries, so a portal that is
//! down never holds up the user's logout.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use crate::crypto::random_token;
use crate::domain::Client;
use crate::keys::KeyRing;

/// Waits before each retry; after the last one the delivery is dropped and logged.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

#[derive(Clone)]
pub struct Backchannel {
    tx: mpsc::UnboundedSender<Delivery>,
}

struct Delivery {
    client_id: String,
    uri: String,
    token: String,
}

impl Backchannel {
    pub fn start() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                tokio::spawn(deliver(http.clone(), d));
            }
        });
        Self { tx }
    }

    /// Queues a logout token for `client` if it registered a back-channel URI: the session
    /// `sid` of account `sub` has ended.
    pub fn notify(&self, keys: &KeyRing, issuer: &str, client: &Client, sub: &str, sid: &str) {
        let Some(uri) = &client.backchannel_logout_uri else {
            return;
        };
        let now = crate::store::db::now();
        let claims = json!({
            "iss": issuer,
            "aud": client.id.as_str(),
            "iat": now,
            "exp": now + 120,
            "jti": random_token(),
            "sub": sub,
            "sid": sid,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        let token = keys
            .signer(client.id_token_alg)
            .sign_jwt("logout+jwt", &claims);
        let _ = self.tx.send(Delivery {
            client_id: client.id.to_string(),
            uri: uri.to_string(),
            token,
        });
    }
}

async fn deliver(http: reqwest::Client, d: Delivery) {
    for (attempt, wait) in std::iter::once(Duration::ZERO).chain(RETRIES).enumerate() {
        tokio::time::sleep(wait).await;
        match http
            .post(&d.uri)
            .form(&[("logout_token", &d.token)])
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                tracing::info!(client_id = %d.client_id, attempt, "back-channel logout delivered");
                return;
            }
            Ok(r) => {
                tracing::warn!(client_id = %d.client_id, status = %r.status(), attempt, "back-channel logout refused")
            }
            Err(e) => {
                tracing::warn!(client_id = %d.client_id, error = %e, attempt, "back-channel logout failed")
            }
        }
    }
    tracing::error!(client_id = %d.client_id, "back-channel logout abandoned after retries");
}
