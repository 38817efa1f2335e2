//! Checks that cached entries are still the stored state, written together: the checks that
//! arrive while others run go to the database as one statement.
//!
//! A read of a cached aggregate ([`super::PgStore`]'s `read`) asks for the stream's last
//! sequence: one index lookup instead of a load. The delivery path asks twice per code (the
//! request, before it reserves the code's slots, and the worker, before it sends), each a
//! statement and a round trip of its own. Here, as in group commit, a lone check is run at
//! once, and those that queue behind running ones share the next statement.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::pg::direct::DirectConnections;

/// Statements running at once (each on one of the store's load connections).
const IN_FLIGHT: usize = 2;

/// Checks one statement asks at most.
const MAX_CHECKS: usize = 64;

/// The last sequence of each id of `$2` (in order; `NULL` for none), each a backward index probe.
const LAST_SEQUENCES_SQL: &str = "SELECT (SELECT max(e.sequence) FROM events e \
       WHERE e.aggregate_type = $1 AND e.aggregate_id = a.id) \
     FROM unnest($2::text[]) WITH ORDINALITY AS a(id, n) ORDER BY a.n";

/// One cached entry to check.
struct Check {
    id: String,
    /// The sequence of the entry's last event.
    sequence: usize,
    /// The newest connection epoch the entry is known to be current for.
    epoch: u64,
    answer: oneshot::Sender<Result<bool, Arc<sqlx::Error>>>,
}

/// The checks of one aggregate type's store.
pub(super) struct Checks {
    aggregate_type: &'static str,
    connections: Arc<DirectConnections>,
    /// Started on the first check, so that building a store needs no running runtime.
    queue: OnceLock<mpsc::UnboundedSender<Check>>,
}

impl Checks {
    /// Checks over the store's load connections.
    pub(super) fn new(aggregate_type: &'static str, connections: Arc<DirectConnections>) -> Self {
        Self {
            aggregate_type,
            connections,
            queue: OnceLock::new(),
        }
    }

    /// Whether the entry of `id`, whose last event is `sequence`, is the stored state: that
    /// event is still the stream's last, asked over a connection opened no later than `epoch`.
    /// A newer connection may be to a server that lost commits since (a restart or failover)
    /// and has taken their sequence numbers again, so the entry is not trusted then.
    pub(super) async fn still_current(
        &self,
        id: &str,
        sequence: usize,
        epoch: u64,
    ) -> Result<bool, Arc<sqlx::Error>> {
        let (answer, answered) = oneshot::channel();
        let check = Check {
            id: id.to_owned(),
            sequence,
            epoch,
            answer,
        };
        let queue = self
            .queue
            .get_or_init(|| spawn_checker(self.connections.clone(), self.aggregate_type));
        if queue.send(check).is_err() {
            return Err(Arc::new(sqlx::Error::PoolClosed));
        }
        answered
            .await
            .unwrap_or(Err(Arc::new(sqlx::Error::PoolClosed)))
    }
}

/// Takes whatever is queued (up to [`MAX_CHECKS`]) whenever a statement slot is free, and asks
/// it in a task of its own: a caller that goes away never takes the others' answers with it.
fn spawn_checker(
    connections: Arc<DirectConnections>,
    aggregate_type: &'static str,
) -> mpsc::UnboundedSender<Check> {
    let (sender, mut queue) = mpsc::unbounded_channel::<Check>();
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
            while batch.len() < MAX_CHECKS {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let connections = connections.clone();
            tokio::spawn(async move {
                answer(&connections, aggregate_type, batch).await;
                drop(slot);
            });
        }
    });
    sender
}

async fn answer(connections: &DirectConnections, aggregate_type: &str, batch: Vec<Check>) {
    let asked = async {
        let mut lease = connections.acquire().await?;
        let ids: Vec<&str> = batch.iter().map(|c| c.id.as_str()).collect();
        let last: Vec<Option<i64>> = sqlx::query_scalar(LAST_SEQUENCES_SQL)
            .bind(aggregate_type)
            .bind(&ids)
            .fetch_all(lease.conn())
            .await?;
        let opened = lease.opened();
        lease.finish();
        Ok::<_, sqlx::Error>((last, opened))
    }
    .await;
    match asked {
        Ok((last, opened)) => {
            // Settings refused (a pooler): a connection may outlive a failover, and its epoch
            // vouches for nothing.
            let tuned = connections.tuned();
            for (check, last) in batch.into_iter().zip(last) {
                let current = tuned
                    && opened <= check.epoch
                    && last.and_then(|l| usize::try_from(l).ok()) == Some(check.sequence);
                let _ = check.answer.send(Ok(current));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for check in batch {
                let _ = check.answer.send(Err(e.clone()));
            }
        }
    }
}
