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

use sqlx::PgConnection;

/// The ids (modulo 2^32, as `pg_locks` shows them) of the transactions running now in another
/// database of the cluster.
const ELSEWHERE: &str = "\
SELECT coalesce(array_agg(l.transactionid::text::bigint), '{}') \
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid AND a.backend_xid = l.transactionid \
WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted \
  AND a.datid IS NOT NULL \
  AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The horizon (as `xid8` digits, for `$n::text::xid8`), skipping the transactions in `$1`.
const HORIZON: &str = "\
WITH s AS (SELECT pg_current_snapshot() AS snap) \
SELECT least( \
  pg_snapshot_xmax(s.snap), \
  (SELECT min(x) FROM pg_snapshot_xip(s.snap) AS x \
   WHERE x IS DISTINCT FROM pg_current_xact_id_if_assigned() \
     AND (x::text::bigint % 4294967296) <> ALL ($1::bigint[])) \
)::text::bigint FROM s";

/// The current commit horizon of the database `conn` is connected to.
///
/// The other databases' transactions are listed in a statement *before* the snapshot's. In one
/// statement the snapshot came first (`pg_current_snapshot()` is the statement's), so a
/// transaction of another database that ended between the snapshot and the scan of `pg_locks`
/// was in the snapshot and no longer in the scan: it held the horizon at its id for that read,
/// below events committed and already read by then. A page read just after its own write could
/// miss it (seen in CI). Listed first, a transaction of another database that is in the later
/// snapshot was in the list, or began after it and so after every event committed before this
/// call (but see below).
///
/// Inside a transaction PostgreSQL keeps its first read of `pg_stat_activity` until the end,
/// while `pg_locks` is read afresh, and the processor reads the horizon several times in one
/// transaction. The kept read would not know a backend started since (late), and would take a
/// backend of this database that reused the process id of one elsewhere for that one (its
/// transaction skipped: too high). So the kept read is dropped first. Within the one statement
/// the two views are still read at two moments, so a backend is matched by its process id *and*
/// its transaction id, which is never reused: a reused process id cannot stand for another.
///
/// Not closed: an id is in snapshots a moment before its lock is in `pg_locks`. A transaction
/// of another database caught in that moment by the list, and still running at the snapshot,
/// holds the horizon at its id for that read (late, never too high). Under `REPEATABLE READ`
/// the snapshot is the transaction's first, taken before the list: the old race, late again
/// (the processor's transactions are `READ COMMITTED` for that reason).
pub async fn commit_horizon(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    let elsewhere: Vec<i64> = sqlx::query_scalar(ELSEWHERE).fetch_one(&mut *conn).await?;
    sqlx::query_scalar(HORIZON)
        .bind(elsewhere)
        .fetch_one(&mut *conn)
        .await
}
