//! The event store: postgres-es's repository for the `events` table, plus snapshots that work.
//!
//! cqrs-es 0.5's snapshot and aggregate stores apply each event twice to the stored snapshot
//! (DESIGN.md section 2), so we keep our own `aggregate_snapshots` table: a load reads the
//! snapshot and only the events after it; a command that had to replay many events writes a new
//! snapshot after it commits. The snapshot is a cache, never a source of truth: it is written
//! only with state that was just committed, never moves backwards, and is ignored when its
//! `state_version` is not the running code's (the state's layout changed). Events are written
//! with group commit ([`crate::group_commit`]).

mod cache;
mod turns;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError};
use cqrs_es::{Aggregate, AggregateError, DomainEvent};
use futures::TryStreamExt;
use postgres_es::PostgresEventRepository;
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgPool;
use twofold_services::commands::{CommandGateway, Executed};

pub use cache::AggregateCache;
use cache::Cached;
use turns::Turns;

use crate::append::EventRow;
use crate::group_commit::{GroupCommit, WriterLimits};
use crate::pg::direct::DirectConnections;

/// Replaying this many events (or more) in one command triggers a new snapshot, so no load
/// ever replays much more than this, whatever the stream's length.
pub const SNAPSHOT_AFTER: usize = 50;

/// Connections each store keeps for its loads (besides the shared pool).
pub const LOAD_CONNECTIONS: usize = 6;

/// A command gateway for aggregate `A` over the `events` and `aggregate_snapshots` tables.
pub struct PgStore<A: Aggregate> {
    pool: PgPool,
    repo: PostgresEventRepository,
    writer: GroupCommit<A>,
    /// Connections for loads, without the pool's ping on release.
    loads: DirectConnections,
    services: A::Services,
    state_version: &'static str,
    cache: AggregateCache<A>,
    /// Numbers every new connection of the loads and the writer (see [`cache`]).
    epoch: Arc<AtomicU64>,
    /// Commands on one aggregate take turns on this instance ([`turns`]).
    turns: Turns,
}

/// What a command is decided on: [`Cached`] with the state its own.
struct Decided<A> {
    state: A,
    sequence: usize,
    replayed: usize,
    epoch: u64,
}

/// Aggregates each store keeps in memory by default ([`cache`]); `TWOFOLD_AGGREGATE_CACHE`
/// sets it for the service.
pub const DEFAULT_CACHED_AGGREGATES: usize = 10_000;

/// The statement every aggregate load runs: the snapshot (kind 0), if any, then the events
/// after it (kind 1), in one round trip. `$1` is the aggregate type, `$2` its id, `$3` the
/// state version. Public so that the benchmark can have PostgreSQL run the very statement a
/// verify runs, without the service (its "ceiling").
pub const LOAD_SQL: &str = "WITH s AS (SELECT last_sequence, state FROM aggregate_snapshots \
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND state_version = $3) \
     SELECT 0 AS kind, last_sequence AS sequence, state AS body FROM s \
     UNION ALL \
     SELECT 1, e.sequence, e.payload FROM events e \
      WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 \
        AND e.sequence > coalesce((SELECT last_sequence FROM s), 0) \
     ORDER BY 1, 2";

/// The sequence of an aggregate's last event (`$1` type, `$2` id); `NULL` for none.
const LAST_SEQUENCE_SQL: &str =
    "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2";

/// Writes a snapshot (`$1` aggregate type, `$2` id, `$3` last sequence, `$4` state version, `$5`
/// state) unless a newer one of the same version is there, and only over the event it ends
/// at: a server that lost that commit (a failover between the append and this statement) must
/// not get a snapshot of it, which every later load would start from.
pub const SNAPSHOT_SQL: &str = "INSERT INTO aggregate_snapshots \
       (aggregate_type, aggregate_id, last_sequence, state_version, state) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM events \
       WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3) \
     ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
       SET last_sequence = EXCLUDED.last_sequence, state = EXCLUDED.state, \
           state_version = EXCLUDED.state_version, updated_at = now() \
     WHERE aggregate_snapshots.last_sequence < EXCLUDED.last_sequence \
        OR aggregate_snapshots.state_version <> EXCLUDED.state_version";

