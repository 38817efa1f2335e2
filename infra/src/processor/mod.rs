//! The event processor: how projections (and, later, deliveries) see events, exactly once in
//! effect, across crashes, restarts and several service instances.
//!
//! `global_position` alone is not a safe cursor: a transaction can take position 49, commit after
//! another took and committed 50, and a reader that already checkpointed 50 would skip 49. So we
//! read in **commit-safe order**: only rows whose writing transaction is below the oldest running
//! transaction of this database (the commit horizon, `crate::pg::commit_horizon`: all of those
//! have finished, and every later transaction gets a larger id), ordered by `(tx_id, global_position)`. Each
//! consumer's checkpoint is that pair for its last event, updated in the same transaction as the
//! consumer's own writes, so a crash either keeps both or neither.
//!
//! One batch serves every projection, in one transaction: the events after the oldest
//! checkpoint are read once, and each projection applies those after its own checkpoint.
//! Several instances may run against one database: a batch starts by locking the checkpoint
//! rows (`FOR UPDATE`, in name order), so batches never overlap, and a batch that waited for
//! the locks starts from the checkpoints the previous one committed.

mod projection;
mod settle;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::{watch, Mutex, Notify};

pub use projection::{Projection, ProjectionError, StoredEvent, EVENT_COLUMNS};

/// Events per batch (and per consumer transaction).
pub const BATCH: i64 = 500;

/// Why the processor stopped a batch. The batch's transaction is rolled back: nothing is half
/// applied, and the next run starts from the same checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The database failed.
    #[error("event processor database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A projection failed on an event.
    #[error("projection {projection} failed at event {position}: {source}")]
    Apply {
        /// Which projection.
        projection: &'static str,
        /// Which event.
        position: i64,
        /// Why.
        #[source]
        source: ProjectionError,
    },
    /// `projections rebuild NAME` with a name no projection has.
    #[error("no projection named '{0}'")]
    UnknownProjection(String),
}

struct Runner {
    projection: Arc<dyn Projection>,
}

/// Every transaction of the processor is `READ COMMITTED`, whatever the database's or role's
/// default: under `REPEATABLE READ` a batch's snapshot would come before its wait for the
/// checkpoints another instance holds, and PostgreSQL would refuse the batch (40001) when that
/// instance commits; the horizon's list of other databases' transactions would also come after
/// the snapshot (`crate::pg::commit_horizon`).
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// How long a command waits for the read models to show its write before answering anyway.
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Drives every projection from the event log.
pub struct EventProcessor {
    pool: PgPool,
    runners: Vec<Runner>,
    /// One batch (or rebuild) at a time per instance; the checkpoint row locks order instances.
    busy: Mutex<()>,
    wake: Notify,
    progressed: Notify,
    /// Counts catch-ups that applied events, for readers that must not miss one.
    applied: watch::Sender<u64>,
    settle_timeout: Duration,
    poll_interval: Duration,
    /// The least time between two batches of the background loop after one that applied
    /// events (requests that must read their writes run a batch themselves, without waiting).
    min_gap: Duration,
    /// When a batch last committed (or found nothing to do): the processor's lag, for the
    /// readiness probe and `/metrics`.
    caught_up_at: std::sync::Mutex<std::time::Instant>,
}

