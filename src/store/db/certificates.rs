//! Which account a national identifier (from a CPS card) signs in to.

use sqlx::Row;

use super::{Db, DbError, now};

impl Db {
    /// Binds `national_id` to an account; a later binding of the same identifier replaces it.
    pub async fn bind_certificate(&self, national_id: &str, user_id: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO certificate_bindings (national_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (national_id) DO UPDATE SET user_id = excluded.user_id, created_at = excluded.created_at",
        )
        .bind(national_id)
        .bind(user_id)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Binds `national_id` unless it is bound already; whether it was bound now.
    pub async fn bind_certificate_if_free(
        &self,
        national_id: &str,
        user_id: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT INTO certificate_bindings (national_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (national_id) DO NOTHING",
        )
        .bind(national_id)
        .bind(user_id)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The national identifiers bound to an account.
    pub async fn certificates_of(&self, user_id: &str) -> Result<Vec<String>, DbError> {
        sqlx::query(
            "SELECT national_id FROM certificate_bindings WHERE user_id = $1 ORDER BY national_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get("national_id").map_err(Into::into))
        .collect()
    }

    /// Removes one binding of the account; whether it existed.
    pub async fn unbind_certificate(
        &self,
        user_id: &str,
        national_id: &str,
    ) -> Result<bool, DbError> {
        let done =
            sqlx::query("DELETE FROM certificate_bindings WHERE user_id = $1 AND national_id = $2")
                .bind(user_id)
                .bind(national_id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn user_for_certificate(&self, national_id: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT user_id FROM certificate_bindings WHERE national_id = $1")
            .bind(national_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("user_id").map_err(Into::into))
            .transpose()
    }
}
