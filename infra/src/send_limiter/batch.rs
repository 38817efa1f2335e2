//! One batch of reservations written by one statement (`twofold_reserve_send_counts`, migration
//! `20261213000000_count_sends_without_rows.sql`), and the give-back of grants nobody waits for
//! any more.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use twofold_services::ports::{Reservation, SendCap};
use twofold_services::StoreError;

use super::{lock_key, longest_window, LOCK_CLASS};

/// Expired per-minute counts (and rows of the previous version's reservations) removed by a
/// batch that prunes: few enough to keep that batch cheap.
const PRUNE_BATCH: i64 = 500;

/// How often an instance's batches prune at least. The others skip both prune statements, which
/// cost about a seventh of a batch even when nothing had expired.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Caps counted (each may add a count row) after which the next batch prunes however recent the
/// last prune: half of [`PRUNE_BATCH`], so pruning keeps up with any rate of sends (a count
/// expires, and is pruned, an hour after its minute).
const PRUNE_AFTER_ROWS: usize = 250;

/// When an instance's next batch prunes: its first, then one every [`PRUNE_EVERY`] or after
/// [`PRUNE_AFTER_ROWS`] caps counted, whichever comes first.
#[derive(Debug, Default)]
pub(super) struct PruneClock {
    pruned_at: Option<std::time::Instant>,
    rows_since: usize,
}

impl PruneClock {
    /// Whether a batch writing `rows` reservation rows at `now` prunes.
    pub(super) fn due(&mut self, rows: usize, now: std::time::Instant) -> bool {
        self.rows_since += rows;
        let due = self.rows_since >= PRUNE_AFTER_ROWS
            || self
                .pruned_at
                .is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY);
        if due {
            self.pruned_at = Some(now);
            self.rows_since = 0;
        }
        due
    }
}

/// How often a batch refused with a deadlock or serialization failure is written again. The
/// statement is atomic, so a refused one took nothing; the triggers lock in one order, so this
/// is a safety net, not a path taken.
const RETRIES: usize = 3;

/// One send's reservation, as the batch writes it.
pub(super) struct Request<'a> {
    pub caps: &'a [SendCap],
    pub now: DateTime<Utc>,
}

/// Writes `requests` in their order: each is granted if every one of its caps has room,
/// counting those granted before it. One answer per request, in order.
pub(super) async fn write(
    pool: &PgPool,
    lock_wait: std::time::Duration,
    requests: &[Request<'_>],
    prune: bool,
) -> Result<Vec<Reservation>, StoreError> {
    let lock_wait_ms = i32::try_from(lock_wait.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    // Every bucket's lock, in one order for every statement, so batches sharing buckets never
    // deadlock.
    let mut keys: Vec<i32> = requests
        .iter()
        .flat_map(|r| r.caps.iter().map(|c| lock_key(&c.bucket)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut owners = Vec::new();
    let mut buckets = Vec::new();
    let mut limits = Vec::new();
    let mut since = Vec::new();
    for (n, r) in requests.iter().enumerate() {
        let owner = i32::try_from(n + 1).map_err(StoreError::new)?;
        for c in r.caps {
            owners.push(owner);
            buckets.push(c.bucket.as_str());
            limits.push(i64::from(c.limit));
            since.push(r.now - c.window);
        }
    }
    let reserved: Vec<DateTime<Utc>> = requests.iter().map(|r| r.now).collect();
    let oldest = reserved.iter().min().copied().unwrap_or_else(Utc::now);
    // Counts are kept for the longest window any cap may have, not the longest of this batch's:
    // a batch with only short caps must not prune the counts a budget still needs.
    let counts_before = oldest - longest_window() - chrono::Duration::minutes(1);
    let mut tries = 0;
    let refusals = loop {
        let result = sqlx::query(
            "SELECT reservation, refused_cap, frees_at \
             FROM twofold_reserve_send_counts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(LOCK_CLASS)
        .bind(&keys)
        .bind(&owners)
        .bind(&buckets)
        .bind(&limits)
        .bind(&since)
        .bind(&reserved)
        .bind(if prune { PRUNE_BATCH } else { 0 })
        .bind(counts_before)
        .bind(lock_wait_ms)
        .fetch_all(pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e))
                if tries < RETRIES && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tries += 1;
                tracing::warn!(error = %e, "a send reservation batch was refused; writing it again");
            }
            other => break other.map_err(StoreError::new)?,
        }
    };
    let mut answers = vec![Reservation::Granted; requests.len()];
    for row in refusals {
        let reservation: i32 = row.try_get("reservation").map_err(StoreError::new)?;
        let cap: i32 = row.try_get("refused_cap").map_err(StoreError::new)?;
        let frees_at: DateTime<Utc> = row.try_get("frees_at").map_err(StoreError::new)?;
        let index = usize::try_from(reservation).map_err(StoreError::new)?;
        let cap = usize::try_from(cap).map_err(StoreError::new)?;
        let request = requests.get(index).filter(|r| cap < r.caps.len());
        let (Some(request), Some(answer)) = (request, answers.get_mut(index)) else {
            return Err(StoreError::new(std::io::Error::other(
                "refused an unknown reservation or by an unknown cap",
            )));
        };
        *answer = Reservation::Refused {
            cap,
            retry_after_seconds: (frees_at - request.now).num_seconds(),
        };
    }
    Ok(answers)
}

/// Gives back granted reservations: each takes one off its caps' counts, in the minute it was
/// granted in. Called at most once per grant (the slot is moved into the give-back): a grant
/// given back twice would be taken off twice.
pub(super) async fn give_back(pool: &PgPool, granted: &[Request<'_>]) -> Result<(), StoreError> {
    let mut buckets = Vec::new();
    let mut reserved = Vec::new();
    for r in granted {
        for c in r.caps {
            buckets.push(c.bucket.as_str());
            reserved.push(r.now);
        }
    }
    sqlx::query("SELECT twofold_give_back_sends($1, $2)")
        .bind(&buckets)
        .bind(&reserved)
        .execute(pool)
        .await
        .map_err(StoreError::new)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{PruneClock, PRUNE_AFTER_ROWS, PRUNE_EVERY};

    #[test]
    fn batches_prune_first_then_every_interval_or_every_so_many_rows() {
        let start = Instant::now();
        let mut clock = PruneClock::default();
        assert!(clock.due(3, start), "the first batch prunes");
        assert!(!clock.due(3, start + Duration::from_millis(1)));
        assert!(clock.due(3, start + PRUNE_EVERY), "an interval later");
        // Busy: many rows within one interval still prune as often as they fill half a prune.
        let busy = start + PRUNE_EVERY + Duration::from_millis(1);
        let mut prunes = 0;
        for _ in 0..(4 * PRUNE_AFTER_ROWS / 48) {
            prunes += usize::from(clock.due(48, busy));
        }
        assert_eq!(prunes, 3, "every {PRUNE_AFTER_ROWS} rows");
    }
}
