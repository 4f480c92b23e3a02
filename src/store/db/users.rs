//! Accounts.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Db, DbError, flag, now};
use crate::domain::user::User;
use crate::domain::{Email, Username};

const COLUMNS: &str = "id, username, email, given_name, family_name, password_hash, password_temporary, \
                       password_expired, password_changed_at, disabled, updated_at, sign_in_epoch";

pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub password_hash: String,
    pub temporary: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("the identifier `{0}` is already taken")]
    Taken(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Db {
    pub async fn create_user(&self, new: NewUser) -> Result<User, CreateUserError> {
        let id = uuid::Uuid::new_v4().to_string();
        let t = now();
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, email, given_name, family_name, password_hash, password_temporary, \
             password_changed_at, disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $8, $8) \
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(&id)
        .bind(new.username.as_str())
        .bind(new.email.as_str())
        .bind(new.given_name.clone())
        .bind(new.family_name.clone())
        .bind(&new.password_hash)
        .bind(flag(new.temporary))
        .bind(t)
        .execute(self.pool())
        .await
        .map_err(DbError::from)?;
        if inserted.rows_affected() == 0 {
            return Err(CreateUserError::Taken(new.username.to_string()));
        }
        Ok(User {
            id,
            username: new.username,
            email: new.email,
            given_name: new.given_name,
            family_name: new.family_name,
            password_hash: Some(new.password_hash),
            password_temporary: new.temporary,
            password_expired: false,
            password_changed_at: t,
            disabled: false,
            updated_at: t,
            sign_in_epoch: 0,
        })
    }

    pub async fn user_by_username(&self, username: &Username) -> Result<Option<User>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM users WHERE username = $1"
        )))
        .bind(username.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    /// Replaces the hash of the same password (stronger settings) only if it is still the one
    /// that was verified: a password change or reset in the meantime wins.
    pub async fn rehash_password(
        &self,
        user_id: &str,
        was: &str,
        hash: &str,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
            .bind(hash)
            .bind(user_id)
            .bind(was)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl Db {
    /// A new password: the old hash goes to the history (trimmed to `keep`), flags reset.
    pub async fn change_password(
        &self,
        user_id: &str,
        new_hash: &str,
        temporary: bool,
        keep: usize,
    ) -> Result<(), DbError> {
        let t = now();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO password_history (user_id, hash, created_at) \
             SELECT id, password_hash, $2 FROM users WHERE id = $1 AND password_hash IS NOT NULL",
        )
        .bind(user_id)
        .bind(t)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, password_temporary = $2, password_expired = 0, password_changed_at = $3 WHERE id = $4",
        )
        .bind(new_hash)
        .bind(flag(temporary))
        .bind(t)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN \
             (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(keep as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The last `n` previous password hashes, newest first.
    pub async fn password_history(&self, user_id: &str, n: usize) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT hash FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(n as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get("hash").map_err(Into::into))
            .collect()
    }

    pub async fn set_password_expired(&self, user_id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET password_expired = 1 WHERE id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(flag(disabled))
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

fn user_from_row(r: &AnyRow) -> Result<User, DbError> {
    let corrupt = |reason: String| DbError::Corrupt {
        table: "users",
        reason,
    };
    Ok(User {
        id: r.try_get("id")?,
        username: Username::parse(&r.try_get::<String, _>("username")?).map_err(corrupt)?,
        email: Email::parse(&r.try_get::<String, _>("email")?).map_err(corrupt)?,
        given_name: r.try_get("given_name")?,
        family_name: r.try_get("family_name")?,
        password_hash: r.try_get("password_hash")?,
        password_temporary: r.try_get::<i64, _>("password_temporary")? != 0,
        password_expired: r.try_get::<i64, _>("password_expired")? != 0,
        password_changed_at: r.try_get("password_changed_at")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        updated_at: r.try_get("updated_at")?,
        sign_in_epoch: r.try_get("sign_in_epoch")?,
    })
}
