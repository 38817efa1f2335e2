//! Group commit: the events of commands that finish deciding at about the same time are written
//! in one statement, and so in one transaction.
//!
//! Each command used to pay for its own `BEGIN` and `COMMIT` round trips, one `INSERT` per event
//! and its own durable commit. Here a command hands its events to a committer and waits for the
//! outcome; the committer writes everything that is waiting with one multi-row `INSERT`
//! ([`crate::append`]: the rows postgres-es writes, one round trip, committed by itself), with at
//! most [`IN_FLIGHT`] such statements at once. A lone command is written at once, so group
//! commit adds no waiting when there is nothing to share a commit with; when commits are busy,
//! the commands that queue behind them share the next one.
//!
//! Each command's answer is still exact, and one command never fails another (decision 100). A
//! statement is atomic, so a batch's commands commit together or not at all. When PostgreSQL
//! refuses the statement, for whatever reason (an optimistic-concurrency conflict: two commands
//! on one aggregate in the same batch, or another writer came first; a value it cannot store,
//! such as a NUL in a JSON string; a deadlock), it says so and nothing of the batch is written.
//! The batch is then written again in halves, each split again while refused, so only the
//! command at fault sees the error (a conflicting caller re-decides on fresh state, as before).
//! Not when PostgreSQL ended a wait for a lock other than on one of our keys (a whole
//! relation's: a migration's, an operator's): that is no command's doing, no half gets past
//! it, and every command of the statement hears a retryable outage (decision 175).
//! A batch writes its events in key order (aggregate id, then sequence), so two statements that
//! write the same aggregates wait for each other in one direction only and do not deadlock in
//! the first place. A failure without an answer from PostgreSQL (a lost connection, an
//! unreachable database) reaches every command of the batch: it is not the doing of one
//! command, and the statement may have committed, so writing its commands again could report a
//! committed command as refused, or write it twice.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use cqrs_es::Aggregate;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::append::{self, EventRow};
use crate::pg::direct::{DirectConnections, HOT_PATH_SETTINGS};

mod refusal;

pub(crate) use refusal::SharedFailure;
pub use refusal::{refused_at_lock_wait, RefusedAtLockWait};
use refusal::{waited_for_an_events_key, Refusal};

/// How many batch statements may be running at once: while one waits for its commit to reach
/// the disk, another is written. Fewer statements in flight make larger batches and fewer
/// commits: with `twofold bench` on 2 cores, 2 gave 3 to 20% more verifies and 5 to 16% more
/// enrollments per second than 4, with less CPU per operation (decision 175). 1 gave more for
/// verifies, but then one statement that stalls stops every write of its aggregate type.
pub const IN_FLIGHT: usize = 2;

/// How long a batch statement may go without an answer. A connection can hang without an error
/// (a peer or network that drops packets, a lock held by an operator's open transaction); its
/// batch's commands then hear that the outcome is unknown, and the slot is free for the next
/// batch, well inside the API's 30 s request timeout.
pub const STATEMENT_DEADLINE: Duration = Duration::from_secs(10);

/// How long a batch statement waits for a key another transaction holds (`lock_timeout` on the
/// writer's connections), well below [`STATEMENT_DEADLINE`]. Another writer's insert of the
/// same key holds it for one statement and its commit; longer means a stalled transaction (an
/// operator's open `psql`), and the server ends the wait itself: a statement abandoned only by
/// us at the deadline would wait on, and commit later. The command that waited hears a
/// retryable outage (the lock may be the whole table's, held by a migration).
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How a committer waits on PostgreSQL: by default [`LOCK_WAIT`] and [`STATEMENT_DEADLINE`].
/// Tests that keep commands running behind a lock on `events` make both longer. The lock wait
/// should stay the shorter: a statement abandoned at the deadline waits on in the server until
/// its lock wait, and may commit meanwhile (only a test of the deadline itself reverses them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterLimits {
    /// `lock_timeout` on the writer's connections.
    pub lock_wait: Duration,
    /// How long a statement may go without an answer.
    pub statement_deadline: Duration,
}

impl Default for WriterLimits {
    fn default() -> Self {
        Self {
            lock_wait: LOCK_WAIT,
            statement_deadline: STATEMENT_DEADLINE,
        }
    }
}

/// How long the halves of a batch refused at the lock wait for one of our keys wait for a lock:
/// the holder has held it for the whole lock wait already, and waiting that long again at
/// every halving level cost a batch of 64 about 14 s, with one of the two slots busy.
pub const HELD_KEY_WAIT: Duration = Duration::from_millis(200);

