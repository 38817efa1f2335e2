//! [`SendLimiter`] over per-minute counts of sends (`send_counts`): exact under concurrency on any
//! number of instances, because a reservation counts and adds to the counts under
//! transaction-scoped advisory locks per bucket, in one statement (a function in the database).
//!
//! The reservations of one tenant's channel (a *lane*: sends that share the tenant's budget)
//! queue on the instance while one batch of them is written, and are then written together by
//! the next statement ([`lanes`]): one set of locks and one commit for many sends, where each
//! send used to hold the budget's lock through a commit of its own.

mod batch;
mod lanes;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use twofold_services::ports::{Reservation, SendCap, SendLimiter};
use twofold_services::StoreError;

use batch::Request;
pub use lanes::MAX_BATCH;
use lanes::{Lanes, Slots};

/// The first key of the two-key advisory locks taken here, so they cannot meet anyone else's.
pub const LOCK_CLASS: i32 = 0x7466_736c; // "tfsl"

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
    lanes: Arc<Lanes>,
}

impl PgSendLimiter {
    /// How long a batch waits for each bucket's lock by default before its sends fail. A lock
    /// is held for a statement's time (a millisecond or so), so only a stalled transaction
    /// holds one this long.
    pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// Uses `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_lock_wait(pool, Self::LOCK_WAIT)
    }

    /// Uses `pool`; a batch waits at most `lock_wait` for each lock.
    pub fn with_lock_wait(pool: PgPool, lock_wait: std::time::Duration) -> Self {
        Self {
            lanes: Lanes::new(pool, lock_wait),
        }
    }

    /// Sends on this instance whose reservation is queued or being written (or, abandoned, is
    /// being given back).
    pub fn waiting(&self) -> usize {
        self.lanes.waiting()
    }
}

#[async_trait]
impl SendLimiter for PgSendLimiter {
    #[tracing::instrument(skip_all, fields(caps = caps.len()))]
    async fn reserve(
        &self,
        _id: &str,
        caps: &[SendCap],
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        if caps.iter().any(|c| c.window > longest_window()) {
            return Err(StoreError::new(std::io::Error::other(
                "a send cap's window is longer than the counts are kept",
            )));
        }
        // The broadest cap (a tenant's budget) comes last; sends sharing it share a lane.
        let Some(lane) = caps.last().map(|c| c.bucket.clone()) else {
            return Ok(Reservation::Granted);
        };
        let slots = Slots {
            caps: caps.to_vec(),
            now,
        };
        self.lanes.reserve(lane, slots).await
    }

    async fn release(
        &self,
        _id: &str,
        caps: &[SendCap],
        reserved_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        batch::give_back(
            self.lanes.pool(),
            &[Request {
                caps,
                now: reserved_at,
            }],
        )
        .await
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
