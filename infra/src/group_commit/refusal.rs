//! Why an events statement wrote nothing, and what its commands hear.

use std::sync::Arc;

use cqrs_es::persist::PersistenceError;

use crate::append;

/// Why a statement wrote nothing.
pub(super) enum Refusal {
    /// PostgreSQL refused it, and said why.
    Database(sqlx::Error),
    /// An event would have stood past a hole in its stream ([`append::Appended::Hole`]).
    Hole,
    /// No answer: whether it committed is unknown.
    Unknown(sqlx::Error),
}

impl Refusal {
    /// What a command alone hears: a hole is a conflict (it decides again on fresh state).
    pub(super) fn into_command_error(self) -> PersistenceError {
        match self {
            Refusal::Database(e) if crate::pg::is_lock_timeout(&e) => {
                RefusedAtLockWait(Arc::new(e)).into()
            }
            Refusal::Database(e) | Refusal::Unknown(e) => append::persistence_error(e),
            Refusal::Hole => PersistenceError::OptimisticLockError,
        }
    }
}

/// A statement of the writer that PostgreSQL refused at the lock wait (55P03): nothing of it was
/// written, and its commands may be tried again later (the source is the driver's error, which
/// `pg::is_unavailable` counts as an outage). Only this type says "nothing written" to the
/// send caps ([`refused_at_lock_wait`]): the same SQLSTATE from any other statement (a read
/// model's check after the commit) says nothing about the command's events.
#[derive(Clone, Debug)]
pub struct RefusedAtLockWait(pub(super) Arc<sqlx::Error>);

impl std::fmt::Display for RefusedAtLockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the events statement waited too long for a lock and wrote nothing")
    }
}

impl std::error::Error for RefusedAtLockWait {
    /// The driver's error itself, not its `Arc`, so that it is recognised down the chain.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl From<RefusedAtLockWait> for PersistenceError {
    fn from(refused: RefusedAtLockWait) -> Self {
        PersistenceError::UnknownError(Box::new(refused))
    }
}

/// Whether `e` is, itself, the writer's refusal at the lock wait: the command wrote nothing.
pub fn refused_at_lock_wait(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<RefusedAtLockWait>()
}

/// Whether the lock wait PostgreSQL ended was for a key of `events`: another transaction's
/// insert of one of the statement's keys, one command's doing. PostgreSQL names the index in
/// the error's context (`while inserting index tuple (0,3) in relation "events_pkey"`, checked on
/// PostgreSQL 15; an index's name is not translated, unlike the words around it). A wait for a
/// lock on a whole relation has no context, and one inside a trigger (the revocations' tables)
/// or at the commit (NOTIFY's lock) names no key of ours: none of them is one command's.
pub(super) fn waited_for_an_events_key(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .and_then(|pg| pg.r#where())
        .is_some_and(|context| context.contains("events_pkey"))
}

/// One failure told to every command of a batch. Its source is the driver's error, so a
/// caller can still tell an outage (retryable) from anything else.
#[derive(Clone, Debug)]
pub(crate) struct SharedFailure(pub(crate) Arc<sqlx::Error>);

impl std::fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the batch's statement failed: {}", self.0)
    }
}

impl std::error::Error for SharedFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