/// At most this many commands share one transaction, so a batch stays a short transaction
/// (long ones hold back the event processor's commit horizon).
pub const MAX_COMMANDS: usize = 64;

/// One command's events and where to send the outcome.
struct Pending {
    events: Vec<EventRow>,
    /// The newest connection epoch the command's state is known to be current for (see
    /// [`GroupCommit::append_decided_at`]); `None`: any.
    decided_at: Option<u64>,
    done: oneshot::Sender<Result<(), PersistenceError>>,
}

/// Writes events of aggregate type `A` with group commit. Cheap to share: one per store.
pub struct GroupCommit<A> {
    repo: Arc<Writer>,
    /// Started on the first append, so that building a store needs no running runtime.
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate + 'static> GroupCommit<A> {
    /// A committer writing to the `events` table of `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_epoch(pool, Arc::default())
    }

    /// A committer whose connections take their numbers from `epoch` (shared with the loads).
    pub fn with_epoch(pool: PgPool, epoch: Arc<AtomicU64>) -> Self {
        Self::with_limits(pool, epoch, WriterLimits::default())
    }

    /// As [`GroupCommit::with_epoch`], waiting on PostgreSQL as `limits` say.
    pub fn with_limits(pool: PgPool, epoch: Arc<AtomicU64>, limits: WriterLimits) -> Self {
        Self {
            repo: Arc::new(Writer {
                connections: writer_connections(&pool, limits.lock_wait).sharing_epoch(epoch),
                lock_wait: limits.lock_wait,
                deadline: limits.statement_deadline,
                written: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
            queue: OnceLock::new(),
            aggregate: PhantomData,
        }
    }

    /// How many statements this committer has sent: those that wrote, and those that wrote
    /// nothing because PostgreSQL refused them.
    pub fn statements(&self) -> Statements {
        Statements {
            written: self.repo.written.load(Ordering::Relaxed),
            refused: self.repo.refused.load(Ordering::Relaxed),
        }
    }

    /// Commits one command's events (all of them or none) and returns once they are durable.
    /// `Err(OptimisticLockError)` means another writer committed to the aggregate first.
    pub async fn append(&self, events: Vec<SerializedEvent>) -> Result<(), PersistenceError> {
        let rows = events
            .iter()
            .map(EventRow::from_serialized)
            .collect::<Result<_, _>>()?;
        self.send(rows, None).await
    }

    /// As [`GroupCommit::append`], for a command decided on a state read before any connection
    /// numbered above `epoch` was opened. Such a state may predate a restart or failover of the
    /// server, which can lose the last commits before it (asynchronous commit or replication);
    /// the primary key cannot tell, since the lost sequence numbers are free again. So it is
    /// written only over a connection at most that old (all older ones died with the server),
    /// and otherwise refused as a conflict: the command decides again on a fresh load.
    pub async fn append_decided_at(
        &self,
        events: Vec<EventRow>,
        epoch: u64,
    ) -> Result<(), PersistenceError> {
        self.send(events, Some(epoch)).await
    }

    async fn send(
        &self,
        events: Vec<EventRow>,
        decided_at: Option<u64>,
    ) -> Result<(), PersistenceError> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .get_or_init(|| spawn_committer::<A>(self.repo.clone()))
            .send(Pending {
                events,
                decided_at,
                done,
            })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// The hot path's connections with a lock wait, the setting a pooler that refuses some loses
/// first (`operations.md` lists them all).
fn writer_connections(pool: &PgPool, lock_wait: Duration) -> DirectConnections {
    let [first, second, third] = HOT_PATH_SETTINGS;
    let lock_wait = format!("{}ms", lock_wait.as_millis().max(1));
    let settings = [first, second, third, ("lock_timeout", lock_wait.as_str())];
    DirectConnections::with_settings(pool, IN_FLIGHT, &settings)
}

fn stopped() -> PersistenceError {
    PersistenceError::UnknownError("the event committer stopped".into())
}

/// The committer: takes whatever is queued (up to [`MAX_COMMANDS`]) whenever a transaction slot
/// is free, and writes it in a task of its own.
fn spawn_committer<A: Aggregate + 'static>(repo: Arc<Writer>) -> mpsc::UnboundedSender<Pending> {
    let (sender, mut queue) = mpsc::unbounded_channel::<Pending>();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let Some(first) = queue.recv().await else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_COMMANDS {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let repo = repo.clone();
            tokio::spawn(async move {
                commit_batch::<A>(&repo, batch).await;
                drop(slot);
            });
        }
    });
    sender
}

