//! The owner's current data key, created on first use. First seals that arrive together share
//! one statement, and so one commit, as commands do in group commit ([`crate::group_commit`]).
//!
//! Enrolling a user seals their TOTP secret, the first seal made for them: its key row used to
//! be a statement and a durable commit of its own, second only to the events' appends in the
//! database's statement time in the bench's enrollment (`docs/benchmark.md`, round 10). Now the owners waiting while earlier statements run are
//! written by the next one, a lone seal at once.
//!
//! A waiter never takes another owner's key on trust. Each brings a fresh key under a random id,
//! wrapped for its own owner; it keeps the fresh key only when the stored row carries that id,
//! and otherwise unwraps the stored key with its own owner as associated data, which fails for
//! a row of any other owner. Two waiters for one owner share one row of the statement: the
//! first one's fresh key is offered, the other unwraps whatever is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use twofold_services::StoreError;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::keys::{unwrap, wrap, DataKey, Owner};
use super::{MasterKeys, SealError};
use crate::append::session_survives;
use crate::group_commit::SharedFailure;
use crate::pg::direct::DirectConnections;

/// When the writer's statements start and how long they may wait on a lock.
#[derive(Clone, Copy)]
pub(super) struct Timing {
    /// One key statement runs at a time, so the seals arriving meanwhile share the next one
    /// (measured with `twofold bench`: two at a time shared little, and saved nothing). Seals
    /// that have waited this long for the running statement (one waiting on a lock, say) no
    /// longer wait for it: up to [`EXTRA`] more statements may start beside it.
    pub stalled: Duration,
    /// How long a statement waits for another transaction's lock on an owner's row (another
    /// instance's first seal, an erasure) before PostgreSQL fails it. The owners are then
    /// written one by one, each retry starting within twice this, so only the owners whose
    /// rows stay locked fail (and those not reached in time): about four times this at most.
    pub lock_wait: Duration,
}

/// The service's timing.
pub(super) const TIMING: Timing = Timing {
    stalled: Duration::from_millis(20),
    lock_wait: Duration::from_secs(1),
};

/// Statements that may run beside one that has stalled.
pub(super) const EXTRA: usize = 3;

/// At most this many owners share a statement, so one stays a short transaction.
const MAX_OWNERS: usize = 64;

/// A stored key row: id (text), wrapped key, master key id.
type Row = (String, Vec<u8>, String);

/// One seal's request: its owner and the fresh key it offers.
pub(super) struct Wanted {
    tenant: String,
    /// Empty for a tenant's own key.
    user: String,
    fresh_id: Uuid,
    wrapped: Vec<u8>,
    master_id: String,
    /// The owner's row, or `None` when it was committed by a racing statement too late for this
    /// one's snapshot.
    done: oneshot::Sender<Result<Option<Row>, StoreError>>,
}

/// Creates and reads current keys, sharing statements. One per sealer.
pub(super) struct CurrentKeys {
    queue: mpsc::UnboundedSender<Wanted>,
}

impl CurrentKeys {
    /// Writes over connections of its own to `pool`'s database, opened when needed, which ask
    /// for `timing`'s lock wait (a runtime must be running).
    pub(super) fn new(pool: &PgPool, timing: Timing) -> Self {
        let lock_wait = timing.lock_wait.as_millis().to_string();
        // A pooler that refuses the setting gets connections without it, and the log says so
        // once. Not `enable_seqscan=off`, as the hot path's connections have (decision 166):
        // the insert's trigger reads the one-row `key_store` by a sequential scan, whose
        // disabling cost then put the plan over the JIT threshold, compiling it on every call
        // (10 ms of PostgreSQL's CPU per enrolled user). The statement reads keys by the owner
        // index without it.
        let settings = [("lock_timeout", lock_wait.as_str())];
        let writer = Writer {
            connections: DirectConnections::with_settings(pool, 1 + EXTRA, &settings),
            retry_for: timing.lock_wait * 2,
        };
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(writer, timing.stalled, waiting));
        Self { queue }
    }

    /// The owner's current data key and its id, created on first use.
    pub(super) async fn current(
        &self,
        pool: &PgPool,
        master: &MasterKeys,
        owner: Owner<'_>,
    ) -> Result<(Uuid, DataKey), StoreError> {
        let fresh_id = Uuid::new_v4();
        let mut fresh = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(fresh.as_mut());
        let wrapped = wrap(master.current(), owner, &fresh_id, &fresh).map_err(StoreError::new)?;
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Wanted {
                tenant: owner.tenant.as_str().to_owned(),
                user: owner.user_column().to_owned(),
                fresh_id,
                wrapped,
                master_id: master.current_id().to_owned(),
                done,
            })
            .map_err(|_| stopped())?;
        let row = answer.await.map_err(|_| stopped())??;
        let (id, wrapped, master_id) = match row {
            Some(row) => row,
            None => read(pool, owner)
                .await?
                .ok_or_else(|| StoreError::new(SealError::Erased))?,
        };
        let id = Uuid::parse_str(&id).map_err(StoreError::new)?;
        if id == fresh_id {
            return Ok((id, Arc::new(fresh)));
        }
        let (key, _) = unwrap(master, owner, &id, &wrapped, &master_id).map_err(StoreError::new)?;
        Ok((id, Arc::new(key)))
    }
}

