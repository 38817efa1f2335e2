//! The `deliveries` queue in PostgreSQL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use twofold_domain::channel::Channel;
use twofold_domain::user::UserRef;
use twofold_domain::{TenantId, UserId};
use twofold_services::ports::{DeliveryJob, DeliveryKind, DeliveryQueue};
use twofold_services::StoreError;

/// [`DeliveryQueue`] over the `deliveries` table.
pub struct PgDeliveryQueue {
    pool: PgPool,
}

impl PgDeliveryQueue {
    /// Uses `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A queue row that does not parse: the view is corrupt.
#[derive(Debug, thiserror::Error)]
#[error("corrupt deliveries row: {0}")]
struct Corrupt(&'static str);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A claimed row as a job, with when it fell due.
fn job_of(row: &PgRow) -> Result<(DateTime<Utc>, DeliveryJob), StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(StoreError::new);
    let tenant =
        TenantId::parse(&get("tenant_id")?).map_err(|_| StoreError::new(Corrupt("tenant_id")))?;
    let aggregate_id = get("aggregate_id")?;
    let user = aggregate_id
        .split_once("/user/")
        .and_then(|(_, u)| UserId::parse(u).ok())
        .ok_or_else(|| StoreError::new(Corrupt("aggregate_id")))?;
    let channel = match get("channel")?.as_str() {
        "EMAIL" => Channel::Email,
        "SMS" => Channel::Sms,
        _ => return Err(StoreError::new(Corrupt("channel"))),
    };
    let attempts: i32 = row.try_get("attempts").map_err(StoreError::new)?;
    let kind = match get("kind")?.as_str() {
        "code" => DeliveryKind::Code,
        "notification" => DeliveryKind::Notification,
        _ => return Err(StoreError::new(Corrupt("kind"))),
    };
    let time = |c: &str| row.try_get::<DateTime<Utc>, _>(c).map_err(StoreError::new);
    let job = DeliveryJob {
        challenge_id: get("challenge_id")?,
        kind,
        user: UserRef { tenant, user },
        channel,
        attempts: u32::try_from(attempts).unwrap_or(0),
        lease: time("lease_until")?,
    };
    Ok((time("next_attempt_at")?, job))
}

#[async_trait]
impl DeliveryQueue for PgDeliveryQueue {
    async fn claim_up_to(&self, lease: Duration, n: usize) -> Result<Vec<DeliveryJob>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "UPDATE deliveries d SET lease_until = now() + $1 * interval '1 millisecond', \
                    updated_at = now() \
             FROM ( \
                 SELECT challenge_id FROM deliveries \
                 WHERE status = 'pending' AND next_attempt_at <= now() \
                   AND (lease_until IS NULL OR lease_until < now()) \
                 ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) due \
             WHERE d.challenge_id = due.challenge_id \
             RETURNING d.challenge_id, d.tenant_id, d.aggregate_id, d.channel, d.attempts, \
                       d.kind, d.next_attempt_at, d.lease_until",
        )
        .bind(millis(lease))
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::new)?;
        // A row that does not parse is left to its lease and logged each time it is claimed;
        // it must not hold back the others claimed with it for a lease.
        let mut jobs: Vec<_> = rows
            .iter()
            .filter_map(|row| {
                job_of(row)
                    .inspect_err(|e| tracing::error!(error = %e, "unreadable delivery job"))
                    .ok()
            })
            .collect();
        // RETURNING keeps no order: the longest due goes first.
        jobs.sort_by_key(|(due, _)| *due);
        Ok(jobs.into_iter().map(|(_, job)| job).collect())
    }

    async fn finish(
        &self,
        job: &DeliveryJob,
        delivered: bool,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = $2, last_error = $3, lease_until = NULL, \
                    attempts = attempts + 1, updated_at = now() \
             WHERE challenge_id = $1 AND status = 'pending' AND lease_until = $4",
        )
        .bind(&job.challenge_id)
        .bind(if delivered { "delivered" } else { "failed" })
        .bind(error)
        .bind(job.lease)
        .execute(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune(&self, older_than: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM deliveries WHERE status <> 'pending' \
               AND updated_at < now() - $1 * interval '1 millisecond'",
        )
        .bind(millis(older_than))
        .execute(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(done.rows_affected())
    }

    async fn retry_later(
        &self,
        job: &DeliveryJob,
        attempts: u32,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET attempts = $2, last_error = $3, lease_until = NULL, \
                    next_attempt_at = now() + $4 * interval '1 millisecond', updated_at = now() \
             WHERE challenge_id = $1 AND status = 'pending' AND lease_until = $5",
        )
        .bind(&job.challenge_id)
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(error)
        .bind(millis(delay))
        .bind(job.lease)
        .execute(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(done.rows_affected() == 1)
    }
}
