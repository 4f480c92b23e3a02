//! The single sign-on session: a random cookie, its hash as the key in the ephemeral store,
//! an idle lifetime renewed by use and an absolute one that nothing extends (ANS: 30 min, 4 h).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::crypto::{random_token, token_hash};
use crate::domain::audit::Event;
use crate::state::AppState;
use crate::store::ephemeral::EphemeralError;
use crate::web::cookies;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Public session id: the `sid` of ID and logout tokens. Not the cookie.
    pub sid: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub created_at: i64,
    pub touched_at: i64,
    /// Portals that received tokens in this session: told at logout.
    pub clients: BTreeSet<String>,
    /// The account's sign-in epoch when the credentials were checked: a reset that moved it
    /// on since (even one racing this sign-in) voids the session.
    #[serde(default)]
    pub epoch: i64,
}

/// A session found from the request's cookie, with the key it is stored under.
pub struct Current {
    pub key: String,
    pub session: Session,
}

fn key(cookie: &str) -> String {
    format!("session:{}", token_hash(cookie))
}

/// Marks a session alive by its public id, for what outlives the cookie check (refresh).
pub fn sid_key(sid: &str) -> String {
    format!("sid:{sid}")
}

/// The portals a session signed in to, filed atomically: two portals' requests racing on
/// one session must both be told at logout (the session record alone would keep one).
fn portals_index(sid: &str) -> String {
    format!("portals:{sid}")
}

/// Every portal the session has given a code to.
pub async fn portals_of(
    eph: &crate::store::Ephemeral,
    session: &Session,
) -> Result<BTreeSet<String>, EphemeralError> {
    let mut portals = session.clients.clone();
    for member in eph.members(&portals_index(&session.sid)).await? {
        if let Some(id) = member.strip_prefix("client:") {
            portals.insert(id.to_owned());
        }
    }
    Ok(portals)
}

pub(crate) fn user_index(user_id: &str) -> String {
    format!("user:{user_id}")
}

impl AppState {
    fn session_ttl(&self, s: &Session) -> Option<Duration> {
        let idle = self.settings.session.idle_minutes as i64 * 60;
        let absolute_end = s.created_at + self.settings.session.max_hours as i64 * 3600;
        // Idle from the last recorded use (recorded at most once a minute), never past the
        // absolute end; the store's TTL says the same, this holds without it.
        let left = (absolute_end - self.now()).min(s.touched_at + idle - self.now());
        (left > 0).then(|| Duration::from_secs(left as u64))
    }

    /// The store key of the session cookie this request carries (live or not).
    pub fn session_key_in(&self, headers: &HeaderMap) -> Option<String> {
        self.cookie(headers, cookies::SESSION).map(key)
    }

    /// The live session of this browser, if any; renews the idle lifetime (at most once a minute).
    /// A session lives only while its account is enabled and still in the sign-in epoch the
    /// session saw (read afresh: an operator's reset or disabling in another process reaches
    /// every page, « Mon compte » included, even where it cannot reach the ephemeral store).
    pub async fn current_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Current>, crate::state::Internal> {
        let Some(cookie) = self.cookie(headers, cookies::SESSION) else {
            return Ok(None);
        };
        let key = key(cookie);
        let Some(mut session) = self.eph.get_json::<Session>(&key).await? else {
            return Ok(None);
        };
        let Some(ttl) = self.session_ttl(&session) else {
            self.eph.delete(&key).await?;
            return Ok(None);
        };
        if self.active_epoch(&session.user_id).await? != Some(session.epoch) {
            self.eph.delete(&key).await?;
            return Ok(None);
        }
        if self.now() - session.touched_at >= 60 {
            session.touched_at = self.now();
            // Only while it still exists: a logout or a reset racing with this request wins.
            if !self.eph.put_json_if_present(&key, &session, ttl).await? {
                return Ok(None);
            }
            self.eph
                .put_if_present(&sid_key(&session.sid), "1", ttl)
                .await?;
        }
        Ok(Some(Current { key, session }))
    }

    /// A new session after a successful sign-in; always a new cookie (no fixation).
    pub async fn start_session(
        &self,
        user_id: &str,
        amr: Vec<String>,
        acr: &str,
        epoch: i64,
    ) -> Result<(Current, HeaderValue), crate::state::Internal> {
        self.start_session_replacing(user_id, amr, acr, None, epoch)
            .await
    }

