//! Short-lived read caches: registered clients (every token, introspection and authorization
//! request looks one up; they change rarely, through the CLI in another process: a change
//! reaches a running server within 10 s) and accounts for the token-bearing endpoints
//! (userinfo, token), where a disabled account is refused within 2 s. Sign-in and password
//! checks always read the database.
//!
//! Bounded by quick_cache (CLOCK-Pro): unknown ids are cached too, so that garbage ids do not
//! all reach the database, and a flood of them evicts the cold entries first instead of
//! emptying the cache.

use std::time::{Duration, Instant};

use crate::domain::user::User;
use crate::domain::{Client, ClientId};
use crate::store::Db;
use crate::store::db::DbError;

const CLIENT_TTL: Duration = Duration::from_secs(10);
const USER_TTL: Duration = Duration::from_secs(2);
const CAPACITY: usize = 10_000;

/// Values read from the database, each kept for `ttl` (absence included).
struct Ttl<V: Clone> {
    entries: quick_cache::sync::Cache<String, (Instant, Option<V>)>,
    ttl: Duration,
}

impl<V: Clone> Ttl<V> {
    fn new(ttl: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(CAPACITY),
            ttl,
        }
    }

    fn fresh(&self, key: &str) -> Option<Option<V>> {
        self.entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v)
    }

    fn keep(&self, key: &str, value: &Option<V>) {
        self.entries
            .insert(key.to_owned(), (Instant::now(), value.clone()));
    }
}

pub struct ClientCache(Ttl<Client>);

impl Default for ClientCache {
    fn default() -> Self {
        Self(Ttl::new(CLIENT_TTL))
    }
}

impl ClientCache {
    /// The one place a client identifier from a request is looked up: one that is not a
    /// valid [`ClientId`] (empty, too long, a NUL or another control character) names no
    /// client, without a query, and every endpoint answers as for an unknown client.
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<Client>, DbError> {
        let Ok(id) = ClientId::parse(id) else {
            return Ok(None);
        };
        if let Some(c) = self.0.fresh(id.as_str()) {
            return Ok(c);
        }
        let c = db.client(&id).await?;
        self.0.keep(id.as_str(), &c);
        Ok(c)
    }
}

pub struct UserCache(Ttl<User>);

impl Default for UserCache {
    fn default() -> Self {
        Self(Ttl::new(USER_TTL))
    }
}

impl UserCache {
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<User>, DbError> {
        if let Some(u) = self.0.fresh(id) {
            return Ok(u);
        }
        let u = db.user_by_id(id).await?;
        self.0.keep(id, &u);
        Ok(u)
    }
}
