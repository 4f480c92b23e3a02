//! The durable store: sqlx's Any driver over SQLite (default) or PostgreSQL, chosen by the URL.
//!
//! Runtime queries in the SQL both backends share (`$n`, `RETURNING`, `ON CONFLICT`), columns of
//! the types Any reads on both (TEXT, BIGINT/INTEGER; flags as 0/1, times as unix seconds), and
//! one migrations folder per backend, embedded in the binary.

pub mod audit;
pub mod certificates;
pub mod clients;
pub mod consents;
pub mod outbox;
pub mod passkeys;
pub mod refresh_tokens;
pub mod signing_keys;
pub mod totp;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    /// The database refused a value the caller gave (PostgreSQL: a NUL byte or an invalid
    /// character in a string, a string too long for its column): the caller's error, not ours.
    #[error("value refused by the database: {0}")]
    Refused(#[source] Refused),
}

/// What the database said when it refused a caller's value; the source of
/// [`DbError::Refused`], so that [`refused`] finds it through any wrapper.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// SQLSTATEs for a value the caller gave that PostgreSQL cannot hold: 22021 invalid byte
/// sequence (a NUL in a string), 22P05 untranslatable character (`\u0000` in JSON), 22001
/// string too long for its column. SQLite stores all of these.
const REFUSED_STATES: &[&str] = &["22021", "22P05", "22001"];

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(d)
                if d.code()
                    .is_some_and(|c| REFUSED_STATES.contains(&c.as_ref())) =>
            {
                DbError::Refused(Refused(d.message().to_owned()))
            }
            _ => DbError::Sqlx(e),
        }
    }
}

/// True if `e`, or an error it wraps, is a value the database refused: the caller's error
/// (a 400-class answer), never a 500. A second line: request values are parsed into types
/// that refuse such values before any query.
pub fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<Refused>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects (creating the SQLite file and its folder if missing) without migrating.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let url = match backend {
            Backend::Sqlite => {
                let (url, path) = sqlite_url(url);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                options = options.max_connections(8).after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;")
                            .await
                            .map(drop)
                    })
                });
                url
            }
            Backend::Postgres => {
                options = options.max_connections(16);
                url.to_owned()
            }
        };
        let pool = options.connect(&url).await?;
        if backend == Backend::Sqlite {
            // WAL lets readers go on while one writer commits.
            pool.execute("PRAGMA journal_mode = WAL;").await?;
        }
        Ok(Self { pool, backend })
    }

    /// Connects and applies pending migrations: what `serve` does at start-up.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let db = Self::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    pub async fn migrate(&self) -> Result<(), DbError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.pool
            .execute("SELECT 1")
            .await
            .map(drop)
            .map_err(Into::into)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// `sqlite://data/x.db` → the URL sqlx opens (read-write-create) and the file path.
fn sqlite_url(url: &str) -> (String, std::path::PathBuf) {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".into()
    } else {
        format!("{query}&mode=rwc")
    };
    (
        format!("sqlite://{path}?{query}"),
        std::path::PathBuf::from_str(path).unwrap_or_else(|_| Path::new(path).to_owned()),
    )
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn flag(b: bool) -> i64 {
    b as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn refused_values_are_found_through_wrappers() {
        use super::{DbError, Refused, refused};
        #[derive(Debug, thiserror::Error)]
        enum Transparent {
            #[error(transparent)]
            Db(#[from] DbError),
        }
        let e = || DbError::Refused(Refused("invalid byte sequence".into()));
        assert!(refused(&e()));
        assert!(refused(&Transparent::from(e())));
        let other = DbError::Corrupt {
            table: "t",
            reason: "r".into(),
        };
        assert!(!refused(&other));
        assert!(!refused(&Transparent::from(DbError::from(
            sqlx::Error::RowNotFound
        ))));
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            super::sqlite_url("sqlite://data/s.db").0,
            "sqlite://data/s.db?mode=rwc"
        );
        assert_eq!(
            super::sqlite_url("sqlite:///tmp/s.db?mode=ro").0,
            "sqlite:///tmp/s.db?mode=ro"
        );
    }
}