    /// A new session that replaces the browser's previous one (stored under `replaces`), so
    /// that no session is left behind its cookie: the same account (a step-up, `prompt=login`)
    /// keeps its `sid`, its portals and its absolute end; another account's session ends as
    /// a logout would (the next person at a shared workstation).
    pub async fn start_session_replacing(
        &self,
        user_id: &str,
        amr: Vec<String>,
        acr: &str,
        replaces: Option<&str>,
        epoch: i64,
    ) -> Result<(Current, HeaderValue), crate::state::Internal> {
        let now = self.now();
        let mut session = Session {
            sid: random_token(),
            user_id: user_id.to_owned(),
            auth_time: now,
            amr,
            acr: acr.to_owned(),
            created_at: now,
            touched_at: now,
            clients: BTreeSet::new(),
            epoch,
        };
        let old = match replaces {
            Some(key) => self.eph.take(key).await?.map(|json| (key, json)),
            None => None,
        };
        if let Some((key, json)) = old
            && let Ok(previous) = serde_json::from_str::<Session>(&json)
        {
            // The same account goes on in the same session, unless its absolute end has come.
            if previous.user_id == user_id && self.session_ttl(&previous).is_some() {
                session.sid = previous.sid;
                session.clients = previous.clients;
                session.created_at = previous.created_at;
            } else if previous.user_id != user_id {
                let current = Current {
                    key: key.to_owned(),
                    session: previous,
                };
                self.end_session(&current).await?;
            }
        }
        let cookie = random_token();
        let key = key(&cookie);
        // Fresh, or carried over while the replaced session had time left: never empty.
        let ttl = self
            .session_ttl(&session)
            .ok_or(crate::state::Internal::Gone)?;
        self.eph.put_json(&key, &session, ttl).await?;
        self.eph.put(&sid_key(&session.sid), "1", ttl).await?;
        let max = Duration::from_secs(self.settings.session.max_hours * 3600);
        self.eph
            .own(&user_index(user_id), &sid_key(&session.sid), max)
            .await?;
        self.eph
            .own(
                &user_index(user_id),
                &key,
                Duration::from_secs(self.settings.session.max_hours * 3600),
            )
            .await?;
        let set = self.set_cookie(cookies::SESSION, &cookie, None);
        Ok((Current { key, session }, set))
    }

    /// Records that the session signed in to `client_id` (for back-channel logout).
    pub async fn add_portal(
        &self,
        current: &mut Current,
        client_id: &str,
    ) -> Result<(), EphemeralError> {
        if current.session.clients.insert(client_id.to_owned()) {
            let max = Duration::from_secs(self.settings.session.max_hours * 3600);
            self.eph
                .own(
                    &portals_index(&current.session.sid),
                    &format!("client:{client_id}"),
                    max,
                )
                .await?;
            self.save_session(current).await?;
        }
        Ok(())
    }

    /// Writes the session back, unless it ended meanwhile (logout, reset): never revived.
    pub async fn save_session(&self, current: &Current) -> Result<(), EphemeralError> {
        match self.session_ttl(&current.session) {
            Some(ttl) => self
                .eph
                .put_json_if_present(&current.key, &current.session, ttl)
                .await
                .map(drop),
            None => self.eph.delete(&current.key).await,
        }
    }

    /// Ends one session: deletes it, revokes its session-bound refresh tokens, and tells every
    /// portal that has a back-channel logout URI (without waiting for them).
    pub async fn end_session(&self, current: &Current) -> Result<(), crate::state::Internal> {
        self.eph.delete(&current.key).await?;
        self.eph.delete(&sid_key(&current.session.sid)).await?;
        let families = self
            .db
            .revoke_session_refresh_tokens(&current.session.sid)
            .await?;
        for f in families {
            self.eph.delete_owner(&format!("family:{f}")).await?;
        }
        for client_id in &portals_of(&self.eph, &current.session).await? {
            if let Some(client) = self.client(client_id).await? {
                self.tell_portal(&client, &current.session);
            }
        }
        let _ = self
            .db
            .audit(crate::store::db::audit::AuditEvent {
                user_id: Some(&current.session.user_id),
                ..crate::store::db::audit::AuditEvent::new(Event::Logout)
            })
            .await;
        Ok(())
    }

    /// Queues the back-channel logout token of `session` for `client`.
    pub fn tell_portal(&self, client: &crate::domain::Client, session: &Session) {
        self.backchannel.notify(
            &self.keys,
            self.issuer(),
            client,
            &session.user_id,
            &session.sid,
        );
    }

    pub fn clear_session_cookie(&self) -> HeaderValue {
        self.clear_cookie(cookies::SESSION)
    }
}

/// The account's live SSO sessions.
pub async fn sessions_of(
    eph: &crate::store::Ephemeral,
    user_id: &str,
) -> Result<Vec<Session>, EphemeralError> {
    let mut sessions = Vec::new();
    for key in eph.members(&user_index(user_id)).await? {
        if key.starts_with("session:")
            && let Some(s) = eph.get_json::<Session>(&key).await?
        {
            sessions.push(s);
        }
    }
    Ok(sessions)
}

/// Ends every SSO session and revokes every refresh token (and its access tokens) of an
/// account: after a password reset, or when an operator disables it.
pub async fn end_all(
    db: &crate::store::Db,
    eph: &crate::store::Ephemeral,
    user_id: &str,
) -> Result<(), crate::state::Internal> {
    eph.delete_owner(&user_index(user_id)).await?;
    for family in db.revoke_user_refresh_tokens(user_id).await? {
        eph.delete_owner(&format!("family:{family}")).await?;
    }
    Ok(())
}

pub fn session_csrf(c: &Current) -> String {
    crate::crypto::b64url(crate::crypto::sha256(format!("logout:{}", c.key)))
}
