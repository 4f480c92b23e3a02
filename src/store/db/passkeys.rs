//! Passkeys: the public half of each WebAuthn credential, with the name its owner gave it.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Db, DbError, now};

/// One stored passkey. `credential` is webauthn-rs's `Passkey` as JSON (public key, counter).
#[derive(Debug, Clone)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, credential, created_at, last_used_at";

fn row(r: AnyRow) -> Result<PasskeyRow, DbError> {
    Ok(PasskeyRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        credential: r.try_get("credential")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Db {
    /// Stores a new passkey; `false` if that credential is already registered (to anyone).
    pub async fn add_passkey(
        &self,
        user_id: &str,
        credential_id: &str,
        name: &str,
        credential: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(user_id)
        .bind(credential_id)
        .bind(name)
        .bind(credential)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn passkeys_of(&self, user_id: &str) -> Result<Vec<PasskeyRow>, DbError> {
        let q =
            format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id");
        sqlx::query(AssertSqlSafe(q))
            .bind(user_id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(row)
            .collect()
    }

    pub async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<PasskeyRow>, DbError> {
        let q = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1");
        sqlx::query(AssertSqlSafe(q))
            .bind(credential_id)
            .fetch_optional(self.pool())
            .await?
            .map(row)
            .transpose()
    }

    /// Records a use (the new signature counter is in `credential`) if the row still holds
    /// `was`; false when it was used or removed meanwhile.
    pub async fn passkey_used(
        &self,
        id: &str,
        was: &str,
        credential: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE passkeys SET credential = $1, last_used_at = $2 WHERE id = $3 AND credential = $4",
        )
        .bind(credential)
        .bind(now())
        .bind(id)
        .bind(was)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes one of the user's passkeys; the name it had, if it was theirs.
    pub async fn delete_passkey(&self, user_id: &str, id: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING name")
            .bind(id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("name").map_err(Into::into))
            .transpose()
    }
}
