//! The postgres-es event store, wired as a command gateway.
//!
//! We use the plain event store (`new_event_store`): cqrs-es 0.5's snapshot and aggregate stores
//! apply each event twice to the stored snapshot (DESIGN.md section 2).

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use twofold_services::commands::EsGateway;

/// The event store type every aggregate uses.
pub type PgEventStore<A> = PersistedEventStore<PostgresEventRepository, A>;

/// A command gateway for aggregate `A` over the `events` table.
pub fn gateway<A: Aggregate>(
    pool: &PgPool,
    services: A::Services,
) -> EsGateway<A, PgEventStore<A>> {
    let repo = PostgresEventRepository::new(pool.clone());
    EsGateway::new(PersistedEventStore::new_event_store(repo), services)
}
