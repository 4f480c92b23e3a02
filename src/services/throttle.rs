//! Throttling of failed attempts, shared by replicas through the ephemeral store.
//!
//! Per account (keyed by the identifier as typed, normalised, so that unknown identifiers
//! behave exactly like real ones): after 5 consecutive failures, each new failure makes the
//! next try wait 30 s, 60 s, 120 s… up to an hour (CNIL: "more than 1 minute after 5
//! failures"); 25 failures in 24 hours stop password attempts for the rest of the window.
//! A success resets the consecutive count; a completed password reset resets everything.
//!
//! The trade-off: an attacker who knows an identifier can make its owner wait, and after 25
//! failures block password sign-in for up to 24 hours, but never for good: the forgotten
//! password flow (captcha + e-mailed link) always works and clears the counters, and other
//! means of sign-in are not throttled by password failures. Locking accounts for good on
//! failures would hand attackers a denial of service, so it is not done.
//!
//! Per client address: failures on the sign-in form and at the token endpoint, every
//! forgotten-password request, and the anonymous requests that write to the ephemeral store
//! (a parked sign-in request, a captcha, a logout confirmation) are counted in short windows.

use std::time::Duration;

use crate::state::{AppState, Internal};

/// Whether an attempt may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Try again in this many seconds.
    Wait(u64),
}

const DAY: Duration = Duration::from_secs(86_400);
pub const FREE_FAILURES: u64 = 5;
pub const DAILY_FAILURES: u64 = 25;
/// Attempts allowed in flight at once for an account with no recent failure.
const BURST: u64 = 16;
/// How long an attempt counts as in flight if its process dies before finishing it.
const INFLIGHT_WINDOW: Duration = Duration::from_secs(30);

/// Per-address limits: (attempts, window).
pub const LOGIN_FAILURES_PER_ADDRESS: (u64, Duration) = (50, Duration::from_secs(600));
pub const TOKEN_FAILURES_PER_ADDRESS: (u64, Duration) = (60, Duration::from_secs(60));
pub const FORGOT_PER_ADDRESS: (u64, Duration) = (10, Duration::from_secs(900));
/// Anonymous requests that leave something in the ephemeral store (or cost CPU) are counted
/// too, so that one address cannot fill the store that also holds everyone's sessions; the
/// bound this gives is in docs/ARCHITECTURE.md. Sign-in requests parked (30 min each): a
/// shared address (NAT) starts at most 100 sign-ins a quarter of an hour.
pub const AUTHORIZE_PER_ADDRESS: (u64, Duration) = (100, Duration::from_secs(900));
/// Forgotten-password pages shown (an image captcha drawn, a captcha and a form token kept).
pub const CAPTCHA_PER_ADDRESS: (u64, Duration) = (30, Duration::from_secs(900));
/// Logout confirmations parked (10 min each).
pub const LOGOUT_PER_ADDRESS: (u64, Duration) = (30, Duration::from_secs(600));
/// Sign-in requests kept per browser (`sesame_browser` cookie): a new one drops the oldest,
/// as the tab opened last is the one the person is looking at.
pub const PENDING_PER_BROWSER: u64 = 10;

/// The store key of an account counter. The identifier is the one typed (so that unknown ones
/// behave like real ones), hashed: keys stay small whatever a client sends.
fn account_key(kind: &str, identifier: &str) -> String {
    format!("{kind}:{}", crate::crypto::token_hash(identifier))
}

fn delay_after(consecutive: u64) -> u64 {
    if consecutive <= FREE_FAILURES {
        return 0;
    }
    (30u64 << (consecutive - FREE_FAILURES - 1).min(7)).min(3600)
}

