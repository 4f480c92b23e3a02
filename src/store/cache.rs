//! A short-lived read cache for registered clients: every token, introspection and
//! authorization request looks its client up, and clients change rarely (through the CLI, in
//! another process). A change reaches a running server within `TTL`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::Client;
use crate::store::Db;
use crate::store::db::DbError;

const TTL: Duration = Duration::from_secs(10);
/// Unknown ids are cached too (garbage ids would otherwise all reach the database); the map
/// is simply emptied if it grows past this.
const MAX: usize = 10_000;

#[derive(Default)]
pub struct ClientCache {
    entries: Mutex<HashMap<String, (Instant, Option<Client>)>>,
}

impl ClientCache {
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<Client>, DbError> {
        if let Some((at, c)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            && at.elapsed() < TTL
        {
            return Ok(c.clone());
        }
        let c = db.client(id).await?;
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX {
            map.clear();
        }
        map.insert(id.to_owned(), (Instant::now(), c.clone()));
        Ok(c)
    }
}
