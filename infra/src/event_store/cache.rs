//! A bounded per-instance cache of aggregate states: a command on an aggregate this instance
//! committed to recently skips the load (the snapshot and events query).
//!
//! Never a source of truth, and never trusted on its own word:
//! - an entry is the state as it stood right after a commit of this instance, with the sequence
//!   of its last event;
//! - a command decided on it commits only if that sequence is still the stream's last: its
//!   events take the next sequence numbers, and the `(aggregate_type, aggregate_id, sequence)`
//!   key refuses them if any other writer came first (another instance, the command line, a
//!   concurrent command here). A stale entry costs a reload, never a wrong commit;
//! - a decision no append checked (a refusal, or nothing to record) is made again on the
//!   stored state, so a stale entry cannot answer either;
//! - the key cannot tell a stream that went backwards: a restart or failover of PostgreSQL may
//!   lose its last commits (asynchronous commit or replication), freeing their sequence
//!   numbers. Every entry carries the connection epoch its state was read at, and a command
//!   decided on it is written only over a connection no newer (older ones die with the server),
//!   else decided again on a fresh load.
//!
//! - a hot read (`CommandGateway::read`) leaves the entry in place and uses it only after the
//!   database confirms the stream's last sequence is still the entry's, over a connection no
//!   newer than the entry's epoch; otherwise it loads. Other reads always load.
//!
//! An entry is taken out while a command uses it, so two commands here never decide on the same
//! copy, and put back (as the new state) only after a commit. The eviction policy is
//! quick_cache's (S3-FIFO, scan resistant); the capacity counts aggregates.

use std::sync::Arc;

use cqrs_es::Aggregate;

/// An aggregate's state right after a commit (or a load), where its stream stands, and the
/// connection epoch it was read at: what a command is decided on.
pub struct Cached<A> {
    /// Shared with the command's answer ([`twofold_services::commands::Executed`]), which is
    /// gone by the next command: that one then takes the state without a copy.
    pub state: Arc<A>,
    /// The sequence of the last event in the state.
    pub sequence: usize,
    /// Events applied since the stored snapshot (what a load would replay).
    pub replayed: usize,
    /// The store's connection epoch when the state was read (see
    /// [`crate::group_commit::GroupCommit::append_decided_at`]).
    pub epoch: u64,
}

/// At most `capacity` aggregates of one type.
pub struct AggregateCache<A> {
    entries: Option<quick_cache::sync::Cache<String, Arc<Cached<A>>>>,
}

impl<A: Aggregate> AggregateCache<A> {
    /// A cache of up to `capacity` aggregates; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
        }
    }

    /// Takes the aggregate's entry out, if there is one.
    pub fn take(&self, aggregate_id: &str) -> Option<Arc<Cached<A>>> {
        self.entries.as_ref()?.remove(aggregate_id).map(|(_, v)| v)
    }

    /// The aggregate's entry, left in place, if there is one (for a read, which must check it
    /// is still current before trusting it).
    pub fn peek(&self, aggregate_id: &str) -> Option<Arc<Cached<A>>> {
        self.entries.as_ref()?.get(aggregate_id)
    }

    /// Keeps the state a command just committed, unless a newer one is already there.
    pub fn put(&self, aggregate_id: &str, entry: Cached<A>) {
        let Some(entries) = &self.entries else {
            return;
        };
        // Two commits here racing to put their state back: the later sequence wins. (Had the
        // older stayed, the next command would only conflict and reload.)
        if entries
            .get(aggregate_id)
            .is_some_and(|current| current.sequence >= entry.sequence)
        {
            return;
        }
        entries.insert(aggregate_id.to_owned(), Arc::new(entry));
    }

    /// How many aggregates it may hold (0: it is off).
    pub fn capacity(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| e.capacity())
    }

    /// How many aggregates it holds now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
