//! [`SendLimiter`] over the `send_reservations` table: exact under concurrency on any number of
//! instances, because a reservation counts and inserts under a transaction-scoped advisory lock
//! per bucket.

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
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        // In a fixed order, so two reservations sharing buckets never deadlock.
        let mut keys: Vec<i32> = caps.iter().map(|c| lock_key(&c.bucket)).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(LOCK_CLASS)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?;
        }
        sqlx::query(
            "DELETE FROM send_reservations WHERE ctid = ANY(ARRAY( \
                 SELECT ctid FROM send_reservations WHERE expires_at < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind(now)
        .bind(PRUNE_BATCH)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        // A statement after the locks: its snapshot sees every reservation committed before
        // this one got them.
        let buckets: Vec<&str> = caps.iter().map(|c| c.bucket.as_str()).collect();
        let since: Vec<DateTime<Utc>> = caps.iter().map(|c| now - c.window).collect();
        let rows = sqlx::query(
            "SELECT count(r.bucket) AS used, min(r.reserved_at) AS oldest \
             FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS c(bucket, since, n) \
             LEFT JOIN send_reservations r ON r.bucket = c.bucket AND r.reserved_at > c.since \
             GROUP BY c.n ORDER BY c.n",
        )
        .bind(&buckets)
        .bind(&since)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        for (i, (cap, row)) in caps.iter().zip(&rows).enumerate() {
            let used: i64 = row.try_get("used").map_err(StoreError::new)?;
            if used >= i64::from(cap.limit) {
                let oldest: Option<DateTime<Utc>> =
                    row.try_get("oldest").map_err(StoreError::new)?;
                let free_at = oldest.unwrap_or(now) + cap.window;
                tx.commit().await.map_err(StoreError::new)?;
                return Ok(Reservation::Refused {
                    cap: i,
                    retry_after_seconds: (free_at - now).num_seconds(),
                });
            }
        }
        let expires: Vec<DateTime<Utc>> = caps.iter().map(|c| now + c.window).collect();
        sqlx::query(
            "INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at) \
             SELECT c.bucket, $2, $3, c.expires_at \
             FROM unnest($1::text[], $4::timestamptz[]) AS c(bucket, expires_at) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&buckets)
        .bind(now)
        .bind(id)
        .bind(&expires)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        tx.commit().await.map_err(StoreError::new)?;
        Ok(Reservation::Granted)
    }

    async fn release(&self, id: &str, caps: &[SendCap]) -> Result<(), StoreError> {
        let buckets: Vec<&str> = caps.iter().map(|c| c.bucket.as_str()).collect();
        sqlx::query("DELETE FROM send_reservations WHERE bucket = ANY($1) AND challenge_id = $2")
            .bind(&buckets)
            .bind(id)
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