impl AppState {
    /// The client's address, for throttling and audit: the peer's, unless the peer is one of
    /// `trusted_proxies`; then the right-most `X-Forwarded-For` hop that is not a trusted
    /// proxy. Hops to its left were written by the client and prove nothing.
    pub fn client_ip(
        &self,
        peer: &std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> String {
        crate::forwarded::client_address(&self.settings.trusted_proxies, peer.ip(), headers)
            .to_string()
    }

    /// Before checking a password for `identifier`.
    pub async fn account_gate(&self, identifier: &str) -> Result<Gate, Internal> {
        let until = self
            .eph
            .get(&account_key("lock", identifier))
            .await?
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(t) = until.filter(|t| *t > self.now()) {
            return Ok(Gate::Wait((t - self.now()) as u64));
        }
        // Attempts in flight count too: a thousand parallel guesses cannot all pass before
        // the first failure is recorded. Every `Open` is followed by `account_failed` or
        // `account_succeeded`, which release it.
        let inflight = self
            .eph
            .incr(&account_key("inflight", identifier), INFLIGHT_WINDOW)
            .await?;
        let failures = self
            .eph
            .get(&account_key("fails:run", identifier))
            .await?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        // A clean account tolerates a burst (several of the person's devices at once); after a
        // failure, no more attempts in flight than failures left before the delay.
        let limit = if failures == 0 { BURST } else { FREE_FAILURES };
        if inflight > 1 && failures + inflight > limit {
            self.eph.decr(&account_key("inflight", identifier)).await?;
            return Ok(Gate::Wait(1));
        }
        Ok(Gate::Open)
    }

    /// After a wrong password (or unknown identifier): returns the wait now imposed.
    pub async fn account_failed(&self, identifier: &str) -> Result<Gate, Internal> {
        self.eph.decr(&account_key("inflight", identifier)).await?;
        let consecutive = self
            .eph
            .incr(&account_key("fails:run", identifier), DAY)
            .await?;
        let today = self
            .eph
            .incr(&account_key("fails:day", identifier), DAY)
            .await?;
        let wait = if today >= DAILY_FAILURES {
            DAY.as_secs()
        } else {
            delay_after(consecutive)
        };
        if wait == 0 {
            return Ok(Gate::Open);
        }
        let until = self.now() + wait as i64;
        self.eph
            .put(
                &account_key("lock", identifier),
                &until.to_string(),
                Duration::from_secs(wait),
            )
            .await?;
        Ok(Gate::Wait(wait))
    }

    pub async fn account_succeeded(&self, identifier: &str) -> Result<(), Internal> {
        self.eph.decr(&account_key("inflight", identifier)).await?;
        self.eph
            .delete(&account_key("fails:run", identifier))
            .await?;
        Ok(())
    }

    /// After a completed password reset: the owner proved control of the mailbox.
    pub async fn account_cleared(&self, identifier: &str) -> Result<(), Internal> {
        for k in ["fails:run", "fails:day", "lock"] {
            self.eph.delete(&account_key(k, identifier)).await?;
        }
        Ok(())
    }

    /// Counts one `action` for `address` and says whether it is still within `limit`. The
    /// attempt is counted before the work it guards, so parallel attempts cannot all pass
    /// the gate before the first outcome is known; [`Self::address_forgive`] gives back an
    /// attempt that succeeded, so only failures (and refused attempts) stay counted.
    pub async fn address_attempt(
        &self,
        action: &str,
        address: &str,
        limit: (u64, Duration),
    ) -> Result<Gate, Internal> {
        let n = self
            .eph
            .incr(&format!("addr:{action}:{address}"), limit.1)
            .await?;
        Ok(if n > limit.0 {
            Gate::Wait(limit.1.as_secs())
        } else {
            Gate::Open
        })
    }

    /// An attempt counted by [`Self::address_attempt`] succeeded: it does not count.
    pub async fn address_forgive(&self, action: &str, address: &str) -> Result<(), Internal> {
        self.eph.decr(&format!("addr:{action}:{address}")).await?;
        Ok(())
    }

    /// Counts one more `action` for `address` in its window (a failure found after the
    /// fact, on a path with no gate of its own).
    pub async fn address_count(
        &self,
        action: &str,
        address: &str,
        limit: (u64, Duration),
    ) -> Result<(), Internal> {
        self.eph
            .incr(&format!("addr:{action}:{address}"), limit.1)
            .await?;
        Ok(())
    }
}

/// What re-checking a known account's current password came to.
pub enum Recheck {
    Right,
    Wrong,
    /// Throttled: try again in this many seconds.
    Wait(u64),
}

impl AppState {
    /// Checks the current password of `user` (F3, F5, changing a factor), throttled like a
    /// sign-in; `typed_username`, when the form has one, must name the same account.
    /// Failures also count for `address`, when given.
    pub async fn recheck_password(
        &self,
        user: &crate::domain::user::User,
        typed_username: Option<&str>,
        password: &str,
        address: Option<&str>,
    ) -> Result<Recheck, Internal> {
        let identifier = user.username.to_string();
        if let Gate::Wait(s) = self.account_gate(&identifier).await? {
            return Ok(Recheck::Wait(s));
        }
        let same_user = typed_username
            .is_none_or(|t| crate::domain::Username::parse(t).is_ok_and(|u| u == user.username));
        let right = matches!(
            self.passwords
                .verify(user.password_hash.as_deref(), password)
                .await,
            crate::hashing::Verified::Yes(_)
        );
        if same_user && right {
            self.account_succeeded(&identifier).await?;
            return Ok(Recheck::Right);
        }
        self.account_failed(&identifier).await?;
        if let Some(a) = address {
            self.address_count("login", a, LOGIN_FAILURES_PER_ADDRESS)
                .await?;
        }
        Ok(Recheck::Wrong)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_delay_doubles_past_five_failures_and_exceeds_a_minute() {
        let d: Vec<u64> = (1..=10).map(super::delay_after).collect();
        assert_eq!(&d[..5], &[0, 0, 0, 0, 0]);
        assert_eq!(d[5], 30);
        assert_eq!(d[6], 60);
        assert!(d[7] > 60);
        assert_eq!(super::delay_after(40), 3600);
    }
}
