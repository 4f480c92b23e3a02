//! The in-memory backend: one process, entries expire on their own.
//!
//! A std `Mutex` rather than Tokio's: no critical section awaits, and they are a few
//! hash-map operations long. Expired entries are invisible at once and swept every
//! 30 seconds by a task that stops when the last handle is dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{EphemeralError, Footprint};

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    values: HashMap<String, (String, Instant)>,
    owners: HashMap<String, (HashSet<String>, Instant)>,
}

impl Inner {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut (String, Instant)> {
        if self.values.get(key).is_some_and(|(_, exp)| *exp <= now) {
            self.values.remove(key);
        }
        self.values.get_mut(key)
    }

    fn sweep(&mut self, now: Instant) {
        self.values.retain(|_, (_, exp)| *exp > now);
        self.owners.retain(|_, (_, exp)| *exp > now);
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        let store = Self::default();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(sweeper(Arc::downgrade(&store.inner)));
        }
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a map half-updated, so poison is harmless.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), EphemeralError> {
        let exp = Instant::now() + ttl;
        self.lock()
            .values
            .insert(key.to_owned(), (value.to_owned(), exp));
        Ok(())
    }

    pub async fn put_if_present(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entry) = inner.live(key, now) else {
            return Ok(false);
        };
        *entry = (value.to_owned(), now + ttl);
        Ok(true)
    }

    pub async fn put_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.live(key, now).is_some() {
            return Ok(false);
        }
        inner
            .values
            .insert(key.to_owned(), (value.to_owned(), now + ttl));
        Ok(true)
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, EphemeralError> {
        Ok(self
            .lock()
            .live(key, Instant::now())
            .map(|(v, _)| v.clone()))
    }

    pub async fn swap(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.live(key, now);
        Ok(inner
            .values
            .insert(key.to_owned(), (value.to_owned(), now + ttl))
            .map(|(v, _)| v))
    }

    pub async fn take(&self, key: &str) -> Result<Option<String>, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.live(key, now);
        Ok(inner.values.remove(key).map(|(v, _)| v))
    }

    pub async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        self.lock().values.remove(key);
        Ok(())
    }

    pub async fn incr(&self, key: &str, window: Duration) -> Result<u64, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let next = match inner.live(key, now) {
            Some((v, _)) => {
                let n = v.parse::<u64>().unwrap_or(0) + 1;
                *v = n.to_string();
                return Ok(n);
            }
            None => 1,
        };
        inner
            .values
            .insert(key.to_owned(), (next.to_string(), now + window));
        Ok(next)
    }

    pub async fn decr(&self, key: &str) -> Result<(), EphemeralError> {
        let now = Instant::now();
        if let Some((v, _)) = self.lock().live(key, now) {
            *v = v.parse::<u64>().unwrap_or(0).saturating_sub(1).to_string();
        }
        Ok(())
    }

    pub async fn own(&self, owner: &str, key: &str, ttl: Duration) -> Result<(), EphemeralError> {
        let exp = Instant::now() + ttl;
        let mut inner = self.lock();
        let entry = inner
            .owners
            .entry(owner.to_owned())
            .or_insert_with(|| (HashSet::new(), exp));
        entry.0.insert(key.to_owned());
        entry.1 = entry.1.max(exp);
        Ok(())
    }

    pub async fn members(&self, owner: &str) -> Result<Vec<String>, EphemeralError> {
        Ok(self
            .lock()
            .owners
            .get(owner)
            .map(|(keys, _)| keys.iter().cloned().collect())
            .unwrap_or_default())
    }

    pub async fn delete_owner(&self, owner: &str) -> Result<usize, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some((keys, _)) = inner.owners.remove(owner) else {
            return Ok(0);
        };
        let mut n = 0;
        for k in keys {
            if inner.live(&k, now).is_some() {
                inner.values.remove(&k);
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn ping(&self) -> Result<(), EphemeralError> {
        Ok(())
    }

    pub async fn footprint(&self) -> Result<Footprint, EphemeralError> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        let values = inner.values.iter().map(|(k, (v, _))| k.len() + v.len());
        let owners = (inner.owners.iter())
            .map(|(k, (members, _))| k.len() + members.iter().map(String::len).sum::<usize>());
        let sizes: Vec<usize> = values.chain(owners).collect();
        Ok(Footprint {
            keys: sizes.len(),
            bytes: sizes.iter().sum(),
        })
    }
}

async fn sweeper(inner: Weak<Mutex<Inner>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sweep(Instant::now());
    }
}
