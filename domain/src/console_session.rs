//! How long a console session lives: it ends after 30 minutes without a request or 12 hours
//! after sign-in, whichever comes first (OWASP's session guidance for privileged consoles;
//! Keycloak's admin console defaults to the same idle limit). Revoking the key behind it ends it
//! at once, which the store checks on every request.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::tenant::KeyedHash;

/// Longest time between two requests of one session.
pub const IDLE: Duration = Duration::minutes(30);

/// Longest life of a session, however busy.
pub const ABSOLUTE: Duration = Duration::hours(12);

/// Most live sessions one key may have; signing in once more ends its oldest. Without a cap,
/// one ADMIN or AUDITOR key (signing in is not throttled for a valid key) could fill the table
/// that every sign-in prunes and every request reads.
pub const MAX_PER_KEY: usize = 10;

/// A request touches the session's last-seen time only once this much has passed since the
/// last touch, so reading pages does not write a row per request. The idle limit is therefore
/// enforced to within this much.
pub const TOUCH_EVERY: Duration = Duration::minutes(1);

/// When a session was made and last used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl SessionTimes {
    /// The moment the session ends if it is not used again.
    pub fn ends_at(&self) -> DateTime<Utc> {
        (self.last_seen_at + IDLE).min(self.created_at + ABSOLUTE)
    }

    /// Whether the session may still be used at `now`.
    pub fn alive_at(&self, now: DateTime<Utc>) -> bool {
        now < self.ends_at() && now >= self.created_at - Duration::minutes(5)
    }

    /// Whether a request at `now` should record itself as the last use.
    pub fn needs_touch(&self, now: DateTime<Utc>) -> bool {
        now - self.last_seen_at >= TOUCH_EVERY
    }
}

/// Hex characters of the token's keyed hash that name a session in the audit history.
pub const SESSION_REF_CHARS: usize = 8;

/// A session's name in the audit history: the start of its token's keyed hash. It ties a
/// sign-in to its sign-out and to its row, and is no credential: the cookie holds a 256-bit
/// token, the table its full HMAC, and 32 bits of that HMAC find neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionRef(String);

impl SessionRef {
    /// The reference of the session whose token hashes to `token_hash`.
    pub fn of(token_hash: &KeyedHash) -> Self {
        Self(
            token_hash
                .as_hex()
                .chars()
                .take(SESSION_REF_CHARS)
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn idle_for_thirty_minutes_ends_the_session() {
        let s = SessionTimes {
            created_at: at(0),
            last_seen_at: at(10),
        };
        assert!(s.alive_at(at(39)));
        assert!(!s.alive_at(at(40)));
    }

    #[test]
    fn twelve_hours_end_even_a_busy_session() {
        let s = SessionTimes {
            created_at: at(0),
            last_seen_at: at(12 * 60 - 1),
        };
        assert!(s.alive_at(at(12 * 60 - 1)));
        assert!(!s.alive_at(at(12 * 60)));
        assert_eq!(s.ends_at(), at(12 * 60));
    }

    #[test]
    fn a_session_from_the_future_is_not_alive() {
        // A clock set back by an operator must not make a session outlive its limits.
        let s = SessionTimes {
            created_at: at(60),
            last_seen_at: at(60),
        };
        assert!(!s.alive_at(at(0)));
    }

    #[test]
    fn a_session_reference_is_the_start_of_the_token_hash_only() {
        let hash = KeyedHash::from_hex("0123456789abcdef".repeat(4));
        assert_eq!(SessionRef::of(&hash).as_str(), "01234567");
    }

    #[test]
    fn touches_are_at_most_once_a_minute() {
        let s = SessionTimes {
            created_at: at(0),
            last_seen_at: at(5),
        };
        assert!(!s.needs_touch(at(5)));
        assert!(s.needs_touch(at(6)));
    }
}
