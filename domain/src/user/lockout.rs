//! Throttling of wrong codes (RFC 4226 §7.3, NIST SP 800-63B §5.2.2): every ten consecutive
//! failures lock the user for a window that doubles with each lockout, and a hundred consecutive
//! failures lock until an admin clears it. A success resets the count; a lockout ending does not.

use chrono::Duration;

/// Consecutive failures that trigger each lockout.
pub const FAILURES_PER_LOCKOUT: u32 = 10;

/// Consecutive failures after which only an admin can unlock the user.
pub const MAX_FAILURES_WITHOUT_ADMIN: u32 = 100;

/// How long the `n`-th lockout (1-based) lasts: 5 minutes, doubling, at most 24 hours.
pub fn lockout_duration(n: u32) -> Duration {
    let minutes = 5i64.saturating_mul(1i64 << n.saturating_sub(1).min(20));
    Duration::minutes(minutes.min(24 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_double_and_are_capped() {
        assert_eq!(lockout_duration(1), Duration::minutes(5));
        assert_eq!(lockout_duration(2), Duration::minutes(10));
        assert_eq!(lockout_duration(4), Duration::minutes(40));
        assert_eq!(
            lockout_duration(9),
            Duration::hours(21) + Duration::minutes(20)
        );
        assert_eq!(lockout_duration(10), Duration::hours(24));
        assert_eq!(lockout_duration(500), Duration::hours(24));
    }
}
