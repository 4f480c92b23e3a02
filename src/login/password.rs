//! Password hashing with argon2id, off the async workers and behind a concurrency limit,
//! so that a storm of logins queues up instead of starving discovery and token requests.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordSettings;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters in password.*: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so both answers cost one hash.
    dummy: Arc<str>,
}

pub enum Verified {
    /// Correct; `Some(new_hash)` when the stored hash used weaker parameters than the settings.
    Yes(Option<String>),
    No,
}

impl Passwords {
    pub fn new(s: &PasswordSettings) -> Result<Self, PasswordError> {
        let params = Params::new(
            s.argon2_memory_kib,
            s.argon2_iterations,
            s.argon2_parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon
            .hash_password(crate::crypto::random_token().as_bytes())
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .to_string();
        Ok(Self {
            argon,
            permits: Arc::new(Semaphore::new(s.max_concurrent_hashes)),
            dummy: dummy.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let argon = self.argon.clone();
        let password = password.to_owned();
        self.blocking(move || {
            argon
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
        })
        .await
        .ok_or_else(|| PasswordError::Hash("the hashing task died".into()))?
        .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// Verifies `password` against `stored` (or the dummy hash when there is no account).
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> Verified {
        let argon = self.argon.clone();
        let real = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy).to_owned();
        let password = password.to_owned();
        let outcome = self
            .blocking(move || {
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return Verified::No;
                };
                if argon.verify_password(password.as_bytes(), &parsed).is_err() {
                    return Verified::No;
                }
                let current = argon.params();
                let weaker = Params::try_from(&parsed).map_or(true, |p| {
                    p.m_cost() < current.m_cost()
                        || p.t_cost() < current.t_cost()
                        || p.p_cost() != current.p_cost()
                });
                let rehash = if weaker {
                    argon
                        .hash_password(password.as_bytes())
                        .ok()
                        .map(|h| h.to_string())
                } else {
                    None
                };
                Verified::Yes(rehash)
            })
            .await;
        match outcome {
            Some(Verified::Yes(r)) if real => Verified::Yes(r),
            _ => Verified::No,
        }
    }

    /// Runs `f` on the blocking pool once a permit is free; `None` if the task panicked.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(f))
            .await
            .ok()
    }
}
