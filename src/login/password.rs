//! Password hashing with argon2id on a small pool of dedicated threads (as many as
//! `password.max_concurrent_hashes`), so that a storm of logins queues up instead of starving
//! discovery and token requests, and memory stays bounded: each argon2 run takes 19 MiB,
//! which the allocator keeps per thread that ever ran one (on tokio's blocking pool, many).

use std::sync::{Arc, Mutex, OnceLock, mpsc};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::PasswordSettings;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters in password.*: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    jobs: mpsc::Sender<Job>,
    /// Verified against when the account does not exist, so both answers cost one hash;
    /// made at the first need rather than at start (it costs a hash and 19 MiB).
    dummy: Arc<OnceLock<String>>,
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
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..s.max_concurrent_hashes {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("sesame-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every `Passwords` is gone
                        }
                    }
                })
                .map_err(|e| PasswordError::Hash(e.to_string()))?;
        }
        Ok(Self {
            argon,
            jobs,
            dummy: Arc::new(OnceLock::new()),
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
        let stored = stored.map(str::to_owned);
        let dummy = self.dummy.clone();
        let password = password.to_owned();
        let outcome = self
            .blocking(move || {
                let stored = stored.unwrap_or_else(|| {
                    dummy
                        .get_or_init(|| {
                            let random = crate::crypto::random_token();
                            argon
                                .hash_password(random.as_bytes())
                                .map(|h| h.to_string())
                                .unwrap_or_default()
                        })
                        .clone()
                });
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

    /// Runs `f` on a hashing thread once one is free; `None` if it panicked.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        self.jobs
            .send(Box::new(move || drop(tx.send(span.in_scope(f)))))
            .ok()?;
        rx.await.ok()
    }
}
