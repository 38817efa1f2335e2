//! Appending events: any number of them, of any number of commands, in one `INSERT` statement
//! run on its own (no `BEGIN`, no `COMMIT`: PostgreSQL commits a lone statement by itself).
//!
//! postgres-es writes a command's events with `BEGIN`, one `INSERT` per event and `COMMIT`:
//! three round trips or more, each costing the service and PostgreSQL a wake-up and a message.
//! This statement writes exactly the rows postgres-es writes (its columns, its values; the
//! columns PostgreSQL fills in get their defaults, row by row in the order given), so
//! postgres-es still reads and replays them (the test `append_writes_what_postgres_es_writes`
//! compares the two). A statement is atomic: it writes every row or none.

use std::sync::Arc;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgConnection;

/// One row of `events` as postgres-es writes it, its JSON already text: a command serializes
/// its events straight to text, instead of to a `serde_json::Value` tree that was then written
/// out again (about 2% of a verify's CPU, docs/benchmark.md round 14). PostgreSQL stores both
/// as the same `jsonb`.
pub struct EventRow {
    pub aggregate_id: String,
    pub sequence: usize,
    pub event_type: String,
    pub event_version: String,
    pub payload: Box<RawValue>,
    /// The command's metadata, one text for all its events.
    pub metadata: Arc<RawValue>,
}

impl EventRow {
    /// The row of a postgres-es event.
    pub fn from_serialized(event: &SerializedEvent) -> Result<Self, serde_json::Error> {
        Ok(Self {
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            payload: serde_json::value::to_raw_value(&event.payload)?,
            metadata: serde_json::value::to_raw_value(&event.metadata)?.into(),
        })
    }
}

/// The rows of postgres-es's `INSERT`, from arrays, in the arrays' order (`ORDER BY n`: the
/// order `global_position` is drawn in, which the processor reads a commit's events in), and
/// none at all if any event would stand past a hole: its predecessor neither stored nor in the
/// statement. The primary key refuses a sequence taken twice but not one written past a hole,
/// and a hole appears when a command builds on a state the database no longer holds (a restart
/// or failover that lost the last commits frees their sequence numbers, and an instance's
/// memory, decision 162, still counts them, also behind a pooler whose connections survive).
/// `OFFSET 0` keeps the stored-predecessor check a lookup by key per event: as an anti-join,
/// a plan made while `events` was small read every row of the aggregate type (decision 166).
/// A predecessor within the statement is found by a window over the arrays, sorted once: the
/// generic plan the hot path uses cannot see their lengths, and made the anti-join it had
/// been a nested loop, quadratic in the batch.
pub const APPEND_SQL: &str = "WITH e AS (SELECT * FROM \
       unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[]) \
       WITH ORDINALITY AS e(aggregate_id, sequence, event_type, event_version, payload, metadata, n)), \
     hole AS (SELECT 1 FROM (SELECT aggregate_id, sequence, lag(sequence) \
         OVER (PARTITION BY aggregate_id ORDER BY sequence) AS before FROM e) x \
       WHERE x.sequence > 1 AND x.before IS DISTINCT FROM x.sequence - 1 \
       AND NOT EXISTS (SELECT 1 FROM events p WHERE p.aggregate_type = $1 \
                         AND p.aggregate_id = x.aggregate_id AND p.sequence = x.sequence - 1 \
                         OFFSET 0)) \
     INSERT INTO events \
       (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
     SELECT $1, e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload, e.metadata \
     FROM e WHERE NOT EXISTS (SELECT 1 FROM hole) ORDER BY e.n";

/// [`APPEND_SQL`] whose lock waits end after `$8` (`lock_timeout` as `set_config` writes it),
/// for this statement alone: it is set before the first row is inserted (a one-time filter),
/// and goes with the statement's own transaction, so nothing outlives it, behind a pooler too.
static APPEND_WAITING_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    assert_eq!(
        APPEND_SQL.matches(GATE).count(),
        1,
        "the append's last filter"
    );
    assert!(
        !APPEND_SQL.contains("$8"),
        "the lock wait is the eighth parameter"
    );
    APPEND_SQL.replace(
        GATE,
        &format!("{GATE} AND (SELECT set_config('lock_timeout', $8, true)) IS NOT NULL"),
    )
});

/// The last filter of [`APPEND_SQL`], which the lock wait's joins.
const GATE: &str = "FROM e WHERE NOT EXISTS (SELECT 1 FROM hole)";

/// What an append did.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// Every event is written and committed.
    Written,
    /// Nothing is written: an event would have stood past a hole in its stream.
    Hole,
}

