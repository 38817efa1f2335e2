//! Who in a tenant has 2FA and who does not yet: the report organisation admins and auditors
//! read, served from the `user_compliance` read model (never by scanning events).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use twofold_domain::user::grace_ends_at;
use twofold_domain::{TenantId, UserId};

use crate::encoding::{from_hex, hex_lower};
use crate::ports::{ComplianceReadModel, ReadModelSync, TenantDirectory};
use crate::ServiceError;

/// Largest page of non-compliant users.
pub const MAX_PAGE: i64 = 500;

/// A user without 2FA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonCompliantUser {
    /// The tenant's id for the user.
    pub user_id: UserId,
    /// When the tenant first showed us the user.
    pub first_seen_at: DateTime<Utc>,
    /// When their grace period ends (or ended); `None` while 2FA is not enforced.
    pub grace_ends_at: Option<DateTime<Utc>>,
}

/// The tenant's compliance with its own 2FA policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceReport {
    /// The tenant enforces 2FA.
    pub enforced: bool,
    /// When enforcement was last turned on.
    pub enforced_since: Option<DateTime<Utc>>,
    /// Users the tenant has shown us.
    pub total_users: u64,
    /// Users with an active second factor.
    pub enrolled_users: u64,
    /// One page of the users without 2FA, soonest grace end first.
    pub non_compliant: Vec<NonCompliantUser>,
    /// Cursor of the last user on the page.
    pub end_cursor: Option<String>,
    /// More users follow.
    pub has_next_page: bool,
}

/// Compliance reports.
#[derive(Clone)]
pub struct ComplianceService {
    read_model: Arc<dyn ComplianceReadModel>,
    tenants: Arc<dyn TenantDirectory>,
    sync: Arc<dyn ReadModelSync>,
}

/// Cursor prefix: a version, so the format can change without misreading old cursors.
const CURSOR_PREFIX: &str = "c1";

fn encode_cursor(user: &NonCompliantUser) -> String {
    let raw = format!(
        "{}\n{}",
        user.first_seen_at.timestamp_micros(),
        user.user_id.as_str()
    );
    format!("{CURSOR_PREFIX}{}", hex_lower(raw.as_bytes()))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, UserId), ServiceError> {
    let invalid = || ServiceError::InvalidInput("`after` is not a cursor of this report".into());
    let bytes = cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(from_hex)
        .ok_or_else(invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, user) = text.split_once('\n').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    Ok((at, UserId::parse(user).map_err(|_| invalid())?))
}

impl ComplianceService {
    /// Wires the report to its read models.
    pub fn new(
        read_model: Arc<dyn ComplianceReadModel>,
        tenants: Arc<dyn TenantDirectory>,
        sync: Arc<dyn ReadModelSync>,
    ) -> Self {
        Self {
            read_model,
            tenants,
            sync,
        }
    }

    /// The report for `tenant`: totals, and the page of users without 2FA after `after`.
    pub async fn report(
        &self,
        tenant: &TenantId,
        first: i64,
        after: Option<&str>,
    ) -> Result<ComplianceReport, ServiceError> {
        let limit = crate::error::page_size(first, MAX_PAGE)?;
        let after = after.map(decode_cursor).transpose()?;
        // What was written before this request is in the report.
        self.sync.catch_up_all().await?;
        let view = self
            .tenants
            .tenant(tenant)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))?;
        let policy = &view.policy;
        let enforced_since = view.enforced_since.filter(|_| policy.enforce_two_factor);
        let counts = self.read_model.counts(tenant).await?;
        let mut users = self
            .read_model
            .not_enrolled(tenant, after.as_ref(), limit + 1)
            .await?;
        let has_next_page = users.len() > first as usize;
        users.truncate(first as usize);
        let non_compliant: Vec<NonCompliantUser> = users
            .into_iter()
            .map(|u| NonCompliantUser {
                grace_ends_at: grace_ends_at(
                    enforced_since,
                    policy.enrollment_grace_period_days,
                    u.first_seen_at,
                ),
                user_id: u.user_id,
                first_seen_at: u.first_seen_at,
            })
            .collect();
        Ok(ComplianceReport {
            enforced: policy.enforce_two_factor,
            enforced_since,
            total_users: counts.total,
            enrolled_users: counts.enrolled,
            end_cursor: non_compliant.last().map(encode_cursor),
            non_compliant,
            has_next_page,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_invalid_input() {
        let user = NonCompliantUser {
            user_id: UserId::parse("a/b c").unwrap(),
            first_seen_at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            grace_ends_at: None,
        };
        let cursor = encode_cursor(&user);
        assert_eq!(
            decode_cursor(&cursor).unwrap(),
            (user.first_seen_at, user.user_id)
        );
        for bad in ["", "c1", "c1zz", "x1616263", &cursor[..cursor.len() - 1]] {
            assert!(
                matches!(decode_cursor(bad), Err(ServiceError::InvalidInput(_))),
                "{bad}"
            );
        }
    }
}
