//! The `delivery_outbox` projection: every committed `CodeSent` and `NotificationQueued`
//! becomes one row of the `deliveries` queue (kind `code` or `notification`), in the same
//! transaction as this projection's checkpoint, so each is queued exactly once.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;
use twofold_domain::user::{User, UserEvent};
use twofold_services::ports::DeliveryKind;

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
        if event.aggregate_type != User::TYPE
            || !matches!(event.event_type.as_str(), "CodeSent" | "NotificationQueued")
        {
            return Ok(());
        }
        let (id, channel, kind) = match event.user_event()? {
            Some(UserEvent::CodeSent {
                challenge_id,
                channel,
                ..
            }) => (challenge_id, channel, DeliveryKind::Code),
            Some(UserEvent::NotificationQueued {
                notification_id,
                channel,
                ..
            }) => (notification_id, channel, DeliveryKind::Notification),
            _ => return Ok(()),
        };
        sqlx::query(
            "INSERT INTO deliveries (challenge_id, tenant_id, aggregate_id, channel, kind) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (challenge_id) DO NOTHING",
        )
        .bind(id)
        .bind(&event.tenant_id)
        .bind(&event.aggregate_id)
        .bind(channel.as_str())
        .bind(kind.as_str())
        .execute(&mut *db)
        .await?;
        Ok(())
    }

    async fn reset(&self, _db: &mut PgConnection) -> Result<(), ProjectionError> {
        // Never forget the queue on a rebuild: replayed `CodeSent` events find their rows
        // already there, so no code is sent twice.
        Ok(())
    }
}
