//! Signing keys shared by replicas: private parts sealed under the key-encryption key.

use sqlx::Row;

use super::{Db, DbError, now};

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub generation: i64,
    /// Sealed PKCS#8 (see `keys::sealed`).
    pub private_key: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Db {
    pub async fn signing_keys(&self) -> Result<Vec<KeyRow>, DbError> {
        let rows = sqlx::query(
            "SELECT kid, alg, generation, private_key, public_jwk, created_at, retired_at FROM signing_keys ORDER BY generation DESC, alg",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyRow {
                    kid: r.try_get("kid")?,
                    alg: r.try_get("alg")?,
                    generation: r.try_get("generation")?,
                    private_key: r.try_get("private_key")?,
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Inserts one generation of keys and retires the older ones, in one transaction.
    /// Returns false if another process already stored this generation (it won the race;
    /// everyone then reads its keys, so replicas agree).
    pub async fn insert_key_generation(&self, rows: &[KeyRow]) -> Result<bool, DbError> {
        let mut tx = self.pool().begin().await?;
        let mut stored = 0;
        for k in rows {
            stored += sqlx::query(
                "INSERT INTO signing_keys (kid, alg, generation, private_key, public_jwk, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (generation, alg) DO NOTHING",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(k.generation)
            .bind(&k.private_key)
            .bind(&k.public_jwk)
            .bind(k.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if stored as usize != rows.len() {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(g) = rows.first().map(|k| k.generation) {
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE generation < $2 AND retired_at IS NULL")
                .bind(now())
                .bind(g)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets retired keys that no unexpired token can name any more.
    pub async fn prune_signing_keys(&self, retired_before: i64) -> Result<u64, DbError> {
        let done = sqlx::query(
            "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1",
        )
        .bind(retired_before)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