fn stopped() -> StoreError {
    StoreError::new(std::io::Error::other("the data key writer has stopped"))
}

/// The owner's stored key, read on its own: for a key committed by a racing statement after
/// this one's snapshot was taken.
async fn read(pool: &PgPool, owner: Owner<'_>) -> Result<Option<Row>, StoreError> {
    sqlx::query_as(
        "SELECT key_id::text, wrapped_key, master_key_id FROM data_keys \
         WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(owner.tenant.as_str())
    .bind(owner.user_column())
    .fetch_optional(pool)
    .await
    .map_err(StoreError::new)
}

/// Takes what is waiting, up to [`MAX_OWNERS`] owners, whenever a statement may start.
async fn run(writer: Writer, stalled: Duration, mut waiting: mpsc::UnboundedReceiver<Wanted>) {
    let writer = Arc::new(writer);
    let one = Arc::new(Semaphore::new(1));
    let extra = Arc::new(Semaphore::new(EXTRA));
    while let Some(first) = waiting.recv().await {
        let slot = match tokio::time::timeout(stalled, one.clone().acquire_owned()).await {
            Ok(slot) => slot,
            Err(_) => tokio::select! {
                slot = one.clone().acquire_owned() => slot,
                slot = extra.clone().acquire_owned() => slot,
            },
        };
        let Ok(slot) = slot else {
            return;
        };
        let mut owners: Vec<Vec<Wanted>> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let mut next = Some(first);
        while let Some(wanted) = next.take() {
            // A seal whose caller has gone makes no key.
            if wanted.done.is_closed() {
                next = waiting.try_recv().ok();
                continue;
            }
            let key = (wanted.tenant.clone(), wanted.user.clone());
            match index.get(&key) {
                Some(&i) => owners[i].push(wanted),
                None => {
                    index.insert(key, owners.len());
                    owners.push(vec![wanted]);
                }
            }
            if owners.len() < MAX_OWNERS {
                next = waiting.try_recv().ok();
            }
        }
        if owners.is_empty() {
            continue;
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            writer.write(owners).await;
            drop(slot);
        });
    }
}

/// The writer's connections, and how long a refused statement's owners are retried.
pub(super) struct Writer {
    connections: DirectConnections,
    retry_for: Duration,
}

impl Writer {
    /// Writes the owners' keys in one statement and answers every waiter.
    ///
    /// When PostgreSQL refuses the statement for what one owner could cause (a value it cannot
    /// store, a constraint, a lock it waited too long for, a deadlock), nothing of it was
    /// written, and each owner is written again on its own, each retry starting within
    /// `retry_for` (a retry is never cut short: that would lose its answer): only the owners
    /// at fault, and those not reached in time, see the error. Any other failure (the
    /// connection cut, no connection in time) reaches every waiter: the statement may have
    /// committed, and writing its keys again after an erasure would put an erased key back.
    pub(super) async fn write(&self, mut owners: Vec<Vec<Wanted>>) {
        // In owner order, so two statements inserting the same owners wait in one direction
        // only.
        owners.sort_by(|a, b| (&a[0].tenant, &a[0].user).cmp(&(&b[0].tenant, &b[0].user)));
        match self.statement(&owners).await {
            Ok(mut rows) => {
                for waiters in owners {
                    let row = rows.remove(&(waiters[0].tenant.clone(), waiters[0].user.clone()));
                    for wanted in waiters {
                        let _ = wanted.done.send(Ok(row.clone()));
                    }
                }
            }
            Err(e) if owners.len() > 1 && refused_for_an_owner(&e) => {
                let e = SharedFailure(Arc::new(e));
                let until = Instant::now() + self.retry_for;
                for waiters in owners {
                    let waiters: Vec<Wanted> = waiters
                        .into_iter()
                        .filter(|w| !w.done.is_closed())
                        .collect();
                    if waiters.is_empty() {
                        continue;
                    }
                    if Instant::now() < until {
                        Box::pin(self.write(vec![waiters])).await;
                    } else {
                        fail(waiters, &e);
                    }
                }
            }
            Err(e) => fail(owners.into_iter().flatten(), &SharedFailure(Arc::new(e))),
        }
    }

