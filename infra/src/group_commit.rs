//! Group commit: the events of commands that finish deciding at about the same time are written
//! in one transaction.
//!
//! Each command used to pay for its own `BEGIN` and `COMMIT` round trips and its own durable
//! commit. Under load most of a command's database time was that, not its `INSERT`. Here a
//! command hands its events to a committer and waits for the outcome; the committer writes
//! everything that is waiting in one transaction (postgres-es's own `INSERT`, one per event),
//! with at most [`IN_FLIGHT`] such transactions at once. A lone command is written at once, by
//! postgres-es, so group commit adds no waiting when there is nothing to share a commit with;
//! when commits are busy, the commands that queue behind them share the next one.
//!
//! Each command's answer is still exact, and one command never fails another (decision 100). A
//! batch is atomic, so its commands commit together or not at all. When the database refuses
//! one of the batch's `INSERT`s, for whatever reason (an optimistic-concurrency conflict: two
//! commands on one aggregate in the same batch, or another writer came first; a value it cannot
//! store, such as a NUL in a JSON string; a deadlock), nothing of the batch is written, certainly:
//! the transaction is rolled back before it ever reaches `COMMIT`. Every command of the batch is
//! then written again in a transaction of its own, so only the command at fault sees the error
//! (a conflicting caller re-decides on fresh state, as before). The same holds for a `COMMIT`
//! that PostgreSQL refused with a deadlock or serialization failure: it says it rolled back.
//! A batch writes its events in key order (aggregate id, then sequence), so two transactions
//! that write the same aggregates wait for each other in one direction only and do not deadlock
//! in the first place. Other errors reach every command of the batch: a lost connection or an
//! unreachable database is not the doing of one command, and a `COMMIT` that failed otherwise
//! has an outcome nobody can know, so writing its commands again could report a committed
//! command as refused, or write it twice.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// How many batch transactions may be open at once: while some wait for their commit to reach
/// the disk, others are written. Measured with `twofold bench` (16 clients, 2 cores): 2 left
/// the cores partly idle (commands queued behind commit latency), 4 saturated them, 6 gave
/// nothing more.
pub const IN_FLIGHT: usize = 4;

/// At most this many commands share one transaction, so a batch stays a short transaction
/// (long ones hold back the event processor's commit horizon).
pub const MAX_COMMANDS: usize = 64;

/// One command's events and where to send the outcome.
struct Pending {
    events: Vec<SerializedEvent>,
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
        Self {
            repo: Arc::new(Writer {
                single: PostgresEventRepository::new(pool.clone()),
                pool,
            }),
            queue: OnceLock::new(),
            aggregate: PhantomData,
        }
    }

    /// Commits one command's events (all of them or none) and returns once they are durable.
    /// `Err(OptimisticLockError)` means another writer committed to the aggregate first.
    pub async fn append(&self, events: Vec<SerializedEvent>) -> Result<(), PersistenceError> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .get_or_init(|| spawn_committer::<A>(self.repo.clone()))
            .send(Pending { events, done })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
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

/// Where a committer writes: postgres-es for a command alone, our own transaction (with the
/// same `INSERT`) for a batch, so that we know at which step a batch failed.
struct Writer {
    single: PostgresEventRepository,
    pool: PgPool,
}

/// postgres-es's statement for one event.
const INSERT_EVENT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// How a batch transaction failed.
enum BatchFailure {
    /// Nothing of the batch was written, and PostgreSQL said why: write each command alone.
    RolledBack(sqlx::Error),
    /// Not known to be any one command's doing, or not known to be rolled back.
    Everyone(sqlx::Error),
}

