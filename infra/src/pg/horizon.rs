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

/// The current commit horizon (as `xid8` digits, for `$n::text::xid8`) of the database `conn`
/// is connected to, computed by `twofold_commit_horizon()` (migration
/// `20261215000000_commit_horizon_function.sql`), whose statements each take a snapshot of
/// their own, in this order:
///
/// 1. **The kept read of `pg_stat_activity` is dropped.** Inside a transaction PostgreSQL keeps
///    its first read until the end, while `pg_locks` is read afresh, and the processor reads the
///    horizon several times in one transaction (a rebuild). The kept read would not know a
///    backend started since (late), and would take a backend of this database that reused the
///    process id of one elsewhere for that one (its transaction skipped: too high).
/// 2. **The other databases' running transactions are listed**, each lock matched to its
///    backend by process id *and* the backend's own transaction id, which is never reused.
/// 3. **The snapshot is taken, after the list.** In one statement it came first
///    (`pg_current_snapshot()` is the statement's), so a transaction of another database that
///    ended between the snapshot and the scan of `pg_locks` was in the snapshot and no longer
///    in the scan: it held the horizon at its id for that read, below events committed and
///    already read by then, and a page read just after its own write missed them (seen in
///    CI). Listed first, a transaction of another database that is in the later snapshot was
///    in the list, or began after it and so after every event committed before this call.
///
/// Not closed: an id is in snapshots a moment before its lock is in `pg_locks`. A transaction
/// of another database caught in that moment by the list, and still running at the snapshot,
/// holds the horizon at its id for that read (late, never too high). Under `REPEATABLE READ`
/// every statement has the transaction's first snapshot, taken before the list: the old race,
/// late again (the processor's transactions are `READ COMMITTED` for that reason).
pub async fn commit_horizon(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT twofold_commit_horizon()")
        .fetch_one(conn)
        .await
}
