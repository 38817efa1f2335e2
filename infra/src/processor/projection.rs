//! What a projection is to the processor: the events it reads and the trait it implements.

use std::sync::OnceLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use twofold_domain::user::{User, UserEvent};

/// An event as read from the log. Its payload stays JSON text until a projection asks for it,
/// and a user event is decoded at most once for all projections: most events of a batch are
/// used by one projection or none.
#[derive(Debug)]
pub struct StoredEvent {
    /// e.g. `tenant`.
    pub aggregate_type: String,
    /// `{tenant_id}/...`.
    pub aggregate_id: String,
    /// Position in its aggregate's stream (1-based).
    pub sequence: i64,
    /// e.g. `ApiKeyIssued`.
    pub event_type: String,
    /// The serialized domain event.
    pub payload: Box<RawValue>,
    /// The writing transaction.
    pub tx_id: i64,
    /// Global insertion position.
    pub position: i64,
    /// When its transaction started (`now()` at insert).
    pub recorded_at: DateTime<Utc>,
    /// The owning tenant.
    pub tenant_id: String,
    /// The payload as a user event, once decoded.
    user_event: OnceLock<UserEvent>,
}

impl StoredEvent {
    pub(super) fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            payload: row.try_get::<Json<Box<RawValue>>, _>("payload")?.0,
            tx_id: row.try_get("tx")?,
            position: row.try_get("global_position")?,
            recorded_at: row.try_get("recorded_at")?,
            tenant_id: row.try_get("tenant_id")?,
            user_event: OnceLock::new(),
        })
    }

    /// The payload as the event type `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }

    /// The payload of a user event, decoded on the first call; `None` for other aggregates.
    pub fn user_event(&self) -> Result<Option<&UserEvent>, serde_json::Error> {
        if self.aggregate_type != User::TYPE {
            return Ok(None);
        }
        if let Some(event) = self.user_event.get() {
            return Ok(Some(event));
        }
        let event = self.decode::<UserEvent>()?;
        Ok(Some(self.user_event.get_or_init(|| event)))
    }
}

/// The columns of [`StoredEvent`], for queries that read events.
pub const EVENT_COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, payload, \
     tx_id::text::bigint AS tx, global_position, recorded_at, tenant_id";

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The database refused.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The payload is not the event the projection expected.
    #[error("cannot read event payload: {0}")]
    Payload(#[from] serde_json::Error),
}

/// A read model kept from the event log.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Unique, stable name: the checkpoint's key and the `projections rebuild` argument.
    fn name(&self) -> &'static str;
    /// Whether a command on `aggregate_type` must wait for this projection before answering
    /// (read-your-writes): true when the API reads this projection and such events change it.
    fn reads(&self, aggregate_type: &str) -> bool;
    /// Applies one event inside the batch's transaction. Must ignore events it does not use.
    async fn apply(
        &self,
        db: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError>;
    /// Applies a batch of events, in order, inside the batch's transaction. The default applies
    /// them one at a time; a projection that can do better in fewer statements overrides it.
    /// The error names the event that failed (or the first of the batch).
    async fn apply_all(
        &self,
        db: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), (i64, ProjectionError)> {
        for event in events {
            self.apply(db, event)
                .await
                .map_err(|e| (event.position, e))?;
        }
        Ok(())
    }
    /// Deletes everything the projection wrote, before a rebuild from position 0.
    async fn reset(&self, db: &mut PgConnection) -> Result<(), ProjectionError>;
}
