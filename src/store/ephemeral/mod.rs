//! Short-lived data with a time to live, behind one interface with two backends:
//! Redis (shared by replicas; single node or cluster) and memory (one process, the default).
//!
//! Values are strings (JSON for records). Every key is single-slot, so the Redis backend
//! works unchanged on a cluster; "delete by owner" uses a per-owner index of keys instead of
//! a key scan, which a cluster cannot do cheaply.

mod memory;
mod redis;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    #[error("ephemeral store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt ephemeral record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// What the store holds, for diagnostics and tests (a full scan: never on a request path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    pub keys: usize,
    /// Memory backend: key and value bytes. Redis: `MEMORY USAGE` of each key (overhead included).
    pub bytes: usize,
}

#[derive(Clone)]
pub enum Ephemeral {
    Memory(MemoryStore),
    Redis(RedisStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Ephemeral::Memory($s) => $e,
            Ephemeral::Redis($s) => $e,
        }
    };
}

impl Ephemeral {
    pub fn memory() -> Self {
        Ephemeral::Memory(MemoryStore::new())
    }

    pub async fn redis(urls: &[String], prefix: &str) -> Result<Self, EphemeralError> {
        Ok(Ephemeral::Redis(RedisStore::connect(urls, prefix).await?))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Ephemeral::Memory(_) => "memory",
            Ephemeral::Redis(_) => "redis",
        }
    }

    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), EphemeralError> {
        dispatch!(self, s => s.put(key, value, ttl).await)
    }

    /// Stores only if `key` is free; true when this call stored it.
    pub async fn put_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        dispatch!(self, s => s.put_if_absent(key, value, ttl).await)
    }

    /// Overwrites only if `key` is still there (never brings back a deleted record); true
    /// when this call stored it.
    pub async fn put_if_present(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        dispatch!(self, s => s.put_if_present(key, value, ttl).await)
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, EphemeralError> {
        dispatch!(self, s => s.get(key).await)
    }

    /// Stores `value` under `key` for `ttl` and returns what it replaced, atomically (SET … GET):
    /// of two concurrent callers, each sees a different previous value.
    pub async fn swap(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, EphemeralError> {
        dispatch!(self, s => s.swap(key, value, ttl).await)
    }

    /// Atomic get-and-delete: of two concurrent callers, one gets the value.
    pub async fn take(&self, key: &str) -> Result<Option<String>, EphemeralError> {
        dispatch!(self, s => s.take(key).await)
    }

    pub async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        dispatch!(self, s => s.delete(key).await)
    }

    /// Adds one to a counter that starts at zero and lives `window` from its first increment.
    pub async fn incr(&self, key: &str, window: Duration) -> Result<u64, EphemeralError> {
        dispatch!(self, s => s.incr(key, window).await)
    }

    /// Takes one off a counter made by `incr` (never below zero; a missing counter stays missing).
    pub async fn decr(&self, key: &str) -> Result<(), EphemeralError> {
        dispatch!(self, s => s.decr(key).await)
    }

    /// Files `key` under `owner` (a user, a token family…) so that `delete_owner` removes it.
    pub async fn own(&self, owner: &str, key: &str, ttl: Duration) -> Result<(), EphemeralError> {
        dispatch!(self, s => s.own(owner, key, ttl).await)
    }

    /// The keys filed under `owner` (some may have expired since).
    pub async fn members(&self, owner: &str) -> Result<Vec<String>, EphemeralError> {
        dispatch!(self, s => s.members(owner).await)
    }

    /// Deletes every key filed under `owner`; returns how many were still there.
    pub async fn delete_owner(&self, owner: &str) -> Result<usize, EphemeralError> {
        dispatch!(self, s => s.delete_owner(owner).await)
    }

    pub async fn ping(&self) -> Result<(), EphemeralError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Keys and bytes held (under this store's prefix on Redis; a single node only).
    pub async fn footprint(&self) -> Result<Footprint, EphemeralError> {
        dispatch!(self, s => s.footprint().await)
    }

    pub async fn put_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), EphemeralError> {
        self.put(key, &to_json(value), ttl).await
    }

    pub async fn put_json_if_present<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        self.put_if_present(key, &to_json(value), ttl).await
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, EphemeralError> {
        from_json(key, self.get(key).await?)
    }

    pub async fn take_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, EphemeralError> {
        from_json(key, self.take(key).await?)
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialise")
}

fn from_json<T: DeserializeOwned>(
    key: &str,
    raw: Option<String>,
) -> Result<Option<T>, EphemeralError> {
    raw.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| EphemeralError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })
}
