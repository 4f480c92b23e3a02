//! Identifiers of a person.

use std::fmt;

/// The sign-in identifier: 1–64 characters of letters, digits and `. _ - @`, kept in lower case
/// so that « Dupont » and « dupont » are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() || s.chars().count() > 64 {
            return Err("the identifier must have 1 to 64 characters".into());
        }
        if !s
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err("the identifier may only hold letters, digits and . _ - @".into());
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address as far as one can check it without sending mail: one `@`, a dotted
/// domain, no spaces or control characters, at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let bad = || Err(format!("`{s}` is not an e-mail address"));
        if s.len() > 254
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
        {
            return bad();
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && domain.contains('.')
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => bad(),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Dupont.J ").unwrap().as_str(), "dupont.j");
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("x<script>").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn emails_are_checked() {
        assert!(Email::parse("alice@example.fr").is_ok());
        for bad in [
            "alice",
            "alice@",
            "@x.fr",
            "a@b",
            "a b@x.fr",
            "a@x.fr.",
            "\"a\"@x.fr",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}

/// An account as stored. `id` is the opaque, stable `sub`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: Username,
    pub email: Email,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub password_hash: Option<String>,
    /// A temporary password must be changed at the next sign-in (F1/F3).
    pub password_temporary: bool,
    /// Forced change at the next sign-in (`sesame user expire-password`).
    pub password_expired: bool,
    pub password_changed_at: i64,
    pub disabled: bool,
    pub updated_at: i64,
    /// Moved on by a password reset, a disabling, the end of all sessions: a session (and the
    /// tokens it gave) lives only while its sign-in saw the account's current epoch.
    pub sign_in_epoch: i64,
}

impl User {
    /// Whether the next sign-in must change the password (F3); `max_age_days` from the policy.
    pub fn must_change_password(&self, now: i64, max_age_days: Option<u64>) -> bool {
        let aged = max_age_days.is_some_and(|d| now - self.password_changed_at > d as i64 * 86_400);
        self.password_temporary || self.password_expired || aged
    }

    /// A temporary password is only good for a while.
    pub fn temporary_password_lapsed(&self, now: i64, validity_days: u64) -> bool {
        self.password_temporary && now - self.password_changed_at > validity_days as i64 * 86_400
    }

    pub fn display_name(&self) -> String {
        match (&self.given_name, &self.family_name) {
            (Some(g), Some(f)) => format!("{g} {f}"),
            (Some(n), None) | (None, Some(n)) => n.clone(),
            (None, None) => self.username.to_string(),
        }
    }
}
