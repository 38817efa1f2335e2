//! The `delivery_outbox` projection: every committed `CodeSent` and `NotificationQueued`
//! becomes one row of the `deliveries` queue (kind `code` or `notification`), in the same
//! transaction as this projection's checkpoint, so each is queued exactly once.
//!
//! It also closes the job of every committed `CodeDelivered` and `NotificationDelivered`. The
//! worker records a send on the user's aggregate and leaves the job to this projection, which
//! closes a whole batch's jobs in one statement instead of one per send (decision 168). Until
//! then the job stays under the worker's lease; if the lease runs out first, a worker that
//! claims the job finds the outcome on the aggregate and sends nothing.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;
use twofold_domain::user::{User, UserEvent};
use twofold_services::ports::DeliveryKind;

use crate::processor::{Projection, ProjectionError, StoredEvent};

/// Queues deliveries and closes delivered ones.
pub struct DeliveryOutbox;

/// The rows a batch of events queues.
#[derive(Default)]
struct Queued<'a> {
    ids: Vec<&'a str>,
    tenants: Vec<&'a str>,
    aggregates: Vec<&'a str>,
    channels: Vec<&'static str>,
    kinds: Vec<&'static str>,
}

/// The jobs a batch of events closes as delivered, with whose they are.
#[derive(Default)]
struct Delivered<'a> {
    ids: Vec<&'a str>,
    tenants: Vec<&'a str>,
    aggregates: Vec<&'a str>,
}

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
        self.apply_all(db, std::slice::from_ref(event))
            .await
            .map_err(|(_, e)| e)
    }

    /// Two statements for the whole batch: the new jobs, then the delivered ones. A job is
    /// always queued in an earlier transaction than its delivery is recorded (the worker claims
    /// only queued rows), so inserting first keeps the log's order, replays included.
    async fn apply_all(
        &self,
        db: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), (i64, ProjectionError)> {
        let first = events.first().map_or(0, |e| e.position);
        let mut queued = Queued::default();
        let mut delivered = Delivered::default();
        for event in events {
            if event.aggregate_type != User::TYPE
                || !matches!(
                    event.event_type.as_str(),
                    "CodeSent" | "NotificationQueued" | "CodeDelivered" | "NotificationDelivered"
                )
            {
                continue;
            }
            let data = event.user_event().map_err(|e| (event.position, e.into()))?;
            let (id, channel, kind) = match data {
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
                Some(
                    UserEvent::CodeDelivered { challenge_id, .. }
                    | UserEvent::NotificationDelivered {
                        notification_id: challenge_id,
                        ..
                    },
                ) => {
                    delivered.ids.push(challenge_id);
                    delivered.tenants.push(&event.tenant_id);
                    delivered.aggregates.push(&event.aggregate_id);
                    continue;
                }
                _ => continue,
            };
            queued.ids.push(id);
            queued.tenants.push(&event.tenant_id);
            queued.aggregates.push(&event.aggregate_id);
            queued.channels.push(channel.as_str());
            queued.kinds.push(kind.as_str());
        }
        if !queued.ids.is_empty() {
            sqlx::query(
                "INSERT INTO deliveries (challenge_id, tenant_id, aggregate_id, channel, kind) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 ON CONFLICT (challenge_id) DO NOTHING",
            )
            .bind(&queued.ids)
            .bind(&queued.tenants)
            .bind(&queued.aggregates)
            .bind(&queued.channels)
            .bind(&queued.kinds)
            .execute(&mut *db)
            .await
            .map_err(|e| (first, e.into()))?;
        }
        if !delivered.ids.is_empty() {
            // The log is the truth: a job another worker closed as obsolete (its lease ran out
            // before this batch) is delivered all the same. Already delivered: a replay. Only
            // the user's own job: ids are random and server-made, and the check costs nothing.
            sqlx::query(
                "UPDATE deliveries d SET status = 'delivered', last_error = NULL, \
                        lease_until = NULL, attempts = d.attempts + 1, updated_at = now() \
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS e(id, tenant, aggregate) \
                 WHERE d.challenge_id = e.id AND d.tenant_id = e.tenant \
                   AND d.aggregate_id = e.aggregate AND d.status <> 'delivered'",
            )
            .bind(&delivered.ids)
            .bind(&delivered.tenants)
            .bind(&delivered.aggregates)
            .execute(&mut *db)
            .await
            .map_err(|e| (first, e.into()))?;
        }
        Ok(())
    }

    async fn reset(&self, _db: &mut PgConnection) -> Result<(), ProjectionError> {
        // Never forget the queue on a rebuild: replayed `CodeSent` events find their rows
        // already there, so no code is sent twice.
        Ok(())
    }
}
