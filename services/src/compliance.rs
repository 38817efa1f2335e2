//! Who in a tenant has 2FA and who does not yet: the report organisation admins and auditors
//! read, served from the `user_compliance` read model (never by scanning events).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use twofold_domain::user::grace_ends_at;
use twofold_domain::{TenantId, UserId};

use twofold_domain::secrets::SealedSecret;

use crate::ports::{ComplianceReadModel, ReadModelSync, Sealer, TenantDirectory};
use crate::streams::{StreamSlot, StreamSlots};
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
    sealer: Arc<dyn Sealer>,
    /// The downloads running, per tenant (shared by every clone).
    downloads: StreamSlots,
}

/// Cursor prefix: a version, so the format can change without misreading old cursors (`c1`
/// was readable hex holding the user id, accepted from any tenant).
const CURSOR_PREFIX: &str = "c2";
/// What a cursor's seal is bound to, beside the tenant.
const CURSOR_CONTEXT: &str = "compliance-cursor";

/// The position after `user`, sealed under the tenant's data key: the user id inside is not
/// readable, and another tenant's cursor (or an audit cursor) does not open.
async fn encode_cursor(
    sealer: &dyn Sealer,
    tenant: &TenantId,
    user: &NonCompliantUser,
) -> Result<String, ServiceError> {
    let raw = format!(
        "{}\n{}",
        user.first_seen_at.timestamp_micros(),
        user.user_id.as_str()
    );
    let sealed = sealer.seal(tenant, CURSOR_CONTEXT, raw.as_bytes()).await?;
    Ok(format!("{CURSOR_PREFIX}{}", sealed.as_encoded()))
}

/// The position in a cursor of this tenant's report. A cursor that does not open is
/// `INVALID_INPUT`, whatever the reason: this tenant's data key, which the report's own cursor
/// was sealed with, is cached, so a failure here is a cursor from elsewhere.
async fn decode_cursor(
    sealer: &dyn Sealer,
    tenant: &TenantId,
    cursor: &str,
) -> Result<(DateTime<Utc>, UserId), ServiceError> {
    let invalid = || ServiceError::InvalidInput("`after` is not a cursor of this report".into());
    let sealed = cursor
        .strip_prefix(CURSOR_PREFIX)
        .filter(|s| !s.is_empty() && s.len() <= 1024)
        .map(|s| SealedSecret::from_encoded(s.to_owned()))
        .ok_or_else(invalid)?;
    let bytes = sealer
        .open(tenant, CURSOR_CONTEXT, &sealed)
        .await
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| invalid())?;
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
        sealer: Arc<dyn Sealer>,
    ) -> Self {
        Self {
            read_model,
            tenants,
            sync,
            sealer,
            downloads: StreamSlots::default(),
        }
    }

    /// Every user without 2FA, a page of up to [`MAX_PAGE`] at a time, following the report's
    /// cursors (memory stays bounded however many there are), for a download. It holds one of
    /// the tenant's [`MAX_COMPLIANCE_CSVS_PER_TENANT`](crate::streams::MAX_COMPLIANCE_CSVS_PER_TENANT)
    /// places on this instance until the stream is dropped: when it ends, or when its reader
    /// goes away and the body with it. Past the cap, `RATE_LIMITED`. The first page is read
    /// before this returns, so a refusal comes before anything is sent; a later failure is the
    /// stream's last item.
    pub async fn export(
        &self,
        tenant: &TenantId,
    ) -> Result<BoxStream<'static, Result<Vec<NonCompliantUser>, ServiceError>>, ServiceError> {
        let slot = self.downloads.compliance_csv(tenant)?;
        let first = self.report(tenant, MAX_PAGE, None).await?;
        struct Pages {
            service: ComplianceService,
            tenant: TenantId,
            first: Option<Vec<NonCompliantUser>>,
            after: Option<String>,
            _slot: StreamSlot,
        }
        let pages = Pages {
            service: self.clone(),
            tenant: tenant.clone(),
            after: first.end_cursor.filter(|_| first.has_next_page),
            first: Some(first.non_compliant),
            _slot: slot,
        };
        Ok(stream::unfold(pages, |mut pages| async move {
            if let Some(first) = pages.first.take() {
                return Some((Ok(first), pages));
            }
            let after = pages.after.take()?;
            let page = pages
                .service
                .report(&pages.tenant, MAX_PAGE, Some(&after))
                .await
                .map(|r| {
                    pages.after = r.end_cursor.filter(|_| r.has_next_page);
                    r.non_compliant
                });
            Some((page, pages))
        })
        .boxed())
    }

    /// The report for `tenant`: totals, and the page of users without 2FA after `after`.
    pub async fn report(
        &self,
        tenant: &TenantId,
        first: i64,
        after: Option<&str>,
    ) -> Result<ComplianceReport, ServiceError> {
        let limit = crate::error::page_size(first, MAX_PAGE)?;
        let after = match after {
            Some(cursor) => Some(decode_cursor(self.sealer.as_ref(), tenant, cursor).await?),
            None => None,
        };
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
        let end_cursor = match non_compliant.last() {
            Some(last) => Some(encode_cursor(self.sealer.as_ref(), tenant, last).await?),
            None => None,
        };
        Ok(ComplianceReport {
            enforced: policy.enforce_two_factor,
            enforced_since,
            total_users: counts.total,
            enrolled_users: counts.enrolled,
            end_cursor,
            non_compliant,
            has_next_page,
        })
    }
}
