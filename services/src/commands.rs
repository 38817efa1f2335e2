//! Running commands against event-sourced aggregates: load, decide, commit, with a bounded retry
//! when another writer committed to the same aggregate first.
//!
//! We drive the event store ourselves instead of `CqrsFramework::execute` because we need
//! the state after the command (to answer the caller without a read-model round trip), the
//! committed sequence (to let the caller read its own writes), and no in-process queries (they
//! lose updates on a crash; projections run on our event processor instead).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cqrs_es::{Aggregate, AggregateError};
use tracing::Instrument;

use crate::ports::{Entropy, ReadModelSync};
use crate::StoreError;

/// The outcome of a committed command.
pub struct Executed<A: Aggregate> {
    /// The aggregate's state after the command, shared with the store's cache of aggregates
    /// (which would otherwise copy it on every command).
    pub state: Arc<A>,
    /// Sequence of the last event written, `None` when the command decided nothing new.
    pub last_sequence: Option<usize>,
    /// The events the command recorded (a refused code is recorded, not an error, so callers
    /// read the outcome from here).
    pub events: Vec<A::Event>,
}

/// One attempt at a command on one aggregate, and plain loads. Implemented over PostgreSQL in
/// `twofold-infra`.
#[async_trait]
pub trait CommandGateway<A: Aggregate>: Send + Sync {
    /// Loads the aggregate's current state from the database.
    async fn load(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>>;
    /// The aggregate's current state for a hot read, from memory where the implementation can
    /// confirm that memory is current; by default, [`CommandGateway::load`]. Only for reads
    /// whose answer a later command checks again, or whose error costs at most a send.
    async fn read(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        self.load(aggregate_id).await
    }
    /// Loads, handles `command`, commits. A concurrent commit surfaces as `AggregateConflict`.
    async fn execute_once(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &HashMap<String, String>,
    ) -> Result<Executed<A>, AggregateError<A::Error>>;
}

/// Runs commands with bounded conflict retries and read-your-writes.
pub struct Commands<A: Aggregate> {
    gateway: Arc<dyn CommandGateway<A>>,
    sync: Arc<dyn ReadModelSync>,
    entropy: Arc<dyn Entropy>,
}

impl<A: Aggregate> Clone for Commands<A> {
    fn clone(&self) -> Self {
        Self {
            gateway: self.gateway.clone(),
            sync: self.sync.clone(),
            entropy: self.entropy.clone(),
        }
    }
}

/// How often a command is attempted before a conflict is reported to the caller. Generous,
/// because each retry re-decides on fresh state and most conflicts are unrelated writes.
pub const MAX_ATTEMPTS: u32 = 20;

impl<A> Commands<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
{
    /// Wires the gateway, the read-model sync and the entropy used for retry jitter.
    pub fn new(
        gateway: Arc<dyn CommandGateway<A>>,
        sync: Arc<dyn ReadModelSync>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            gateway,
            sync,
            entropy,
        }
    }

    /// Loads the aggregate.
    pub async fn load(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        self.gateway.load(aggregate_id).await
    }

    /// The aggregate for a hot read (see [`CommandGateway::read`]).
    pub async fn read(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        self.gateway.read(aggregate_id).await
    }

    /// Executes `command`, re-loading and re-deciding on conflict up to [`MAX_ATTEMPTS`] times
    /// with jittered backoff, then waits for the projections to catch up with what it wrote.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        // Tenant, request and actor identify the command; the aggregate id is left out because
        // a user aggregate's id holds the tenant's id for its end user.
        let field = |k: &str| metadata.get(k).map(String::as_str).unwrap_or_default();
        let span = tracing::info_span!(
            "command",
            aggregate = A::TYPE,
            tenant = field("tenant_id"),
            request_id = field("request_id"),
            actor = field("actor"),
        );
        self.execute_in_span(aggregate_id, command, metadata)
            .instrument(span)
            .await
    }

    async fn execute_in_span(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let mut attempt = 1;
        let executed = loop {
            match self
                .gateway
                .execute_once(aggregate_id, command.clone(), &metadata)
                .await
            {
                Err(AggregateError::AggregateConflict) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, "conflict, retrying command");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(CommandError::Aggregate(e)),
                Ok(executed) => break executed,
            }
        };
        tracing::debug!(
            events = executed.events.len(),
            attempts = attempt,
            "command committed"
        );
        if let Some(sequence) = executed.last_sequence {
            self.sync
                .settle(A::TYPE, aggregate_id, sequence)
                .await
                .map_err(CommandError::Sync)?;
        }
        Ok(executed)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let mut b = [0u8; 2];
        self.entropy.fill(&mut b);
        let cap_ms = 2u64.saturating_pow(attempt.min(6));
        Duration::from_micros(u64::from(u16::from_le_bytes(b)) % (cap_ms * 1000) + 200)
    }
}

/// Why a command failed: the aggregate refused or the store failed, or (after the commit)
/// waiting for the read model failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// From the aggregate or the event store.
    #[error(transparent)]
    Aggregate(AggregateError<E>),
    /// The read model could not be checked after the commit.
    #[error(transparent)]
    Sync(StoreError),
}

impl<E> From<CommandError<E>> for crate::ServiceError
where
    E: std::error::Error + Into<crate::ServiceError>,
{
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Aggregate(e) => crate::error::from_aggregate_error(e),
            CommandError::Sync(e) => e.into(),
        }
    }
}
