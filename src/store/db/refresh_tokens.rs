//! Refresh tokens, kept as hashes, in families (every token of one grant). A token is spent
//! when rotated; presenting a spent one again means it was stolen, and the family is revoked.
//!
//! Revocation is a mark on the family (`refresh_families.revoked`) or a new sign-in epoch of the
//! account (`users.sign_in_epoch`, which the family's `epoch` must equal), never an update of
//! the token rows: a successor inserted by a rotation racing a revocation belongs to the
//! family, so it is dead too. The spend and the successor's insert each test the family in
//! the same statement, within one transaction.

use sqlx::Row;

use super::{Db, DbError, now};

/// The family `f` of account `u` is live: not revoked, the account enabled and still in the
/// sign-in epoch its sign-in saw (no reset, disable or end of all sessions since).
macro_rules! live {
    () => {
        "f.revoked = 0 AND u.disabled = 0 AND f.epoch = u.sign_in_epoch"
    };
}

/// A family's first token: who it belongs to and when the user authenticated.
pub struct NewFamily<'a> {
    pub family_id: &'a str,
    pub user_id: &'a str,
    pub client_id: &'a str,
    /// The SSO session it is bound to; `None` for offline tokens, which outlive it.
    pub session_id: Option<&'a str>,
    pub auth_time: i64,
    /// The account's sign-in epoch when its credentials were checked for this grant.
    pub epoch: i64,
}

/// A token of a family (its owner, client and session are the family's).
pub struct NewRefreshToken<'a> {
    pub token_hash: &'a str,
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
    /// The family is revoked, or its account disabled or cut off since the grant.
    pub revoked: bool,
}

/// What happened when a token was presented for rotation.
#[derive(Debug)]
pub enum Rotation {
    /// This caller spent it; the successor is stored.
    Rotated(RefreshRecord),
    /// It had been spent before: replay. The family is now revoked.
    Replayed(RefreshRecord),
    /// Unknown, expired, or its family revoked (possibly by a revocation that raced this one).
    Refused,
}

impl Db {
    /// Starts a family with its first token, unless the account is disabled or its sign-in
    /// epoch moved on since the grant's sign-in (a reset, even one racing that sign-in).
    /// `false`: refused.
    pub async fn start_refresh_family(
        &self,
        family: NewFamily<'_>,
        token: NewRefreshToken<'_>,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool().begin().await?;
        let started = sqlx::query(
            "INSERT INTO refresh_families (family_id, user_id, client_id, session_id, auth_time, created_at, epoch) \
             SELECT $1, id, $3, $4, $5, $6, $7 FROM users WHERE id = $2 AND disabled = 0 AND sign_in_epoch = $7",
        )
        .bind(family.family_id)
        .bind(family.user_id)
        .bind(family.client_id)
        .bind(family.session_id)
        .bind(family.auth_time)
        .bind(now())
        .bind(family.epoch)
        .execute(&mut *tx)
        .await?;
        if started.rows_affected() != 1 || !insert_live(&mut tx, family.family_id, &token).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRecord>, DbError> {
        let row = sqlx::query(
            "SELECT t.family_id, t.user_id, t.client_id, t.grant_json, t.expires_at, t.spent, \
                    f.revoked, u.disabled, f.epoch, u.sign_in_epoch \
             FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id \
             JOIN users u ON u.id = f.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            // The same test as `live!`, on the values read.
            let live = r.try_get::<i64, _>("revoked")? == 0
                && r.try_get::<i64, _>("disabled")? == 0
                && r.try_get::<i64, _>("epoch")? == r.try_get::<i64, _>("sign_in_epoch")?;
            Ok(RefreshRecord {
                family_id: r.try_get("family_id")?,
                user_id: r.try_get("user_id")?,
                client_id: r.try_get("client_id")?,
                grant_json: r.try_get("grant_json")?,
                expires_at: r.try_get("expires_at")?,
                spent: r.try_get::<i64, _>("spent")? != 0,
                revoked: !live,
            })
        })
        .transpose()
    }

