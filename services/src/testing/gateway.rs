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
}

impl<A: Aggregate> MemGateway<A> {
    /// Commands are decided with `services`, as `PgStore` decides them with its own.
    pub(crate) fn new(services: A::Services) -> Self {
        Self {
            store: MemStore::default(),
            services,
        }
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
        metadata: HashMap<String, String>,
    ) -> Result<Executed<A>, AggregateError<A::Error>> {
        let mut context = self.store.load_aggregate(aggregate_id).await?;
        let sink = EventSink::default();
        context
            .aggregate
            .handle(command, &self.services, &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        let state = context.aggregate.clone();
        let committed = self.store.commit(events.clone(), context, metadata).await?;
        Ok(Executed {
            state,
            last_sequence: committed.last().map(|e| e.sequence),
            events,
        })
    }
}
