//! Group commit: the events of commands that finish deciding at about the same time are written
//! in one transaction, still by postgres-es.
//!
//! Each command used to pay for its own `BEGIN` and `COMMIT` round trips and its own durable
//! commit. Under load most of a command's database time was that, not its `INSERT`. Here a
//! command hands its events to a committer and waits for the outcome; the committer writes
//! everything that is waiting, in one `PostgresEventRepository::persist` call (one transaction),
//! with at most [`IN_FLIGHT`] such transactions at once. A lone command is written at once, so
//! group commit adds no waiting when there is nothing to share a commit with; when commits are
//! busy, the commands that queue behind them share the next one.
//!
//! Each command's answer is still exact. A batch is atomic, so its commands commit together or
//! not at all; if a batch fails with an optimistic-concurrency conflict (two commands on one
//! aggregate in the same batch, or another writer came first), or with a deadlock PostgreSQL
//! resolved by rolling it back, every command of the batch is written again on its own, so
//! only the one that really conflicted sees the conflict (and its caller re-decides on fresh
//! state, as before). A batch writes its events in key order (aggregate id, then sequence), so
//! two transactions that write the same aggregates wait for each other in one direction only
//! and do not deadlock in the first place. Other errors (the database unreachable, a
//! `COMMIT` that failed, whose outcome nobody can know) reach every command of the batch: they
//! are not the doing of one command, and retrying after an uncertain `COMMIT` could report a
//! committed command as refused.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
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
    repo: Arc<PostgresEventRepository>,
    /// Started on the first append, so that building a store needs no running runtime.
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate + 'static> GroupCommit<A> {
    /// A committer writing through `repo`.
    pub fn new(repo: PostgresEventRepository) -> Self {
        Self {
            repo: Arc::new(repo),
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
fn spawn_committer<A: Aggregate + 'static>(
    repo: Arc<PostgresEventRepository>,
) -> mpsc::UnboundedSender<Pending> {
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

/// Writes a batch in one transaction, falling back to one transaction per command on conflict.
async fn commit_batch<A: Aggregate>(repo: &PostgresEventRepository, batch: Vec<Pending>) {
    if batch.len() == 1 {
        for Pending { events, done } in batch {
            let _ = done.send(repo.persist::<A>(&events, None).await);
        }
        return;
    }
    let mut batch = batch;
    in_lock_order(&mut batch);
    let mut all = Vec::with_capacity(batch.iter().map(|p| p.events.len()).sum());
    let mut waiting = Vec::with_capacity(batch.len());
    for Pending { events, done } in batch {
        let start = all.len();
        all.extend(events);
        waiting.push((start..all.len(), done));
    }
    match repo.persist::<A>(&all, None).await {
        Ok(()) => {
            for (_, done) in waiting {
                let _ = done.send(Ok(()));
            }
        }
        Err(e) if is_conflict(&e) => {
            // Nothing of the batch was written: find the command(s) that really conflict.
            for (range, done) in waiting {
                let _ = done.send(repo.persist::<A>(&all[range], None).await);
            }
        }
        Err(e) => {
            // Nothing of the batch was written, or (a failed COMMIT) nobody can know: every
            // command reports the error, as it would have alone.
            let message = e.to_string();
            for (_, done) in waiting {
                let _ = done.send(Err(PersistenceError::ConnectionError(
                    message.clone().into(),
                )));
            }
        }
    }
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

/// Whether a batch failed because of other writers, with nothing of it written: a duplicate
/// sequence (the optimistic-concurrency conflict), or a deadlock or serialization failure that
/// PostgreSQL resolved by rolling the batch back. Written again command by command, each then
/// meets at most a plain conflict of its own.
fn is_conflict(error: &PersistenceError) -> bool {
    match error {
        PersistenceError::OptimisticLockError => true,
        PersistenceError::UnknownError(e) | PersistenceError::ConnectionError(e) => e
            .downcast_ref::<sqlx::Error>()
            .and_then(sqlx::Error::as_database_error)
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40P01" || code == "40001"),
        _ => false,
    }
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