impl<A: Aggregate + 'static> PgStore<A> {
    /// `state_version` names the layout of `A`'s serialized state; change it whenever that
    /// layout changes meaning, and old snapshots are ignored.
    pub fn new(pool: &PgPool, services: A::Services, state_version: &'static str) -> Self {
        let epoch = Arc::new(AtomicU64::new(0));
        Self {
            pool: pool.clone(),
            repo: PostgresEventRepository::new(pool.clone()),
            writer: GroupCommit::with_epoch(pool.clone(), epoch.clone()),
            loads: DirectConnections::new(pool, LOAD_CONNECTIONS).sharing_epoch(epoch.clone()),
            services,
            state_version,
            cache: AggregateCache::new(DEFAULT_CACHED_AGGREGATES),
            epoch,
            turns: Turns::default(),
        }
    }

    /// Keeps up to `capacity` aggregates in memory instead of the default (0: none).
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = AggregateCache::new(capacity);
        self
    }

    /// Writes waiting on PostgreSQL as `limits` say instead of the defaults. Before the first
    /// command.
    pub fn with_writer_limits(mut self, limits: WriterLimits) -> Self {
        self.writer = GroupCommit::with_limits(self.pool.clone(), self.epoch.clone(), limits);
        self
    }

    /// Commands on one aggregate wait for each other's turn at most `wait` (by default
    /// [`turns::TURN_WAIT`]).
    pub fn with_turn_wait(mut self, wait: std::time::Duration) -> Self {
        self.turns = Turns::waiting_at_most(wait);
        self
    }

    /// How many aggregates are in memory now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The aggregate's state and how many events had to be replayed to build it (the cost of
    /// a load, which snapshots keep bounded).
    pub async fn load_counted(
        &self,
        aggregate_id: &str,
    ) -> Result<(A, usize, usize), AggregateError<A::Error>> {
        let mut lease = self
            .loads
            .acquire()
            .await
            .map_err(|e| AggregateError::DatabaseConnectionError(Box::new(e)))?;
        // One round trip: the snapshot (kind 0), if any, then the events after it (kind 1),
        // each decoded and applied as it arrives: a long stream never sits in memory whole.
        let mut rows = sqlx::query_as::<_, (i32, i64, Json<Box<RawValue>>)>(LOAD_SQL)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(self.state_version)
            .fetch(lease.conn());
        let (mut state, mut sequence, mut replayed) = (A::default(), 0, 0);
        while let Some((kind, row_sequence, Json(body))) = rows
            .try_next()
            .await
            .map_err(|e| AggregateError::DatabaseConnectionError(Box::new(e)))?
        {
            // On an early return the lease is dropped unfinished: its connection, with rows
            // still unread, is closed rather than reused.
            if kind == 0 {
                match serde_json::from_str::<A>(body.get()) {
                    Ok(snapshot) => state = snapshot,
                    Err(e) => {
                        tracing::warn!(aggregate = A::TYPE, error = %e, "ignoring unreadable snapshot");
                        drop(rows);
                        drop(lease);
                        return self.replay_all(aggregate_id).await;
                    }
                }
            } else {
                let event: A::Event =
                    serde_json::from_str(body.get()).map_err(PersistenceError::from)?;
                state.apply(event);
                replayed += 1;
            }
            sequence = usize::try_from(row_sequence).unwrap_or(0);
        }
        drop(rows);
        lease.finish();
        Ok((state, sequence, replayed))
    }

    /// The state from every event (when the snapshot cannot be read).
    async fn replay_all(
        &self,
        aggregate_id: &str,
    ) -> Result<(A, usize, usize), AggregateError<A::Error>> {
        let events = self.repo.get_last_events::<A>(aggregate_id, 0).await?;
        let (mut state, mut sequence) = (A::default(), 0);
        let replayed = events.len();
        for event in events {
            let payload: A::Event =
                serde_json::from_value(event.payload).map_err(PersistenceError::from)?;
            state.apply(payload);
            sequence = event.sequence;
        }
        Ok((state, sequence, replayed))
    }

    /// Whether a cached entry is the stored state: its last event is still the stream's last,
    /// asked over a connection opened before the entry's state was read. A newer connection
    /// may be to a server that lost commits since (a restart or failover) and has taken their
    /// sequence numbers again, so the entry is not trusted then. One index lookup instead of a
    /// load: no snapshot or events sent, none decoded.
    async fn still_current(
        &self,
        aggregate_id: &str,
        entry: &Cached<A>,
    ) -> Result<bool, AggregateError<A::Error>> {
        let mut lease = self
            .loads
            .acquire()
            .await
            .map_err(|e| AggregateError::DatabaseConnectionError(Box::new(e)))?;
        if lease.opened() > entry.epoch {
            lease.finish();
            return Ok(false);
        }
        let last: Option<i64> = sqlx::query_scalar(LAST_SEQUENCE_SQL)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .fetch_one(lease.conn())
            .await
            .map_err(|e| AggregateError::DatabaseConnectionError(Box::new(e)))?;
        lease.finish();
        Ok(last.and_then(|l| usize::try_from(l).ok()) == Some(entry.sequence))
    }

    async fn save_snapshot(&self, aggregate_id: &str, state: &A, sequence: usize) {
        let result = async {
            let json = serde_json::to_value(state)?;
            sqlx::query(SNAPSHOT_SQL)
                .bind(A::TYPE)
                .bind(aggregate_id)
                .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
                .bind(self.state_version)
                .bind(json)
                .execute(&self.pool)
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
        .await;
        if let Err(e) = result {
            // A snapshot is only a cache: the command committed, so report success.
            tracing::warn!(aggregate = A::TYPE, error = %e, "could not write snapshot");
        }
    }
}

