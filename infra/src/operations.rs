//! [`Operations`] over the pool, the event processor and the delivery worker of this process.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgPool, Row};
use twofold_services::delivery::DeliveryStats;
use twofold_services::ports::{Backlog, InstanceState, Operations};
use twofold_services::StoreError;

use crate::processor::EventProcessor;

/// The probes' and the metrics' view of one instance.
pub struct PgOperations {
    pool: PgPool,
    processor: Arc<EventProcessor>,
    /// `None` when this instance runs no delivery worker.
    delivery: Option<Arc<DeliveryStats>>,
}

impl PgOperations {
    pub fn new(
        pool: PgPool,
        processor: Arc<EventProcessor>,
        delivery: Option<Arc<DeliveryStats>>,
    ) -> Self {
        Self {
            pool,
            processor,
            delivery,
        }
    }
}

#[async_trait]
impl Operations for PgOperations {
    async fn database(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::new)
    }

    fn instance(&self) -> InstanceState {
        InstanceState {
            pool_size: self.pool.size(),
            pool_idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            pool_max: self.pool.options().get_max_connections(),
            processor_lag: self.processor.lag(),
            delivery_worker: self.delivery.as_ref().map(|d| d.running()),
            deliveries: self
                .delivery
                .as_ref()
                .map(|d| d.snapshot())
                .unwrap_or_default(),
        }
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        // In a transaction bounded by its own timeouts: a scrape abandoned by its caller must
        // not keep running in PostgreSQL, nor queue a migration's lock behind it.
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        for set in [
            "SET LOCAL statement_timeout = '1s'",
            "SET LOCAL lock_timeout = '100ms'",
        ] {
            sqlx::query(set)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?;
        }
        // Both counts walk an index from a known start and stop at the cap. Only the running
        // projections' checkpoints count: a renamed one's row would pin the figure.
        let row = sqlx::query(
            "SELECT \
               (SELECT count(*) FROM ( \
                  SELECT 1 FROM events e, \
                    (SELECT last_tx, last_position FROM projection_checkpoints \
                     WHERE consumer = ANY($2) ORDER BY last_tx, last_position LIMIT 1) c \
                  WHERE (e.tx_id, e.global_position) > (c.last_tx, c.last_position) \
                  LIMIT $1) behind) AS events_unprocessed, \
               (SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = 'pending' \
                  LIMIT $1) p) AS pending, \
               (SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = 'pending' \
                  AND next_attempt_at <= now() LIMIT $1) d) AS due, \
               (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)), 0)::float8 \
                  FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now()) \
                 AS oldest_due",
        )
        .bind(i64::try_from(Backlog::COUNT_CAP).unwrap_or(i64::MAX))
        .bind(self.processor.projection_names())
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        tx.rollback().await.map_err(StoreError::new)?;
        let count = |column: &str| -> Result<u64, StoreError> {
            let n: i64 = row.try_get(column).map_err(StoreError::new)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let oldest: f64 = row.try_get("oldest_due").map_err(StoreError::new)?;
        Ok(Backlog {
            events_unprocessed: count("events_unprocessed")?,
            deliveries_pending: count("pending")?,
            deliveries_due: count("due")?,
            oldest_due: Duration::try_from_secs_f64(oldest.max(0.0)).unwrap_or_default(),
        })
    }
}
