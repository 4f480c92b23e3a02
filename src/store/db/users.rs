//! Accounts.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Db, DbError, flag, now};
use crate::domain::user::User;
use crate::domain::{Email, Username};

const COLUMNS: &str = "id, username, email, given_name, family_name, password_hash, password_temporary, \
                       password_changed_at, disabled, updated_at";

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
            password_changed_at: t,
            disabled: false,
            updated_at: t,
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

    /// Replaces the stored hash (argon2 parameters raised, or a new password).
    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
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
        password_changed_at: r.try_get("password_changed_at")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        updated_at: r.try_get("updated_at")?,
    })
}