impl EventProcessor {
    /// Registers the projections (creating their checkpoints at position 0 if new).
    pub async fn new(
        pool: PgPool,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ProcessorError> {
        for p in &projections {
            sqlx::query(
                "INSERT INTO projection_checkpoints (consumer) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(p.name())
            .execute(&pool)
            .await?;
        }
        Ok(Self {
            pool,
            busy: Mutex::new(()),
            runners: projections
                .into_iter()
                .map(|projection| Runner { projection })
                .collect(),
            wake: Notify::new(),
            progressed: Notify::new(),
            applied: watch::Sender::new(0),
            settle_timeout: DEFAULT_SETTLE_TIMEOUT,
            poll_interval: Duration::from_millis(100),
            min_gap: Duration::from_millis(10),
            caught_up_at: std::sync::Mutex::new(std::time::Instant::now()),
        })
    }

    /// Replaces [`DEFAULT_SETTLE_TIMEOUT`]. Tests that hold the commit horizon on purpose
    /// shorten it: every command they make meanwhile waits it out.
    pub fn with_settle_timeout(mut self, timeout: Duration) -> Self {
        self.settle_timeout = timeout;
        self
    }

    /// The names of the registered projections.
    pub fn projection_names(&self) -> Vec<&'static str> {
        self.runners.iter().map(|r| r.projection.name()).collect()
    }

    /// Processes everything currently below the commit horizon, for every projection.
    /// Returns how many (event, projection) applications were made.
    pub async fn catch_up(&self) -> Result<u64, ProcessorError> {
        let mut total = 0;
        loop {
            let (read, applied) = self.run_batch().await?;
            // Any committed batch counts, full ones included: under steady load the processor
            // may stay a batch behind while keeping up (the backlog is its own metric).
            *self
                .caught_up_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
            total += applied;
            if (read as i64) < BATCH {
                break;
            }
        }
        if total > 0 {
            self.progressed.notify_waiters();
            self.applied.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(total)
    }

    /// One batch for every projection in one transaction: the checkpoints are locked (in name
    /// order, so instances never deadlock), the events after the oldest of them are read once,
    /// and each projection applies those after its own checkpoint. Returns the events read
    /// and the applications made.
    async fn run_batch(&self) -> Result<(usize, u64), ProcessorError> {
        let _busy = self.busy.lock().await;
        let mut tx = self.pool.begin_with(BEGIN).await?;
        // A projection batch need not wait for its commit to reach the disk: a crash can only
        // lose the newest batches together with their checkpoints (one transaction), and they
        // are applied again from the log on restart. The events themselves are committed
        // durably by the commands that wrote them.
        // Projections find their rows by key. Without sequential scans, a plan made while a
        // table was small does not scan all of it once it has grown: closing a batch's
        // delivered jobs scanned the whole queue until the next autoanalyze (decision 168).
        sqlx::query(
            "SELECT set_config('synchronous_commit', 'off', true), \
                    set_config('enable_seqscan', 'off', true)",
        )
        .execute(&mut *tx)
        .await?;
        let names = self.projection_names();
        let rows = sqlx::query(
            "SELECT consumer, last_tx::text::bigint AS last_tx, last_position \
             FROM projection_checkpoints WHERE consumer = ANY($1) ORDER BY consumer FOR UPDATE",
        )
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?;
        let mut checkpoints = std::collections::HashMap::new();
        for row in &rows {
            let consumer: String = row.try_get("consumer")?;
            let at: (i64, i64) = (row.try_get("last_tx")?, row.try_get("last_position")?);
            checkpoints.insert(consumer, at);
        }
        let oldest = checkpoints.values().min().copied().unwrap_or((0, 0));
        let events = read_after(&mut tx, oldest).await?;
        let mut applied = 0;
        let mut moved: Vec<(&'static str, (i64, i64))> = Vec::new();
        for runner in &self.runners {
            let name = runner.projection.name();
            let from = checkpoints.get(name).copied().unwrap_or((0, 0));
            let start = events.partition_point(|e| (e.tx_id, e.position) <= from);
            let mine = &events[start..];
            let Some(last) = mine.last() else {
                continue;
            };
            apply_events(&mut tx, runner, mine).await?;
            applied += mine.len() as u64;
            moved.push((name, (last.tx_id, last.position)));
        }
        if !moved.is_empty() {
            // Every moved checkpoint in one statement.
            let names: Vec<&str> = moved.iter().map(|(n, _)| *n).collect();
            let txs: Vec<String> = moved.iter().map(|(_, (t, _))| t.to_string()).collect();
            let positions: Vec<i64> = moved.iter().map(|(_, (_, p))| *p).collect();
            sqlx::query(
                "UPDATE projection_checkpoints c SET last_tx = m.tx::xid8, \
                   last_position = m.position, updated_at = now() \
                 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS m(consumer, tx, position) \
                 WHERE c.consumer = m.consumer",
            )
            .bind(&names)
            .bind(&txs)
            .bind(&positions)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((events.len(), applied))
    }

    /// Rebuilds one projection (or all, with `None`) from position 0, in one transaction per
    /// projection: readers keep seeing the old view until the new one is complete.
    pub async fn rebuild(&self, name: Option<&str>) -> Result<Vec<&'static str>, ProcessorError> {
        let selected: Vec<&Runner> = self
            .runners
            .iter()
            .filter(|r| name.is_none_or(|n| n == r.projection.name()))
            .collect();
        if selected.is_empty() {
            return Err(ProcessorError::UnknownProjection(
                name.unwrap_or_default().to_owned(),
            ));
        }
        let mut rebuilt = Vec::new();
        for runner in selected {
            let _busy = self.busy.lock().await;
            let name = runner.projection.name();
            let mut tx = self.pool.begin_with(BEGIN).await?;
            lock_checkpoint(&mut tx, name).await?;
            runner
                .projection
                .reset(&mut tx)
                .await
                .map_err(|source| ProcessorError::Apply {
                    projection: name,
                    position: 0,
                    source,
                })?;
            let mut last = (0, 0);
            loop {
                let events = read_after(&mut tx, last).await?;
                let Some(end) = events.last().map(|e| (e.tx_id, e.position)) else {
                    break;
                };
                apply_events(&mut tx, runner, &events).await?;
                last = end;
            }
            save_checkpoint(&mut tx, name, last.0, last.1).await?;
            tx.commit().await?;
            tracing::info!(projection = name, "projection rebuilt");
            rebuilt.push(name);
        }
        Ok(rebuilt)
    }

    /// Time since a batch last committed. Near the poll interval while all is well; it grows
    /// while batches fail (the database is down) or wait (a rebuild holds the checkpoints).
    pub fn lag(&self) -> Duration {
        self.caught_up_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }

    /// Asks for a batch soon: called after every command that committed events in this
    /// instance. (Events from other instances are found by polling: a NOTIFY from the insert
    /// would serialise every commit in the database behind PostgreSQL's notification lock.)
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Runs the processor until `shutdown` turns true: woken by [`EventProcessor::nudge`] after
    /// local commits, polling as a fallback (other instances' commits, and a transaction that
    /// committed while an older one was still open, which becomes readable only when that one
    /// ends).
    pub fn spawn(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.catch_up().await {
                    Err(e) => {
                        tracing::error!(error = %e, "event processor batch failed; will retry")
                    }
                    // Under load, let events accumulate for a moment: one batch a few
                    // milliseconds later costs the same round trips as one now, for many
                    // more events. Nudges meanwhile are remembered by `wake`.
                    Ok(applied) if applied > 0 => {
                        tokio::select! {
                            _ = tokio::time::sleep(self.min_gap) => {}
                            _ = shutdown.changed() => break,
                        }
                    }
                    Ok(_) => {}
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.poll_interval) => {}
                    _ = shutdown.changed() => break,
                }
                if *shutdown.borrow() {
                    break;
                }
            }
        })
    }
}