    /// One statement on a connection of the writer's.
    async fn statement(
        &self,
        owners: &[Vec<Wanted>],
    ) -> Result<HashMap<(String, String), Row>, sqlx::Error> {
        let mut lease = self.connections.acquire().await?;
        let answer = statement(lease.conn(), owners).await;
        // Back for reuse when PostgreSQL answered and the session lives on; closed otherwise.
        match &answer {
            Ok(_) => lease.finish(),
            Err(e) if session_survives(e) => lease.finish(),
            Err(_) => {}
        }
        answer
    }
}

fn fail(waiters: impl IntoIterator<Item = Wanted>, e: &SharedFailure) {
    for wanted in waiters {
        let _ = wanted.done.send(Err(StoreError::new(e.clone())));
    }
}

/// Whether PostgreSQL refused the statement, so it wrote nothing, for a reason one owner's row
/// could be behind: SQLSTATE classes 22 (data) and 23 (constraints), 40001 and 40P01
/// (serialization, deadlock), P0001 (raised by a trigger) and 55P03 (a lock not available in
/// time). Not the rest of class 40: 40003 says the statement may have completed.
fn refused_for_an_owner(e: &sqlx::Error) -> bool {
    let Some(code) = e.as_database_error().and_then(|db| db.code()) else {
        return false;
    };
    code.starts_with("22")
        || code.starts_with("23")
        || matches!(code.as_ref(), "40001" | "40P01" | "P0001" | "55P03")
}

/// Inserts each owner's offered key unless it has one, and returns, by owner, whichever is
/// stored. An owner whose key a racing statement committed during this one is not in the
/// answer (the insert waits for it and skips, but the snapshot predates it).
async fn statement(
    conn: &mut sqlx::PgConnection,
    owners: &[Vec<Wanted>],
) -> Result<HashMap<(String, String), Row>, sqlx::Error> {
    let first = owners.iter().map(|w| &w[0]);
    let ids: Vec<String> = first.clone().map(|w| w.fresh_id.to_string()).collect();
    let tenants: Vec<&str> = first.clone().map(|w| w.tenant.as_str()).collect();
    let users: Vec<&str> = first.clone().map(|w| w.user.as_str()).collect();
    let wrapped: Vec<&[u8]> = first.clone().map(|w| w.wrapped.as_slice()).collect();
    let masters: Vec<&str> = first.map(|w| w.master_id.as_str()).collect();
    // Key ids cross the wire as text: the uuid type keeps the column honest without a driver
    // feature for it. The owners not created here are read with the statement's snapshot, so
    // the read cannot see the insert's rows and an owner comes back once. Only they are looked
    // up, each through the owner index: a plan that joined every owner, cached while the table
    // was nearly empty, scanned all of it on each call (measured: PostgreSQL's time per enrolled
    // user up by half, in a bench too short for the table to be analyzed).
    let rows: Vec<(String, String, String, Vec<u8>, String)> = sqlx::query_as(
        "WITH wanted AS ( \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[]) \
                 WITH ORDINALITY AS w(key_id, tenant_id, user_id, wrapped_key, master_key_id, n)), \
         created AS ( \
             INSERT INTO data_keys (key_id, tenant_id, user_id, wrapped_key, master_key_id) \
             SELECT key_id::uuid, tenant_id, user_id, wrapped_key, master_key_id \
             FROM wanted ORDER BY n \
             ON CONFLICT (tenant_id, user_id) DO NOTHING \
             RETURNING tenant_id, user_id, key_id, wrapped_key, master_key_id), \
         missing AS MATERIALIZED ( \
             SELECT w.tenant_id, w.user_id FROM wanted w WHERE NOT EXISTS ( \
                 SELECT FROM created c \
                 WHERE c.tenant_id = w.tenant_id AND c.user_id = w.user_id)) \
         SELECT tenant_id, user_id, key_id::text, wrapped_key, master_key_id FROM created \
         UNION ALL \
         SELECT d.tenant_id, d.user_id, d.key_id::text, d.wrapped_key, d.master_key_id \
         FROM missing m CROSS JOIN LATERAL ( \
             SELECT * FROM data_keys d \
             WHERE d.tenant_id = m.tenant_id AND d.user_id = m.user_id) d",
    )
    .bind(ids)
    .bind(tenants)
    .bind(users)
    .bind(wrapped)
    .bind(masters)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, user, id, wrapped, master)| ((tenant, user), (id, wrapped, master)))
        .collect())
}

#[cfg(test)]
mod tests;
