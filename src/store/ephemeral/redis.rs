//! The Redis backend: one node through a multiplexed, self-reconnecting `ConnectionManager`,
//! or a cluster through `ClusterConnection`. Every command touches one key, so both work alike.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Script};

use super::{EphemeralError, Footprint};

#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl From<redis::RedisError> for EphemeralError {
    fn from(e: redis::RedisError) -> Self {
        EphemeralError::Unavailable(e.to_string())
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// INCR that starts the window on the first increment, atomically.
const INCR_WINDOW: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n";

/// DECR that neither creates a counter nor goes below zero.
const DECR_FLOOR: &str = r"
if redis.call('GET', KEYS[1]) and tonumber(redis.call('GET', KEYS[1])) > 0 then return redis.call('DECR', KEYS[1]) end
return 0";

/// SADD to an owner index, whose life is the longest of its members'.
const OWN: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1";

impl RedisStore {
    pub async fn connect(urls: &[String], prefix: &str) -> Result<Self, EphemeralError> {
        let connect = async {
            if urls.len() == 1 {
                let client = redis::Client::open(urls[0].as_str())?;
                Ok::<_, redis::RedisError>(Conn::Single(ConnectionManager::new(client).await?))
            } else {
                let client = redis::cluster::ClusterClient::new(urls.to_vec())?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                EphemeralError::Unavailable(format!("no answer from {}", urls.join(", ")))
            })??;
        let store = Self {
            conn,
            prefix: prefix.to_owned(),
        };
        store.ping().await?;
        Ok(store)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, EphemeralError> {
        match &self.conn {
            Conn::Single(c) => run_on(c.clone(), cmd).await,
            Conn::Cluster(c) => run_on(c.clone(), cmd).await,
        }
    }

    async fn script<T: FromRedisValue>(
        &self,
        src: &str,
        key: &str,
        args: &[String],
    ) -> Result<T, EphemeralError> {
        let script = Script::new(src);
        let mut inv = script.key(key);
        for a in args {
            inv.arg(a);
        }
        Ok(match &self.conn {
            Conn::Single(c) => inv.invoke_async(&mut c.clone()).await?,
            Conn::Cluster(c) => inv.invoke_async(&mut c.clone()).await?,
        })
    }

    pub async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), EphemeralError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl));
        self.run::<()>(&cmd).await
    }

    pub async fn put_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .arg("NX");
        Ok(self.run::<Option<String>>(&cmd).await?.is_some())
    }

    pub async fn put_if_present(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .arg("XX");
        Ok(self.run::<Option<String>>(&cmd).await?.is_some())
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, EphemeralError> {
        self.run(redis::cmd("GET").arg(self.key(key))).await
    }

    pub async fn swap(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, EphemeralError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .arg("GET");
        self.run(&cmd).await
    }

    pub async fn take(&self, key: &str) -> Result<Option<String>, EphemeralError> {
        self.run(redis::cmd("GETDEL").arg(self.key(key))).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        self.run::<i64>(redis::cmd("DEL").arg(self.key(key)))
            .await
            .map(drop)
    }

    pub async fn incr(&self, key: &str, window: Duration) -> Result<u64, EphemeralError> {
        self.script(INCR_WINDOW, &self.key(key), &[millis(window).to_string()])
            .await
    }

    pub async fn decr(&self, key: &str) -> Result<(), EphemeralError> {
        self.script::<i64>(DECR_FLOOR, &self.key(key), &[])
            .await
            .map(drop)
    }

    pub async fn own(&self, owner: &str, key: &str, ttl: Duration) -> Result<(), EphemeralError> {
        let index = self.key(&format!("owner:{owner}"));
        self.script::<i64>(OWN, &index, &[self.key(key), millis(ttl).to_string()])
            .await
            .map(drop)
    }

    pub async fn members(&self, owner: &str) -> Result<Vec<String>, EphemeralError> {
        let index = self.key(&format!("owner:{owner}"));
        let keys: Vec<String> = self.run(redis::cmd("SMEMBERS").arg(&index)).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned))
            .collect())
    }

    pub async fn delete_owner(&self, owner: &str) -> Result<usize, EphemeralError> {
        let index = self.key(&format!("owner:{owner}"));
        let keys: Vec<String> = self.run(redis::cmd("SMEMBERS").arg(&index)).await?;
        let mut n = 0;
        // One DEL per key: members may live in different cluster slots.
        for k in keys {
            n += self.run::<i64>(redis::cmd("DEL").arg(k)).await? as usize;
        }
        self.run::<i64>(redis::cmd("DEL").arg(&index)).await?;
        Ok(n)
    }

    pub async fn ping(&self) -> Result<(), EphemeralError> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(EphemeralError::Unavailable(format!("PING answered {pong}")))
        }
    }
}

impl RedisStore {
    pub async fn footprint(&self) -> Result<Footprint, EphemeralError> {
        let Conn::Single(c) = &self.conn else {
            return Err(EphemeralError::Unavailable(
                "footprint scans one node, not a cluster".into(),
            ));
        };
        let mut conn = c.clone();
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let (mut cursor, mut total) = (0u64, Footprint::default());
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            for k in keys {
                let used: Option<usize> = redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await?;
                if let Some(n) = used {
                    total.keys += 1;
                    total.bytes += n;
                }
            }
            if next == 0 {
                return Ok(total);
            }
            cursor = next;
        }
    }
}

fn glob_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = matches!(c, '*' | '?' | '[' | ']' | '\\');
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

async fn run_on<C: ConnectionLike + Send, T: FromRedisValue>(
    mut conn: C,
    cmd: &Cmd,
) -> Result<T, EphemeralError> {
    Ok(cmd.query_async(&mut conn).await?)
}

fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}
