//! The mail outbox: a mail is a row until the SMTP server has taken it.

use sqlx::Row;

use super::{Db, DbError, now};

#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub id: i64,
    pub to_addr: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub attempts: i64,
}

pub struct NewMail<'a> {
    pub to_addr: &'a str,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: &'a str,
}

impl Db {
    pub async fn enqueue_mail(&self, m: NewMail<'_>) -> Result<(), DbError> {
        let t = now();
        sqlx::query(
            "INSERT INTO mail_outbox (to_addr, subject, text_body, html_body, attempts, next_attempt, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(m.to_addr)
        .bind(m.subject)
        .bind(m.text_body)
        .bind(m.html_body)
        .bind(t)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Claims up to `limit` due mails for `lease` seconds: another replica polling at the same
    /// time skips them (the claim is a conditional update), and a crash releases them.
    pub async fn claim_due_mail(
        &self,
        limit: i64,
        lease: i64,
    ) -> Result<Vec<OutgoingMail>, DbError> {
        let t = now();
        let rows = sqlx::query(
            "SELECT id, to_addr, subject, text_body, html_body, attempts, next_attempt FROM mail_outbox \
             WHERE sent_at IS NULL AND next_attempt <= $1 ORDER BY id LIMIT $2",
        )
        .bind(t)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::new();
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let due: i64 = r.try_get("next_attempt")?;
            let won = sqlx::query("UPDATE mail_outbox SET next_attempt = $1 WHERE id = $2 AND next_attempt = $3 AND sent_at IS NULL")
                .bind(t + lease)
                .bind(id)
                .bind(due)
                .execute(self.pool())
                .await?
                .rows_affected()
                == 1;
            if won {
                claimed.push(OutgoingMail {
                    id,
                    to_addr: r.try_get("to_addr")?,
                    subject: r.try_get("subject")?,
                    text_body: r.try_get("text_body")?,
                    html_body: r.try_get("html_body")?,
                    attempts: r.try_get("attempts")?,
                });
            }
        }
        Ok(claimed)
    }

    pub async fn mail_sent(&self, id: i64) -> Result<(), DbError> {
        // Bodies can hold temporary passwords and reset links: gone once delivered.
        sqlx::query("UPDATE mail_outbox SET sent_at = $1, last_error = NULL, text_body = '', html_body = '' WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn mail_failed(&self, id: i64, retry_in: i64, error: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE mail_outbox SET attempts = attempts + 1, next_attempt = $1, last_error = $2 WHERE id = $3")
            .bind(now() + retry_in)
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Mails not yet sent (for operators and tests).
    pub async fn pending_mail_count(&self) -> Result<i64, DbError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM mail_outbox WHERE sent_at IS NULL")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get("n")?)
    }
}
