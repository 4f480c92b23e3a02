//! Password hashing with argon2id on a small pool of dedicated threads (as many as
//! `password.max_concurrent_hashes`), so that a storm of logins queues up instead of starving
//! discovery and token requests, and memory stays bounded: each thread keeps one argon2
//! working area (19 MiB by default) from one hash to the next. Allocating it afresh for each
//! hash (aligned, 19 MiB) fragmented glibc's heap until the process held ten of them.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

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

thread_local! {
    /// This hashing thread's argon2 memory, reused by every hash it runs.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The most a stored hash may ask for: an imported or corrupt hash must not make a sign-in
/// allocate gigabytes or spin for minutes (anyone can type its identifier).
const MAX_STORED_MEMORY_KIB: u32 = 256 * 1024;
const MAX_STORED_ITERATIONS: u32 = 16;
const MAX_STORED_LANES: u32 = 16;

fn within_bounds(p: &Params) -> bool {
    p.m_cost() <= MAX_STORED_MEMORY_KIB
        && p.t_cost() <= MAX_STORED_ITERATIONS
        && p.p_cost() <= MAX_STORED_LANES
}

/// Runs argon2 with `params` into `out`, in this thread's reused memory when it needs no
/// more than the settings' `keep` blocks (a larger, older hash gets memory of its own).
fn argon2_into(
    params: Params,
    keep: usize,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    if blocks > keep {
        let mut own = vec![Block::default(); blocks];
        return argon.hash_password_into_with_memory(password, salt, out, &mut own[..]);
    }
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut m[..blocks])
    })
}

/// A new argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`, 16-byte salt,
/// 32-byte hash), the format the argon2 crate reads and writes.
fn hash_phc(params: &Params, password: &[u8]) -> Result<String, argon2::Error> {
    let salt = crate::crypto::random_bytes::<16>();
    let mut out = [0u8; 32];
    argon2_into(
        params.clone(),
        params.block_count(),
        password,
        &salt,
        &mut out,
    )?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        B64.encode(salt),
        B64.encode(out)
    ))
}

/// Checks `password` against an argon2id v19 PHC string; `None` when the string is of
/// another shape (then the crate's own verifier decides).
fn verify_phc(stored: &str, password: &[u8], keep: usize) -> Option<bool> {
    let mut parts = stored.split('$');
    let ("", "argon2id", "v=19") = (parts.next()?, parts.next()?, parts.next()?) else {
        return None;
    };
    let (params, salt, hash) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mut cost = [None; 3];
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=')?;
        let i = ["m", "t", "p"].iter().position(|n| *n == k)?;
        cost[i] = Some(v.parse::<u32>().ok()?);
    }
    let params = Params::new(cost[0]?, cost[1]?, cost[2]?, None).ok()?;
    let (salt, expected) = (B64.decode(salt).ok()?, B64.decode(hash).ok()?);
    let mut out = vec![0u8; expected.len()];
    argon2_into(params, keep, password, &salt, &mut out).ok()?;
    Some(crate::crypto::ct_eq(&out, &expected))
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
        let params = self.argon.params().clone();
        let password = password.to_owned();
        self.blocking(move || hash_phc(&params, password.as_bytes()))
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
                            hash_phc(argon.params(), random.as_bytes()).unwrap_or_default()
                        })
                        .clone()
                });
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return Verified::No;
                };
                if !Params::try_from(&parsed).is_ok_and(|p| within_bounds(&p)) {
                    tracing::error!("a stored password hash has unusable argon2 parameters");
                    return Verified::No;
                }
                let keep = argon.params().block_count();
                let right = match verify_phc(&stored, password.as_bytes(), keep) {
                    Some(right) => right,
                    None => argon.verify_password(password.as_bytes(), &parsed).is_ok(),
                };
                if !right {
                    return Verified::No;
                }
                let current = argon.params();
                let weaker = Params::try_from(&parsed).map_or(true, |p| {
                    p.m_cost() < current.m_cost()
                        || p.t_cost() < current.t_cost()
                        || p.p_cost() != current.p_cost()
                });
                let rehash = if weaker {
                    hash_phc(current, password.as_bytes()).ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    fn small() -> Params {
        Params::new(256, 1, 1, None).unwrap()
    }

    #[test]
    fn our_hashes_and_the_crates_read_each_other() {
        let ours = hash_phc(&small(), b"Correct#Horse9").unwrap();
        let crate_verifier = Argon2::new(Algorithm::Argon2id, Version::V0x13, small());
        assert!(
            crate_verifier
                .verify_password(b"Correct#Horse9", &PasswordHash::new(&ours).unwrap())
                .is_ok()
        );
        assert_eq!(verify_phc(&ours, b"Correct#Horse9", 1024), Some(true));
        assert_eq!(verify_phc(&ours, b"Correct#Horse8", 1024), Some(false));
        let theirs = crate_verifier
            .hash_password(b"Correct#Horse9")
            .unwrap()
            .to_string();
        assert_eq!(verify_phc(&theirs, b"Correct#Horse9", 1024), Some(true));
        assert_eq!(verify_phc(&theirs, b"nope", 16), Some(false));
        // Another shape is left to the crate; garbage is not a match.
        assert_eq!(
            verify_phc("$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaA", b"x", 1024),
            None
        );
        assert_eq!(verify_phc("$argon2id$v=19$m=x$$", b"x", 1024), None);
        assert!(within_bounds(&small()));
        assert!(!within_bounds(
            &Params::new(4 * 1024 * 1024, 1, 1, None).unwrap()
        ));
    }
}
