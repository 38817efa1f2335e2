//! The compliance report.

use async_graphql::{Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

/// A user without 2FA.
#[derive(SimpleObject)]
pub struct NonCompliantUser {
    user_id: ID,
    first_seen_at: DateTime<Utc>,
    grace_ends_at: Option<DateTime<Utc>>,
}

/// Who in the tenant has 2FA and who does not yet.
pub struct ComplianceReport(pub twofold_services::compliance::ComplianceReport);

#[Object]
impl ComplianceReport {
    async fn enforced(&self) -> bool {
        self.0.enforced
    }
    /// When enforcement was last turned on (null while not enforced).
    async fn enforced_since(&self) -> Option<DateTime<Utc>> {
        self.0.enforced_since
    }
    async fn total_users(&self) -> i32 {
        i32::try_from(self.0.total_users).unwrap_or(i32::MAX)
    }
    async fn enrolled_users(&self) -> i32 {
        i32::try_from(self.0.enrolled_users).unwrap_or(i32::MAX)
    }
    /// Users without 2FA, soonest grace end first (all of them, with a null graceEndsAt, while
    /// 2FA is not enforced).
    async fn non_compliant(&self) -> Vec<NonCompliantUser> {
        self.0
            .non_compliant
            .iter()
            .map(|u| NonCompliantUser {
                user_id: ID(u.user_id.as_str().to_owned()),
                first_seen_at: u.first_seen_at,
                grace_ends_at: u.grace_ends_at,
            })
            .collect()
    }
    async fn end_cursor(&self) -> Option<&str> {
        self.0.end_cursor.as_deref()
    }
    async fn has_next_page(&self) -> bool {
        self.0.has_next_page
    }
}
