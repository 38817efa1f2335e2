//! The event processor: how projections (and, later, deliveries) see events, exactly once in
//! effect, across crashes, restarts and several service instances.
//!
//! `global_position` alone is not a safe cursor: a transaction can take position 49, commit after
//! another took and committed 50, and a reader that already checkpointed 50 would skip 49. So we
//! read in **commit-safe order**: only rows whose writing transaction is below the oldest running
//! transaction (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`: all of those have finished, and
//! every later transaction gets a larger id), ordered by `(tx_id, global_position)`. Each
//! consumer's checkpoint is that pair for its last event, updated in the same transaction as the
//! consumer's own writes, so a crash either keeps both or neither.
//!
//! One batch serves every projection, in one transaction: the events after the oldest
//! checkpoint are read once, and each projection applies those after its own checkpoint.
//! Several instances may run against one database: a batch starts by locking the checkpoint
//! rows (`FOR UPDATE`, in name order), so batches never overlap, and a batch that waited for
//! the locks starts from the checkpoints the previous one committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use tokio::sync::{watch, Mutex, Notify};
use twofold_services::ports::{CommitSignal, ProcessorProgress, ReadModelSync};
use twofold_services::StoreError;

/// Events per batch (and per consumer transaction).
const BATCH: i64 = 500;

/// An event as read from the log.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// e.g. `tenant`.
    pub aggregate_type: String,
    /// `{tenant_id}/...`.
    pub aggregate_id: String,
    /// Position in its aggregate's stream (1-based).
    pub sequence: i64,
    /// e.g. `ApiKeyIssued`.
    pub event_type: String,
    /// The serialized domain event.
    pub payload: serde_json::Value,
    /// Request metadata (actor, request id, ...).
    pub metadata: serde_json::Value,
    /// The writing transaction.
    pub tx_id: i64,
    /// Global insertion position.
    pub position: i64,
    /// When its transaction started (`now()` at insert).
    pub recorded_at: DateTime<Utc>,
    /// The owning tenant.
    pub tenant_id: String,
}

impl StoredEvent {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            tx_id: row.try_get("tx")?,
            position: row.try_get("global_position")?,
            recorded_at: row.try_get("recorded_at")?,
            tenant_id: row.try_get("tenant_id")?,
        })
    }
}

/// The columns of [`StoredEvent`], for queries that read events.
pub const EVENT_COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, payload, \
     metadata, tx_id::text::bigint AS tx, global_position, recorded_at, tenant_id";

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The database refused.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The payload is not the event the projection expected.
    #[error("cannot read event payload: {0}")]
    Payload(#[from] serde_json::Error),
}

/// A read model kept from the event log.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Unique, stable name: the checkpoint's key and the `projections rebuild` argument.
    fn name(&self) -> &'static str;
    /// Whether a command on `aggregate_type` must wait for this projection before answering
    /// (read-your-writes): true when the API reads this projection and such events change it.
    fn reads(&self, aggregate_type: &str) -> bool;
    /// Applies one event inside the batch's transaction. Must ignore events it does not use.
    async fn apply(
        &self,
        db: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError>;
    /// Applies a batch of events, in order, inside the batch's transaction. The default applies
    /// them one at a time; a projection that can do better in fewer statements overrides it.
    /// The error names the event that failed (or the first of the batch).
    async fn apply_all(
        &self,
        db: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), (i64, ProjectionError)> {
        for event in events {
            self.apply(db, event)
                .await
                .map_err(|e| (event.position, e))?;
        }
        Ok(())
    }
    /// Deletes everything the projection wrote, before a rebuild from position 0.
    async fn reset(&self, db: &mut PgConnection) -> Result<(), ProjectionError>;
}

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
            settle_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(100),
            min_gap: Duration::from_millis(10),
        })
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
        let mut tx = self.pool.begin().await?;
        // A projection batch need not wait for its commit to reach the disk: a crash can only
        // lose the newest batches together with their checkpoints (one transaction), and they
        // are applied again from the log on restart. The events themselves are committed
        // durably by the commands that wrote them.
        sqlx::query("SET LOCAL synchronous_commit = off")
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
            let mut tx = self.pool.begin().await?;
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
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
           AND (tx_id, global_position) > ($1::text::xid8, $2) \
         ORDER BY tx_id, global_position LIMIT $3"
    ))
    .bind(last_tx.to_string())
    .bind(last_position)
    .bind(BATCH)
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

impl CommitSignal for EventProcessor {
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }
}

#[async_trait]
impl ProcessorProgress for EventProcessor {
    async fn progressed(&self) {
        self.progressed.notified().await;
    }
}

#[async_trait]
impl ReadModelSync for EventProcessor {
    async fn settle(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: usize,
    ) -> Result<(), StoreError> {
        // The command just committed: whoever waits or not, the projections have work.
        self.nudge();
        if !self
            .runners
            .iter()
            .any(|r| r.projection.reads(aggregate_type))
        {
            return Ok(());
        }
        let target = sqlx::query(
            "SELECT tx_id::text AS tx, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        let Some(target) = target else {
            return Ok(());
        };
        let names: Vec<&'static str> = self
            .runners
            .iter()
            .filter(|r| r.projection.reads(aggregate_type))
            .map(|r| r.projection.name())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let tx: String = target.try_get("tx").map_err(StoreError::new)?;
        let position: i64 = target.try_get("global_position").map_err(StoreError::new)?;
        let deadline = Instant::now() + self.settle_timeout;
        loop {
            self.catch_up().await.map_err(StoreError::new)?;
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM projection_checkpoints WHERE consumer = ANY($1) \
                 AND (last_tx, last_position) < ($2::xid8, $3)",
            )
            .bind(&names)
            .bind(&tx)
            .bind(position)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::new)?;
            if behind == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    aggregate_type,
                    sequence,
                    "read model still behind after the settle timeout; answering anyway"
                );
                return Ok(());
            }
            // An older transaction is still open; wait for progress or a short tick.
            let _ =
                tokio::time::timeout(Duration::from_millis(5), self.progressed.notified()).await;
        }
    }

    async fn catch_up_all(&self) -> Result<(), StoreError> {
        // Every transaction visible in this snapshot had committed before the call.
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::new)?;
        let names = self.projection_names();
        let deadline = Instant::now() + self.settle_timeout;
        loop {
            self.catch_up().await.map_err(StoreError::new)?;
            let behind: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM projection_checkpoints c \
                   JOIN LATERAL (SELECT 1 FROM events e \
                     WHERE (e.tx_id, e.global_position) > (c.last_tx, c.last_position) \
                       AND pg_visible_in_snapshot(e.tx_id, $2::pg_snapshot) LIMIT 1) pending \
                   ON true \
                 WHERE c.consumer = ANY($1))",
            )
            .bind(&names)
            .bind(&snapshot)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::new)?;
            if !behind {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    "read models still behind after the settle timeout; answering anyway"
                );
                return Ok(());
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(5), self.progressed.notified()).await;
        }
    }
}