#[async_trait]
impl<A> CommandGateway<A> for PgStore<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone + Send + 'static,
    A::Error: Send + Sync + 'static,
    A::Services: Send + Sync,
{
    async fn load(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        Ok(self.load_counted(aggregate_id).await?.0)
    }

    /// Behind a pooler (its connections refused our settings) a connection may outlive a
    /// failover that lost commits, so the epoch rule cannot vouch for the memory: load.
    async fn read(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        // A command in flight here has the entry out: wait for it to put back what it
        // committed rather than load what it is about to change (unless no entry could be
        // trusted anyway).
        let entry = if self.loads.tuned() && self.cache.capacity() > 0 {
            let _turn = self.turns.wait(aggregate_id).await;
            self.cache.peek(aggregate_id)
        } else {
            None
        };
        if let Some(entry) = entry {
            if self.still_current(aggregate_id, &entry).await? {
                return Ok(A::clone(&entry.state));
            }
        }
        Ok(self.load_counted(aggregate_id).await?.0)
    }

    async fn execute_once(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &HashMap<String, String>,
    ) -> Result<Executed<A>, AggregateError<A::Error>> {
        let turn = self.turns.wait(aggregate_id).await;
        let (executed, snapshot_due) = self.decide_in_turn(aggregate_id, command, metadata).await?;
        // The snapshot (every SNAPSHOT_AFTER events) is written after the turn: the next
        // command on the aggregate need not wait for it.
        drop(turn);
        if let (true, Some(last)) = (snapshot_due, executed.last_sequence) {
            self.save_snapshot(aggregate_id, &executed.state, last)
                .await;
        }
        Ok(executed)
    }
}

impl<A> PgStore<A>
where
    A: Aggregate + Clone + 'static,
{
    /// Decides on the cached state if there is one (checked by the append), else on a load;
    /// with whether a snapshot is due.
    async fn decide_in_turn(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &HashMap<String, String>,
    ) -> Result<(Executed<A>, bool), AggregateError<A::Error>>
    where
        A::Command: Clone,
    {
        if let Some(entry) = self.cache.take(aggregate_id) {
            let at = Arc::try_unwrap(entry).unwrap_or_else(|shared| Cached {
                state: shared.state.clone(),
                sequence: shared.sequence,
                replayed: shared.replayed,
                epoch: shared.epoch,
            });
            let at = Decided {
                state: Arc::unwrap_or_clone(at.state),
                sequence: at.sequence,
                replayed: at.replayed,
                epoch: at.epoch,
            };
            match self
                .decide_and_commit(aggregate_id, at, command.clone(), metadata)
                .await
            {
                // The append checked the cached state was current.
                Ok(done) if done.0.last_sequence.is_some() => return Ok(done),
                // Decided on a state nothing checked, or the state was stale (or may predate a
                // restart of the server): decide again on the stored state.
                Ok(_) | Err(AggregateError::UserError(_) | AggregateError::AggregateConflict) => {}
                // The append's outcome is unknown: deciding again could record it twice.
                Err(e) => return Err(e),
            }
        }
        // Read before the load: a connection opened after it may be to a server that lost what
        // the load saw.
        let epoch = self.epoch.load(Ordering::SeqCst);
        let (state, sequence, replayed) = self.load_counted(aggregate_id).await?;
        let at = Decided {
            state,
            sequence,
            replayed,
            epoch,
        };
        self.decide_and_commit(aggregate_id, at, command, metadata)
            .await
    }

    /// Handles `command` on `at` and appends its events after `at.sequence`; on a commit the
    /// new state is cached. With whether enough events were replayed to call for a snapshot.
    async fn decide_and_commit(
        &self,
        aggregate_id: &str,
        at: Decided<A>,
        command: A::Command,
        metadata: &HashMap<String, String>,
    ) -> Result<(Executed<A>, bool), AggregateError<A::Error>> {
        let Decided {
            mut state,
            sequence,
            replayed,
            epoch,
        } = at;
        let sink = EventSink::default();
        state
            .handle(command, &self.services, &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        if events.is_empty() {
            let executed = Executed {
                state: Arc::new(state),
                last_sequence: None,
                events,
            };
            return Ok((executed, false));
        }
        let metadata: Arc<RawValue> = serde_json::value::to_raw_value(metadata)
            .map_err(PersistenceError::from)?
            .into();
        let mut rows = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            rows.push(EventRow {
                aggregate_id: aggregate_id.to_owned(),
                sequence: sequence + i + 1,
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload: serde_json::value::to_raw_value(event).map_err(PersistenceError::from)?,
                metadata: metadata.clone(),
            });
        }
        self.writer.append_decided_at(rows, epoch).await?;
        let last = sequence + events.len();
        let mut replayed = replayed + events.len();
        let snapshot_due = replayed >= SNAPSHOT_AFTER;
        if snapshot_due {
            replayed = 0;
        }
        let state = Arc::new(state);
        self.cache.put(
            aggregate_id,
            Cached {
                state: state.clone(),
                sequence: last,
                replayed,
                epoch,
            },
        );
        let executed = Executed {
            state,
            last_sequence: Some(last),
            events,
        };
        Ok((executed, snapshot_due))
    }
}
