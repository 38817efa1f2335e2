//! [`SendLimiter`] over the `send_reservations` table: exact under concurrency on any number of
//! instances, because a reservation counts and inserts under a transaction-scoped advisory lock
//! per bucket, all in one statement (a function in the database).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use twofold_services::ports::{Reservation, SendCap, SendLimiter};
use twofold_services::StoreError;

/// The first key of the two-key advisory locks taken here, so they cannot meet anyone else's.
pub const LOCK_CLASS: i32 = 0x7466_736c; // "tfsl"

/// Expired rows removed per reservation: more than a reservation inserts (three), so the table
/// shrinks back to its live rows, and few enough to keep every reservation cheap.
const PRUNE_BATCH: i64 = 100;

/// The longest window a cap may count (the hourly budgets'): per-minute counts are kept that
/// long.
fn longest_window() -> chrono::Duration {
    chrono::Duration::hours(1)
}

/// The second lock key of a bucket (FNV-1a). Two buckets sharing a key only wait for each
/// other; the count stays exact. (Public so a test can hold a bucket's lock.)
pub fn lock_key(bucket: &str) -> i32 {
    let hash = bucket.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// [`SendLimiter`] in PostgreSQL.
pub struct PgSendLimiter {
    pool: PgPool,
}

impl PgSendLimiter {
    /// Uses `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SendLimiter for PgSendLimiter {
    #[tracing::instrument(skip_all, fields(caps = caps.len()))]
    async fn reserve(
        &self,
        id: &str,
        caps: &[SendCap],
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        // In a fixed order, so two reservations sharing buckets never deadlock.
        let mut keys: Vec<i32> = caps.iter().map(|c| lock_key(&c.bucket)).collect();
        keys.sort_unstable();
        keys.dedup();
        let buckets: Vec<&str> = caps.iter().map(|c| c.bucket.as_str()).collect();
        let limits: Vec<i64> = caps.iter().map(|c| i64::from(c.limit)).collect();
        let since: Vec<DateTime<Utc>> = caps.iter().map(|c| now - c.window).collect();
        let expires: Vec<DateTime<Utc>> = caps.iter().map(|c| now + c.window).collect();
        // Counts are kept for the longest window any cap may have, not the longest of this
        // call's: a call with only short caps must not prune the counts a budget still needs.
        if caps.iter().any(|c| c.window > longest_window()) {
            return Err(StoreError::new(std::io::Error::other(
                "a send cap's window is longer than the counts are kept",
            )));
        }
        let counts_before = now - longest_window() - chrono::Duration::minutes(1);
        // One autocommit statement: the tenant's budget lock is held for one round trip, not
        // eight (migration `20261210000000_reserve_sends_in_one_statement.sql`).
        let refused = sqlx::query(
            "SELECT refused_cap, frees_at \
             FROM twofold_reserve_sends($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(LOCK_CLASS)
        .bind(&keys)
        .bind(&buckets)
        .bind(&limits)
        .bind(&since)
        .bind(&expires)
        .bind(now)
        .bind(id)
        .bind(PRUNE_BATCH)
        .bind(counts_before)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        let Some(row) = refused else {
            return Ok(Reservation::Granted);
        };
        let cap: i32 = row.try_get("refused_cap").map_err(StoreError::new)?;
        let frees_at: DateTime<Utc> = row.try_get("frees_at").map_err(StoreError::new)?;
        let index = usize::try_from(cap).map_err(StoreError::new)?;
        if index >= caps.len() {
            return Err(StoreError::new(std::io::Error::other(
                "refused by an unknown cap",
            )));
        }
        Ok(Reservation::Refused {
            cap: index,
            retry_after_seconds: (frees_at - now).num_seconds(),
        })
    }

    async fn release(
        &self,
        id: &str,
        caps: &[SendCap],
        reserved_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let buckets: Vec<&str> = caps.iter().map(|c| c.bucket.as_str()).collect();
        // A lookup by key; the rows' trigger takes them off the counts, so a release repeated,
        // or of slots never taken, changes nothing.
        sqlx::query(
            "DELETE FROM send_reservations \
             WHERE bucket = ANY($1) AND reserved_at = $3 AND challenge_id = $2",
        )
        .bind(&buckets)
        .bind(id)
        .bind(reserved_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_spread() {
        assert_eq!(lock_key("tenant/a/sms"), lock_key("tenant/a/sms"));
        assert_ne!(lock_key("tenant/a/sms"), lock_key("tenant/a/email"));
    }
}
