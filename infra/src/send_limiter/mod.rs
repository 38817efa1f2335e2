//! [`SendLimiter`] over the `send_reservations` table: exact under concurrency on any number of
//! instances, because a reservation counts and inserts under transaction-scoped advisory locks
//! per bucket, in one statement (a function in the database).
//!
//! The reservations of one tenant's channel (a *lane*: sends that share the tenant's budget)
//! queue on the instance while one batch of them is written, and are then written together by
//! the next statement: one set of locks and one commit for many sends, where each send used to
//! hold the budget's lock through a commit of its own. A lane's task runs only while the lane
//! has sends waiting, and takes at most one database connection.

mod batch;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tracing::Instrument;
use twofold_services::ports::{Reservation, SendCap, SendLimiter};
use twofold_services::StoreError;

use batch::Request;

/// The first key of the two-key advisory locks taken here, so they cannot meet anyone else's.
pub const LOCK_CLASS: i32 = 0x7466_736c; // "tfsl"

/// Most reservations one statement writes. A batch holds a lock per bucket it touches (a send
/// has three), and PostgreSQL's lock table is shared by every connection.
pub const MAX_BATCH: usize = 32;

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

/// A send waiting for its reservation.
struct Waiting {
    id: String,
    caps: Vec<SendCap>,
    now: DateTime<Utc>,
    answer: oneshot::Sender<Result<Reservation, StoreError>>,
}

impl Waiting {
    fn request(&self) -> Request<'_> {
        Request {
            id: &self.id,
            caps: &self.caps,
            now: self.now,
        }
    }
}

struct Lanes {
    pool: PgPool,
    /// The sends waiting in each lane that has any; a lane is here exactly while its task runs.
    queues: Mutex<HashMap<String, VecDeque<Waiting>>>,
    /// Sends queued or being written.
    waiting: AtomicUsize,
}

/// [`SendLimiter`] in PostgreSQL.
pub struct PgSendLimiter {
    lanes: Arc<Lanes>,
}

impl PgSendLimiter {
    /// Uses `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            lanes: Arc::new(Lanes {
                pool,
                queues: Mutex::default(),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Sends on this instance whose reservation is queued or being written (or, abandoned, is
    /// being given back).
    pub fn waiting(&self) -> usize {
        self.lanes.waiting.load(Ordering::Relaxed)
    }
}

impl Lanes {
    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Waiting>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `lane`'s waiting sends, a batch at a time, until none is left.
    async fn drain(self: Arc<Self>, lane: String) {
        // Should the task end any other way than by finding its lane empty (a panic), the lane
        // goes with it: its sends are answered with an error, and the next send starts a task.
        struct Ending<'a>(&'a Lanes, &'a str, bool);
        impl Drop for Ending<'_> {
            fn drop(&mut self) {
                if self.2 {
                    if let Some(queue) = self.0.queues().remove(self.1) {
                        self.0.waiting.fetch_sub(queue.len(), Ordering::Relaxed);
                    }
                }
            }
        }
        let mut ending = Ending(&self, &lane, true);
        loop {
            let batch: Vec<Waiting> = {
                let mut queues = self.queues();
                let Some(queue) = queues.get_mut(&lane) else {
                    ending.2 = false;
                    return;
                };
                // A send abandoned while it was queued (its client hung up) reserves nothing.
                let before = queue.len();
                queue.retain(|w| !w.answer.is_closed());
                self.waiting
                    .fetch_sub(before - queue.len(), Ordering::Relaxed);
                if queue.is_empty() {
                    queues.remove(&lane);
                    ending.2 = false;
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<Waiting>) {
        let requests: Vec<Request<'_>> = batch.iter().map(Waiting::request).collect();
        let written = batch::write(&self.pool, &requests).await;
        drop(requests);
        let n = batch.len();
        let mut abandoned = Vec::new();
        match written {
            Ok(answers) => {
                for (waiting, answer) in batch.into_iter().zip(answers) {
                    let Waiting {
                        id,
                        caps,
                        now,
                        answer: to,
                    } = waiting;
                    // Nobody is left to use a granted reservation: its send was abandoned while
                    // it was written. Kept, it would spend the caps without a code.
                    if let Err(Ok(Reservation::Granted)) = to.send(Ok(answer)) {
                        abandoned.push((id, caps, now));
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
            let requests: Vec<Request<'_>> = abandoned
                .iter()
                .map(|(id, caps, now)| Request {
                    id,
                    caps,
                    now: *now,
                })
                .collect();
            if let Err(e) = batch::give_back(&self.pool, &requests).await {
                tracing::warn!(error = %e, "could not give back abandoned sends' slots");
            }
        }
        self.waiting.fetch_sub(n, Ordering::Relaxed);
    }
}

#[async_trait]
impl SendLimiter for PgSendLimiter {
    #[tracing::instrument(skip_all, fields(caps = caps.len()))]
    async fn reserve(
        &self,
        id: &str,
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
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            id: id.to_owned(),
            caps: caps.to_vec(),
            now,
            answer,
        };
        {
            let mut queues = self.lanes.queues();
            self.lanes.waiting.fetch_add(1, Ordering::Relaxed);
            match queues.get_mut(&lane) {
                Some(queue) => queue.push_back(waiting),
                None => {
                    queues.insert(lane.clone(), VecDeque::from([waiting]));
                    tokio::spawn(
                        self.lanes
                            .clone()
                            .drain(lane)
                            .instrument(tracing::info_span!("send_reservations")),
                    );
                }
            }
        }
        answered.await.map_err(|_| {
            StoreError::new(std::io::Error::other(
                "the send reservations' task ended without an answer",
            ))
        })?
    }

    async fn release(
        &self,
        id: &str,
        caps: &[SendCap],
        reserved_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        batch::give_back(
            &self.lanes.pool,
            &[Request {
                id,
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
