//! Remembered consents: which scopes a user granted a portal.

use sqlx::Row;

use super::{Db, DbError, now};
use crate::domain::Scopes;

impl Db {
    pub async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Scopes>, DbError> {
        let row = sqlx::query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            let s: String = r.try_get("scopes")?;
            Scopes::parse(&s).map_err(|reason| DbError::Corrupt {
                table: "consents",
                reason,
            })
        })
        .transpose()
    }

    /// Records a grant; later grants widen the remembered set.
    pub async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &Scopes,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scopes.to_string())
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
