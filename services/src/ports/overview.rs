//! The read model behind the admin overview: user totals and activity per day, kept by the
//! event processor so the overview never scans events.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use twofold_domain::user::GraceCohort;
use twofold_domain::TenantId;

use crate::StoreError;

/// A tenant's users at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserTotals {
    /// Users the tenant has shown us.
    pub seen: u64,
    /// Users with an active second factor.
    pub enrolled: u64,
    /// Users without one who are in the grace cohort asked for.
    pub in_grace: u64,
    /// Users under a lockout at that moment.
    pub locked_out: u64,
}

/// One UTC day's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Completed second-factor sign-ins.
    pub sign_ins: u64,
    /// Wrong codes.
    pub failed_codes: u64,
}

/// Totals and daily activity of one tenant.
#[async_trait]
pub trait OverviewReadModel: Send + Sync {
    /// The tenant's users at `now`; `in_grace` counts the users without 2FA in `grace`.
    async fn user_totals(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        grace: GraceCohort,
    ) -> Result<UserTotals, StoreError>;
    /// The days from `first` to `last` (inclusive) that had activity, in day order; quiet days
    /// are left out.
    async fn daily_activity(
        &self,
        tenant: &TenantId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DayCount>, StoreError>;
}
