//! TOTP credentials (secrets sealed) and recovery codes (hashed).

use sqlx::Row;

use super::{Db, DbError, now};

impl Db {
    /// Stores (or replaces) a user's TOTP secret and recovery codes, in one transaction.
    pub async fn save_totp(
        &self,
        user_id: &str,
        secret_sealed: &str,
        step: i64,
        recovery_hashes: &[String],
    ) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO totp_credentials (user_id, secret_sealed, last_step, created_at) VALUES ($1, $2, $3, $4)")
            .bind(user_id)
            .bind(secret_sealed)
            .bind(step)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        for h in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn totp_secret(&self, user_id: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT secret_sealed FROM totp_credentials WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("secret_sealed").map_err(Into::into))
            .transpose()
    }

    /// Accepts time step `step` once: false if it (or a later one) was already used.
    pub async fn accept_totp_step(&self, user_id: &str, step: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE totp_credentials SET last_step = $1 WHERE user_id = $2 AND last_step < $1",
        )
        .bind(step)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends a recovery code; false if unknown or already used.
    pub async fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
            .bind(now())
            .bind(user_id)
            .bind(code_hash)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_totp(&self, user_id: &str) -> Result<bool, DbError> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        let done = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
