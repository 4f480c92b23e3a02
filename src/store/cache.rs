//! Short-lived read caches: registered clients (every token, introspection and authorization
//! request looks one up; they change rarely, through the CLI in another process: a change
//! reaches a running server within 10 s) and accounts for the token-bearing endpoints
//! (userinfo, token), where a disabled account is refused within 2 s. Sign-in and password
//! checks always read the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::user::User;
use crate::domain::{Client, ClientId};
use crate::store::Db;
use crate::store::db::DbError;

const TTL: Duration = Duration::from_secs(10);
const USER_TTL: Duration = Duration::from_secs(2);
/// Unknown ids are cached too (garbage ids would otherwise all reach the database); the map
/// is simply emptied if it grows past this.
const MAX: usize = 10_000;

#[derive(Default)]
pub struct ClientCache {
    entries: Mutex<HashMap<String, (Instant, Option<Client>)>>,
}

impl ClientCache {
    /// The one place a client identifier from a request is looked up: one that is not a
    /// valid [`ClientId`] (empty, too long, a NUL or another control character) names no
    /// client, without a query, and every endpoint answers as for an unknown client.
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<Client>, DbError> {
        let Ok(id) = ClientId::parse(id) else {
            return Ok(None);
        };
        if let Some((at, c)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id.as_str())
            && at.elapsed() < TTL
        {
            return Ok(c.clone());
        }
        let c = db.client(&id).await?;
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX {
            map.clear();
        }
        map.insert(id.as_str().to_owned(), (Instant::now(), c.clone()));
        Ok(c)
    }
}

#[derive(Default)]
pub struct UserCache {
    entries: Mutex<HashMap<String, (Instant, Option<User>)>>,
}

impl UserCache {
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<User>, DbError> {
        if let Some((at, u)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            && at.elapsed() < USER_TTL
        {
            return Ok(u.clone());
        }
        let u = db.user_by_id(id).await?;
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX {
            map.clear();
        }
        map.insert(id.to_owned(), (Instant::now(), u.clone()));
        Ok(u)
    }
}
