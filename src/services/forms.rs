//! Single-use form tokens for pages that have no session or pending request to bind to
//! (the forgotten-password forms): the page gets a random token, the POST spends it.

use std::time::Duration;

use crate::crypto::{random_token, token_hash};
use crate::state::{AppState, Internal};

const TTL: Duration = Duration::from_secs(30 * 60);

impl AppState {
    pub async fn new_form_token(&self) -> Result<String, Internal> {
        let t = random_token();
        self.eph
            .put(&format!("form:{}", token_hash(&t)), "1", TTL)
            .await?;
        Ok(t)
    }

    pub async fn spend_form_token(&self, token: &str) -> Result<bool, Internal> {
        Ok(!token.is_empty()
            && self
                .eph
                .take(&format!("form:{}", token_hash(token)))
                .await?
                .is_some())
    }
}
