//! The tenant overview: users by state and activity per day.

use async_graphql::{Object, SimpleObject};

/// One UTC day's activity.
#[derive(SimpleObject)]
pub struct DailyActivity {
    /// The day, `YYYY-MM-DD` (UTC).
    day: String,
    /// Completed second-factor sign-ins (a code that proved a change is not counted).
    sign_ins: i32,
    /// Wrong codes (sign-ins, proofs of changes and confirmations of new factors).
    failed_codes: i32,
}

/// The tenant at a glance, from read models kept by the event processor.
pub struct TenantOverview(pub twofold_services::overview::TenantOverview);

fn int(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The tenant at a glance: users by state now, and activity per UTC day.
#[Object]
impl TenantOverview {
    /// The tenant enforces 2FA.
    async fn enforced(&self) -> bool {
        self.0.enforced
    }
    /// Users the tenant has shown us.
    async fn users_seen(&self) -> i32 {
        int(self.0.users_seen)
    }
    /// Users with an active second factor.
    async fn enrolled(&self) -> i32 {
        int(self.0.enrolled)
    }
    /// Users without 2FA whose grace period has not ended (0 while 2FA is not enforced).
    async fn in_grace(&self) -> i32 {
        int(self.0.in_grace)
    }
    /// Users under a lockout now.
    async fn locked_out(&self) -> i32 {
        int(self.0.locked_out)
    }
    /// Every day of the window, oldest first, today (UTC) last; quiet days are zeros.
    async fn days(&self) -> Vec<DailyActivity> {
        self.0
            .days
            .iter()
            .map(|d| DailyActivity {
                day: d.day.format("%Y-%m-%d").to_string(),
                sign_ins: int(d.sign_ins),
                failed_codes: int(d.failed_codes),
            })
            .collect()
    }
}
