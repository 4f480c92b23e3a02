//! The audit trail: one row per security event. Never holds a secret.

use serde_json::Value;
use sqlx::Row;

use super::{Db, DbError, now};

#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub event: crate::domain::audit::Event,
    pub user_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<String>,
    pub detail: Option<Value>,
}

impl AuditEvent<'_> {
    /// An `event` row with nothing else yet: set the other fields with struct update syntax.
    pub fn new(event: crate::domain::audit::Event) -> Self {
        Self {
            event,
            user_id: None,
            client_id: None,
            ip: None,
            detail: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: i64,
    pub event: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub detail: String,
}

impl Db {
    pub async fn audit(&self, e: AuditEvent<'_>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO audit_events (at, event, user_id, client_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(now())
            .bind(e.event.as_str())
            .bind(e.user_id)
            .bind(e.client_id)
            .bind(e.ip)
            .bind(e.detail.unwrap_or(Value::Object(Default::default())).to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The latest events first; for operators and tests.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        let rows = sqlx::query("SELECT at, event, user_id, client_id, detail FROM audit_events ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    at: r.try_get("at")?,
                    event: r.try_get("event")?,
                    user_id: r.try_get("user_id")?,
                    client_id: r.try_get("client_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
