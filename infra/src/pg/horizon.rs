//! The commit horizon: the transaction id below which every transaction that could have written
//! this database's events has ended, so events below it are final and can be read in
//! commit-safe order.
//!
//! `pg_snapshot_xmin(pg_current_snapshot())` is that bound for the whole cluster, and a
//! transaction left open in *another* database holds it back, although it can never write here
//! (a PostgreSQL transaction belongs to one database). On a cluster shared by several
//! databases (tests, or a cheap production host) that stalled every projection. So the
//! horizon skips the running transactions known to belong to another database: known from the
//! lock each transaction holds on its own id (`pg_locks`, readable by any role) and its
//! backend's database (`pg_stat_activity.datid`). Anything not positively known to be elsewhere
//! (a prepared transaction, an id whose lock is not in the table yet, a backend this role
//! cannot see) still holds the horizon, as before.
//!
//! The horizon must be read in a statement *before* the one that reads the events: a
//! transaction of this database that was running when the horizon was read, and commits before
//! the events are read, would otherwise be skipped. Read first, every transaction below the
//! horizon that is still running when the events are read was running (and its lock seen)
//! when the horizon was read, and is therefore below it only if it belongs elsewhere.

use sqlx::PgExecutor;

/// Returns the horizon (as `xid8` digits, for `$n::text::xid8`).
const HORIZON: &str = "\
WITH s AS (SELECT pg_current_snapshot() AS snap), \
elsewhere AS ( \
  SELECT l.transactionid::text::bigint AS xid32 \
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
  WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted \
    AND a.datid IS NOT NULL \
    AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())) \
SELECT least( \
  pg_snapshot_xmax(s.snap), \
  (SELECT min(x) FROM pg_snapshot_xip(s.snap) AS x \
   WHERE x IS DISTINCT FROM pg_current_xact_id_if_assigned() \
     AND (x::text::bigint % 4294967296) NOT IN (SELECT xid32 FROM elsewhere)) \
)::text::bigint FROM s";

/// The current commit horizon of the database `executor` is connected to.
pub async fn commit_horizon<'e>(executor: impl PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(HORIZON).fetch_one(executor).await
}