/// Locks the consumer's checkpoint row until `tx` ends, so no batch of this instance or another
/// touches the projection meanwhile.
async fn lock_checkpoint(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
) -> Result<(), ProcessorError> {
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE consumer = $1 FOR UPDATE")
        .bind(name)
        .fetch_one(&mut **tx)
        .await?;
    Ok(())
}

/// The next batch of events after `(last_tx, last_position)` below the commit horizon.
async fn read_after(
    tx: &mut Transaction<'_, Postgres>,
    (last_tx, last_position): (i64, i64),
) -> Result<Vec<StoredEvent>, ProcessorError> {
    // Its own statement, before the read: see `crate::pg::commit_horizon`.
    let horizon = crate::pg::commit_horizon(tx).await?;
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE tx_id < $4::text::xid8 \
           AND (tx_id, global_position) > ($1::text::xid8, $2) \
         ORDER BY tx_id, global_position LIMIT $3"
    ))
    .bind(last_tx.to_string())
    .bind(last_position)
    .bind(BATCH)
    .bind(horizon.to_string())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .iter()
        .map(StoredEvent::from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

async fn save_checkpoint(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
    tx_id: i64,
    position: i64,
) -> Result<(), ProcessorError> {
    sqlx::query(
        "UPDATE projection_checkpoints SET last_tx = $2::text::xid8, last_position = $3, \
         updated_at = now() WHERE consumer = $1",
    )
    .bind(name)
    .bind(tx_id.to_string())
    .bind(position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies `events` to one projection inside `tx`, naming the projection and event on failure.
async fn apply_events(
    tx: &mut Transaction<'_, Postgres>,
    runner: &Runner,
    events: &[StoredEvent],
) -> Result<(), ProcessorError> {
    runner
        .projection
        .apply_all(tx, events)
        .await
        .map_err(|(position, source)| ProcessorError::Apply {
            projection: runner.projection.name(),
            position,
            source,
        })
}
