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
//! aggregate in the same batch, or another writer came first), every command of the batch is
//! written again on its own, so only the one that really conflicted sees the conflict (and its
//! caller re-decides on fresh state, as before). Other errors (the database unreachable, a
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
        Err(PersistenceError::OptimisticLockError) => {
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
