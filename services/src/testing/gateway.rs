//! An in-memory command gateway: cqrs-es's `MemStore` holds the events, and a command is
//! loaded, decided and committed the way `PgStore` does it, without PostgreSQL.

use std::collections::HashMap;

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::mem_store::MemStore;
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};

use crate::commands::{CommandGateway, Executed};

/// A command gateway for aggregate `A` over a `MemStore`.
pub(crate) struct MemGateway<A: Aggregate> {
    store: MemStore<A>,
    services: A::Services,
    /// Held for writing by a test to hold commands before they decide.
    gate: tokio::sync::RwLock<()>,
    /// How many commands have arrived.
    arrived: tokio::sync::watch::Sender<usize>,
    /// Commands still to refuse as a database outage ([`Outage`]).
    outage: std::sync::atomic::AtomicUsize,
}

/// The error of a command [`MemGateway::fail_next`] refused, as a database connection error
/// (recognised as an outage by [`crate::recognise_unavailable`] where a test registers it).
#[derive(Debug)]
pub(crate) struct Outage;

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database is unreachable (test)")
    }
}

impl std::error::Error for Outage {}

impl<A: Aggregate> MemGateway<A> {
    /// Commands are decided with `services`, as `PgStore` decides them with its own.
    pub(crate) fn new(services: A::Services) -> Self {
        Self {
            store: MemStore::default(),
            services,
            gate: tokio::sync::RwLock::default(),
            arrived: tokio::sync::watch::Sender::new(0),
            outage: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Refuses the next `n` commands as an unreachable database would, writing nothing.
    pub(crate) fn fail_next(&self, n: usize) {
        self.outage.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds every command at its start until the guard is dropped.
    pub(crate) async fn hold(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// Returns once more than `n` commands have arrived (held or not).
    pub(crate) async fn arrived(&self, n: usize) {
        let mut arrived = self.arrived.subscribe();
        let _ = arrived.wait_for(|a| *a > n).await;
    }

    /// How many commands have arrived.
    pub(crate) fn commands(&self) -> usize {
        *self.arrived.borrow()
    }

    /// Every event recorded on `aggregate_id`, oldest first, with its metadata.
    pub(crate) async fn events(&self, aggregate_id: &str) -> Vec<EventEnvelope<A>> {
        self.store
            .load_events(aggregate_id)
            .await
            .expect("the memory store does not fail")
    }
}

#[async_trait]
impl<A> CommandGateway<A> for MemGateway<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Send + 'static,
    A::Services: Send + Sync,
{
    async fn load(&self, aggregate_id: &str) -> Result<A, AggregateError<A::Error>> {
        Ok(self.store.load_aggregate(aggregate_id).await?.aggregate)
    }

    async fn execute_once(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &HashMap<String, String>,
    ) -> Result<Executed<A>, AggregateError<A::Error>> {
        self.arrived.send_modify(|a| *a += 1);
        drop(self.gate.read().await);
        let refuse = self.outage.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        if refuse.is_ok() {
            return Err(AggregateError::DatabaseConnectionError(Box::new(Outage)));
        }
        let mut context = self.store.load_aggregate(aggregate_id).await?;
        let sink = EventSink::default();
        context
            .aggregate
            .handle(command, &self.services, &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        let state = context.aggregate.clone();
        let committed = self
            .store
            .commit(events.clone(), context, metadata.clone())
            .await?;
        Ok(Executed {
            state: std::sync::Arc::new(state),
            last_sequence: committed.last().map(|e| e.sequence),
            events,
        })
    }
}
