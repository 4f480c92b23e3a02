//! Registered portals.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Db, DbError, flag, now};
use crate::domain::client::NewClient;
use crate::domain::{Client, ClientId, RedirectUri};

const COLUMNS: &str = "client_id, secret_hash, redirect_uris, post_logout_redirect_uris, backchannel_logout_uri, \
                       auth_method, grants, first_party, sensitive, id_token_alg, created_at, allowed_scopes, resources, min_acr";

#[derive(Debug, thiserror::Error)]
pub enum CreateClientError {
    #[error("a client `{0}` already exists")]
    Taken(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Db {
    /// Stores a client; `secret_hash` is `None` for a public client.
    pub async fn create_client(
        &self,
        new: &NewClient,
        secret_hash: Option<&str>,
    ) -> Result<Client, CreateClientError> {
        let uris = |v: &[RedirectUri]| {
            serde_json::to_string(&v.iter().map(RedirectUri::as_str).collect::<Vec<_>>())
                .expect("json")
        };
        let grants: Vec<&str> = new.grants.iter().map(|g| g.as_str()).collect();
        let t = now();
        let done = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (client_id) DO NOTHING"
        )))
        .bind(new.id.as_str())
        .bind(secret_hash)
        .bind(uris(&new.redirect_uris))
        .bind(uris(&new.post_logout_redirect_uris))
        .bind(new.backchannel_logout_uri.as_ref().map(|u| u.as_str().to_owned()))
        .bind(new.auth_method.as_str())
        .bind(serde_json::to_string(&grants).expect("json"))
        .bind(flag(new.first_party))
        .bind(flag(new.sensitive))
        .bind(new.id_token_alg.as_str())
        .bind(t)
        .bind(serde_json::to_string(&new.allowed_scopes).expect("json"))
        .bind(serde_json::to_string(&new.resources).expect("json"))
        .bind(new.min_acr.clone())
        .execute(self.pool())
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(CreateClientError::Taken(new.id.to_string()));
        }
        Ok(self.client(&new.id).await?.expect("just inserted"))
    }

    /// A client by its identifier, parsed first (no NUL or control character reaches a query).
    pub async fn client(&self, client_id: &ClientId) -> Result<Option<Client>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clients WHERE client_id = $1"
        )))
        .bind(client_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| client_from_row(&r)).transpose()
    }

    pub async fn clients(&self) -> Result<Vec<Client>, DbError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM clients ORDER BY client_id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// True if a client was deleted; its consents and refresh tokens go with it.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

fn client_from_row(r: &AnyRow) -> Result<Client, DbError> {
    let corrupt = |reason: String| DbError::Corrupt {
        table: "clients",
        reason,
    };
    let json_list = |col: &str| -> Result<Vec<String>, DbError> {
        serde_json::from_str(&r.try_get::<String, _>(col)?).map_err(|e| corrupt(e.to_string()))
    };
    let uris = |col: &str| -> Result<Vec<RedirectUri>, DbError> {
        json_list(col)?
            .iter()
            .map(|u| RedirectUri::parse(u).map_err(corrupt))
            .collect()
    };
    Ok(Client {
        id: ClientId::parse(&r.try_get::<String, _>("client_id")?).map_err(corrupt)?,
        secret_hash: r.try_get("secret_hash")?,
        redirect_uris: uris("redirect_uris")?,
        post_logout_redirect_uris: uris("post_logout_redirect_uris")?,
        backchannel_logout_uri: r
            .try_get::<Option<String>, _>("backchannel_logout_uri")?
            .map(|u| RedirectUri::parse(&u).map_err(corrupt))
            .transpose()?,
        auth_method: r
            .try_get::<String, _>("auth_method")?
            .parse()
            .map_err(corrupt)?,
        grants: json_list("grants")?
            .iter()
            .map(|g| g.parse().map_err(corrupt))
            .collect::<Result<_, _>>()?,
        first_party: r.try_get::<i64, _>("first_party")? != 0,
        sensitive: r.try_get::<i64, _>("sensitive")? != 0,
        min_acr: r.try_get("min_acr")?,
        id_token_alg: r
            .try_get::<String, _>("id_token_alg")?
            .parse()
            .map_err(corrupt)?,
        created_at: r.try_get("created_at")?,
        allowed_scopes: json_list("allowed_scopes")?,
        resources: json_list("resources")?,
    })
}
