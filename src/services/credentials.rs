//! Setting a password: the one path every flow takes (F3 change, F4 reset, F5 « Mon compte »),
//! so that the same rules apply everywhere.

use minijinja::context;

use crate::domain::password::{PasswordPolicy, Violation};
use crate::domain::user::User;
use crate::hashing::Verified;
use crate::mail::Kind;
use crate::state::{AppState, Internal};
use crate::store::db::audit::AuditEvent;
use crate::web::Locale;

impl AppState {
    pub fn policy(&self) -> PasswordPolicy {
        PasswordPolicy::from_settings(&self.settings.password)
    }

    /// Checks `new` against the policy, its confirmation and the history; on success stores
    /// it, writes the audit row and queues the confirmation e-mail.
    pub async fn set_password(
        &self,
        user: &User,
        new: &str,
        confirm: &str,
        event: crate::domain::audit::Event,
        locale: Locale,
    ) -> Result<Result<(), Vec<Violation>>, Internal> {
        let policy = self.policy();
        let mut violations = policy.check(new, user.username.as_str());
        if new != confirm {
            violations.push(Violation::Mismatch);
        }
        if violations.is_empty() && policy.history > 0 {
            let mut previous = self
                .db
                .password_history(&user.id, policy.history.saturating_sub(1))
                .await?;
            previous.extend(user.password_hash.clone());
            for hash in &previous {
                if matches!(
                    self.passwords.verify(Some(hash), new).await,
                    Verified::Yes(_)
                ) {
                    violations.push(Violation::Reused(policy.history));
                    break;
                }
            }
        }
        if !violations.is_empty() {
            return Ok(Err(violations));
        }
        let hash = self.passwords.hash(new).await?;
        self.db
            .change_password(&user.id, &hash, false, policy.history)
            .await?;
        // A forgotten-password link still pending would undo this change.
        self.eph.delete(&latest_reset_key(&user.id)).await?;
        self.db
            .audit(AuditEvent {
                user_id: Some(&user.id),
                ..AuditEvent::new(event)
            })
            .await?;
        let when = chrono::Utc::now().format("%d/%m/%Y %H:%M UTC").to_string();
        self.mailer
            .send(
                &self.db,
                &user.email,
                locale,
                Kind::PasswordChanged,
                context! { username => user.username.to_string(), when => when },
            )
            .await?;
        Ok(Ok(()))
    }

    /// Ends every SSO session and refresh token of an account (reset, disable), and tells
    /// the portals of each session through back-channel logout.
    pub async fn end_all_sessions(&self, user_id: &str) -> Result<(), Internal> {
        for session in crate::services::session::sessions_of(&self.eph, user_id).await? {
            for client_id in &crate::services::session::portals_of(&self.eph, &session).await? {
                if let Some(client) = self.client(client_id).await? {
                    self.tell_portal(&client, &session);
                }
            }
        }
        crate::services::session::end_all(&self.db, &self.eph, user_id).await
    }
}

/// Tells the owner that a sign-in means was added or removed (with the support contact).
pub async fn notify(
    state: &AppState,
    user: &User,
    locale: Locale,
    kind: Kind,
    factor: &str,
) -> Result<(), Internal> {
    let when = chrono::Utc::now().format("%d/%m/%Y %H:%M UTC").to_string();
    let ctx = context! { username => user.username.to_string(), factor => factor, when => when };
    state
        .mailer
        .send(&state.db, &user.email, locale, kind, ctx)
        .await?;
    Ok(())
}

/// Names the one live forgotten-password link of an account (F4): a newer link, or a
/// password set by any flow, voids the older one.
pub fn latest_reset_key(user_id: &str) -> String {
    format!("reset_user:{user_id}")
}

/// The messages a form shows for the broken rules.
pub fn messages(locale: Locale, violations: &[Violation]) -> Vec<String> {
    violations
        .iter()
        .map(|v| match v.number() {
            Some(n) => crate::web::templates::text_n(locale, v.key(), n as i64),
            None => crate::web::templates::text(locale, v.key()),
        })
        .collect()
}
