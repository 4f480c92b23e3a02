//! The signing key ring: one active key per algorithm (RS256, ES256, EdDSA), generated on first
//! start, shared by every replica, rotated on demand, published as a JWKS.
//!
//! Two homes for private keys (`keys.storage`):
//! - `database` (default): sealed under the key-encryption key, so replicas sharing the database
//!   agree and `sesame keys rotate` reaches them all within a minute (they reload);
//! - `files`: PKCS#8 PEM files `<alg>-<generation>.pem` in `keys_dir`, for deployments that mount
//!   keys from a secret store and never want them in the database.

pub mod sealed;
pub mod signer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use openidconnect::core::CoreJsonWebKeySet;
use serde::Serialize;

use crate::config::{KeyStorage, Settings};
use crate::domain::IdTokenAlg;
use crate::store::Db;
use crate::store::db::DbError;
use crate::store::db::signing_keys::KeyRow;
use sealed::Kek;
pub use signer::{Jwk, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys.encryption_key must be the base64 of 32 random bytes")]
    BadKek,
    #[error(
        "cannot decrypt signing key {0}: keys.encryption_key (or keys_dir/master.key) is not the one that encrypted it"
    )]
    Unseal(String),
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("invalid key: {0}")]
    BadKey(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl KeyError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        KeyError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A key as `sesame keys list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub generation: i64,
    pub state: &'static str,
    pub created_at: i64,
}

/// What the ring holds at one moment; swapped whole on reload.
pub struct Snapshot {
    active: HashMap<IdTokenAlg, Arc<SigningKey>>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    jwks_json: Bytes,
    jwks: CoreJsonWebKeySet,
    pub infos: Vec<KeyInfo>,
}

enum Source {
    Db { db: Db, kek: Box<Kek> },
    Files { dir: PathBuf },
}

pub struct KeyRing {
    source: Source,
    rsa_bits: usize,
    /// Retired keys stay published this long, so tokens they signed still verify.
    publish_retired_secs: i64,
    current: RwLock<Arc<Snapshot>>,
}

impl KeyRing {
    /// Loads the ring, generating the first generation of keys if there is none.
    pub async fn open(settings: &Settings, db: &Db) -> Result<Self, KeyError> {
        let source = match settings.keys.storage {
            KeyStorage::Database => {
                let kek = Kek::from_settings(settings)?;
                Source::Db {
                    db: db.clone(),
                    kek: Box::new(kek),
                }
            }
            KeyStorage::Files => Source::Files {
                dir: settings.keys_dir.clone(),
            },
        };
        let mut ring = Self {
            source,
            rsa_bits: settings.keys.rsa_bits,
            publish_retired_secs: (settings.tokens.id_token_seconds + 3600) as i64,
            current: RwLock::new(Arc::new(Snapshot::empty())),
        };
        let snapshot = match ring.load().await? {
            s if s.active.len() == IdTokenAlg::ALL.len() => s,
            _ => {
                ring.add_generation().await?;
                ring.load().await?
            }
        };
        ring.current = RwLock::new(Arc::new(snapshot));
        Ok(ring)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn signer(&self, alg: IdTokenAlg) -> Arc<SigningKey> {
        self.snapshot()
            .active
            .get(&alg)
            .cloned()
            .expect("open() guarantees one active key per algorithm")
    }

    pub fn jwks_json(&self) -> Bytes {
        self.snapshot().jwks_json.clone()
    }

    pub fn jwks(&self) -> CoreJsonWebKeySet {
        self.snapshot().jwks.clone()
    }

    /// The claims of an ID token we signed (signature, known kid, matching alg), whatever its
    /// expiry. Our other JWTs (logout tokens, RFC 9068 access tokens) carry an explicit `typ`
    /// and are refused, so one cannot stand in for an ID token.
    pub fn verify_id_token(&self, jwt: &str) -> Option<serde_json::Value> {
        use base64::Engine;
        let header = jwt.split('.').next()?;
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .ok()?,
        )
        .ok()?;
        match header.get("typ") {
            None => {}
            Some(t) if t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) => {}
            Some(_) => return None,
        }
        let claims = self.verify_jwt(jwt)?;
        claims.get("aud")?;
        Some(claims)
    }

    /// The claims of a compact JWS signed by one of our published keys, or `None`. Checks the
    /// signature and that the header's `alg` is the key's own (no `none`, no confusion);
    /// the caller checks the claims.
    pub fn verify_jwt(&self, jwt: &str) -> Option<serde_json::Value> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = jwt.split('.');
        let (h, p, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: serde_json::Value = serde_json::from_slice(&b64.decode(h).ok()?).ok()?;
        let kid = header.get("kid")?.as_str()?;
        let alg = header.get("alg")?.as_str()?;
        let snapshot = self.snapshot();
        let key = snapshot.by_kid.get(kid)?;
        if key.alg.as_str() != alg
            || !key.verify(format!("{h}.{p}").as_bytes(), &b64.decode(sig).ok()?)
        {
            return None;
        }
        serde_json::from_slice(&b64.decode(p).ok()?).ok()
    }

    /// Re-reads the keys (another replica or the CLI may have rotated them).
    pub async fn reload(&self) -> Result<(), KeyError> {
        let snapshot = self.load().await?;
        if snapshot.active.len() == IdTokenAlg::ALL.len() {
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        }
        Ok(())
    }

    /// Makes a new active key per algorithm; the previous ones stay published.
    pub async fn rotate(&self) -> Result<Vec<KeyInfo>, KeyError> {
        self.add_generation().await?;
        self.reload().await?;
        if let Source::Db { db, .. } = &self.source {
            db.prune_signing_keys(crate::store::db::now() - self.publish_retired_secs)
                .await?;
        }
        Ok(self.snapshot().infos.clone())
    }

    async fn add_generation(&self) -> Result<(), KeyError> {
        let generation = self
            .snapshot()
            .infos
            .iter()
            .map(|k| k.generation)
            .max()
            .unwrap_or(0)
            + 1;
        let generation = match &self.source {
            Source::Db { db, .. } => {
                db.signing_keys()
                    .await?
                    .iter()
                    .map(|k| k.generation)
                    .max()
                    .unwrap_or(0)
                    + 1
            }
            Source::Files { .. } => generation.max(files_max_generation(self.files_dir())? + 1),
        };
        let rsa_bits = self.rsa_bits;
        // RSA generation takes a good fraction of a second: keep it off the async workers.
        let keys = tokio::task::spawn_blocking(move || {
            IdTokenAlg::ALL
                .iter()
                .map(|alg| SigningKey::generate(*alg, rsa_bits))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))??;
        match &self.source {
            Source::Db { db, kek } => {
                let now = crate::store::db::now();
                let rows: Vec<KeyRow> = keys
                    .iter()
                    .map(|(k, der)| KeyRow {
                        kid: k.kid().to_owned(),
                        alg: k.alg.as_str().to_owned(),
                        generation,
                        private_key: kek.seal(k.kid(), der),
                        public_jwk: serde_json::to_string(&k.jwk).expect("json"),
                        created_at: now,
                        retired_at: None,
                    })
                    .collect();
                if !db.insert_key_generation(&rows).await? {
                    tracing::info!(
                        generation,
                        "another process stored this key generation first; using its keys"
                    );
                }
            }
            Source::Files { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::io(dir, e))?;
                for (k, der) in &keys {
                    let pem = rsa::pkcs8::der::pem::encode_string(
                        "PRIVATE KEY",
                        rsa::pkcs8::LineEnding::LF,
                        der,
                    )
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                    let path = dir.join(format!(
                        "{}-{generation:04}.pem",
                        k.alg.as_str().to_lowercase()
                    ));
                    sealed::write_private(&path, pem.as_bytes())?;
                }
            }
        }
        tracing::info!(generation, "new signing keys");
        Ok(())
    }

    fn files_dir(&self) -> &Path {
        match &self.source {
            Source::Files { dir } => dir,
            Source::Db { .. } => Path::new("."),
        }
    }

    async fn load(&self) -> Result<Snapshot, KeyError> {
        let mut loaded: Vec<(i64, Option<i64>, i64, Arc<SigningKey>)> = Vec::new();
        match &self.source {
            Source::Db { db, kek } => {
                let now = crate::store::db::now();
                for row in db.signing_keys().await? {
                    if row
                        .retired_at
                        .is_some_and(|r| r + self.publish_retired_secs < now)
                    {
                        continue;
                    }
                    let alg: IdTokenAlg = row.alg.parse().map_err(KeyError::BadKey)?;
                    let der = kek.open(&row.kid, &row.private_key)?;
                    let key = SigningKey::from_pkcs8(alg, &der)?;
                    loaded.push((
                        row.generation,
                        row.retired_at,
                        row.created_at,
                        Arc::new(key),
                    ));
                }
            }
            Source::Files { dir } => {
                for (alg, generation, path) in pem_files(dir)? {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| KeyError::io(&path, e))?;
                    let (label, der) = rsa::pkcs8::der::pem::decode_vec(text.as_bytes())
                        .map_err(|e| KeyError::BadKey(format!("{}: {e}", path.display())))?;
                    if label != "PRIVATE KEY" {
                        return Err(KeyError::BadKey(format!(
                            "{}: expected a PKCS#8 PRIVATE KEY",
                            path.display()
                        )));
                    }
                    loaded.push((
                        generation,
                        None,
                        0,
                        Arc::new(SigningKey::from_pkcs8(alg, &der)?),
                    ));
                }
            }
        }
        Ok(Snapshot::build(loaded))
    }
}

impl Snapshot {
    fn empty() -> Self {
        Self::build(Vec::new())
    }

    fn build(mut keys: Vec<(i64, Option<i64>, i64, Arc<SigningKey>)>) -> Self {
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        let mut active = HashMap::new();
        let mut infos = Vec::new();
        for (generation, retired_at, created_at, key) in &keys {
            let is_active = retired_at.is_none() && !active.contains_key(&key.alg);
            if is_active {
                active.insert(key.alg, key.clone());
            }
            infos.push(KeyInfo {
                kid: key.kid().to_owned(),
                alg: key.alg.as_str().to_owned(),
                generation: *generation,
                state: if is_active { "active" } else { "published" },
                created_at: *created_at,
            });
        }
        let by_kid = keys
            .iter()
            .map(|(.., k)| (k.kid().to_owned(), k.clone()))
            .collect();
        let jwks: Vec<&Jwk> = keys.iter().map(|(.., k)| &k.jwk).collect();
        let jwks_json = serde_json::to_vec(&serde_json::json!({ "keys": jwks })).expect("json");
        let parsed =
            serde_json::from_slice(&jwks_json).expect("our JWKS parses as openidconnect's");
        Self {
            active,
            by_kid,
            jwks_json: Bytes::from(jwks_json),
            jwks: parsed,
            infos,
        }
    }
}

/// `rs256-0002.pem` → (RS256, 2, path).
fn pem_files(dir: &Path) -> Result<Vec<(IdTokenAlg, i64, PathBuf)>, KeyError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| KeyError::io(dir, e))?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pem"))
        else {
            continue;
        };
        let Some((alg, generation)) = stem.split_once('-') else {
            continue;
        };
        let alg = match alg {
            "rs256" => IdTokenAlg::RS256,
            "es256" => IdTokenAlg::ES256,
            "eddsa" => IdTokenAlg::EdDSA,
            _ => continue,
        };
        if let Ok(g) = generation.parse() {
            out.push((alg, g, path));
        }
    }
    Ok(out)
}

fn files_max_generation(dir: &Path) -> Result<i64, KeyError> {
    Ok(pem_files(dir)?
        .iter()
        .map(|(_, g, _)| *g)
        .max()
        .unwrap_or(0))
}