/// Statements a committer has sent ([`GroupCommit::statements`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statements {
    pub written: u64,
    pub refused: u64,
}

/// Where a committer writes: connections of its own, one per transaction in flight, without
/// the pool's ping on release.
struct Writer {
    connections: DirectConnections,
    lock_wait: Duration,
    deadline: Duration,
    written: AtomicU64,
    refused: AtomicU64,
}

/// Writes a batch in one statement. When it wrote nothing for a reason that may be one
/// command's doing, its halves are written again, each split in turn while it is refused, so
/// that the commands at fault end alone with their error and every other command is written:
/// one refused command of 64 costs 13 statements instead of 65 (decision 175). Many refused
/// commands would cost up to twice as many statements as commands, each holding a slot, so
/// after a few refused halves the rest is written command by command.
async fn commit_batch<A: Aggregate>(repo: &Writer, batch: Vec<Pending>) {
    let mut batch = batch;
    in_lock_order(&mut batch);
    // Refused statements of several commands allowed: twice the halvings that find one.
    let mut halvings_left = 2 * (usize::BITS - batch.len().leading_zeros());
    // Parts left to write, the next on top: the batch's key order is kept.
    let mut parts = vec![batch];
    // Set once a part was refused at the lock wait for a key of ours: the rest wait less.
    let mut held_key = false;
    while let Some(part) = parts.pop() {
        let short = held_key.then_some(HELD_KEY_WAIT.min(repo.lock_wait));
        match write(repo, part, A::TYPE, short).await {
            Ok(()) => {}
            Err((Refusal::Database(e), part))
                if crate::pg::is_lock_timeout(&e) && !waited_for_an_events_key(&e) =>
            {
                // A lock held past the writer's lock wait that is not on a key of ours: a whole
                // relation's (a migration building an index without CONCURRENTLY, an operator's
                // LOCK TABLE), which no half could get past either. The part is answered as a
                // whole, for one wait per batch instead of one at every halving level and then
                // one per command. A key another writer holds is one command's, and is halved.
                // The parts still to write (a batch split for a held key first) would wait for
                // the same lock: they are answered with it.
                let refused = RefusedAtLockWait(Arc::new(e));
                for Pending { done, .. } in part.into_iter().chain(parts.drain(..).flatten()) {
                    let _ = done.send(Err(refused.clone().into()));
                }
            }
            Err((refusal, part)) if part.len() == 1 => {
                if let Some(Pending { done, .. }) = part.into_iter().next() {
                    let _ = done.send(Err(refusal.into_command_error()));
                }
            }
            Err((Refusal::Unknown(e), part)) => {
                // No answer from PostgreSQL: whether the statement committed is unknown, so no
                // command of it may be written again or told it failed for its own reason.
                let shared = Arc::new(e);
                for Pending { done, .. } in part {
                    let _ = done.send(Err(PersistenceError::ConnectionError(Box::new(
                        SharedFailure(shared.clone()),
                    ))));
                }
            }
            Err((refusal, mut part)) => {
                held_key |=
                    matches!(&refusal, Refusal::Database(e) if crate::pg::is_lock_timeout(e));
                tracing::debug!(
                    commands = part.len(),
                    "batch refused; writing its halves again"
                );
                halvings_left = halvings_left.saturating_sub(1);
                if halvings_left > 0 {
                    let second = part.split_off(part.len() / 2);
                    parts.push(second);
                    parts.push(part);
                } else {
                    // Too many refusals to find by halving: every command alone from here on.
                    parts.push(part);
                    let next: Vec<Pending> = parts.drain(..).rev().flatten().collect();
                    parts.extend(next.into_iter().rev().map(|pending| vec![pending]));
                }
            }
        }
    }
}

