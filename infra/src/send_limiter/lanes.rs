//! The lanes: the sends of one tenant's channel queue here while a batch of them is written, and
//! the lane's task writes the next batch when that one commits. A lane exists, with its task,
//! exactly while it has sends waiting, and its task uses one database connection at a time.
//!
//! A reservation is kept only while someone will issue its code or give it back: a send
//! abandoned while queued is never written, and a grant whose caller is gone by the time it is
//! answered, or which is dropped unread, is given back.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tracing::Instrument;
use twofold_services::ports::{Reservation, SendCap};
use twofold_services::StoreError;

use super::batch::{self, Request};

/// Most reservations one statement writes. A batch holds a lock per bucket it touches (up to
/// three per send), and PostgreSQL's lock table is shared by every connection: sixteen sends
/// hold at most 49, below the 64 per transaction the table is sized for by default.
pub const MAX_BATCH: usize = 16;

/// One send's reservation.
pub(super) struct Slots {
    pub caps: Vec<SendCap>,
    pub now: DateTime<Utc>,
}

impl Slots {
    fn request(&self) -> Request<'_> {
        Request {
            caps: &self.caps,
            now: self.now,
        }
    }
}

/// A granted reservation on its way to its caller, given back should it be dropped unread (the
/// caller's request was dropped between the answer and its next poll).
struct Grant {
    slots: Option<Slots>,
    pool: PgPool,
}

impl Grant {
    fn take(mut self) -> Option<Slots> {
        self.slots.take()
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        let Some(slots) = self.slots.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("a send's unread grant could not be given back: no runtime");
            return;
        };
        let pool = self.pool.clone();
        runtime.spawn(
            async move {
                tracing::info!("a send's grant was dropped unread: slots given back");
                if let Err(e) = batch::give_back(&pool, &[slots.request()]).await {
                    tracing::warn!(error = %e, "could not give back an unread grant's slots");
                }
            }
            .in_current_span(),
        );
    }
}

type Answer = Result<(Reservation, Option<Grant>), StoreError>;

struct Waiting {
    slots: Slots,
    answer: oneshot::Sender<Answer>,
}

pub(super) struct Lanes {
    pool: PgPool,
    /// How long a batch waits for each of its locks before it fails.
    lock_wait: std::time::Duration,
    /// The sends waiting in each lane that has any; a lane is here exactly while its task runs.
    queues: Mutex<HashMap<String, VecDeque<Waiting>>>,
    /// Sends queued or being written.
    waiting: AtomicUsize,
    /// When this instance's batches prune expired reservations and counts.
    prunes: Mutex<batch::PruneClock>,
}

impl Lanes {
    pub(super) fn new(pool: PgPool, lock_wait: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            pool,
            lock_wait,
            queues: Mutex::default(),
            waiting: AtomicUsize::new(0),
            prunes: Mutex::default(),
        })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<String, VecDeque<Waiting>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the sends whose callers are gone (their clients hung up): they reserve nothing.
    fn forget_abandoned(&self, queue: &mut VecDeque<Waiting>) {
        let before = queue.len();
        queue.retain(|w| !w.answer.is_closed());
        self.waiting
            .fetch_sub(before - queue.len(), Ordering::Relaxed);
    }

    /// Queues `slots` in `lane`, starting the lane's task if it has none, and waits for the
    /// answer.
    pub(super) async fn reserve(
        self: &Arc<Self>,
        lane: String,
        slots: Slots,
    ) -> Result<Reservation, StoreError> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting { slots, answer };
        {
            let mut queues = self.queues();
            self.waiting.fetch_add(1, Ordering::Relaxed);
            if let Some(queue) = queues.get_mut(&lane) {
                // Bounded by the callers still waiting, however many hang up while a batch
                // is slow.
                self.forget_abandoned(queue);
                queue.push_back(waiting);
            } else {
                queues.insert(lane.clone(), VecDeque::from([waiting]));
                let task = LaneTask {
                    lanes: self.clone(),
                    lane,
                    finished: false,
                };
                tokio::spawn(
                    task.run()
                        .instrument(tracing::info_span!("send_reservations")),
                );
            }
        }
        let (reservation, grant) = answered.await.map_err(|_| {
            StoreError::new(std::io::Error::other(
                "the send reservations' task ended without an answer",
            ))
        })??;
        // Read: from here on the caller issues the code or gives the slots back.
        drop(grant.and_then(Grant::take));
        Ok(reservation)
    }

    async fn write(&self, batch: Vec<Waiting>) {
        let requests: Vec<Request<'_>> = batch.iter().map(|w| w.slots.request()).collect();
        let rows = requests.iter().map(|r| r.caps.len()).sum();
        let prune = self
            .prunes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .due(rows, std::time::Instant::now());
        let written = batch::write(&self.pool, self.lock_wait, &requests, prune).await;
        drop(requests);
        let n = batch.len();
        let mut abandoned = Vec::new();
        match written {
            Ok(answers) => {
                for (Waiting { slots, answer: to }, answer) in batch.into_iter().zip(answers) {
                    let grant = (answer == Reservation::Granted).then(|| Grant {
                        slots: Some(slots),
                        pool: self.pool.clone(),
                    });
                    // Nobody is left to use a granted reservation: its send was abandoned while
                    // it was written. Kept, it would spend the caps without a code.
                    if let Err(Ok((_, Some(grant)))) = to.send(Ok((answer, grant))) {
                        abandoned.extend(grant.take());
                    }
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for waiting in batch {
                    let _ = waiting.answer.send(Err(StoreError::new(e.clone())));
                }
            }
        }
        if !abandoned.is_empty() {
            tracing::info!(
                sends = abandoned.len(),
                "sends abandoned while they were reserved: slots given back"
            );
            let requests: Vec<Request<'_>> = abandoned.iter().map(Slots::request).collect();
            if let Err(e) = batch::give_back(&self.pool, &requests).await {
                tracing::warn!(error = %e, "could not give back abandoned sends' slots");
            }
        }
        self.waiting.fetch_sub(n, Ordering::Relaxed);
    }
}

/// A lane's task. Should it end any other way than by finding its lane empty (a panic, or the
/// runtime dropping it before it ran), the lane goes with it: its sends are answered with an
/// error, and the next send starts a task.
struct LaneTask {
    lanes: Arc<Lanes>,
    lane: String,
    finished: bool,
}

impl LaneTask {
    /// Writes the lane's waiting sends, a batch at a time, until none is left.
    async fn run(mut self) {
        loop {
            let batch: Vec<Waiting> = {
                let mut queues = self.lanes.queues();
                let Some(queue) = queues.get_mut(&self.lane) else {
                    self.finished = true;
                    return;
                };
                self.lanes.forget_abandoned(queue);
                if queue.is_empty() {
                    queues.remove(&self.lane);
                    self.finished = true;
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            self.lanes.write(batch).await;
        }
    }
}

impl Drop for LaneTask {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(queue) = self.lanes.queues().remove(&self.lane) {
            self.lanes.waiting.fetch_sub(queue.len(), Ordering::Relaxed);
        }
    }
}