/// Writes `events` (of aggregate type `aggregate_type`) in one statement, committed when it
/// returns `Ok(Written)`; `Ok(Hole)` wrote nothing. On `Err` with a database error, PostgreSQL
/// refused the statement and nothing was written; on any other error the outcome is unknown.
pub async fn append<'a>(
    conn: &mut PgConnection,
    aggregate_type: &str,
    events: impl Iterator<Item = &'a SerializedEvent>,
) -> Result<Appended, sqlx::Error> {
    let rows = events
        .map(EventRow::from_serialized)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    append_waiting(conn, aggregate_type, rows.iter(), None).await
}

/// As [`append`], with its lock waits ended after `lock_wait` (`None`: the connection's own).
/// Only outside a transaction: in one, the setting would last until its end. Locks taken before
/// the statement runs (the table's, as its plan is checked) wait as long as the connection says.
pub(crate) async fn append_waiting<'a>(
    conn: &mut PgConnection,
    aggregate_type: &str,
    events: impl Iterator<Item = &'a EventRow>,
    lock_wait: Option<std::time::Duration>,
) -> Result<Appended, sqlx::Error> {
    let (lower, _) = events.size_hint();
    let mut ids = Vec::with_capacity(lower);
    let mut sequences = Vec::with_capacity(lower);
    let mut types = Vec::with_capacity(lower);
    let mut versions = Vec::with_capacity(lower);
    let mut payloads = Vec::with_capacity(lower);
    let mut metadata = Vec::with_capacity(lower);
    for event in events {
        ids.push(event.aggregate_id.as_str());
        sequences.push(i64::try_from(event.sequence).unwrap_or(i64::MAX));
        types.push(event.event_type.as_str());
        versions.push(event.event_version.as_str());
        payloads.push(Json(&*event.payload));
        metadata.push(Json(&*event.metadata));
    }
    let expected = ids.len() as u64;
    let sql = match lock_wait {
        None => APPEND_SQL,
        Some(_) => APPEND_WAITING_SQL.as_str(),
    };
    let mut query = sqlx::query(sql)
        .bind(aggregate_type)
        .bind(ids)
        .bind(sequences)
        .bind(types)
        .bind(versions)
        .bind(payloads)
        .bind(metadata);
    if let Some(wait) = lock_wait {
        query = query.bind(format!("{}ms", wait.as_millis().max(1)));
    }
    let written = query.execute(conn).await?.rows_affected();
    Ok(if written == expected {
        Appended::Written
    } else {
        Appended::Hole
    })
}

/// Whether PostgreSQL refused the statement because of what other writers did, which a
/// command answers by deciding again on fresh state: a key already taken (another command
/// wrote that sequence first, postgres-es's optimistic lock), a deadlock or a serialization
/// failure. Nothing of the statement was written. Not a lock held past the writer's lock wait
/// (55P03): it may be the whole table's (a migration), which deciding again cannot get past,
/// so it is an outage the caller may retry (`pg::is_unavailable`, decision 175).
pub fn is_conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| matches!(code.as_ref(), "23505" | "40P01" | "40001"))
}

/// Whether the connection can serve another statement after `error`: PostgreSQL answered with
/// an error that ends only the statement, not the session (not a connection failure, class
/// 08, nor a shutdown or admin termination, class 57, nor any error of severity FATAL or
/// PANIC, whatever its code).
pub fn session_survives(error: &sqlx::Error) -> bool {
    let Some(database) = error.as_database_error() else {
        return false;
    };
    let fatal = database
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| {
            matches!(
                pg.severity(),
                sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
            )
        });
    !fatal
        && database
            .code()
            .is_some_and(|code| !code.starts_with("08") && !code.starts_with("57"))
}

/// The error a command sees for a failed append, as postgres-es reports its own: a conflict
/// is `OptimisticLockError`, a lost connection a `ConnectionError`, the rest unknown.
pub fn persistence_error(error: sqlx::Error) -> PersistenceError {
    if is_conflict(&error) {
        PersistenceError::OptimisticLockError
    } else if error.as_database_error().is_some() {
        PersistenceError::UnknownError(Box::new(error))
    } else {
        PersistenceError::ConnectionError(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The waiting statement is the append with one more filter, at its end: built at its first
    // use on a held key, a change to the append that broke it would otherwise show only then.
    #[test]
    fn the_waiting_append_is_the_append_with_the_lock_wait_as_its_last_filter() {
        let waiting = APPEND_WAITING_SQL.as_str();
        let (before, after) = waiting.split_once(GATE).expect("the gate");
        assert_eq!(
            format!(
                "{before}{GATE}{}",
                &after[after.find(" ORDER BY").unwrap()..]
            ),
            APPEND_SQL
        );
        assert!(after.starts_with(
            " AND (SELECT set_config('lock_timeout', $8, true)) IS NOT NULL ORDER BY e.n"
        ));
    }
}
