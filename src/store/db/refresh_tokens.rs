//! Refresh tokens, kept as hashes. A token is spent when rotated; presenting a spent one
//! again means it was stolen, and the whole family (every token of that grant) is revoked.

use sqlx::Row;

use super::{Db, DbError, now};

pub struct NewRefreshToken<'a> {
    pub token_hash: &'a str,
    pub family_id: &'a str,
    pub user_id: &'a str,
    pub client_id: &'a str,
    /// The SSO session it is bound to; `None` for offline tokens, which outlive it.
    pub session_id: Option<&'a str>,
    /// The grant it carries (scopes, auth_time, acr, amr, sid), as JSON.
    pub grant_json: &'a str,
    pub expires_at: i64,
}

#[derive(Debug)]
pub struct RefreshRecord {
    pub family_id: String,
    pub user_id: String,
    pub client_id: String,
    pub grant_json: String,
    pub expires_at: i64,
    pub spent: bool,
    pub revoked: bool,
}

/// What happened when a token was presented for rotation.
#[derive(Debug)]
pub enum Spend {
    /// This caller spent it and may issue the successor.
    Spent(RefreshRecord),
    /// It had been spent before: replay. The family is now revoked.
    Replayed(RefreshRecord),
    Unknown,
}

impl Db {
    pub async fn store_refresh_token(&self, t: NewRefreshToken<'_>) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, session_id, grant_json, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.token_hash)
        .bind(t.family_id)
        .bind(t.user_id)
        .bind(t.client_id)
        .bind(t.session_id)
        .bind(t.grant_json)
        .bind(now())
        .bind(t.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRecord>, DbError> {
        let row = sqlx::query(
            "SELECT family_id, user_id, client_id, grant_json, expires_at, spent, revoked FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(RefreshRecord {
                family_id: r.try_get("family_id")?,
                user_id: r.try_get("user_id")?,
                client_id: r.try_get("client_id")?,
                grant_json: r.try_get("grant_json")?,
                expires_at: r.try_get("expires_at")?,
                spent: r.try_get::<i64, _>("spent")? != 0,
                revoked: r.try_get::<i64, _>("revoked")? != 0,
            })
        })
        .transpose()
    }

    /// Marks the token spent; of two concurrent callers exactly one gets `Spent`.
    pub async fn spend_refresh_token(&self, token_hash: &str) -> Result<Spend, DbError> {
        let Some(record) = self.refresh_token(token_hash).await? else {
            return Ok(Spend::Unknown);
        };
        let done =
            sqlx::query("UPDATE refresh_tokens SET spent = 1 WHERE token_hash = $1 AND spent = 0")
                .bind(token_hash)
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 1 {
            Ok(Spend::Spent(record))
        } else {
            self.revoke_refresh_family(&record.family_id).await?;
            Ok(Spend::Replayed(record))
        }
    }

    pub async fn revoke_refresh_family(&self, family_id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = $1")
            .bind(family_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every refresh token of a user (password reset, account disabled).
    pub async fn revoke_user_refresh_tokens(&self, user_id: &str) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT DISTINCT family_id FROM refresh_tokens WHERE user_id = $1 AND revoked = 0",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get("family_id").map_err(Into::into))
            .collect()
    }
}

impl Db {
    /// Revokes the refresh tokens bound to an SSO session (all but offline ones); returns their families.
    pub async fn revoke_session_refresh_tokens(&self, sid: &str) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT DISTINCT family_id FROM refresh_tokens WHERE session_id = $1 AND revoked = 0",
        )
        .bind(sid)
        .fetch_all(self.pool())
        .await?;
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE session_id = $1")
            .bind(sid)
            .execute(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get("family_id").map_err(Into::into))
            .collect()
    }
}
