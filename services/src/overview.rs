//! The tenant overview organisation admins and auditors open first: how many users the tenant
//! has shown us, how many have 2FA, are in their grace period or are locked out right now, and
//! sign-ins and wrong codes per day. Served from the `activity` and `user_compliance` read
//! models, never by scanning events.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use twofold_domain::user::grace_cohort;
use twofold_domain::Role;

use crate::ports::{Clock, DayCount, OverviewReadModel, ReadModelSync, TenantDirectory};
use crate::{KeyPrincipal, ServiceError};

/// Days shown unless the caller asks for another number.
pub const DEFAULT_DAYS: i64 = 30;
/// The most days one overview shows.
pub const MAX_DAYS: i64 = 90;

/// One UTC day's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyActivity {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Completed second-factor sign-ins (a code that proved a change is not one).
    pub sign_ins: u64,
    /// Wrong codes, wherever they were typed.
    pub failed_codes: u64,
}

/// The tenant at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOverview {
    /// The tenant enforces 2FA.
    pub enforced: bool,
    /// Users the tenant has shown us.
    pub users_seen: u64,
    /// Users with an active second factor.
    pub enrolled: u64,
    /// Users without one whose grace period has not ended (none while 2FA is not enforced).
    pub in_grace: u64,
    /// Users under a lockout now.
    pub locked_out: u64,
    /// Every day of the window, oldest first, today (UTC) last; quiet days are zeros.
    pub days: Vec<DailyActivity>,
}

/// The overview.
#[derive(Clone)]
pub struct OverviewService {
    read_model: Arc<dyn OverviewReadModel>,
    tenants: Arc<dyn TenantDirectory>,
    sync: Arc<dyn ReadModelSync>,
    clock: Arc<dyn Clock>,
}

/// Only organisation admins and auditors read the overview; the tenant's backend has no use
/// for it. Checked here as well as by the API, because the console calls this directly.
fn may_read(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Auditor)
}

/// The first and last day of a window of `days` days ending `today`.
fn window(days: i64, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ServiceError> {
    check_days(days)?;
    Ok((today - Duration::days(days - 1), today))
}

fn check_days(days: i64) -> Result<(), ServiceError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(ServiceError::InvalidInput(format!(
            "days must be between 1 and {MAX_DAYS} (got {days})"
        )))
    }
}

/// Every day from `first` to `last`, with the counts of the days that had activity.
fn every_day(first: NaiveDate, last: NaiveDate, counts: &[DayCount]) -> Vec<DailyActivity> {
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|day| {
            let c = counts.iter().find(|c| c.day == day);
            DailyActivity {
                day,
                sign_ins: c.map_or(0, |c| c.sign_ins),
                failed_codes: c.map_or(0, |c| c.failed_codes),
            }
        })
        .collect()
}

impl OverviewService {
    /// Wires the overview to its read models.
    pub fn new(
        read_model: Arc<dyn OverviewReadModel>,
        tenants: Arc<dyn TenantDirectory>,
        sync: Arc<dyn ReadModelSync>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            read_model,
            tenants,
            sync,
            clock,
        }
    }

    /// The overview of the caller's own tenant, with the last `days` days of activity (today
    /// included).
    pub async fn overview(
        &self,
        caller: &KeyPrincipal,
        days: i64,
    ) -> Result<TenantOverview, ServiceError> {
        if !may_read(caller.role) {
            return Err(ServiceError::Forbidden(format!(
                "keys with role {} may not read the overview; allowed: ADMIN, AUDITOR",
                caller.role.as_str()
            )));
        }
        // Checked before any work, so a bad request costs nothing.
        check_days(days)?;
        let tenant = &caller.tenant_id;
        // What was written before this request is in the overview.
        self.sync.catch_up_all().await?;
        let view = self
            .tenants
            .tenant(tenant)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))?;
        let policy = &view.policy;
        let now = self.clock.now();
        let enforced_since = view.enforced_since.filter(|_| policy.enforce_two_factor);
        let cohort = grace_cohort(enforced_since, policy.enrollment_grace_period_days, now);
        let totals = self.read_model.user_totals(tenant, now, cohort).await?;
        let (first, last) = window(days, now.date_naive())?;
        let counts = self.read_model.daily_activity(tenant, first, last).await?;
        Ok(TenantOverview {
            enforced: policy.enforce_two_factor,
            users_seen: totals.seen,
            enrolled: totals.enrolled,
            in_grace: totals.in_grace,
            locked_out: totals.locked_out,
            days: every_day(first, last, &counts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn only_admins_and_auditors_read_it() {
        assert!(may_read(Role::Admin));
        assert!(may_read(Role::Auditor));
        assert!(!may_read(Role::App));
    }

    #[test]
    fn the_window_ends_today_and_holds_one_to_ninety_days() {
        let today = day("2026-12-04");
        assert_eq!(window(1, today).unwrap(), (today, today));
        assert_eq!(window(30, today).unwrap(), (day("2026-11-05"), today));
        assert_eq!(window(90, today).unwrap().0, day("2026-09-06"));
        for bad in [0, -1, 91, i64::MAX, i64::MIN] {
            let e = window(bad, today).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn quiet_days_are_zeros_and_every_day_is_there_once() {
        let counts = [
            DayCount {
                day: day("2026-12-02"),
                sign_ins: 3,
                failed_codes: 1,
            },
            DayCount {
                day: day("2026-12-04"),
                sign_ins: 0,
                failed_codes: 2,
            },
        ];
        let days = every_day(day("2026-12-01"), day("2026-12-04"), &counts);
        let shown: Vec<_> = days
            .iter()
            .map(|d| (d.day.to_string(), d.sign_ins, d.failed_codes))
            .collect();
        assert_eq!(
            shown,
            [
                ("2026-12-01".to_owned(), 0, 0),
                ("2026-12-02".to_owned(), 3, 1),
                ("2026-12-03".to_owned(), 0, 0),
                ("2026-12-04".to_owned(), 0, 2),
            ]
        );
    }
}
