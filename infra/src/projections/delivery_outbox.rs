//! The `delivery_outbox` projection: every committed `CodeSent` becomes one row of the
//! `deliveries` queue, in the same transaction as this projection's checkpoint.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;
use twofold_domain::user::{User, UserEvent};

use crate::processor::{Projection, ProjectionError, StoredEvent};

/// Queues deliveries.
pub struct DeliveryOutbox;

#[async_trait]
impl Projection for DeliveryOutbox {
    fn name(&self) -> &'static str {
        "delivery_outbox"
    }

    fn reads(&self, _aggregate_type: &str) -> bool {
        // The API never reads the queue, so no request waits for it.
        false
    }

    async fn apply(
        &self,
        db: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != User::TYPE || event.event_type != "CodeSent" {
            return Ok(());
        }
        if let UserEvent::CodeSent {
            challenge_id,
            channel,
            ..
        } = serde_json::from_value::<UserEvent>(event.payload.clone())?
        {
            sqlx::query(
                "INSERT INTO deliveries (challenge_id, tenant_id, aggregate_id, channel) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (challenge_id) DO NOTHING",
            )
            .bind(&challenge_id)
            .bind(&event.tenant_id)
            .bind(&event.aggregate_id)
            .bind(channel.as_str())
            .execute(&mut *db)
            .await?;
        }
        Ok(())
    }

    async fn reset(&self, _db: &mut PgConnection) -> Result<(), ProjectionError> {
        // Never forget the queue on a rebuild: replayed `CodeSent` events find their rows
        // already there, so no code is sent twice.
        Ok(())
    }
}