/// Writes `batch` in one statement on a connection of the writer's, and tells its commands
/// when it committed. Commands decided on a state older than the connection are refused first
/// (see [`GroupCommit::append_decided_at`]). When nothing was written, why and the commands that
/// were in the statement come back. A connection goes back for reuse when PostgreSQL answered,
/// with rows or with an error that leaves the session usable; otherwise it is closed.
async fn write(
    repo: &Writer,
    batch: Vec<Pending>,
    aggregate_type: &str,
    lock_wait: Option<Duration>,
) -> Result<(), (Refusal, Vec<Pending>)> {
    let mut lease = match repo.connections.acquire().await {
        Ok(lease) => lease,
        Err(e) => return Err((Refusal::Unknown(e), batch)),
    };
    let opened = lease.opened();
    let (current, stale): (Vec<Pending>, Vec<Pending>) = batch
        .into_iter()
        .partition(|p| p.decided_at.is_none_or(|at| at >= opened));
    for Pending { done, .. } in stale {
        let _ = done.send(Err(PersistenceError::OptimisticLockError));
    }
    // After the stale ones are out: a repeat is not refused in favour of a command that is
    // itself refused as stale.
    let current = without_repeated_keys(current);
    if current.is_empty() {
        lease.finish();
        return Ok(());
    }
    let events = current.iter().flat_map(|p| &p.events);
    let statement = append::append_waiting(lease.conn(), aggregate_type, events, lock_wait);
    let Ok(outcome) = tokio::time::timeout(repo.deadline, statement).await else {
        // The lease is dropped unfinished, so the connection is closed, not reused.
        tracing::warn!(
            commands = current.len(),
            "an events statement got no answer in time; its outcome is unknown"
        );
        let silent = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the events statement got no answer in time",
        );
        return Err((Refusal::Unknown(sqlx::Error::Io(silent)), current));
    };
    match outcome {
        Ok(append::Appended::Written) => {
            repo.written.fetch_add(1, Ordering::Relaxed);
            lease.finish();
            for Pending { done, .. } in current {
                let _ = done.send(Ok(()));
            }
            Ok(())
        }
        Ok(append::Appended::Hole) => {
            repo.refused.fetch_add(1, Ordering::Relaxed);
            lease.finish();
            Err((Refusal::Hole, current))
        }
        // A refusal only when the session lived through it: an error that ends the session (an
        // administrator's termination, a crash and restart, a pooler's) can come after the
        // commit was flushed, so its outcome is unknown, and no command of it may be written
        // again or told it wrote nothing.
        Err(e) if e.as_database_error().is_some() && append::session_survives(&e) => {
            repo.refused.fetch_add(1, Ordering::Relaxed);
            lease.finish();
            Err((Refusal::Database(e), current))
        }
        Err(e) => Err((Refusal::Unknown(e), current)),
    }
}

/// Two commands that write the same first key cannot both be written. The later ones (the sort
/// is stable: in arrival order) hear a conflict at once and decide again on a fresh load,
/// instead of getting the whole batch refused and halved; racing requests on one user would
/// otherwise cost every batch they share the most statements halving allows.
fn without_repeated_keys(batch: Vec<Pending>) -> Vec<Pending> {
    let mut kept: Vec<Pending> = Vec::with_capacity(batch.len());
    for pending in batch {
        let repeated =
            first_key(&pending).is_some_and(|key| kept.last().and_then(first_key) == Some(key));
        if repeated {
            let _ = pending
                .done
                .send(Err(PersistenceError::OptimisticLockError));
        } else {
            kept.push(pending);
        }
    }
    kept
}

/// The key a command's first event inserts: aggregate id, then sequence.
fn first_key(p: &Pending) -> Option<(&str, usize)> {
    p.events
        .first()
        .map(|e| (e.aggregate_id.as_str(), e.sequence))
}

/// Puts a batch's commands in the order of the keys they insert (aggregate id, then sequence).
/// Two transactions that insert the same keys then wait for each other in one direction only:
/// unordered, two batches (of this instance or of two) holding the same two aggregates in
/// opposite orders each waited for a key the other had written, and PostgreSQL broke the
/// deadlock by failing one batch after a second, with an error for every command in it.
fn in_lock_order(batch: &mut [Pending]) {
    batch.sort_by(|a, b| first_key(a).cmp(&first_key(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(aggregate: &str, sequences: &[usize]) -> Pending {
        let events = sequences
            .iter()
            .map(|&sequence| EventRow {
                aggregate_id: aggregate.to_owned(),
                sequence,
                event_type: "E".to_owned(),
                event_version: "1".to_owned(),
                payload: serde_json::value::to_raw_value(&()).unwrap(),
                metadata: serde_json::value::to_raw_value(&()).unwrap().into(),
            })
            .collect();
        Pending {
            events,
            decided_at: None,
            done: oneshot::channel().0,
        }
    }

    #[test]
    fn a_batch_inserts_its_keys_in_one_global_order() {
        let mut batch = vec![
            pending("t/user/b", &[4, 5]),
            pending("t/user/a", &[9]),
            pending("t/user/b", &[2]),
            pending("t/user/a", &[3]),
        ];
        in_lock_order(&mut batch);
        let keys: Vec<(String, usize)> = batch
            .iter()
            .flat_map(|p| {
                p.events
                    .iter()
                    .map(|e| (e.aggregate_id.clone(), e.sequence))
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        // A command's events stay together and in their order.
        assert_eq!(batch[3].events.len(), 2);
    }
}
