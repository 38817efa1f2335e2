//! Throttling of wrong codes (RFC 4226 §7.3, NIST SP 800-63B §5.2.2): every ten consecutive
//! failures lock the user for a window that doubles with each lockout, and a hundred consecutive
//! failures lock until an admin clears it. A success resets the count; a lockout ending does not.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use super::{User, UserError, UserEvent};
use crate::Method;

/// Consecutive failures that trigger each lockout.
pub const FAILURES_PER_LOCKOUT: u32 = 10;

/// Consecutive failures after which only an admin can unlock the user.
pub const MAX_FAILURES_WITHOUT_ADMIN: u32 = 100;

/// How long the `n`-th lockout (1-based) lasts: 5 minutes, doubling, at most 24 hours.
pub fn lockout_duration(n: u32) -> Duration {
    let minutes = 5i64.saturating_mul(1i64 << n.saturating_sub(1).min(20));
    Duration::minutes(minutes.min(24 * 60))
}

/// A lockout as a caller is told about it (`LOCKED_OUT`). Built only by [`Lockout::new`], from
/// the time of the command that met it, so the wait is never read from another clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// End of the lockout.
    pub until: DateTime<Utc>,
    /// Only an admin can end it.
    pub admin_required: bool,
    /// Seconds from the command to `until`, at least 1 so a client never retries at once.
    pub retry_after_seconds: i64,
}

impl Lockout {
    /// The lockout ending at `until`, as seen by a command at `at`.
    pub fn new(until: DateTime<Utc>, admin_required: bool, at: DateTime<Utc>) -> Self {
        Self {
            until,
            admin_required,
            retry_after_seconds: (until - at).num_seconds().max(1),
        }
    }
}

/// The caller's message: an admin lock has no end worth showing.
impl fmt::Display for Lockout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.admin_required {
            f.write_str(
                "too many failed attempts: the account is locked until an administrator unlocks it",
            )
        } else {
            write!(
                f,
                "too many failed attempts: try again after {}",
                self.until.to_rfc3339()
            )
        }
    }
}

impl User {
    /// The end of the lockout in force at `at`, if any.
    pub fn locked_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|u| self.admin_lock || at < *u)
    }

    /// Refuses a command at `at` while a lockout is in force: no code is checked then.
    pub(super) fn refuse_if_locked(&self, at: DateTime<Utc>) -> Result<(), UserError> {
        match self.locked_until(at) {
            Some(until) => Err(UserError::LockedOut(Lockout::new(
                until,
                self.admin_lock,
                at,
            ))),
            None => Ok(()),
        }
    }

    /// A wrong code of `method`, and the lockout it triggers, if any.
    pub(super) fn failure(&self, method: Method, at: DateTime<Utc>) -> Vec<UserEvent> {
        self.failure_on(method, None, at)
    }

    /// A wrong code, also counted against challenge `challenge_id` (which ends after
    /// [`super::ATTEMPTS_PER_CHALLENGE`] of them).
    pub(super) fn failure_on(
        &self,
        method: Method,
        challenge_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        let n = self.consecutive_failures.saturating_add(1);
        let mut events = vec![UserEvent::VerificationFailed {
            method,
            challenge_id,
            consecutive_failures: n,
            at,
        }];
        if n.is_multiple_of(FAILURES_PER_LOCKOUT) {
            let lockout = self.lockouts + 1;
            let admin_required = n >= MAX_FAILURES_WITHOUT_ADMIN;
            let until = if admin_required {
                at + Duration::days(365 * 100)
            } else {
                at + lockout_duration(lockout)
            };
            events.push(UserEvent::UserLockedOut {
                until,
                lockout,
                admin_required,
                at,
            });
        }
        events
    }
}