/// Writes a batch in one transaction, falling back to one transaction per command when the
/// database refused it before it could commit.
async fn commit_batch<A: Aggregate>(repo: &Writer, batch: Vec<Pending>) {
    if batch.len() == 1 {
        for Pending { events, done } in batch {
            let _ = done.send(repo.single.persist::<A>(&events, None).await);
        }
        return;
    }
    let mut batch = batch;
    in_lock_order(&mut batch);
    match write_batch::<A>(&repo.pool, &batch).await {
        Ok(()) => {
            for Pending { done, .. } in batch {
                let _ = done.send(Ok(()));
            }
        }
        Err(BatchFailure::RolledBack(e)) => {
            tracing::debug!(error = %e, commands = batch.len(), "batch refused; writing its commands one by one");
            for Pending { events, done } in batch {
                let _ = done.send(repo.single.persist::<A>(&events, None).await);
            }
        }
        Err(BatchFailure::Everyone(e)) => {
            let shared = Arc::new(e);
            for Pending { done, .. } in batch {
                let _ = done.send(Err(PersistenceError::ConnectionError(Box::new(
                    SharedFailure(shared.clone()),
                ))));
            }
        }
    }
}

/// One failure told to every command of a batch. Its source is the driver's error, so a
/// caller can still tell an outage (retryable) from anything else.
#[derive(Debug)]
struct SharedFailure(Arc<sqlx::Error>);

impl std::fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the batch's transaction failed: {}", self.0)
    }
}

impl std::error::Error for SharedFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// One transaction with every event of the batch, in the batch's order.
async fn write_batch<A: Aggregate>(pool: &PgPool, batch: &[Pending]) -> Result<(), BatchFailure> {
    let mut tx = pool.begin().await.map_err(BatchFailure::Everyone)?;
    for event in batch.iter().flat_map(|p| &p.events) {
        let inserted = sqlx::query(INSERT_EVENT)
            .bind(A::TYPE)
            .bind(event.aggregate_id.as_str())
            .bind(i64::try_from(event.sequence).unwrap_or(i64::MAX))
            .bind(&event.event_type)
            .bind(&event.event_version)
            .bind(&event.payload)
            .bind(&event.metadata)
            .execute(&mut *tx)
            .await;
        if let Err(e) = inserted {
            // A statement PostgreSQL answered with an error aborted the transaction, which is
            // rolled back when `tx` drops: nothing was written. Without an answer (the
            // connection was lost) the cause is not one command's.
            return Err(if e.as_database_error().is_some() {
                BatchFailure::RolledBack(e)
            } else {
                BatchFailure::Everyone(e)
            });
        }
    }
    tx.commit().await.map_err(|e| {
        if is_rolled_back_conflict(&e) {
            BatchFailure::RolledBack(e)
        } else {
            BatchFailure::Everyone(e)
        }
    })
}

/// Puts a batch's commands in the order of the keys they insert (aggregate id, then sequence).
/// Two transactions that insert the same keys then wait for each other in one direction only:
/// unordered, two batches (of this instance or of two) holding the same two aggregates in
/// opposite orders each waited for a key the other had written, and PostgreSQL broke the
/// deadlock by failing one batch after a second, with an error for every command in it.
fn in_lock_order(batch: &mut [Pending]) {
    fn key(p: &Pending) -> Option<(&str, usize)> {
        p.events
            .first()
            .map(|e| (e.aggregate_id.as_str(), e.sequence))
    }
    batch.sort_by(|a, b| key(a).cmp(&key(b)));
}

/// Whether PostgreSQL refused a `COMMIT` with a deadlock or serialization failure, which it
/// resolves by rolling the transaction back: nothing of it was written.
fn is_rolled_back_conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(aggregate: &str, sequences: &[usize]) -> Pending {
        let events = sequences
            .iter()
            .map(|&sequence| SerializedEvent {
                aggregate_id: aggregate.to_owned(),
                sequence,
                aggregate_type: "user".to_owned(),
                event_type: "E".to_owned(),
                event_version: "1".to_owned(),
                payload: serde_json::Value::Null,
                metadata: serde_json::Value::Null,
            })
            .collect();
        Pending {
            events,
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