    /// Spends the token and stores its successor in one transaction, each statement testing
    /// that the family is live; of two concurrent callers at most one gets `Rotated`.
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        successor: NewRefreshToken<'_>,
    ) -> Result<Rotation, DbError> {
        // A write first: SQLite takes its write lock here rather than upgrading a read later.
        let mut tx = self.pool().begin().await?;
        let spent = sqlx::query(concat!(
            "UPDATE refresh_tokens SET spent = 1 \
             WHERE token_hash = $1 AND spent = 0 AND expires_at > $2 AND EXISTS ( \
                SELECT 1 FROM refresh_families f JOIN users u ON u.id = f.user_id \
                WHERE f.family_id = refresh_tokens.family_id AND ",
            live!(),
            ") RETURNING family_id, user_id, client_id, grant_json, expires_at"
        ))
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = spent else {
            tx.rollback().await?;
            return match self.refresh_token(token_hash).await? {
                Some(r) if r.spent => {
                    self.revoke_refresh_family(&r.family_id).await?;
                    Ok(Rotation::Replayed(r))
                }
                _ => Ok(Rotation::Refused),
            };
        };
        let record = RefreshRecord {
            family_id: row.try_get("family_id")?,
            user_id: row.try_get("user_id")?,
            client_id: row.try_get("client_id")?,
            grant_json: row.try_get("grant_json")?,
            expires_at: row.try_get("expires_at")?,
            spent: true,
            revoked: false,
        };
        if !insert_live(&mut tx, &record.family_id, &successor).await? {
            return Ok(Rotation::Refused);
        }
        tx.commit().await?;
        Ok(Rotation::Rotated(record))
    }

    /// Whether the family is live now (checked again once its access token is filed).
    pub async fn refresh_family_live(&self, family_id: &str) -> Result<bool, DbError> {
        let row = sqlx::query(concat!(
            "SELECT f.family_id FROM refresh_families f JOIN users u ON u.id = f.user_id \
             WHERE f.family_id = $1 AND ",
            live!()
        ))
        .bind(family_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    pub async fn revoke_refresh_family(&self, family_id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE refresh_families SET revoked = 1 WHERE family_id = $1")
            .bind(family_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every refresh token of a user (password reset, account disabled, all sessions ended):
    /// a new sign-in epoch first (strictly greater, even twice in one second), so that a family
    /// started meanwhile, or later from a sign-in that saw the old epoch, is refused; returns
    /// the families it revoked.
    pub async fn revoke_user_refresh_tokens(&self, user_id: &str) -> Result<Vec<String>, DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE users SET sign_in_epoch = CASE WHEN sign_in_epoch >= $2 THEN sign_in_epoch + 1 ELSE $2 END \
             WHERE id = $1",
        )
        .bind(user_id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "UPDATE refresh_families SET revoked = 1 WHERE user_id = $1 AND revoked = 0 RETURNING family_id",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| r.try_get("family_id").map_err(Into::into))
            .collect()
    }

    /// Revokes the refresh tokens bound to an SSO session (all but offline ones); returns their families.
    pub async fn revoke_session_refresh_tokens(&self, sid: &str) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "UPDATE refresh_families SET revoked = 1 WHERE session_id = $1 AND revoked = 0 RETURNING family_id",
        )
        .bind(sid)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get("family_id").map_err(Into::into))
            .collect()
    }
}

/// Inserts a token of `family_id` if the family is live, in the same statement.
async fn insert_live(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    family_id: &str,
    t: &NewRefreshToken<'_>,
) -> Result<bool, DbError> {
    let done = sqlx::query(concat!(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, session_id, grant_json, issued_at, expires_at) \
         SELECT $1, f.family_id, f.user_id, f.client_id, f.session_id, $2, $3, $4 \
         FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.family_id = $5 AND ",
        live!()
    ))
    .bind(t.token_hash)
    .bind(t.grant_json)
    .bind(now())
    .bind(t.expires_at)
    .bind(family_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
